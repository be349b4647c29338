"""Pure array functions of the routers (:mod:`skmoe._routers`).

Everything works on the core layout, ``(n_experts, n_samples)``, and on
*sample-weighted shares*: a row of weight 2 must be routed as two copies of
the row would be, wherever they stand in ``X``. So nothing here depends on a
row's position:

* random draws (stochastic EM, noisy gating) are functions of the row's
  *content* (:func:`content_keys`: a hash of what the model computed for the
  row) and of a seed drawn from the fit's ``random_state``, so that copies of
  a row get the same draw, as the row of weight 2 does;
* ordering samples (capacity, expert choice) breaks ties by content, never
  by index;
* an expert's capacity is filled with fractional rows: the row at the
  boundary is split, the part that fits stays and the rest moves on, exactly
  as its copies would be split between the two sides.
"""

import numpy as np
from scipy.special import logsumexp, ndtri

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Relative slack of the capacity checks (rounding of the cumulative sums).
_CAPACITY_RTOL = 1e-9
# Slot masses below this fraction of a row are rounding, not routing.
_MASS_ATOL = 1e-9


def _mix(x):
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _MIX1
        x = x ^ (x >> np.uint64(27))
        x = x * _MIX2
        return x ^ (x >> np.uint64(31))


def content_keys(*arrays):
    """A 64-bit hash per sample of what the model computed for it.

    Each array is rounded to float32 before hashing, so that copies of a row
    whose float64 values differ in the last bits (another summation order)
    almost always get the same key.

    Parameters
    ----------
    *arrays : ndarray of shape (n_samples,) or (m, n_samples), or None
        Per-sample quantities (responsibilities, log-likelihoods, gate
        log-probabilities); None is skipped.

    Returns
    -------
    keys : ndarray of shape (n_samples,), dtype uint64
        Equal for equal columns.
    """
    keys = None
    for array in arrays:
        if array is None:
            continue
        rows = np.atleast_2d(np.asarray(array, dtype=np.float64))
        if keys is None:
            keys = np.full(rows.shape[1], _GOLDEN, dtype=np.uint64)
        for row in rows:
            # + 0.0 turns -0.0 into 0.0: equal values, equal bits.
            bits = (row.astype(np.float32) + np.float32(0.0)).view(np.uint32).astype(np.uint64)
            keys = _mix(keys ^ bits)
    return keys


def keyed_uniforms(keys, seed, n_streams=1):
    """Uniform numbers in (0, 1), a function of the keys and the seed only.

    Parameters
    ----------
    keys : ndarray of shape (n_samples,), dtype uint64
        From :func:`content_keys`.
    seed : int
        Drawn from the fit's random state, once per use.
    n_streams : int, default=1
        Independent numbers per sample.

    Returns
    -------
    u : ndarray of shape (n_streams, n_samples)
        Uniform in the open interval (0, 1).
    """
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed) * _GOLDEN + np.arange(1, n_streams + 1, dtype=np.uint64) * _MIX2)
        bits = _mix(keys[None, :] ^ base[:, None])
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def keyed_normals(keys, seed, n_streams=1):
    """Standard normal numbers, a function of the keys and the seed only.

    Parameters
    ----------
    keys : ndarray of shape (n_samples,), dtype uint64
        From :func:`content_keys`.
    seed : int
        Drawn from the fit's random state, once per use.
    n_streams : int, default=1
        Independent numbers per sample.

    Returns
    -------
    z : ndarray of shape (n_streams, n_samples)
        Standard normal draws (inverse CDF of :func:`keyed_uniforms`).
    """
    return ndtri(keyed_uniforms(keys, seed, n_streams))


def tie_break_rank(log_prob, keys):
    """Rank of each sample for breaking ties: best explained first, then by key.

    Parameters
    ----------
    log_prob : ndarray of shape (n_samples,) or None
        Per-sample log-likelihood of the mixture (None: keys only).
    keys : ndarray of shape (n_samples,), dtype uint64
        Content keys.

    Returns
    -------
    rank : ndarray of shape (n_samples,), dtype intp
        0 for the sample that wins every tie.
    """
    if log_prob is None:
        order = np.argsort(keys, kind="stable")
    else:
        order = np.lexsort((keys, -np.asarray(log_prob)))
    rank = np.empty(order.size, dtype=np.intp)
    rank[order] = np.arange(order.size)
    return rank


def one_hot(index, n_experts):
    """``(n_experts, n_samples)`` float64 indicator of ``index``.

    Parameters
    ----------
    index : ndarray of shape (n_samples,)
        Expert of each sample.
    n_experts : int
        Number of experts.

    Returns
    -------
    onehot_T : ndarray of shape (n_experts, n_samples)
        1 at ``(index[i], i)``, 0 elsewhere.
    """
    onehot = np.zeros((n_experts, index.size))
    onehot[index, np.arange(index.size)] = 1.0
    return onehot


def draw_experts(resp_T, uniforms):
    """One expert per sample, drawn from its responsibilities.

    Parameters
    ----------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities (columns sum to one).
    uniforms : ndarray of shape (n_samples,)
        Uniform numbers in (0, 1).

    Returns
    -------
    index : ndarray of shape (n_samples,)
        The expert drawn for each sample (one with positive responsibility).
    """
    cumulative = np.cumsum(resp_T, axis=0)
    threshold = uniforms * cumulative[-1]
    index = np.sum(cumulative < threshold, axis=0)
    return np.minimum(index, resp_T.shape[0] - 1)


def balance_posterior(resp_T, sample_weight, targets, offsets=None, *, tol=1e-6, max_iter=100):
    """KL projection of the posterior onto given expert shares (log-domain Sinkhorn).

    Finds one offset ``b_k`` per expert such that
    ``q_ki = softmax_k(log r_ki + b_k)`` has sample-weighted shares
    ``sum_i w_i q_ki / sum_i w_i`` equal to ``targets``: each sample's
    column of ``q`` sums to one and each expert's weighted row to its
    target. ``q`` is the distribution closest to the posterior in
    Kullback-Leibler divergence with these shares (posterior
    regularisation), the fixed point of Sinkhorn's log-domain updates
    ``b_k += log t_k - log share_k``. Those converge slowly when the
    posterior is nearly hard (hundreds of iterations measured at 1e-6), so
    the offsets are found by Newton's method on Sinkhorn's dual,
    ``min_b sum_i w_i logsumexp_k(log r_ki + b_k) / sum_i w_i - t . b``
    (convex; its gradient is ``share - t``), with a backtracking line search
    and a Sinkhorn update wherever Newton's step fails: each iteration
    costs one pass over the posterior plus an ``(n_experts, n_experts)``
    product, and a few iterations reach ``tol``.

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
    n_experts = resp_T.shape[0]
    wn = sample_weight / sample_weight.sum()
    with np.errstate(divide="ignore"):
        log_r = np.log(resp_T)
    targets = np.asarray(targets, dtype=np.float64)
    log_t = np.log(targets)
    b = np.zeros(n_experts) if offsets is None else np.array(offsets, dtype=np.float64)

    def evaluate(b):
        q = log_r + b[:, None]
        with np.errstate(under="ignore"):
            lse = logsumexp(q, axis=0)
            q -= lse
            np.exp(q, out=q)
        return q, q @ wn, float(wn @ lse - targets @ b)

    q, share, value = evaluate(b)
    ones = np.ones((n_experts, n_experts)) / n_experts
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        grad = share - targets
        if np.max(np.abs(grad)) <= tol:
            return q, b, n_iter - 1
        hessian = np.diag(share) - (q * wn) @ q.T
        # The dual is flat along b + c: fix the constant (and keep off exact singularity).
        hessian += ones + 1e-12 * np.eye(n_experts)
        try:
            step = -np.linalg.solve(hessian, grad)
        except np.linalg.LinAlgError:
            step = np.full(n_experts, np.nan)
        for candidate in (step, _sinkhorn_step(log_t, share)):
            if not np.all(np.isfinite(candidate)):
                continue
            candidate = candidate - candidate.mean()
            candidate *= min(1.0, 20.0 / max(np.max(np.abs(candidate)), 1e-300))
            alpha, slope = 1.0, float(grad @ candidate)
            while alpha >= 1e-6:
                q_new, share_new, value_new = evaluate(b + alpha * candidate)
                if value_new <= value + 1e-4 * alpha * min(slope, 0.0):
                    break
                alpha *= 0.5
            else:
                continue
            b = b + alpha * candidate
            q, share, value = q_new, share_new, value_new
            break
        else:  # no step decreases the dual: as close as rounding allows
            return q, b, n_iter
    return q, b, n_iter


def _sinkhorn_step(log_t, share):
    """Sinkhorn's update of the offsets; none for an expert with no support."""
    with np.errstate(divide="ignore"):
        step = log_t - np.log(share)
    return np.where(np.isfinite(step), step, 0.0)


def _snap(kept, mass):
    """Kept slot masses with rounding residues (a part of 1e-9 of a row) removed."""
    kept = np.where(kept <= _MASS_ATOL * mass, 0.0, kept)
    return np.where(mass - kept <= _MASS_ATOL * mass, mass, kept)


def _fill(priority, rank, mass, sample_weight, capacity):
    """Mass kept by one expert filled in order of priority (then rank) up to ``capacity``.

    All arrays are over the candidates: ``mass`` is each one's slot mass (a
    fraction of its row), kept in full while the expert's weight stays
    within ``capacity`` and split at the boundary.
    """
    order = np.lexsort((rank, -priority))
    weight = mass[order] * sample_weight[order]
    before = np.cumsum(weight) - weight
    kept_weight = np.clip(capacity - before, 0.0, weight)
    kept = np.empty_like(mass)
    with np.errstate(invalid="ignore", divide="ignore"):
        kept[order] = np.where(weight > 0, kept_weight / sample_weight[order], 0.0)
    return _snap(kept, mass)


def _next_choice(priority, blocked, holding, room):
    """Expert each moving sample goes to next: its most responsible open expert.

    Open: not ``blocked`` (it refused the sample) and not ``holding`` it
    already; ties (equal responsibility, e.g. zero under ``top_k``) go to the
    expert with the most room left, then the lowest index. With no open
    expert, the unblocked (else any) expert with the most room.
    """
    n_experts = priority.shape[0]
    preference = np.where(blocked | holding, -np.inf, priority)
    best = preference.max(axis=0)
    tied = (preference == best) & np.isfinite(best)
    fallback = np.where(~blocked.all(axis=0), ~blocked, True)
    candidates = np.where(np.isfinite(best), tied, fallback)
    score = np.where(candidates, room[:, None], -np.inf)
    target = np.argmax(score, axis=0)
    return np.minimum(target, n_experts - 1)


def limit_capacity(slots_T, values_T, priority_T, sample_weight, capacity, rank, max_rounds=None):
    """Move each expert's overflow to the samples' next choices until no expert is over capacity.

    A deferred-acceptance assignment with divisible rows: an expert over
    capacity keeps the samples it is most responsible for (``priority_T``,
    ties by ``rank``) up to ``capacity`` of weight, splitting the boundary
    row; what it refuses moves, with the responsibility it carried, to the
    sample's most responsible expert that has not refused it nor holds it
    already (:func:`_next_choice`). Every row keeps all its weight: nothing
    is dropped.

    Parameters
    ----------
    slots_T : ndarray of shape (n_experts, n_samples)
        Slot mass: the part of each row routed to each expert (each column
        sums to the experts per sample).
    values_T : ndarray of shape (n_experts, n_samples)
        The M-step weight each slot carries (moved with it).
    priority_T : ndarray of shape (n_experts, n_samples)
        Responsibilities: who keeps a place when an expert is full, and
        where a refused part goes next.
    sample_weight : ndarray of shape (n_samples,)
        Positive weights.
    capacity : float
        Most weight per expert, in the units of ``sample_weight``.
    rank : ndarray of shape (n_samples,)
        :func:`tie_break_rank`.
    max_rounds : int, default=None
        Rounds of refusals before the remaining overflow is spread over the
        experts with room (``None``: ``4 * n_experts + 10``).

    Returns
    -------
    slots_T, values_T : ndarray of shape (n_experts, n_samples)
        The new assignment; no expert holds more than ``capacity`` weight
        (to a relative ``1e-9``).
    """
    n_experts, n_samples = slots_T.shape
    S = np.array(slots_T, dtype=np.float64)
    V = np.array(values_T, dtype=np.float64)
    w = sample_weight
    limit = capacity + _CAPACITY_RTOL * w.sum()
    refused = np.zeros(S.shape, dtype=bool)
    max_rounds = 4 * n_experts + 10 if max_rounds is None else max_rounds
    for _ in range(max_rounds):
        over = np.flatnonzero(S @ w > limit)
        if over.size == 0:
            return S, V
        moving_S = np.zeros(n_samples)
        moving_V = np.zeros(n_samples)
        for k in over:
            idx = np.flatnonzero(S[k])
            kept = _fill(priority_T[k, idx], rank[idx], S[k, idx], w[idx], capacity)
            moved = S[k, idx] - kept
            left = kept / S[k, idx]
            moving_S[idx] += moved
            moving_V[idx] += V[k, idx] * (1.0 - left)
            S[k, idx] = kept
            V[k, idx] *= left
            refused[k, idx[moved > 0]] = True
        movers = np.flatnonzero(moving_S > 0)
        room = capacity - S @ w
        target = _next_choice(
            priority_T[:, movers], refused[:, movers], S[:, movers] > 0, room
        )
        S[target, movers] += moving_S[movers]
        V[target, movers] += moving_V[movers]
    return _spread_overflow(S, V, w, capacity, priority_T, rank)


def _spread_overflow(S, V, w, capacity, priority_T, rank):
    """Last resort of :func:`limit_capacity`: overflow to the experts with the most room."""
    for k in np.flatnonzero(S @ w > capacity + _CAPACITY_RTOL * w.sum()):
        idx = np.flatnonzero(S[k])
        kept = _fill(priority_T[k, idx], rank[idx], S[k, idx], w[idx], capacity)
        moved, left = S[k, idx] - kept, kept / S[k, idx]
        moved_V = V[k, idx] * (1.0 - left)
        S[k, idx], V[k, idx] = kept, V[k, idx] * left
        for j in np.argsort(-(capacity - S @ w), kind="stable"):
            if j == k or not np.any(moved > 0):
                continue
            room = capacity - S[j] @ w
            if room <= 0:
                break
            take = _fill(-rank[idx].astype(float), rank[idx], moved, w[idx], room)
            part = np.divide(take, moved, out=np.zeros_like(take), where=moved > 0)
            S[j, idx] += take
            V[j, idx] += moved_V * part
            moved, moved_V = moved - take, moved_V * (1.0 - part)
    return S, V


def expert_choice_picks(resp_T, sample_weight, capacity, rank):
    """Part of each row that each expert picks: its most responsible samples up to ``capacity``.

    Parameters
    ----------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities (each expert's preference over the samples).
    sample_weight : ndarray of shape (n_samples,)
        Positive weights.
    capacity : float
        Weight each expert takes, in the units of ``sample_weight``.
    rank : ndarray of shape (n_samples,)
        :func:`tie_break_rank`.

    Returns
    -------
    picks_T : ndarray of shape (n_experts, n_samples)
        In [0, 1]: 1 for a row taken whole, a fraction for the row at the
        boundary (its copies would be split), 0 for rows not taken.
    """
    ones = np.ones(resp_T.shape[1])
    return np.stack([_fill(r, rank, ones, sample_weight, capacity) for r in resp_T])


def expert_choice_weights(picks_T, resp_T):
    """M-step weights of expert-choice routing, fallbacks included.

    A row of weight ``w`` is treated as ``w`` copies: expert ``k`` picked the
    first ``picks_T[k]`` of them (every expert orders equal copies alike, so
    the copies' sets of experts are nested). Each copy's weight goes to the
    experts that picked it, in proportion to their responsibilities; a copy
    that no expert picked goes wholly to its most responsible expert (the
    fallback, outside the capacity).

    Parameters
    ----------
    picks_T : ndarray of shape (n_experts, n_samples)
        :func:`expert_choice_picks`.
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities.

    Returns
    -------
    weights_T : ndarray of shape (n_experts, n_samples)
        Columns sum to one.
    """
    n_experts, n_samples = picks_T.shape
    order = np.argsort(-picks_T, axis=0, kind="stable")
    a = np.take_along_axis(picks_T, order, axis=0)
    r = np.take_along_axis(resp_T, order, axis=0)
    # Copies in [a_(m+1), a_(m)) were picked by the m most eager experts exactly.
    length = a - np.vstack([a[1:], np.zeros((1, n_samples))])
    denom = np.cumsum(r, axis=0)
    members = np.arange(1, n_experts + 1)[:, None]
    by_resp = np.divide(length, denom, out=np.zeros_like(length), where=denom > 0)
    evenly = np.where(denom > 0, 0.0, length / members)
    # An expert at position p belongs to every set m >= p.
    tail = np.cumsum(by_resp[::-1], axis=0)[::-1]
    tail_even = np.cumsum(evenly[::-1], axis=0)[::-1]
    weights = np.zeros_like(picks_T)
    np.put_along_axis(weights, order, r * tail + tail_even, axis=0)
    fallback = 1.0 - a[0]
    weights[np.argmax(resp_T, axis=0), np.arange(n_samples)] += fallback
    return weights


def fill_empty_experts(weights_T, resp_T, sample_weight, rank, capacity=None):
    """Give an expert that a hard rule left without weight the samples it is most responsible for.

    An expert cannot be fitted on nothing. Each empty expert takes the
    samples for which it has the largest responsibility (ties by ``rank``)
    up to its soft share ``sum_i w_i r_ki`` of the weight (at most
    ``capacity``; the last row in part), from the experts that held them;
    if its share is too small, the EM driver re-seeds it after the E-step.

    Parameters
    ----------
    weights_T : ndarray of shape (n_experts, n_samples)
        Hard (or capacity-limited) M-step weights; columns sum to one.
        Modified in place.
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities.
    sample_weight : ndarray of shape (n_samples,)
        Positive weights.
    rank : ndarray of shape (n_samples,)
        :func:`tie_break_rank`.
    capacity : float, default=None
        Most weight an expert may take.

    Returns
    -------
    weights_T : ndarray of shape (n_experts, n_samples)
        The same array.
    """
    empty = np.flatnonzero(weights_T @ sample_weight <= 0)
    ones = np.ones(weights_T.shape[1])
    for k in empty:
        share = float(resp_T[k] @ sample_weight)
        if capacity is not None:
            share = min(share, capacity)
        if share <= 0:
            continue
        take = _fill(resp_T[k], rank, ones, sample_weight, share)
        weights_T *= 1.0 - take
        weights_T[k] += take
    return weights_T
