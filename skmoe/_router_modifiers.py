"""Modifier routers: balanced responsibilities, capacity limits and noisy gating."""

import numpy as np
from scipy.special import logsumexp

from . import _routing
from ._router_base import Routing, _Modifier, _seed


class BalancedRouter(_Modifier):
    """Balanced responsibilities (``balance``): the posterior projected onto target shares.

    Before the inner router sees it, the posterior is replaced by its
    Kullback-Leibler projection onto the distributions whose sample-weighted
    expert shares equal the targets,
    ``q_ki = softmax_k(log g_k(x_i) + log p_k(y_i | x_i) + b_k)`` with one
    dual offset ``b_k`` per expert: the fixed point of log-domain Sinkhorn
    iterations, found by Newton steps on Sinkhorn's dual, warm-started from
    the previous EM iteration (:func:`skmoe._routing.balance_posterior`;
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
        self.offsets_ = None
        self.n_sinkhorn_iter_ = 0

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The inner routing of the balanced posterior.

        Parameters
        ----------
        resp_T : ndarray of shape (n_experts, n_samples)
            Responsibilities.
        log_prob : ndarray of shape (n_samples,) or None
            Per-sample log-likelihood; None: the initial partition, passed
            through unbalanced.
        sample_weight : ndarray of shape (n_samples,)
            User weights.
        rng : numpy.random.RandomState
            Random generator (for the inner router).

        Returns
        -------
        routing : Routing
            The inner router's routing of the balanced posterior.
        """
        if log_prob is None:
            self.offsets_ = None  # a new EM run starts afresh
            return self.inner.route(resp_T, log_prob, sample_weight, rng)
        n_experts = resp_T.shape[0]
        targets = self.targets
        if targets.size != n_experts:
            # The driver removed a starved expert. Which one is not known
            # here: uniform targets stay uniform, others are given up.
            if not np.allclose(targets, targets[0]):
                return self.inner.route(resp_T, log_prob, sample_weight, rng)
            targets = np.full(n_experts, 1.0 / n_experts)
        offsets = self.offsets_ if self.offsets_ is not None and self.offsets_.size == n_experts else None
        q, self.offsets_, self.n_sinkhorn_iter_ = _routing.balance_posterior(
            resp_T, sample_weight, targets, offsets, tol=self.tol
        )
        return self.inner.route(q, log_prob, sample_weight, rng)

    def __repr__(self):
        return f"{type(self).__name__}({self.inner!r}, targets={self.targets!r})"


class CapacityRouter(_Modifier):
    """Capacity limit (``capacity_factor``): no expert's M-step share exceeds ``capacity_factor * k / n_experts``.

    ``k`` is the number of experts per sample (``top_k``, or 1 for
    ``"cem"`` and ``"sem"``). An expert over its capacity keeps the samples it
    is most responsible for; the rest of its weight moves to each sample's
    next choice (its most responsible expert that has room to consider it),
    with the responsibility it carried. The row at a boundary is split (as
    its copies would be), and no sample is dropped. The initial partition
    passes through.

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

    def capacity(self, sample_weight, n_experts):
        """Most weight one expert's M-step may hold.

        Parameters
        ----------
        sample_weight : ndarray of shape (n_samples,)
            User weights.
        n_experts : int
            Number of experts.

        Returns
        -------
        capacity : float
            ``capacity_factor * k / n_experts`` of the total weight.
        """
        k = min(self.experts_per_sample, n_experts)
        return float(self.capacity_factor) * k / n_experts * float(sample_weight.sum())

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The inner routing with each expert's overflow moved on.

        Parameters
        ----------
        resp_T : ndarray of shape (n_experts, n_samples)
            Responsibilities (each expert's priority over the samples, and
            each sample's order of choice).
        log_prob : ndarray of shape (n_samples,) or None
            Per-sample log-likelihood (breaks ties); None: the initial
            partition, passed through.
        sample_weight : ndarray of shape (n_samples,)
            User weights.
        rng : numpy.random.RandomState
            Random generator (for the inner router).

        Returns
        -------
        routing : Routing
            Experts and gate fitted to the same capacity-limited weights.
        """
        routing = self.inner.route(resp_T, log_prob, sample_weight, rng)
        if log_prob is None:
            return routing
        weights = routing.experts_T
        capacity = self.capacity(sample_weight, resp_T.shape[0])
        rank = _routing.tie_break_rank(log_prob, _routing.content_keys(resp_T, log_prob))
        slots, weights = _routing.limit_capacity(
            (weights > 0).astype(np.float64), weights, resp_T, sample_weight, capacity, rank
        )
        if not np.all(weights @ sample_weight > 0):
            weights = _routing.fill_empty_experts(weights, resp_T, sample_weight, rank, capacity)
            slots = np.where(weights > 0, np.maximum(slots, np.minimum(weights, 1.0)), 0.0)
        self.load_ = slots @ sample_weight / sample_weight.sum()
        total = weights.sum(axis=0)
        gate = weights / np.where(total > 0, total, 1.0)
        return Routing(np.ascontiguousarray(weights), np.ascontiguousarray(gate))

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
        """Log-softmax of the gate's logits plus Gaussian noise.

        Parameters
        ----------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Log gate probabilities (``-inf`` where ``top_k`` masked them:
            they stay masked).
        rng : numpy.random.RandomState
            Source of the noise's seed (one draw per call).

        Returns
        -------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Perturbed log-probabilities; each column log-sum-exps to 0.
        """
        log_gate_T = self.inner.perturb_log_gate(log_gate_T, rng)
        keys = _routing.content_keys(log_gate_T)
        noise = _routing.keyed_normals(keys, _seed(rng), log_gate_T.shape[0])
        noisy = log_gate_T + float(self.gate_noise) * noise
        with np.errstate(under="ignore"):
            noisy -= logsumexp(noisy, axis=0)
        return noisy

    def __repr__(self):
        return f"{type(self).__name__}({self.inner!r}, gate_noise={self.gate_noise!r})"
