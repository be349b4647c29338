"""The router protocol: :class:`Routing`, soft EM, top-k routing and the base of the modifiers.

See :mod:`skmoe._routers` for the routers of the parameters and how they
compose.
"""

from collections import namedtuple

import numpy as np

from . import _em, _routing, _routing_capacity
from ._routed import entry_experts, routed_from_dense, routed_from_picks

Routing = namedtuple("Routing", ["experts_T", "gate_T", "routed"], defaults=(None,))
Routing.__doc__ = """What the M-step fits: the experts' weights and the gate's soft targets.

Both are ``(n_experts, n_samples)`` arrays in the core layout; the columns
of ``gate_T`` sum to one. ``gate_T is experts_T`` when the assignment fits
experts and gate to the same weights. ``routed``, optional: the non-zero
entries of ``experts_T`` listed expert by expert
(:class:`~skmoe._routed.RoutedWeights`), from a router that knows which
entries it set; a solver that takes it (``takes_routed``) then touches
each expert's routed rows only (None: soft weights, or not listed).
"""


def _both(weights_T, routed=None):
    """Both targets from one weight matrix (columns summing to one)."""
    weights_T = np.ascontiguousarray(weights_T, dtype=np.float64)
    return Routing(weights_T, weights_T, routed)


def _listed(weights_T):
    """:func:`_both` of sparse weights known only densely, with their entries listed (one scan)."""
    weights_T = np.ascontiguousarray(weights_T, dtype=np.float64)
    return Routing(weights_T, weights_T, routed_from_dense(weights_T))


def _hard(index, n_experts):
    """One expert per sample: its indicator weights, and their entries listed from ``index``."""
    values = np.ones((1, index.size))
    return _routing.one_hot(index, n_experts), routed_from_picks(index[None, :], values, n_experts)


def _seed(rng):
    return int(rng.randint(np.iinfo(np.int32).max))


def _log_sum_exp(a):
    """``log sum exp`` over axis 0 of a few rows (shifted by the column maximum)."""
    shift = a.max(axis=0)
    shift = np.where(np.isfinite(shift), shift, 0.0)
    with np.errstate(under="ignore", divide="ignore"):
        return np.log(np.exp(a - shift).sum(axis=0)) + shift


def _fill_empty(weights_T, resp_T, log_prob, sample_weight, capacity=None, keys=None, routed=None):
    """:func:`~skmoe._routing_capacity.fill_empty_experts` when an expert has no weight.

    Returns the weights and their listed entries: ``routed`` (None: not
    listed) when no expert was empty, else listed anew from the filled
    weights. The experts' loads come from ``routed`` when it is given (no
    pass over the dense weights).
    """
    if routed is not None:
        entries = routed.weights * sample_weight[routed.rows]
        loads = np.bincount(entry_experts(routed), weights=entries, minlength=weights_T.shape[0])
    else:
        loads = weights_T @ sample_weight
    if np.all(loads > 0):
        return weights_T, routed
    rank = _routing.sample_rank(resp_T, log_prob, keys)
    weights_T = _routing_capacity.fill_empty_experts(weights_T, resp_T, sample_weight, rank, capacity)
    return weights_T, None if routed is None else routed_from_dense(weights_T)


class SoftRouter:
    """Soft EM: experts and gate are fitted to the responsibilities.

    What the driver reads of a router: ``exact`` (with an exact expert
    M-step the objective cannot decrease), ``stopping`` (``"objective"``:
    the relative-change rule on the objective; ``"partition"``: stop when
    the hard partition of the experts' weights no longer changes;
    ``"budget"``: run ``max_iter`` iterations and keep the iterate with the
    best objective), and three steps of every EM iteration:
    :meth:`perturb_log_gate` (the gate the training E-step uses),
    :meth:`posterior` (the E-step itself) and :meth:`route` (the posterior
    to the M-step's weights); :meth:`remove_experts` when the driver removes
    experts. ``name`` is the assignment's name in the engine's combination
    table.
    """

    name = "soft"
    exact = True
    stopping = "objective"

    def perturb_log_gate(self, log_gate_T, rng):
        """The gate's log-probabilities as the training E-step uses them (unchanged).

        Parameters
        ----------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Log gate probabilities.
        rng : numpy.random.RandomState
            Random generator (for noisy gating).

        Returns
        -------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            The same array.
        """
        return log_gate_T

    def posterior(self, log_gate_T, log_lik_T):
        """The E-step: responsibilities and the per-sample log-likelihood of the model.

        Parameters
        ----------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Log gate probabilities (from :meth:`perturb_log_gate`).
        log_lik_T : ndarray of shape (n_experts, n_samples)
            Log-likelihood of each sample under each expert; may be
            overwritten.

        Returns
        -------
        resp_T : ndarray of shape (n_experts, n_samples)
            Posterior probabilities of the experts (columns sum to one).
        log_prob : ndarray of shape (n_samples,)
            ``log p(y_i | x_i)`` under the model as it predicts (EM's
            objective averages it).
        """
        return _em.responsibilities(log_gate_T, log_lik_T, out=log_lik_T)

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The responsibilities, unchanged.

        Parameters
        ----------
        resp_T : ndarray of shape (n_experts, n_samples)
            Posterior probabilities of the experts (columns sum to one).
        log_prob : ndarray of shape (n_samples,) or None
            Per-sample log-likelihood of the mixture; None for the initial
            partition (before any E-step).
        sample_weight : ndarray of shape (n_samples,)
            User weights.
        rng : numpy.random.RandomState
            Random generator (for stochastic routers).

        Returns
        -------
        routing : Routing
            ``Routing(resp_T, resp_T)``.
        """
        return Routing(resp_T, resp_T)

    def remove_experts(self, keep):
        """Forget the removed experts (nothing to forget here).

        Parameters
        ----------
        keep : ndarray of int
            The experts that stay, in order.
        """

    def __repr__(self):
        return f"{type(self).__name__}()"


class TopKRouter(SoftRouter):
    """Top-k routing (``top_k``): each sample's experts are its ``top_k`` largest gate outputs.

    The model is the one that predicts: ``p(y | x) = sum_{k in T(x)}
    g_k(x) p_k(y | x) / sum_{k in T(x)} g_k(x)``, ``T(x)`` the ``top_k``
    largest gate outputs (the sparse gate of Shazeer et al. 2017; top-1 is
    switch routing). One EM iteration:

    * E-step (:meth:`posterior`): the sample picks ``T(x)`` by its gate, as
      at prediction, before its target is seen; the posterior of the
      experts is computed with the full gate, and the objective is the
      log-likelihood of the top-k model above;
    * experts: each fitted to its rows only, weighted by the top-k model's
      posterior ``r_k / sum_{j in T(x)} r_j`` on ``T(x)`` (the exact M-step
      of the top-k model for a given gate; the cost is that of the routed
      rows);
    * gate: fitted to the full posterior, so that which experts a sample
      picks follows which experts explain its target. Fitted to the top-k
      posterior instead, a top-1 gate would be a fixed point from the first
      iteration (its own choice comes back as its target, whatever ``y``
      says); the full posterior plays the part of the gate's gradient in
      the sparse layers ("Routing and EM variants" in the user guide has
      the details). This step is not the top-k model's, so the objective
      may decrease: the driver keeps the best iterate (``exact`` is False).

    Parameters
    ----------
    top_k : int
        Experts kept per sample.
    """

    name = "top_k"
    exact = False

    def __init__(self, top_k):
        self.top_k = top_k
        self.choice_ = None

    def posterior(self, log_gate_T, log_lik_T):
        """The full posterior, and the log-likelihood of the top-k model.

        Records the experts each sample picked (``choice_``: the ``top_k``
        largest gate outputs, ties to the lowest index) for :meth:`route`.

        Parameters
        ----------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Log gate probabilities.
        log_lik_T : ndarray of shape (n_experts, n_samples)
            Log-likelihood of each sample under each expert; overwritten.

        Returns
        -------
        resp_T : ndarray of shape (n_experts, n_samples)
            Posterior probabilities under the full gate.
        log_prob : ndarray of shape (n_samples,)
            ``log sum_{k in T(x)} g_k p_k - log sum_{k in T(x)} g_k``.
        """
        if self.top_k >= log_gate_T.shape[0]:
            self.choice_ = None
            return _em.responsibilities(log_gate_T, log_lik_T, out=log_lik_T)
        self.choice_ = _routing.top_k_indices(log_gate_T, self.top_k)
        # The top-k model's log-likelihood from the picked entries alone
        # (exact where the full posterior underflows on them).
        gate = np.take_along_axis(log_gate_T, self.choice_, axis=0)
        joint = gate + np.take_along_axis(log_lik_T, self.choice_, axis=0)
        log_prob = _log_sum_exp(joint) - _log_sum_exp(gate)
        resp_T, _ = _em.responsibilities(log_gate_T, log_lik_T, out=log_lik_T)
        return resp_T, log_prob

    def route(self, resp_T, log_prob, sample_weight, rng):
        """Experts: the posterior on each sample's picks, renormalised; gate: the full posterior.

        Without a recorded choice (the initial partition), both are the
        ``top_k`` largest responsibilities, renormalised. A sample whose
        picked experts hold no posterior mass (a row the driver re-seeded,
        or a posterior that underflowed there) goes to its ``top_k`` most
        responsible experts; an expert that no sample picked takes the
        samples it is most responsible for, up to its soft share
        (:func:`~skmoe._routing_capacity.fill_empty_experts`). Parameters
        and returns as :meth:`SoftRouter.route`.
        """
        index = self.choice_
        if log_prob is None or index is None or index.shape[1] != resp_T.shape[1]:
            return _both(top_k_columns(resp_T, self.top_k))
        picked = index >= 0  # removed experts' picks are -1
        safe = np.where(picked, index, 0)
        kept = np.where(picked, np.take_along_axis(resp_T, safe, axis=0), 0.0)
        mass = kept.sum(axis=0)
        lost = np.flatnonzero(mass <= 0)
        mass[lost] = 1.0
        kept /= mass
        weights = np.zeros(resp_T.shape, dtype=resp_T.dtype)
        columns = np.arange(resp_T.shape[1])
        for j in range(index.shape[0]):  # the picks of a sample are distinct
            weights[safe[j], columns] += kept[j]
        # The entries are listed from the picks (no scan of the dense weights).
        routed = routed_from_picks(index, kept, resp_T.shape[0])
        if lost.size:
            weights[:, lost] = top_k_columns(resp_T[:, lost], self.top_k)
            routed = routed_from_dense(weights)  # rare: rows the driver re-seeded
        weights, routed = _fill_empty(weights, resp_T, log_prob, sample_weight, routed=routed)
        return Routing(weights, resp_T, routed)

    def remove_experts(self, keep):
        """Renumber the recorded choice; the removed experts' picks become -1.

        Parameters
        ----------
        keep : ndarray of int
            The experts that stay, in order.
        """
        if self.choice_ is not None:
            new = np.full(int(max(self.choice_.max(), np.max(keep))) + 1, -1, dtype=np.intp)
            new[keep] = np.arange(len(keep))
            self.choice_ = np.where(self.choice_ >= 0, new[np.maximum(self.choice_, 0)], -1)

    def __repr__(self):
        return f"{type(self).__name__}(top_k={self.top_k!r})"


def top_k_columns(resp_T, top_k):
    """Keep the ``top_k`` largest entries of each column, renormalised (ties: lowest index).

    Parameters
    ----------
    resp_T : ndarray of shape (n_experts, n_samples)
        Non-negative weights, columns summing to one.
    top_k : int
        Entries kept per column.

    Returns
    -------
    kept_T : ndarray of shape (n_experts, n_samples)
        ``resp_T`` itself when no column has more than ``top_k`` non-zeros.
    """
    n_experts = resp_T.shape[0]
    if top_k >= n_experts or np.all(np.count_nonzero(resp_T, axis=0) <= top_k):
        return resp_T
    rank = np.argsort(np.argsort(-resp_T, axis=0, kind="stable"), axis=0, kind="stable")
    kept = np.where(rank < top_k, resp_T, 0.0)
    return kept / kept.sum(axis=0)


class _Modifier(SoftRouter):
    """A router that changes what another one (``inner``) does; every step is the inner one's unless overridden."""

    exact = False

    def __init__(self, inner):
        self.inner = inner

    @property
    def name(self):
        return self.inner.name

    @property
    def stopping(self):
        return self.inner.stopping

    def perturb_log_gate(self, log_gate_T, rng):
        return self.inner.perturb_log_gate(log_gate_T, rng)

    def posterior(self, log_gate_T, log_lik_T):
        return self.inner.posterior(log_gate_T, log_lik_T)

    def route(self, resp_T, log_prob, sample_weight, rng):
        return self.inner.route(resp_T, log_prob, sample_weight, rng)

    def remove_experts(self, keep):
        self.inner.remove_experts(keep)

    def __repr__(self):
        return f"{type(self).__name__}({self.inner!r})"
