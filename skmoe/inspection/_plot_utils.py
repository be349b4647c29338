"""Helpers shared by the displays.

One place for what every display does the same way: optional matplotlib, the
experts' colours, the estimator (a mixture or a pipeline ending in one), the
input grid (``grid_resolution``, ``eps``, ``fixed_values``) and the merging of
the user's matplotlib keywords into the defaults.

Nothing here imports matplotlib at module level, so ``import skmoe.inspection``
works without it; the displays call :func:`_check_matplotlib` before drawing.
"""

from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

MATPLOTLIB_MISSING_MESSAGE = (
    "{caller} requires matplotlib; install it with `pip install skmoe[plot]` "
    "(or `pip install matplotlib`)."
)


def _check_matplotlib(caller):
    """Import and return :mod:`matplotlib`, or fail with installation advice.

    Parameters
    ----------
    caller : str
        Name of the function that needs matplotlib, for the message.

    Returns
    -------
    matplotlib : module
        The :mod:`matplotlib` module.

    Raises
    ------
    ImportError
        If matplotlib cannot be imported.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(MATPLOTLIB_MISSING_MESSAGE.format(caller=caller)) from exc
    return matplotlib


def _expert_colors(colors, n_experts):
    """One RGBA colour per expert, shared by all displays.

    ``None``: ``tab10`` (``tab20`` beyond 10 experts, then a continuous map);
    a colormap name; or a list of ``n_experts`` matplotlib colours.
    """
    import matplotlib as mpl

    if colors is None:
        if n_experts <= 10:
            cmap = mpl.colormaps["tab10"]
            return np.asarray(cmap(np.arange(n_experts)), dtype=float)
        if n_experts <= 20:
            cmap = mpl.colormaps["tab20"]
            return np.asarray(cmap(np.arange(n_experts)), dtype=float)
        colors = "gist_rainbow"
    if isinstance(colors, str):
        cmap = mpl.colormaps[colors]
        n_listed = getattr(cmap, "N", 256)
        if isinstance(cmap, mpl.colors.ListedColormap) and n_experts <= n_listed:
            return np.asarray(cmap(np.arange(n_experts)), dtype=float)
        return np.asarray(cmap(np.linspace(0, 1, n_experts)), dtype=float)
    colors = list(colors)
    if len(colors) != n_experts:
        raise ValueError(
            f"colors has {len(colors)} entries but the estimator has "
            f"{n_experts} experts; give one colour per expert."
        )
    return np.asarray(mpl.colors.to_rgba_array(colors), dtype=float)


def _describe(obj):
    """How an object passed as ``estimator`` is named in error messages."""
    if obj is None:
        return "None"
    if isinstance(obj, type):
        return f"the class {obj.__name__} (not an instance)"
    return type(obj).__name__


def _is_mixture(obj):
    return (
        not isinstance(obj, type)
        and hasattr(obj, "predict_gate")
        and hasattr(obj, "fit")
    )


class _FittedMixture:
    """A fitted mixture of experts, possibly the last step of a pipeline.

    ``estimator`` is what the user passed: it owns the input space (its
    ``n_features_in_`` and ``feature_names_in_`` describe the ``X`` the user
    gives, in the units the axes are drawn in). ``model`` is the mixture
    itself and ``to_model`` maps such an ``X`` through the steps before it.
    """

    def __init__(self, estimator, model, transformers):
        self.estimator = estimator
        self.model = model
        self.transformers = transformers

    def to_model(self, X):
        """``X`` (in the user's feature space) as the mixture receives it."""
        for step in self.transformers:
            X = step.transform(X)
        return X


def _pipeline_parts(pipeline):
    """``(final step, its name, fitted transformers before it)`` of a Pipeline."""
    steps = list(pipeline.steps)
    name, final = steps[-1]
    transformers = [
        step for _, step in steps[:-1] if step is not None and step != "passthrough"
    ]
    return final, name, transformers


def _check_estimator(estimator, caller):
    """The fitted mixture in ``estimator``, itself or ending a Pipeline.

    Parameters
    ----------
    estimator : object
        What the user passed: a fitted ``MixtureOfExpertsRegressor`` or
        ``MixtureOfExpertsClassifier``, or a fitted
        :class:`~sklearn.pipeline.Pipeline` (possibly nested) whose last step
        is one.
    caller : str
        Name of the calling method, for the messages.

    Returns
    -------
    fitted : _FittedMixture
        The estimator, its mixture and the transformers before it.

    Raises
    ------
    TypeError
        If ``estimator`` is not a mixture of experts nor a pipeline ending in
        one; the message names what was passed.
    sklearn.exceptions.NotFittedError
        If the mixture (or the pipeline) is not fitted.
    """
    from sklearn.pipeline import Pipeline

    expected = (
        f"{caller} needs a fitted MixtureOfExpertsRegressor or "
        "MixtureOfExpertsClassifier (an estimator with predict_gate), or a fitted "
        "Pipeline whose last step is one"
    )
    model, transformers, path = estimator, [], []
    while isinstance(model, Pipeline):
        if not model.steps:
            raise TypeError(f"{expected}; got an empty Pipeline.")
        final, name, before = _pipeline_parts(model)
        transformers += before
        path.append(name)
        model = final
    if not _is_mixture(model):
        if path:
            where = " -> ".join(repr(n) for n in path)
            raise TypeError(
                f"{expected}; got a Pipeline whose last step {where} is "
                f"{_describe(model)}, which has no predict_gate."
            )
        hint = ""
        if hasattr(estimator, "best_estimator_"):
            hint = " Pass its fitted best_estimator_ instead."
        raise TypeError(f"{expected}; got {_describe(estimator)}.{hint}")
    if path:
        check_is_fitted(estimator)
    check_is_fitted(model)
    return _FittedMixture(estimator, model, transformers)



def _check_from_estimator(cls, estimator):
    """Matplotlib and the fitted mixture in ``estimator``, for ``cls.from_estimator``.

    Parameters
    ----------
    cls : type
        The display class, whose name the messages give.
    estimator : object
        What the user passed (see :func:`_check_estimator`).

    Returns
    -------
    fitted : _FittedMixture
        The estimator, its mixture and the transformers before it.
    """
    caller = f"{cls.__name__}.from_estimator"
    _check_matplotlib(caller)
    return _check_estimator(estimator, caller)

def _is_classifier(estimator):
    return hasattr(estimator, "classes_") and hasattr(estimator, "predict_proba")


def _validate_X(estimator, X):
    """``X`` as a float array with the number of features seen in fit."""
    X_arr = check_array(X, dtype=np.float64, ensure_min_samples=1)
    n_features = getattr(estimator, "n_features_in_", X_arr.shape[1])
    if X_arr.shape[1] != n_features:
        raise ValueError(
            f"X has {X_arr.shape[1]} features, but {type(estimator).__name__} "
            f"was fitted with {n_features} features."
        )
    return X_arr



def _validate_y(y, X):
    """``y`` as a 1-d array with one value per row of ``X``."""
    y_arr = np.asarray(y).ravel()
    if y_arr.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples but y has {y_arr.shape[0]}.")
    return y_arr

def _feature_name(estimator, index):
    """``feature_names_in_[index]`` when the estimator has names, else ``x{index}``."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return str(names[index])
    return f"x{index}"


def _resolve_feature(estimator, feature, n_features, param="feature"):
    """Column index of ``feature`` (an int, possibly negative, or a feature name)."""
    if isinstance(feature, str):
        names = getattr(estimator, "feature_names_in_", None)
        if names is None:
            raise ValueError(
                f"{param}={feature!r} is a name, but the estimator was not fitted "
                "on data with feature names; pass a column index."
            )
        matches = np.flatnonzero(np.asarray(names) == feature)
        if matches.size == 0:
            raise ValueError(
                f"{param}={feature!r} is not a feature name; the names are "
                f"{list(map(str, names))}."
            )
        return int(matches[0])
    if isinstance(feature, (bool, np.bool_)) or not isinstance(feature, Integral):
        raise TypeError(
            f"{param} must be an int column index or a feature name; got "
            f"{feature!r} of type {type(feature).__name__}."
        )
    if not -n_features <= feature < n_features:
        raise ValueError(
            f"{param}={feature} is out of range: X has {n_features} feature(s), "
            f"so the index must be in [0, {n_features - 1}]."
        )
    return int(feature) % n_features


def _fixed_values(estimator, X, fixed_values):
    """Values of every feature for the grid rows; the plotted ones are overwritten.

    ``None``: the mean of ``X``. An array of ``n_features`` values, or a dict
    ``{feature index or name: value}`` overriding the mean for some features.
    """
    n_features = X.shape[1]
    base = X.mean(axis=0)
    if fixed_values is None:
        return base
    if isinstance(fixed_values, dict):
        for key, value in fixed_values.items():
            base[_resolve_feature(estimator, key, n_features, "fixed_values key")] = float(value)
        return base
    values = np.asarray(fixed_values, dtype=np.float64).ravel()
    if values.shape[0] != n_features:
        raise ValueError(
            f"fixed_values has {values.shape[0]} values but X has {n_features} "
            "features; give one value per feature (those of the plotted "
            "feature(s) are ignored) or a dict {feature: value}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("fixed_values must be finite.")
    return values.copy()


def _grid_input(estimator, X_grid):
    """``X_grid`` as the estimator expects it: a DataFrame when fitted on names."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return X_grid
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - names imply a dataframe library
        return X_grid
    return pd.DataFrame(X_grid, columns=names)


# ----------------------------------------------------------------------
# Input grid


# Default margin of GateDisplay around the data, as a fraction of each
# plotted feature's range (eps=None).
_RELATIVE_EPS = 0.05


def _check_grid_resolution(grid_resolution):
    """``grid_resolution`` as an int >= 2, or a ValueError naming the value."""
    if (
        isinstance(grid_resolution, (bool, np.bool_))
        or not isinstance(grid_resolution, Integral)
        or grid_resolution < 2
    ):
        raise ValueError(
            f"grid_resolution must be an integer greater than 1; got {grid_resolution!r}."
        )
    return int(grid_resolution)


def _check_eps(eps):
    """``eps``: None (relative margin) or a finite float >= 0 (data units)."""
    if eps is None:
        return None
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, Real):
        raise TypeError(f"eps must be None or a float >= 0; got {eps!r}.")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be None or a finite float >= 0; got {eps!r}.")
    return float(eps)


def _margins(columns, eps):
    """Margin added on each side of every column of ``columns``.

    ``eps=None``: 5 % of the column's range (0.5 for a constant column, so the
    grid is not empty); a float: that margin, in data units, for every column.
    """
    lo, hi = columns.min(axis=0), columns.max(axis=0)
    if eps is not None:
        return np.full(columns.shape[1], float(eps))
    span = hi - lo
    return np.where(span > 0, _RELATIVE_EPS * span, 0.5)


def _feature_grid(fitted, X, features, *, grid_resolution, fixed_values=None, eps=0.0):
    """Regular grid over the columns ``features`` of ``X``, others held fixed.

    Parameters
    ----------
    fitted : _FittedMixture
        The estimator (for feature names in ``fixed_values``).
    X : ndarray of shape (n_samples, n_features)
        The data, in the user's feature space.
    features : sequence of int
        Column indices of the plotted features (one or two).
    grid_resolution : int
        Number of grid points per plotted feature (validated here).
    fixed_values : array-like or dict, default=None
        Values of the other features (see :func:`_fixed_values`).
    eps : float or None, default=0.0
        Margin around the range of the data (see :func:`_margins`).

    Returns
    -------
    meshes : tuple of ndarray
        The :func:`numpy.meshgrid` of the plotted features' values: one 1-D
        array for one feature, two 2-D arrays for two.
    X_grid : ndarray of shape (n_points, n_features)
        One row per grid point, in the user's feature space.
    """
    grid_resolution = _check_grid_resolution(grid_resolution)
    features = list(features)
    columns = X[:, features]
    margins = _margins(columns, eps)
    axes = [
        np.linspace(columns[:, m].min() - margins[m], columns[:, m].max() + margins[m],
                    grid_resolution)
        for m in range(len(features))
    ]
    meshes = tuple(np.meshgrid(*axes)) if len(axes) > 1 else (axes[0],)
    base = _fixed_values(fitted.estimator, X, fixed_values)
    X_grid = np.tile(base, (meshes[0].size, 1))
    for column, mesh in zip(features, meshes):
        X_grid[:, column] = mesh.ravel()
    return meshes, X_grid


def _model_input(fitted, X_grid):
    """Grid rows as the mixture receives them: named, then through the pipeline."""
    return fitted.to_model(_grid_input(fitted.estimator, X_grid))


# ----------------------------------------------------------------------
# Keyword arguments for matplotlib


# Names that set one property of an artist: matplotlib's short aliases, and
# for collections (scatter, pcolormesh, fill_between) the singular/plural and
# the colour arguments that override one another. A user's keyword removes
# every default in its group, so ``lw=`` replaces a default ``linewidth``.
_LINE_GROUPS = (
    ("color", "c"),
    ("linewidth", "lw"),
    ("linestyle", "ls"),
    ("markersize", "ms"),
    ("markeredgecolor", "mec"),
    ("markeredgewidth", "mew"),
    ("markerfacecolor", "mfc"),
    ("markerfacecoloralt", "mfcalt"),
    ("antialiased", "aa"),
    ("drawstyle", "ds"),
)
_COLLECTION_GROUPS = (
    ("color", "c", "facecolor", "facecolors", "fc"),
    ("edgecolor", "edgecolors", "ec"),
    ("linewidth", "linewidths", "lw"),
    ("linestyle", "linestyles", "ls", "dashes"),
    ("antialiased", "antialiaseds", "aa"),
)
_GROUPS = {"line": _LINE_GROUPS, "collection": _COLLECTION_GROUPS}


def _style_kwargs(defaults, user, *, kind="line", param="kwargs"):
    """The display's default keywords for an artist, overridden by the user's.

    Parameters
    ----------
    defaults : dict
        The display's keywords.
    user : dict or None
        The user's keywords; each removes the defaults that set the same
        property under another name (``lw`` removes ``linewidth``).
    kind : {"line", "collection"}, default="line"
        The artist: a :class:`~matplotlib.lines.Line2D` (``Axes.plot``) or a
        collection (``Axes.scatter``, ``pcolormesh``, ``fill_between``).
    param : str, default="kwargs"
        Name of the user's argument, for the messages.

    Returns
    -------
    kwargs : dict
        The merged keywords.

    Raises
    ------
    TypeError
        If ``user`` is not a dict, or it names one property twice (``lw`` and
        ``linewidth``).
    """
    if user is None:
        return dict(defaults)
    if not isinstance(user, Mapping):
        raise TypeError(f"{param} must be a dict of keyword arguments; got {user!r}.")
    group_of = {name: group for group in _GROUPS[kind] for name in group}
    merged = dict(defaults)
    for key in user:
        group = group_of.get(key, (key,))
        twins = sorted(other for other in user if other != key and other in group)
        if twins:
            first, second = sorted((key, twins[0]))
            raise TypeError(
                f"{param} got both {first!r} and {second!r}, which set the same "
                "property; pass only one of them."
            )
        for name in group:
            merged.pop(name, None)
    merged.update(user)
    return merged
