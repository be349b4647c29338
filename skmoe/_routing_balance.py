"""The posterior's KL projection onto expert shares: equal to targets, or at most capacities.

Pure array functions of :class:`skmoe._routers.BalancedRouter` (``balance``)
and :class:`skmoe._routers.CapacityRouter` (the gate's target under
``top_k`` with ``capacity_factor``) on the core layout.

Both find one offset ``b_k`` per expert such that ``q_ki = softmax_k(log
r_ki + b_k)`` has the wanted sample-weighted shares ``sum_i w_i q_ki /
sum_i w_i``: ``q`` is the distribution closest to the posterior ``r`` in
Kullback-Leibler divergence whose shares satisfy the constraints
(posterior regularisation). The offsets minimise Sinkhorn's dual,

``F(b) = sum_i w_i logsumexp_k(log r_ki + b_k) / sum_i w_i - t . b``

(convex; its gradient is ``share(b) - t``): over every ``b`` for shares
equal to ``t`` (then ``F`` is flat along ``b + c``), over ``b <= 0`` for
shares at most ``t`` (an expert under its capacity keeps ``b_k = 0``, one at
it has ``b_k < 0``: the KKT conditions). Sinkhorn's log-domain updates
``b_k += log t_k - log share_k`` converge slowly when the posterior is
nearly hard (hundreds of iterations measured at 1e-6), so ``F`` is
minimised by (projected) Newton steps with a backtracking line search and a
Sinkhorn update wherever Newton's step fails: each iteration costs one pass
over the posterior plus an ``(n_experts, n_experts)`` product, and a few
iterations reach the tolerance.
"""

import numpy as np
from scipy.special import logsumexp


def balance_posterior(resp_T, sample_weight, targets, offsets=None, *, tol=1e-6, max_iter=100):
    """KL projection of the posterior onto given expert shares (log-domain Sinkhorn).

    Parameters
    ----------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities.
    sample_weight : ndarray of shape (n_samples,)
        Positive weights.
    targets : ndarray of shape (n_experts,)
        Positive target shares summing to one.
    offsets : ndarray of shape (n_experts,), default=None
        Warm start (the previous EM iteration's offsets).
    tol : float, default=1e-6
        Stop when no share differs from its target by more than this.
    max_iter : int, default=100
        Most iterations.

    Returns
    -------
    q_T : ndarray of shape (n_experts, n_samples)
        Balanced responsibilities; columns sum to one.
    offsets : ndarray of shape (n_experts,)
        The dual offsets ``b`` (mean zero).
    n_iter : int
        Iterations run.
    """
    return _project(resp_T, sample_weight, targets, offsets, tol, max_iter, upper=False)


def cap_posterior(resp_T, sample_weight, capacities, offsets=None, *, tol=1e-6, max_iter=100):
    """KL projection of the posterior onto expert shares at most ``capacities``.

    Experts under their capacity keep their responsibilities' ratios
    (``b_k = 0``); those over it are scaled down to it, and their excess
    goes to the others in proportion to the posterior.

    Parameters and returns as :func:`balance_posterior`, with
    ``capacities`` (positive upper bounds of the shares, summing to at
    least one) for the targets; ``offsets`` are non-positive, and ``tol``
    bounds the excess over a capacity and, for the experts with a negative
    offset, the gap to it.
    """
    return _project(resp_T, sample_weight, capacities, offsets, tol, max_iter, upper=True)


def _project(resp_T, sample_weight, targets, offsets, tol, max_iter, upper):
    """(Projected) Newton on Sinkhorn's dual; see the module's docstring."""
    n_experts = resp_T.shape[0]
    wn = sample_weight / sample_weight.sum()
    with np.errstate(divide="ignore"):
        log_r = np.log(resp_T)
    targets = np.asarray(targets, dtype=np.float64)
    log_t = np.log(targets)
    b = np.zeros(n_experts) if offsets is None else np.array(offsets, dtype=np.float64)
    if upper:
        b = np.minimum(b, 0.0)

    def evaluate(b):
        q = log_r + b[:, None]
        with np.errstate(under="ignore"):
            lse = logsumexp(q, axis=0)
            q -= lse
            np.exp(q, out=q)
        return q, q @ wn, float(wn @ lse - targets @ b)

    def feasible(b):
        # Projected onto b <= 0 for capacities; mean zero for equal shares
        # (the dual is flat along b + c).
        return np.minimum(b, 0.0) if upper else b - b.mean()

    q, share, value = evaluate(b)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        grad = share - targets
        # At the bound b_k = 0 with room left, an expert stays put (not free).
        free = (b < 0) | (grad > 0) if upper else np.ones(n_experts, dtype=bool)
        if np.max(np.abs(grad[free]), initial=0.0) <= tol and np.all(grad <= tol):
            return q, b, n_iter - 1
        step = np.zeros(n_experts)
        hessian = (np.diag(share) - (q * wn) @ q.T)[np.ix_(free, free)]
        if not upper:
            hessian += np.ones((n_experts, n_experts)) / n_experts
        try:
            step[free] = -np.linalg.solve(hessian + 1e-12 * np.eye(hessian.shape[0]), grad[free])
        except np.linalg.LinAlgError:
            step[:] = np.nan
        for candidate in (step, _sinkhorn_step(log_t, share) * free):
            if not np.all(np.isfinite(candidate)):
                continue
            candidate = candidate * min(1.0, 20.0 / max(np.max(np.abs(candidate)), 1e-300))
            alpha = 1.0
            while alpha >= 1e-6:
                b_new = feasible(b + alpha * candidate)
                q_new, share_new, value_new = evaluate(b_new)
                if value_new <= value + 1e-4 * min(float(grad @ (b_new - b)), 0.0):
                    break
                alpha *= 0.5
            else:
                continue
            b, q, share, value = b_new, q_new, share_new, value_new
            break
        else:  # no step decreases the dual: as close as rounding allows
            return q, b, n_iter
    return q, b, n_iter


def _sinkhorn_step(log_t, share):
    """Sinkhorn's update of the offsets; none for an expert with no support."""
    with np.errstate(divide="ignore"):
        step = log_t - np.log(share)
    return np.where(np.isfinite(step), step, 0.0)
