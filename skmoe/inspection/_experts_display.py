"""Experts, pooled prediction and gate along one input feature."""

import numpy as np

from .._docstrings import DISPLAYS_DOC, doc_filler
from ._plot_utils import (
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

# Heights of the predictions' and the gate's axes.
_HEIGHT_RATIOS = (3, 1)

_fill_doc = doc_filler(DISPLAYS_DOC)


def _split_axes(ax):
    """The two axes to draw on: ``(top, bottom, bounding)``.

    ``None``: a new figure with two stacked axes sharing x. One Axes: it is
    hidden and its area split into two axes sharing x (``bounding`` is that
    Axes). A sequence or array of two Axes: used as they are.
    """
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    if ax is None:
        _, (top, bottom) = plt.subplots(
            2, 1, sharex=True, gridspec_kw={"height_ratios": _HEIGHT_RATIOS},
            figsize=(6.4, 5.6),
        )
        return top, bottom, None
    if isinstance(ax, Axes):
        fig = ax.figure
        spec = ax.get_subplotspec()
        ax.set_axis_off()
        if spec is not None:
            grid = spec.subgridspec(2, 1, height_ratios=_HEIGHT_RATIOS, hspace=0.08)
            top = fig.add_subplot(grid[0])
            bottom = fig.add_subplot(grid[1], sharex=top)
        else:  # an Axes placed with fig.add_axes: split its rectangle
            top = ax.inset_axes([0.0, 0.3, 1.0, 0.7])
            bottom = ax.inset_axes([0.0, 0.0, 1.0, 0.22], sharex=top)
        top.tick_params(labelbottom=False)
        return top, bottom, ax
    axes = np.asarray(ax, dtype=object).ravel()
    if axes.shape[0] != 2 or not all(isinstance(a, Axes) for a in axes):
        raise ValueError(
            "ax must be one matplotlib Axes (split in two) or two Axes (top for "
            f"the predictions, bottom for the gate); got {ax!r}."
        )
    return axes[0], axes[1], None


@_fill_doc
class ExpertsDisplay:
    """Experts and gate along one input feature.

    The top axes show the data, each expert's prediction where the gate
    trusts it (gate probability above ``gate_threshold``; the curve is
    masked elsewhere), and the pooled prediction with a band of ``n_std``
    predictive standard deviations. The bottom axes, sharing the x axis,
    show each expert's gate probability, in the same colour as its curve.
    For a classifier the curves are probabilities of one class
    (``target_class``) and there is no band.

    It is recommended to create a display with :meth:`from_estimator`;
    ``__init__`` only stores precomputed arrays and :meth:`plot` only draws.

    Parameters
    ----------
    x_grid : ndarray of shape (n_grid,)
        Values of the plotted feature.
    expert_predictions : ndarray of shape (n_grid, n_experts)
        Each expert's prediction (regression) or probability of the target
        class (classification) along the grid.
    gate : ndarray of shape (n_grid, n_experts)
        Gate probabilities along the grid.
    pooled : ndarray of shape (n_grid,)
        The estimator's pooled prediction (or probability of the target
        class) along the grid.
    pooled_std : ndarray of shape (n_grid,), default=None
        Predictive standard deviation along the grid; ``None`` draws no band.
    gate_threshold : float, default=0.2
        An expert's curve is drawn only where its gate probability exceeds
        this.
    n_std : float, default=2.0
        Half-width of the band, in predictive standard deviations.
    x_points : ndarray of shape (n_samples,), default=None
        The data's values of the plotted feature; ``None`` draws no points.
    y_points : ndarray of shape (n_samples,), default=None
        The data's targets (for a classifier, 1 for the target class and 0
        otherwise).
    %(colors)s
    xlabel : str, default=None
        Label of the shared x axis.
    ylabel : str, default=None
        Label of the y axis of the top axes.

    Attributes
    ----------
    colors_ : ndarray of shape (n_experts, 4)
        RGBA colour of each expert.
    expert_lines_ : list of matplotlib.lines.Line2D
        One curve per expert, masked where its gate is below the threshold.
    pooled_line_ : matplotlib.lines.Line2D
        The pooled prediction.
    band_ : matplotlib.collections.PolyCollection or None
        The ``n_std`` band around the pooled prediction; ``None`` without
        ``pooled_std``.
    gate_lines_ : list of matplotlib.lines.Line2D
        One gate-probability curve per expert, in the bottom axes.
    scatter_ : matplotlib.collections.PathCollection or None
        The data points; ``None`` without data.
    ax_ : matplotlib.axes.Axes
        Top axes (data, experts, pooled prediction).
    gate_ax_ : matplotlib.axes.Axes
        Bottom axes (gate probabilities).
    bounding_ax_ : matplotlib.axes.Axes or None
        The one Axes given as ``ax``, hidden, whose area holds ``ax_`` and
        ``gate_ax_``; ``None`` otherwise.
    figure_ : matplotlib.figure.Figure
        The figure.

    See Also
    --------
    GateDisplay : Map of the gate over two features.
    ConvergenceDisplay : Log-likelihood of EM against iterations.

    Examples
    --------
    %(example_fit)s
    >>> from skmoe.inspection import ExpertsDisplay
    >>> x = np.linspace(-3, 3, 50)
    >>> X_line = np.c_[x, np.zeros_like(x)]  # the second feature held at 0
    >>> mean, std = moe.predict(X_line, return_std=True)
    >>> disp = ExpertsDisplay(
    ...     x_grid=x,
    ...     expert_predictions=moe.predict_experts(X_line),
    ...     gate=moe.predict_gate(X_line),
    ...     pooled=mean, pooled_std=std,
    ... ).plot()
    >>> len(disp.expert_lines_), len(disp.gate_lines_)
    (2, 2)
    """

    def __init__(
        self,
        *,
        x_grid,
        expert_predictions,
        gate,
        pooled,
        pooled_std=None,
        gate_threshold=0.2,
        n_std=2.0,
        x_points=None,
        y_points=None,
        colors=None,
        xlabel=None,
        ylabel=None,
    ):
        self.x_grid = x_grid
        self.expert_predictions = expert_predictions
        self.gate = gate
        self.pooled = pooled
        self.pooled_std = pooled_std
        self.gate_threshold = gate_threshold
        self.n_std = n_std
        self.x_points = x_points
        self.y_points = y_points
        self.colors = colors
        self.xlabel = xlabel
        self.ylabel = ylabel

    def plot(
        self,
        ax=None,
        *,
        xlabel=None,
        ylabel=None,
        legend=True,
        scatter_kw=None,
        pooled_kw=None,
        band_kw=None,
        gate_kw=None,
        **kwargs,
    ):
        """Draw the experts, the pooled prediction and the gate.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of two Axes, default=None
            Where to draw. ``None`` makes a new figure with two axes stacked,
            sharing the x axis, heights in the ratio 3:1. One Axes is hidden
            and its area split the same way (it is kept as
            ``bounding_ax_``). Two Axes (a list or the array of
            :func:`matplotlib.pyplot.subplots`) are the top axes (predictions)
            and the bottom axes (gate).
        xlabel : str, default=None
            Overrides the stored x-axis label (set on the bottom axes).
        ylabel : str, default=None
            Overrides the stored y-axis label of the top axes.
        legend : bool, default=True
            Draw a legend in the top axes.
        scatter_kw : dict, default=None
            Keyword arguments for :meth:`matplotlib.axes.Axes.scatter` of the
            data. In this and the other keyword dicts a keyword replaces the
            default that sets the same property under any name (``c=``
            replaces the default ``color``, ``lw=`` the default
            ``linewidth``).
        pooled_kw : dict, default=None
            Keyword arguments for :meth:`matplotlib.axes.Axes.plot` of the
            pooled prediction.
        band_kw : dict, default=None
            Keyword arguments for :meth:`matplotlib.axes.Axes.fill_between` of
            the band.
        gate_kw : dict, default=None
            Keyword arguments for :meth:`matplotlib.axes.Axes.plot` of the gate
            curves.
        **kwargs : dict
            Keyword arguments for :meth:`matplotlib.axes.Axes.plot` of the
            expert curves.

        Returns
        -------
        display : ExpertsDisplay
            The display, with ``ax_``, ``gate_ax_``, ``figure_`` and the
            artists set.

        Examples
        --------
        %(example_fit)s
        >>> import matplotlib.pyplot as plt
        >>> from skmoe.inspection import ExpertsDisplay
        >>> disp = ExpertsDisplay.from_estimator(moe, X, y)
        >>> fig, (top, bottom) = plt.subplots(2, 1, sharex=True)
        >>> disp = disp.plot(ax=(top, bottom), legend=False, linewidth=3)
        >>> disp.gate_ax_ is bottom
        True
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        ax, gate_ax, bounding_ax = _split_axes(ax)

        x = np.asarray(self.x_grid)
        preds = np.asarray(self.expert_predictions)
        gate = np.asarray(self.gate)
        n_experts = preds.shape[1]
        self.colors_ = _expert_colors(self.colors, n_experts)

        self.scatter_ = None
        if self.x_points is not None and self.y_points is not None:
            kw = _style_kwargs(
                {"s": 12, "color": "0.45", "alpha": 0.7, "linewidths": 0, "label": "data"},
                scatter_kw, kind="collection", param="scatter_kw",
            )
            self.scatter_ = ax.scatter(self.x_points, self.y_points, **kw)

        self.band_ = None
        if self.pooled_std is not None:
            std = np.asarray(self.pooled_std)
            kw = _style_kwargs(
                {"color": "k", "alpha": 0.12, "linewidth": 0,
                 "label": f"\u00b1{self.n_std:g}\u03c3"},
                band_kw, kind="collection", param="band_kw",
            )
            self.band_ = ax.fill_between(
                x, self.pooled - self.n_std * std, self.pooled + self.n_std * std, **kw
            )

        self.expert_lines_ = []
        for k in range(n_experts):
            curve = np.ma.masked_where(gate[:, k] <= self.gate_threshold, preds[:, k])
            kw = _style_kwargs(
                {"color": self.colors_[k], "linewidth": 2, "label": f"expert {k}"}, kwargs
            )
            (line,) = ax.plot(x, curve, **kw)
            self.expert_lines_.append(line)

        kw = _style_kwargs(
            {"color": "k", "linewidth": 1.5, "linestyle": "--", "label": "pooled"},
            pooled_kw, param="pooled_kw",
        )
        (self.pooled_line_,) = ax.plot(x, self.pooled, **kw)

        self.gate_lines_ = []
        for k in range(n_experts):
            kw = _style_kwargs(
                {"color": self.colors_[k], "linewidth": 1.5, "label": f"expert {k}"},
                gate_kw, param="gate_kw",
            )
            (line,) = gate_ax.plot(x, gate[:, k], **kw)
            self.gate_lines_.append(line)
        gate_ax.axhline(self.gate_threshold, color="0.6", linewidth=0.8, linestyle=":")
        gate_ax.set_ylim(-0.05, 1.05)
        gate_ax.set_ylabel("gate")

        if legend:
            ax.legend(fontsize="small", framealpha=0.8)

        xlabel = self.xlabel if xlabel is None else xlabel
        ylabel = self.ylabel if ylabel is None else ylabel
        if xlabel is not None:
            gate_ax.set_xlabel(xlabel)
        if ylabel is not None:
            ax.set_ylabel(ylabel)

        self.ax_ = ax
        self.gate_ax_ = gate_ax
        self.bounding_ax_ = bounding_ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y=None,
        *,
        feature=0,
        fixed_values=None,
        grid_resolution=200,
        gate_threshold=0.2,
        target_class=None,
        n_std=2.0,
        colors=None,
        xlabel=None,
        ylabel=None,
        ax=None,
        **kwargs,
    ):
        """Compute the experts and gate of a fitted estimator along a feature and draw them.

        Parameters
        ----------
        %(estimator)s
        X : array-like of shape (n_samples, n_features)
            Data: they set the range of the grid and the mean used for the
            other features.
        y : array-like of shape (n_samples,), default=None
            Targets, drawn as points against the plotted feature (for a
            classifier: 1 for ``target_class``, 0 otherwise). ``None`` draws no
            points. With several features the points are the data as they
            are, not a slice at ``fixed_values``.
        feature : int or str, default=0
            The plotted feature: a column index or a name (when the estimator
            was fitted on a DataFrame).
        fixed_values : array-like of shape (n_features,) or dict, default=None
            Values of the other features on the grid: ``None`` for the mean of
            ``X``; one value per feature (that of ``feature`` ignored); or a
            dict ``{feature: value}`` overriding the mean of some features.
        grid_resolution : int, default=200
            Number of grid points, from the smallest to the largest value of
            the feature in ``X``.
        gate_threshold : float, default=0.2
            An expert's curve is drawn only where its gate probability exceeds
            this.
        target_class : label, default=None
            Classifier only: the class whose probability is drawn; ``None``
            means ``classes_[1]`` (the positive class of a binary problem).
        n_std : float, default=2.0
            Half-width of the band, in predictive standard deviations
            (regressor only).
        colors : str or list of colors, default=None
            Colour of each expert (see :class:`ExpertsDisplay`).
        xlabel : str, default=None
            Label of the x axis; default the feature's name
            (``feature_names_in_``) or ``x{i}``.
        ylabel : str, default=None
            Label of the top y axis; default for a regressor the name of ``y``
            when it is a named pandas Series, else ``"y"``; for a classifier
            ``"P(y = target_class)"``.
        ax : matplotlib Axes or array-like of two Axes, default=None
            One Axes (split in two), or the top and bottom axes; ``None``
            makes a new figure (see :meth:`plot`).
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ExpertsDisplay
            The drawn display.

        Raises
        ------
        %(raises)s
        ValueError
            If ``feature`` is out of range, ``target_class`` is not a class, or
            ``y`` has the wrong length.

        Examples
        --------
        %(example_fit)s
        >>> from skmoe.inspection import ExpertsDisplay
        >>> disp = ExpertsDisplay.from_estimator(moe, X, y, grid_resolution=100)
        >>> len(disp.expert_lines_)
        2
        >>> disp.gate_ax_.get_xlabel()
        'x0'
        """
        fitted = _check_from_estimator(cls, estimator)
        model = fitted.model
        grid_resolution = _check_grid_resolution(grid_resolution)
        if not 0 <= gate_threshold < 1:
            raise ValueError(f"gate_threshold must be in [0, 1); got {gate_threshold!r}.")
        X_arr = _validate_X(estimator, X)
        n_features = X_arr.shape[1]
        i = _resolve_feature(estimator, feature, n_features, "feature")

        column = X_arr[:, i]
        (x_grid,), X_grid = _feature_grid(
            fitted, X_arr, (i,), grid_resolution=grid_resolution,
            fixed_values=fixed_values, eps=0.0,
        )
        X_model = _model_input(fitted, X_grid)
        gate = model.predict_gate(X_model)

        y_points = None
        if y is not None:
            y_points = _validate_y(y, X_arr)

        if _is_classifier(model):
            classes = np.asarray(model.classes_)
            if target_class is None:
                target_class = classes[1]
            matches = np.flatnonzero(classes == target_class)
            if matches.size == 0:
                raise ValueError(
                    f"target_class={target_class!r} is not one of the classes "
                    f"{classes.tolist()}."
                )
            c = int(matches[0])
            expert_predictions = np.asarray(model.predict_experts_proba(X_model))[:, :, c]
            pooled = model.predict_proba(X_model)[:, c]
            pooled_std = None
            if y_points is not None:
                y_points = (y_points == target_class).astype(np.float64)
            default_ylabel = f"P(y = {target_class})"
        else:
            if target_class is not None:
                raise ValueError("target_class applies to classifiers only.")
            expert_predictions = model.predict_experts(X_model)
            pooled, pooled_std = model.predict(X_model, return_std=True)
            if y_points is not None:
                y_points = y_points.astype(np.float64)
            name = getattr(y, "name", None)
            default_ylabel = str(name) if isinstance(name, str) and name else "y"

        display = cls(
            x_grid=x_grid,
            expert_predictions=expert_predictions,
            gate=gate,
            pooled=pooled,
            pooled_std=pooled_std,
            gate_threshold=gate_threshold,
            n_std=n_std,
            x_points=column if y_points is not None else None,
            y_points=y_points,
            colors=colors,
            xlabel=_feature_name(estimator, i) if xlabel is None else xlabel,
            ylabel=default_ylabel if ylabel is None else ylabel,
        )
        return display.plot(ax=ax, **kwargs)
