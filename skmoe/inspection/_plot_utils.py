"""Helpers shared by the displays: optional matplotlib, colours, input grids.

Nothing here imports matplotlib at module level, so ``import skmoe.inspection``
works without it; the displays call :func:`_check_matplotlib` before drawing.
"""

from numbers import Integral

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


def _check_estimator(estimator, caller):
    """A fitted mixture-of-experts estimator (raises NotFittedError otherwise)."""
    if not (hasattr(estimator, "predict_gate") and hasattr(estimator, "fit")):
        raise TypeError(
            f"{caller} needs a fitted MixtureOfExpertsRegressor or "
            f"MixtureOfExpertsClassifier (an estimator with predict_gate); got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)


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
