"""Map of the gate over two input features: which expert the gate trusts where."""

import numpy as np

from .._docstrings import DISPLAYS_DOC, doc_filler
from ._plot_utils import (
    _check_eps,
    _check_from_estimator,
    _check_grid_resolution,
    _check_matplotlib,
    _expert_colors,
    _feature_grid,
    _feature_name,
    _is_classifier,
    _model_input,
    _resolve_feature,
    _style_kwargs,
    _validate_X,
    _validate_y,
)

# Opacity of the gate surface at the least (gate = 1 / n_experts) and the most
# (gate = 1) confident grid points, over a white background.
_MIN_ALPHA = 0.05
_MAX_ALPHA = 0.6

_fill_doc = doc_filler(DISPLAYS_DOC)


@_fill_doc
class GateDisplay:
    """Gate map: the expert the gate trusts most over a plane of two features.

    Each point of a grid over two input features is coloured by the expert
    with the largest gate probability and shaded by that probability: solid
    where the gate is sure, fading to white where it hesitates (near the
    boundaries between the experts' regions). The data are drawn on top.

    It is recommended to create a display with :meth:`from_estimator`, which
    computes the grid; ``__init__`` only stores precomputed arrays and
    :meth:`plot` only draws, so a display can be re-drawn or restyled without
    recomputing.

    Parameters
    ----------
    xx0 : ndarray of shape (grid_resolution, grid_resolution)
        First output of :func:`numpy.meshgrid`: the grid's values of the
        first plotted feature.
    xx1 : ndarray of shape (grid_resolution, grid_resolution)
        Second output of :func:`numpy.meshgrid`: the grid's values of the
        second plotted feature.
    expert : ndarray of shape (grid_resolution, grid_resolution)
        Index of the expert with the largest gate probability at each grid
        point.
    gate_max : ndarray of shape (grid_resolution, grid_resolution)
        That largest gate probability, in ``[1 / n_experts, 1]``.
    n_experts : int
        Number of experts of the estimator.
    X_points : ndarray of shape (n_samples, 2), default=None
        The data's values of the two plotted features, drawn on top of the
        map; ``None`` draws no points.
    point_labels : ndarray of shape (n_samples,), default=None
        Integer label of each point: its expert (``point_kind="expert"``) or
        its class index (``point_kind="class"``).
    point_kind : {"expert", "class"}, default="expert"
        What ``point_labels`` holds. Experts are drawn in the experts'
        colours; classes in shades of grey from white to black.
    class_names : array-like of shape (n_classes,), default=None
        Class labels, for the legend, when ``point_kind="class"``.
    %(colors)s
    xlabel : str, default=None
        Label of the x axis (the first plotted feature).
    ylabel : str, default=None
        Label of the y axis (the second plotted feature).

    Attributes
    ----------
    expert_ : ndarray of shape (grid_resolution, grid_resolution)
        Alias of ``expert``.
    gate_max_ : ndarray of shape (grid_resolution, grid_resolution)
        Alias of ``gate_max``.
    colors_ : ndarray of shape (n_experts, 4)
        RGBA colour of each expert; set by :meth:`plot`.
    surface_ : matplotlib.collections.QuadMesh
        The gate map; its array holds the expert indices and its alpha the
        shading. Set by :meth:`plot`.
    scatter_ : matplotlib.collections.PathCollection or None
        The data points, or ``None`` when there are none.
    legend_ : matplotlib.legend.Legend or None
        The legend, or ``None`` when ``legend=False``.
    %(ax_figure)s

    See Also
    --------
    ExpertsDisplay : Experts, pooled prediction and gate along one feature.
    ConvergenceDisplay : Log-likelihood of EM against iterations.
    sklearn.inspection.DecisionBoundaryDisplay : The scikit-learn display
        this one is modelled on.

    Examples
    --------
    %(example_fit)s
    >>> from skmoe.inspection import GateDisplay
    >>> xx0, xx1 = np.meshgrid(np.linspace(-3, 3, 50), np.linspace(-3, 3, 50))
    >>> gate = moe.predict_gate(np.c_[xx0.ravel(), xx1.ravel()])
    >>> disp = GateDisplay(
    ...     xx0=xx0, xx1=xx1,
    ...     expert=gate.argmax(axis=1).reshape(xx0.shape),
    ...     gate_max=gate.max(axis=1).reshape(xx0.shape),
    ...     n_experts=2, xlabel="x0", ylabel="x1",
    ... ).plot()
    >>> disp.colors_.shape
    (2, 4)
    """

    def __init__(
        self,
        *,
        xx0,
        xx1,
        expert,
        gate_max,
        n_experts,
        X_points=None,
        point_labels=None,
        point_kind="expert",
        class_names=None,
        colors=None,
        xlabel=None,
        ylabel=None,
    ):
        self.xx0 = xx0
        self.xx1 = xx1
        self.expert = expert
        self.gate_max = gate_max
        self.n_experts = n_experts
        self.X_points = X_points
        self.point_labels = point_labels
        self.point_kind = point_kind
        self.class_names = class_names
        self.colors = colors
        self.xlabel = xlabel
        self.ylabel = ylabel

    @property
    def expert_(self):
        """Index of the most trusted expert on the grid (alias of ``expert``)."""
        return self.expert

    @property
    def gate_max_(self):
        """Largest gate probability on the grid (alias of ``gate_max``)."""
        return self.gate_max

    def plot(
        self,
        ax=None,
        *,
        xlabel=None,
        ylabel=None,
        shade=True,
        legend=True,
        scatter_kw=None,
        **kwargs,
    ):
        """Draw the gate map and the data.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; ``None`` makes a new figure and axes.
        xlabel : str, default=None
            Overrides the stored x-axis label.
        ylabel : str, default=None
            Overrides the stored y-axis label.
        shade : bool, default=True
            Shade the map by the largest gate probability (opaque where the
            gate is sure, nearly white where it hesitates). ``False`` draws
            every region with one opacity.
        legend : bool, default=True
            Draw a legend of the experts (and of the classes, when the points
            are coloured by class).
        scatter_kw : dict, default=None
            Keyword arguments for :meth:`matplotlib.axes.Axes.scatter` of the
            data points. They replace the defaults that set the same property
            under any name (``color=`` or ``c=`` the colours by expert or
            class, ``lw=`` the default ``linewidths``).
        **kwargs : dict
            Keyword arguments for :meth:`matplotlib.axes.Axes.pcolormesh` of
            the map (``alpha`` replaces the shading with one opacity). The
            colormap and its limits are the display's.

        Returns
        -------
        display : GateDisplay
            The display, with ``ax_``, ``figure_``, ``surface_``,
            ``scatter_``, ``legend_`` and ``colors_`` set.

        Examples
        --------
        %(example_plt)s
        >>> from skmoe import MixtureOfExpertsClassifier
        >>> from skmoe.datasets import make_xor_blobs
        >>> from skmoe.inspection import GateDisplay
        >>> X, y = make_xor_blobs(n_samples=200, random_state=0)
        >>> clf = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
        >>> disp = GateDisplay.from_estimator(clf, X, y, grid_resolution=30)
        >>> fig, ax = plt.subplots()
        >>> disp = disp.plot(ax=ax, shade=False, legend=False)
        >>> disp.ax_ is ax
        True
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        import matplotlib as mpl
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()

        n_experts = int(self.n_experts)
        self.colors_ = _expert_colors(self.colors, n_experts)
        cmap = mpl.colors.ListedColormap(self.colors_[:, :3])

        surface_kw = _style_kwargs(
            {"shading": "nearest", "zorder": -1, "rasterized": True},
            kwargs, kind="collection",
        )
        surface_kw.update(cmap=cmap, vmin=-0.5, vmax=n_experts - 0.5)
        if "alpha" not in kwargs:
            if shade:
                gate_max = np.asarray(self.gate_max, dtype=float)
                if n_experts > 1:
                    floor = 1.0 / n_experts
                    confidence = np.clip((gate_max - floor) / (1.0 - floor), 0.0, 1.0)
                else:  # a single expert is trusted everywhere
                    confidence = np.ones_like(gate_max)
                surface_kw["alpha"] = _MIN_ALPHA + (_MAX_ALPHA - _MIN_ALPHA) * confidence
            else:
                surface_kw["alpha"] = _MAX_ALPHA / 2
        self.surface_ = ax.pcolormesh(self.xx0, self.xx1, self.expert, **surface_kw)

        handles = [
            mpl.patches.Patch(color=self.colors_[k], label=f"expert {k}")
            for k in range(n_experts)
        ]
        self.scatter_ = None
        if self.X_points is not None:
            points = np.asarray(self.X_points)
            labels = np.asarray(self.point_labels, dtype=int)
            kw = {"s": 20, "edgecolors": "k", "linewidths": 0.5}
            if self.point_kind == "class":
                n_classes = (
                    len(self.class_names) if self.class_names is not None else labels.max() + 1
                )
                greys = mpl.colormaps["Greys"](np.linspace(0.0, 1.0, max(n_classes, 2)))
                kw["c"] = greys[labels]
                names = self.class_names if self.class_names is not None else range(n_classes)
                handles += [
                    mpl.lines.Line2D(
                        [], [], linestyle="", marker="o", markerfacecolor=greys[c],
                        markeredgecolor="k", label=f"class {name}",
                    )
                    for c, name in enumerate(names)
                ]
            else:
                kw["c"] = self.colors_[labels]
            kw = _style_kwargs(kw, scatter_kw, kind="collection", param="scatter_kw")
            self.scatter_ = ax.scatter(points[:, 0], points[:, 1], **kw)

        self.legend_ = None
        if legend:
            self.legend_ = ax.legend(handles=handles, fontsize="small", framealpha=0.8)

        if xlabel is not None or not ax.get_xlabel():
            ax.set_xlabel(self.xlabel if xlabel is None else xlabel)
        if ylabel is not None or not ax.get_ylabel():
            ax.set_ylabel(self.ylabel if ylabel is None else ylabel)
        ax.set_xlim(np.min(self.xx0), np.max(self.xx0))
        ax.set_ylim(np.min(self.xx1), np.max(self.xx1))

        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y=None,
        *,
        features=None,
        fixed_values=None,
        grid_resolution=100,
        eps=None,
        colors=None,
        xlabel=None,
        ylabel=None,
        ax=None,
        **kwargs,
    ):
        """Compute the gate map of a fitted estimator on ``X`` and draw it.

        Parameters
        ----------
        %(estimator)s
        X : array-like of shape (n_samples, n_features)
            Data: they set the extent of the grid and the mean used for the
            features not plotted, and are drawn on top of the map.
        y : array-like of shape (n_samples,), default=None
            Class labels; with a classifier the points are coloured by class
            (shades of grey). Otherwise (``None``, or a regressor) the points
            are coloured by the expert :meth:`predict_expert` picks for them.
        features : tuple of two int or str, default=None
            The two features spanning the plane: column indices or names (when
            the estimator was fitted on a DataFrame). Required unless ``X`` has
            exactly two features.
        fixed_values : array-like of shape (n_features,) or dict, default=None
            Values of the other features on the grid: ``None`` for the mean of
            ``X``; an array with one value per feature (those of ``features``
            are ignored); or a dict ``{feature: value}`` overriding the mean of
            some features. The points, however, are drawn (and their experts
            computed) at their own values of every feature.
        grid_resolution : int, default=100
            Number of grid points along each axis.
        eps : float, default=None
            Margin added to each side of the range of ``X`` on both axes.
            ``None``: 5 % of each plotted feature's range, so the map fits
            the data whatever their scale (0.5 for a feature constant in
            ``X``). A float: that margin in the features' units, on both axes.
        colors : str or list of colors, default=None
            Colour of each expert (see :class:`GateDisplay`).
        xlabel : str, default=None
            Label of the x axis; default the feature's name
            (``feature_names_in_``) or ``x{i}``.
        ylabel : str, default=None
            Label of the y axis, as ``xlabel``.
        ax : matplotlib Axes, default=None
            Axes to draw on; ``None`` makes a new figure and axes.
        **kwargs : dict
            Passed to :meth:`plot` (``shade``, ``legend``, ``scatter_kw``, and
            keyword arguments of :meth:`matplotlib.axes.Axes.pcolormesh`).

        Returns
        -------
        display : GateDisplay
            The drawn display.

        Raises
        ------
        %(raises)s
        ValueError
            If ``X`` does not have exactly two features and ``features`` is not
            given, or a feature index is out of range.

        Examples
        --------
        %(example_fit)s
        >>> from skmoe.inspection import GateDisplay
        >>> disp = GateDisplay.from_estimator(moe, X, features=(1, 0), grid_resolution=40)
        >>> disp.expert_.shape
        (40, 40)
        >>> disp.ax_.get_xlabel(), disp.ax_.get_ylabel()
        ('x1', 'x0')
        """
        fitted = _check_from_estimator(cls, estimator)
        model = fitted.model
        grid_resolution = _check_grid_resolution(grid_resolution)
        eps = _check_eps(eps)

        X_arr = _validate_X(estimator, X)
        n_features = X_arr.shape[1]
        if features is None:
            if n_features != 2:
                raise ValueError(
                    f"GateDisplay draws the gate over two input features, but X has "
                    f"{n_features} feature(s). Pass features=(i, j) to choose two of "
                    "them (the others are held at fixed_values)"
                    + (
                        "; for a single feature use ExpertsDisplay."
                        if n_features == 1
                        else "."
                    )
                )
            features = (0, 1)
        features = tuple(features) if not isinstance(features, str) else (features,)
        if len(features) != 2:
            raise ValueError(
                f"features must name exactly two features; got {features!r}."
            )
        i = _resolve_feature(estimator, features[0], n_features, "features[0]")
        j = _resolve_feature(estimator, features[1], n_features, "features[1]")
        if i == j:
            raise ValueError(
                f"features must be two different features; got {features!r} "
                f"(both column {i})."
            )

        (xx0, xx1), X_grid = _feature_grid(
            fitted, X_arr, (i, j), grid_resolution=grid_resolution,
            fixed_values=fixed_values, eps=eps,
        )
        gate = model.predict_gate(_model_input(fitted, X_grid))
        expert = np.argmax(gate, axis=1).reshape(xx0.shape)
        gate_max = np.max(gate, axis=1).reshape(xx0.shape)

        class_names = None
        if y is not None and _is_classifier(model):
            y_arr = _validate_y(y, X_arr)
            classes = np.asarray(model.classes_)
            unknown = np.setdiff1d(y_arr, classes)
            if unknown.size:
                raise ValueError(f"y contains labels not seen in fit: {unknown.tolist()}.")
            point_labels = np.searchsorted(classes, y_arr)
            point_kind = "class"
            class_names = classes
        else:
            point_labels = np.asarray(model.predict_expert(fitted.to_model(X)))
            point_kind = "expert"

        display = cls(
            xx0=xx0,
            xx1=xx1,
            expert=expert,
            gate_max=gate_max,
            n_experts=gate.shape[1],
            X_points=X_arr[:, [i, j]],
            point_labels=point_labels,
            point_kind=point_kind,
            class_names=class_names,
            colors=colors,
            xlabel=_feature_name(estimator, i) if xlabel is None else xlabel,
            ylabel=_feature_name(estimator, j) if ylabel is None else ylabel,
        )
        return display.plot(ax=ax, **kwargs)
