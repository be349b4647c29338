"""Log-likelihood of EM against iterations, one curve per restart."""

import numpy as np

from .._docstrings import DISPLAYS_DOC, doc_filler
from ._plot_utils import _check_from_estimator, _check_matplotlib, _style_kwargs

_fill_doc = doc_filler(DISPLAYS_DOC)

# Styles of the restarts other than the best, by restart index: restarts that
# reach the same curve (n_init restarts from one init, say) differ in line
# style and marker, and are drawn over the best curve, so each stays visible.
_LINESTYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)), (0, (8, 3)))
_MARKERS = ("s", "^", "v", "D", "<", ">", "p", "h", "X", "P")
# At most this many markers on a curve; longer curves place them sparsely,
# at offsets that differ between restarts.
_MAX_MARKERS = 15


def _same_curves(curves):
    """For each curve, the indices of the other curves equal to it."""
    same = [[] for _ in curves]
    for a, ca in enumerate(curves):
        for b in range(a + 1, len(curves)):
            cb = curves[b]
            if ca.shape == cb.shape and np.allclose(ca, cb, rtol=1e-9, atol=0.0, equal_nan=True):
                same[a].append(b)
                same[b].append(a)
    return same


def _markevery(n_points, r):
    """Marker positions of restart ``r`` on a curve of ``n_points``."""
    step = max(1, -(-n_points // _MAX_MARKERS))
    return (r % step, step)


@_fill_doc
class ConvergenceDisplay:
    """EM convergence: the log-likelihood of every restart against iterations.

    One curve per initialisation (``n_init`` restarts), the kept (best) one
    thick, black and labelled ``"best"``. Every other restart has its own
    colour, line style and (hollow) marker and is drawn over the best curve,
    so restarts that end on the same curve are all visible; the legend has
    one entry per restart and says which restarts coincide. Iteration 0 is
    the objective after the initial M-step.

    It is recommended to create a display with :meth:`from_estimator`;
    ``__init__`` only stores the curves and :meth:`plot` only draws.

    Parameters
    ----------
    curves : list of ndarray
        The EM objective (mean log-likelihood per sample, minus the gate's
        L2 penalty) after each iteration, one array per restart.
    best_index : int, default=None
        Index of the restart the estimator kept; ``None`` highlights the
        curve with the highest final value.
    ylabel : str, default="log-likelihood per sample"
        Label of the y axis.

    Attributes
    ----------
    lines_ : list of matplotlib.lines.Line2D
        One line per restart, in the order of ``curves``.
    same_curves_ : list of list of int
        For each restart, the other restarts whose curve is the same (to a
        relative tolerance of 1e-9); their legend entries say so.
    best_line_ : matplotlib.lines.Line2D
        The highlighted line (also in ``lines_``).
    %(ax_figure)s

    See Also
    --------
    GateDisplay : Map of the gate over two features.
    ExpertsDisplay : Experts, pooled prediction and gate along one feature.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from skmoe.inspection import ConvergenceDisplay
    >>> curves = [np.array([-2.0, -1.5, -1.4]), np.array([-2.2, -1.2, -1.1, -1.1])]
    >>> disp = ConvergenceDisplay(curves=curves).plot()
    >>> disp.best_line_.get_label()
    'best (restart 1)'
    """

    def __init__(self, *, curves, best_index=None, ylabel="log-likelihood per sample"):
        self.curves = curves
        self.best_index = best_index
        self.ylabel = ylabel

    def plot(self, ax=None, *, legend=True, best_kw=None, **kwargs):
        """Draw one log-likelihood curve per restart.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on; ``None`` makes a new figure and axes.
        legend : bool, default=True
            Draw a legend.
        best_kw : dict, default=None
            Keyword arguments for :meth:`matplotlib.axes.Axes.plot` of the
            best curve only.
        **kwargs : dict
            Keyword arguments for :meth:`matplotlib.axes.Axes.plot` of the
            other curves. A keyword replaces the default that sets the same
            property under any name (``c=`` the per-restart colours, ``lw=``
            the default ``linewidth``, ``ls=`` the per-restart line styles).

        Returns
        -------
        display : ConvergenceDisplay
            The display, with ``lines_``, ``best_line_``, ``ax_`` and
            ``figure_`` set.

        Examples
        --------
        %(example_plt)s
        >>> import numpy as np
        >>> from skmoe.inspection import ConvergenceDisplay
        >>> fig, ax = plt.subplots()
        >>> disp = ConvergenceDisplay(curves=[np.array([-2.0, -1.5])]).plot(ax=ax)
        >>> len(ax.get_lines())
        1
        """
        _check_matplotlib(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        curves = [np.asarray(c, dtype=float).ravel() for c in self.curves]
        if not curves:
            raise ValueError("curves is empty; there is nothing to draw.")
        best = self.best_index
        if best is None:
            best = int(np.argmax([c[-1] if c.size else -np.inf for c in curves]))

        self.same_curves_ = _same_curves(curves)
        self.lines_ = []
        single = len(curves) == 1
        n_other = 0
        for r, curve in enumerate(curves):
            iterations = np.arange(curve.shape[0])
            same = self.same_curves_[r]
            suffix = (
                " = restart " + ", ".join(str(o) for o in same) if same else ""
            )
            if r == best:
                kw = _style_kwargs(
                    {
                        "color": "k",
                        "linewidth": 3.0,
                        "marker": "o" if curve.shape[0] <= 30 else None,
                        "markersize": 4,
                        "zorder": 2,
                        "label": "best" if single else f"best (restart {r}{suffix})",
                    },
                    best_kw, param="best_kw",
                )
            else:
                kw = _style_kwargs(
                    {
                        "color": f"C{n_other % 10}",
                        "linewidth": 1.2,
                        "linestyle": _LINESTYLES[n_other % len(_LINESTYLES)],
                        "marker": _MARKERS[n_other % len(_MARKERS)],
                        "markersize": 6,
                        "markerfacecolor": "none",
                        "markevery": _markevery(curve.shape[0], n_other),
                        "zorder": 3,
                        "label": f"restart {r}{suffix}",
                    },
                    kwargs,
                )
                n_other += 1
            (line,) = ax.plot(iterations, curve, **kw)
            self.lines_.append(line)
        self.best_line_ = self.lines_[best]

        ax.set_xlabel("EM iteration")
        ax.set_ylabel(self.ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if legend:
            ax.legend(fontsize="small")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None, **kwargs):
        """Draw the log-likelihood curves stored on a fitted estimator.

        Parameters
        ----------
        estimator : MixtureOfExpertsRegressor, MixtureOfExpertsClassifier or Pipeline
            Fitted estimator, or a :class:`~sklearn.pipeline.Pipeline` whose
            last step is one; its ``log_likelihood_curves_`` (one array per
            restart) are drawn, the one equal to ``log_likelihood_curve_``
            (the kept fit) highlighted.
        ax : matplotlib Axes, default=None
            Axes to draw on; ``None`` makes a new figure and axes.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ConvergenceDisplay
            The drawn display.

        Raises
        ------
        %(raises)s

        Examples
        --------
        %(example_fit)s
        >>> from skmoe.inspection import ConvergenceDisplay
        >>> len(ConvergenceDisplay.from_estimator(moe).lines_)  # one per restart
        2
        """
        estimator = _check_from_estimator(cls, estimator).model
        best_curve = np.asarray(estimator.log_likelihood_curve_, dtype=float)
        curves = getattr(estimator, "log_likelihood_curves_", None)
        if not curves:
            curves = [best_curve]
        curves = [np.asarray(c, dtype=float) for c in curves]
        best_index = None
        for r, curve in enumerate(curves):
            if curve.shape == best_curve.shape and np.array_equal(curve, best_curve):
                best_index = r
                break
        display = cls(curves=curves, best_index=best_index)
        return display.plot(ax=ax, **kwargs)
