"""Per-fit state of the EM driver and its pure bookkeeping rules.

:class:`_FitContext` is what one fit's steps share (data, plug-ins, rng),
:class:`_EMState` the parameters of one restart, :class:`_EMResult` its
outcome. The rules here (stopping, classification of starved and degenerate
experts) are shared by the in-memory driver and the Dask driver.
"""

import copy
from collections import namedtuple

import numpy as np

from ._device import copy_array
from ._sparse import is_sparse
from .utils._array_api import float_dtype

# An expert is starved when its share of the (weighted) responsibility falls
# below this. A share, not a count of rows, so that a weight of 2 and a
# repeated row behave the same and the scale of sample_weight does not matter.
_MIN_SHARE = 1e-3
# Re-seeding attempts per expert and restart before the expert is removed.
_MAX_RESEEDS = 2
# EM never stops before this many iterations: a generalised M-step (neural
# gates, tree experts) can move the objective very little at first.
_MIN_ITER = 3


class _FitContext:
    """What one fit's helpers share: the data, the plug-ins chosen for it and the rng.

    ``sw`` is None for unit weights (the experts then get the
    responsibilities alone), ``sample_weight`` is always an array. ``dtype``
    is the floating dtype of the E-step's arrays: float32 for float32 ``X``
    (kept end to end), float64 otherwise.
    """

    def __init__(self, X, y, sample_weight, likelihood, solver, router, rng,
                 gate_features=None, expert_features=None):
        self.X = X  # every column: the initial partition sees them all
        self.X_gate = _select_columns(X, gate_features)
        self.X_expert = _select_columns(X, expert_features)
        self.dtype = float_dtype(X)
        self.y = y
        self.sample_weight = sample_weight
        self.sw = None if np.all(sample_weight == 1.0) else sample_weight
        self.likelihood = likelihood
        self.solver = solver
        self.router = router
        self.rng = rng
        # Effective sample size: the total weight in units of the smallest
        # weight. A weight of 2 counts as two rows (as a repeated row does),
        # and weights that all equal 1/n count as n rows.
        self.n_effective = float(sample_weight.sum() / sample_weight.min())
        # The context of NumPy arrays: this one; a device context's
        # (skmoe._device) is its host copy, which the initial partition reads.
        self.host = self


class _EMState:
    """Parameters of one EM run (experts, gate, likelihood parameters) and its last E-step."""

    def __init__(self, templates, experts, gate, params):
        self.templates = templates
        self.experts = experts
        self.gate = gate  # a GateAdapter
        self.params = params  # the likelihood's parameters (noise variances)
        self.outputs_T = None  # the experts' outputs the likelihood asked for
        self.resp_T = None  # responsibilities of the last E-step, (n_experts, n_samples)
        self.extra_T = None  # the likelihood's extra expert weights of the last E-step
        self.log_prob = None
        self.objective = -np.inf
        self.log_likelihood = -np.inf
        self.gate_context = None  # gate.prepare(X, sample_weight), once per run
        self.gate_prepared = False
        self.expert_ids = np.arange(len(templates))  # indices into the requested experts
        self.reseeds = np.zeros(len(templates), dtype=int)
        self.events = {"reseeded": {}, "removed": [], "pruned": [], "reasons": {}}
        self.load = None  # share of the weight each expert's last M-step was fitted on

    def snapshot(self):
        """Copy of what a later iteration could overwrite (experts are new objects each M-step)."""
        other = copy.copy(self)
        other.experts = list(self.experts)
        other.templates = list(self.templates)
        other.gate = copy.deepcopy(self.gate)
        other.resp_T = None if self.resp_T is None else copy_array(self.resp_T)
        other.outputs_T = None  # overwritten in place by the E-step; not needed after
        other.events = copy.deepcopy(self.events)
        other.reseeds = self.reseeds.copy()
        return other


_EMResult = namedtuple("_EMResult", ["state", "curve", "log_likelihood_curve", "converged", "n_iter"])


def _select_columns(X, columns):
    """``X[:, columns]`` as a C-contiguous array (CSR for sparse ``X``); ``X`` itself for None."""
    if columns is None:
        return X
    if is_sparse(X):
        return X[:, columns].tocsr()
    return np.ascontiguousarray(X[:, columns])


def classify_experts(share, ctx, state):
    """Experts to re-seed or remove, from their responsibility shares; records the reasons.

    Starved: a share below ``_MIN_SHARE``. Degenerate: an effective sample
    size (share times ``ctx.n_effective``) below ``ctx.min_effective`` of the
    expert. One is removed after ``_MAX_RESEEDS`` re-seedings, or at once when
    even a re-seeded slice (``1 / (2 * n_experts)`` of the weight) could not
    give it enough samples; the expert with the largest share always stays.
    Shared by the in-memory and the Dask drivers.

    Returns
    -------
    bad : ndarray of int
        Starved or degenerate experts.
    remove : list of int
        Those of ``bad`` to remove.
    """
    n_experts = share.shape[0]
    ess = share * ctx.n_effective
    need = np.array([ctx.min_effective[i] for i in state.expert_ids])
    starved = share < _MIN_SHARE
    degenerate = ess < need
    bad = np.flatnonzero(starved | degenerate)
    hopeless = degenerate & (0.5 / n_experts * ctx.n_effective < need)
    remove = [k for k in bad if state.reseeds[k] >= _MAX_RESEEDS or hopeless[k]]
    if len(remove) == n_experts:  # keep the expert with the largest share
        remove.remove(int(np.argmax(share)))
    for k in bad:
        reason = (
            f"share {share[k]:.2g}" if starved[k]
            else f"effective sample size {ess[k]:.3g} < {need[k]:.3g}"
        )
        state.events["reasons"][int(state.expert_ids[k])] = reason
    return bad, remove


def _is_dask(*arrays):
    """Whether any argument is a Dask collection (without importing dask)."""
    return any(type(a).__module__.partition(".")[0] == "dask" for a in arrays if a is not None)


def _converged(change, objective, n_iter, tol, dtype=np.float64):
    """EM's stopping rule: a non-negative relative change below ``tol``.

    ``0 <= change <= tol * (|objective| + 0.1)`` (flexmix's relative rule on
    the per-sample objective), never on a decrease beyond rounding (of
    ``dtype``, the E-step's precision), and not before ``_MIN_ITER``
    iterations.
    """
    if n_iter < _MIN_ITER:
        return False
    rounding = 64 * np.finfo(dtype).eps * (abs(objective) + 1.0)
    return -rounding <= change <= tol * (abs(objective) + 0.1)



def reseed_slices(log_prob, sample_weight, n_slices, slice_share):
    """Rows to re-seed starved experts from: the samples the model explains worst.

    Consecutive slices of the rows sorted by ``log_prob`` (stable), slice
    ``j`` holding the rows whose cumulative share of the weight ends in
    ``(j * slice_share, (j + 1) * slice_share]``. Rows of equal ``log_prob``
    (repeated rows among them) go together, so that a weight of 2 and a
    repeated row are re-seeded alike; a slice takes at least one such group.

    Parameters
    ----------
    log_prob : ndarray of shape (n_samples,)
        Per-sample log-likelihood of the model.
    sample_weight : ndarray of shape (n_samples,)
        Positive weights.
    n_slices : int
        Number of slices (starved experts).
    slice_share : float
        Share of the total weight per slice.

    Returns
    -------
    slices : list of ndarray of int
        Row indices of each slice.
    """
    order = np.argsort(log_prob, kind="stable")
    cumulative = np.cumsum(sample_weight[order]) / np.sum(sample_weight)
    # Each row takes the cumulative share at the end of its group of equal log_prob.
    sorted_lp = log_prob[order]
    last = np.flatnonzero(np.r_[sorted_lp[1:] != sorted_lp[:-1], True])
    group_end = np.repeat(cumulative[last], np.diff(np.r_[-1, last]))
    slices = []
    for j in range(n_slices):
        lo, hi = np.searchsorted(group_end, [j * slice_share, (j + 1) * slice_share], side="right")
        lo = min(lo, group_end.size - 1)
        if hi <= lo:  # one group holds more than a slice: take it whole
            hi = np.searchsorted(group_end, group_end[lo], side="right")
        slices.append(order[lo:hi])
    return slices


def select_pruned(prior, min_prior, state):
    """Experts whose mean gate probability ``prior`` is below ``min_prior``; records them.

    Shared by the in-memory and the Dask drivers (flexmix's ``minprior``).

    Returns
    -------
    small : ndarray of int
        The experts to remove (possibly none).

    Raises
    ------
    ValueError
        If every expert would go.
    """
    small = np.flatnonzero(prior < min_prior)
    if small.size == prior.size:
        raise ValueError(
            f"min_prior={min_prior} would remove every expert (mean gate "
            f"probabilities {np.array2string(prior, precision=3)}); lower min_prior."
        )
    for k in small:
        state.events["reasons"][int(state.expert_ids[k])] = f"mean gate probability {prior[k]:.3g}"
    state.events["pruned"].extend(int(state.expert_ids[k]) for k in small)
    return small
