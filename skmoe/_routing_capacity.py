"""Capacity limits, expert choice and filling empty experts: experts filled with rows up to a weight.

Pure array functions of the routers (:mod:`skmoe._routers`) on the core
layout. Rows are ordered by priority, ties broken by
:func:`skmoe._routing.tie_break_rank` (content, never position), and an
expert's capacity is filled with fractional rows: the row at the boundary
is split, the part that fits stays and the rest moves on, exactly as its
copies would be split between the two sides.
"""

import numpy as np

# Relative slack of the capacity checks (rounding of the cumulative sums).
_CAPACITY_RTOL = 1e-9
# Slot masses below this fraction of a row are rounding, not routing.
_MASS_ATOL = 1e-9


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


def _any_of_copies(mask_T, groups):
    """``mask_T`` with each column replaced by the OR over the columns of its group (copies of a row)."""
    if groups is None:
        return mask_T
    # Groups are numbered 0..G-1 (np.unique): sorted, group g starts at starts[g].
    order = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[order], np.arange(groups.max() + 1))
    return np.logical_or.reduceat(mask_T[:, order], starts, axis=1)[:, groups]


def limit_capacity(slots_T, values_T, priority_T, sample_weight, capacity, rank, max_rounds=None,
                   groups=None):
    """Move each expert's overflow to the samples' next choices until no expert is over capacity.

    A deferred-acceptance assignment with divisible rows: an expert over
    capacity keeps the samples it is most responsible for (``priority_T``,
    ties by ``rank``) up to ``capacity`` of weight, splitting the boundary
    row; what it refuses moves, with the responsibility it carried, to the
    sample's most responsible expert that has not refused it nor holds it
    already (:func:`_next_choice`). Every row keeps all its weight: nothing
    is dropped. Copies of a row (``groups``) are refused and held as one
    row: a row of weight 2 split between two experts cannot go back to
    either, and neither can its copies.

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
        :func:`~skmoe._routing.tie_break_rank`.
    max_rounds : int, default=None
        Rounds of refusals before the remaining overflow is spread over the
        experts with room (``None``: ``4 * n_experts + 10``).
    groups : ndarray of shape (n_samples,), default=None
        :func:`~skmoe._routing.copy_groups`; None when no two rows are
        copies.

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
        blocked, holding = _any_of_copies(refused, groups), _any_of_copies(S > 0, groups)
        target = _next_choice(priority_T[:, movers], blocked[:, movers], holding[:, movers], room)
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
    sample_weight, capacity, rank
        As :func:`limit_capacity` (``capacity``: the weight each expert takes).

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
        :func:`~skmoe._routing.tie_break_rank`.
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
