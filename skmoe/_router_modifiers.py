"""Modifier routers: balanced responsibilities, capacity limits and noisy gating."""

import numpy as np

from . import _routing, _routing_balance, _routing_capacity
from ._routed import routed_from_dense
from ._router_base import Routing, _log_sum_exp, _Modifier, _seed


class BalancedRouter(_Modifier):
    """Balanced responsibilities (``balance``): the posterior projected onto target shares.

    Before the inner router sees it, the posterior is replaced by its
    Kullback-Leibler projection onto the distributions whose sample-weighted
    expert shares equal the targets,
    ``q_ki = softmax_k(log g_k(x_i) + log p_k(y_i | x_i) + b_k)`` with one
    dual offset ``b_k`` per expert: the fixed point of log-domain Sinkhorn
    iterations, found by Newton steps on Sinkhorn's dual, warm-started from
    the previous EM iteration (:func:`skmoe._routing_balance.balance_posterior`;
    posterior regularisation; Sinkhorn EM, Mena et al. 2020). The gate is
    fitted to ``q``, so it learns the balanced routing; prediction uses the
    plain gate. The initial partition passes through (a hard partition
    cannot be rebalanced this way).

    Parameters
    ----------
    inner : router
        The assignment applied to the balanced posterior.
    targets : ndarray of shape (n_experts,)
        Positive target shares summing to one.
    tol : float, default=1e-8
        The offsets stop when every share is within ``tol`` of its target.
    """

    def __init__(self, inner, targets, tol=1e-8):
        super().__init__(inner)
        self.targets = np.asarray(targets, dtype=np.float64)
        self.tol = tol
        self._run_targets = self.targets
        self.offsets_ = None
        self.n_sinkhorn_iter_ = 0

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The inner routing of the balanced posterior; the initial partition passes through unbalanced."""
        if log_prob is None:
            # A new EM run starts afresh, with every expert.
            self.offsets_, self._run_targets = None, self.targets
            return self.inner.route(resp_T, log_prob, sample_weight, rng)
        q, self.offsets_, self.n_sinkhorn_iter_ = _routing_balance.balance_posterior(
            resp_T, sample_weight, self._run_targets, self.offsets_, tol=self.tol
        )
        return self.inner.route(q, log_prob, sample_weight, rng)

    def remove_experts(self, keep):
        """The removed experts' target shares go to the others in proportion to theirs.

        Parameters
        ----------
        keep : ndarray of int
            The experts that stay, in order.
        """
        targets = self._run_targets[keep]
        self._run_targets = targets / targets.sum()
        self.offsets_ = None if self.offsets_ is None else self.offsets_[keep]
        self.inner.remove_experts(keep)

    def __repr__(self):
        return f"{type(self).__name__}({self.inner!r}, targets={self.targets!r})"


class CapacityRouter(_Modifier):
    """Capacity limit (``capacity_factor``): no expert's M-step share exceeds ``capacity_factor * k / n_experts``.

    ``k`` is the number of experts per sample (``top_k``, or 1 for
    ``"cem"`` and ``"sem"``). An expert over its capacity keeps the samples it
    is most responsible for; the rest of its weight moves to each sample's
    next choice (its most responsible expert that has room to consider it),
    with the responsibility it carried. The row at a boundary is split (as
    its copies would be), and no sample is dropped. The gate learns to
    route within the capacities: fitted to the capacity-limited assignment
    (the dispatch) where the assignment fits experts and gate alike
    (``"cem"``, ``"sem"``), and under ``top_k``, whose gate learns the
    posterior, to the posterior's KL projection onto gate shares of at most
    ``capacity_factor / n_experts``
    (:func:`~skmoe._routing_balance.cap_posterior`). The initial partition
    passes through.

    A capacity bounds the shares from above only: the other experts can
    hold ``(n_experts - 1) * capacity_factor * k / n_experts``, so an expert
    is sure to keep a share of at least ``k * (1 - (n_experts - 1) *
    capacity_factor / n_experts)``, which is positive only for
    ``capacity_factor < n_experts / (n_experts - 1)`` (the user guide works
    this out).

    Parameters
    ----------
    inner : router
        The assignment whose overflow is moved.
    capacity_factor : float
        At least 1: the experts' capacities add up to at least the weight
        to place.
    experts_per_sample : int
        ``k``.
    """

    def __init__(self, inner, capacity_factor, experts_per_sample):
        super().__init__(inner)
        self.capacity_factor = capacity_factor
        self.experts_per_sample = experts_per_sample
        self.load_ = None
        self.gate_offsets_ = None

    def capacity(self, sample_weight, n_experts):
        """Most weight one expert's M-step may hold: ``capacity_factor * k / n_experts`` of ``sample_weight``'s sum."""
        k = min(self.experts_per_sample, n_experts)
        return float(self.capacity_factor) * k / n_experts * float(sample_weight.sum())

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The inner routing with each expert's overflow moved on; experts and gate fitted to it.

        The responsibilities are each expert's priority over the samples and
        each sample's order of choice; the initial partition passes through.
        """
        routing = self.inner.route(resp_T, log_prob, sample_weight, rng)
        if log_prob is None:
            # The first routing of a run (restart): nothing carried over from the last one.
            self.gate_offsets_ = None
            self.load_ = None
            return routing
        weights = routing.experts_T
        capacity = self.capacity(sample_weight, resp_T.shape[0])
        keys = _routing.content_keys(resp_T, log_prob)
        rank = _routing.sample_rank(resp_T, log_prob, keys)
        slots, weights = _routing_capacity.limit_capacity(
            (weights > 0).astype(np.float64), weights, resp_T, sample_weight, capacity, rank,
            groups=_routing.copy_groups(keys),
        )
        if not np.all(weights @ sample_weight > 0):
            weights = _routing_capacity.fill_empty_experts(weights, resp_T, sample_weight, rank, capacity)
            slots = np.where(weights > 0, np.maximum(slots, np.minimum(weights, 1.0)), 0.0)
        self.load_ = slots @ sample_weight / sample_weight.sum()
        if routing.gate_T is routing.experts_T:  # one assignment for experts and gate
            total = weights.sum(axis=0)
            gate = weights / np.where(total > 0, total, 1.0)
        else:
            # top_k: the gate learns the posterior, capped at the capacities.
            n_experts = resp_T.shape[0]
            offsets = self.gate_offsets_
            gate, self.gate_offsets_, _ = _routing_balance.cap_posterior(
                routing.gate_T, sample_weight, np.full(n_experts, float(self.capacity_factor) / n_experts),
                offsets if offsets is not None and offsets.size == n_experts else None,
            )
            gate = gate.astype(resp_T.dtype, copy=False)
        weights = np.ascontiguousarray(weights)
        # The capacity-limited weights are sparse: their entries listed for the solver.
        return Routing(weights, np.ascontiguousarray(gate), routed_from_dense(weights))

    def remove_experts(self, keep):
        """Forget the removed experts' gate offsets.

        Parameters
        ----------
        keep : ndarray of int
            The experts that stay, in order.
        """
        self.gate_offsets_ = None
        self.inner.remove_experts(keep)

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.inner!r}, capacity_factor={self.capacity_factor!r}, "
            f"experts_per_sample={self.experts_per_sample!r})"
        )


class NoisyRouter(_Modifier):
    """Noisy gating (``gate_noise``, Shazeer et al. 2017): Gaussian noise on the training gate.

    In every training E-step the gate's logits get independent
    ``N(0, gate_noise^2)`` noise per expert and sample, seeded by the fit's
    ``random_state`` and a function of the sample's gate outputs (copies of
    a row draw alike). Prediction uses the gate without noise. The noisy
    objective does not converge to a point: EM runs ``max_iter`` iterations
    and keeps the iterate with the best objective.

    Parameters
    ----------
    inner : router
        The router of the perturbed posterior.
    gate_noise : float
        Standard deviation of the noise on the logits.
    """

    def __init__(self, inner, gate_noise):
        super().__init__(inner)
        self.gate_noise = gate_noise

    stopping = "budget"

    def perturb_log_gate(self, log_gate_T, rng):
        """Log-softmax of the gate's logits plus Gaussian noise (before ``top_k`` picks its experts).

        Parameters
        ----------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Log gate probabilities (``-inf`` stays ``-inf``).
        rng : numpy.random.RandomState
            Source of the noise's seed (one draw per call).

        Returns
        -------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Perturbed log-probabilities, of the input's dtype; each column
            log-sum-exps to 0.
        """
        log_gate_T = self.inner.perturb_log_gate(log_gate_T, rng)
        keys = _routing.content_keys(log_gate_T)
        noise = _routing.keyed_normals(keys, _seed(rng), log_gate_T.shape[0])
        noisy = log_gate_T + (float(self.gate_noise) * noise).astype(log_gate_T.dtype, copy=False)
        noisy -= _log_sum_exp(noisy)
        return noisy

    def __repr__(self):
        return f"{type(self).__name__}({self.inner!r}, gate_noise={self.gate_noise!r})"
