"""The steps of the blockwise EM: statistics, M-step, E-step, starved experts.

The counterparts of the in-memory driver's steps
(:class:`skmoe._driver._EMDriver`), with every pass over the rows split
into tasks over the row chunks. The responsibilities are a
:class:`~skmoe._dask._resp.Recipe` (``state.recipe``), evaluated by each
task on its block, never a dask array. An EM iteration makes ``1 + m``
passes, ``m`` being the gate's L-BFGS evaluations:

* the statistics pass (:func:`statistics`, the E-step's own pass): the
  responsibilities of the new parameters, the objective's sum, the
  experts' shares and load, and each expert's weighted Gram matrix (the
  kernel of the in-memory fast path); each task also builds its block's
  gate objective, kept in its process's cache for the M-step;
* the experts solved on the client from the Gram matrices
  (:func:`~skmoe._solvers.solve_linear_experts`), then the gate's L-BFGS on
  the client, its objective summed over blocks (:mod:`skmoe._dask._gate`);
  the noise variances of the new experts ride on its first pass.
"""

import copy
from typing import NamedTuple

import numpy as np

from .._fit_state import classify_experts, select_pruned
from .._gram import finish_gram, gram_kernel
from .._solvers import solve_linear_experts
from ._blocks import reduce_blocks, sample_index
from ._gate import as_plain_gate, cache_objective, objective_bytes
from ._kernels import (
    e_step_block,
    gate_share_block,
    keep_block,
    log_prob_sample_block,
    reseed_block,
    statistics_block,
    variance_block,
)
from ._resp import Recipe, reduce_resp

# Rows of log-likelihood sampled to place the re-seeding slices.
THRESHOLD_SAMPLE_ROWS = 200_000


class Statistics(NamedTuple):
    """What :func:`statistics` gathers, for the recipe ``key``."""

    key: int
    gram: np.ndarray  # (n_experts, p, p)
    load: np.ndarray  # share of the weight each expert has a positive responsibility for
    share: np.ndarray  # each expert's share of the weighted responsibility
    log_prob_sum: float  # weighted sum of the per-row log-likelihood


def stale(state):
    """Whether the statistics are not those of the current responsibilities."""
    return state.stats is None or state.stats.key != state.recipe.key


def statistics(fit, state, cache=True):
    """One pass over the current responsibilities: the M-step's statistics and the shares.

    With ``cache``, each task also builds its block's gate objective, kept in
    its process's cache for the M-step's gate passes where there is room.
    """
    p = fit.x_offset.size + 2
    kernel, rows = gram_kernel(p, state.recipe.n_experts)
    objective_cache = (objective_bytes, cache_objective) if cache else (None, None)
    parts = reduce_resp(
        statistics_block, fit.data, state.recipe, fit.spec, fit.expert_features, fit.x_offset,
        fit.summary.y_mean, kernel, rows, *objective_cache,
    )
    total = fit.weight_total
    state.stats = Statistics(
        state.recipe.key, finish_gram([part[0] for part in parts], kernel, p),
        sum(part[1] for part in parts) / total, sum(part[2] for part in parts) / total,
        sum(part[3] for part in parts),
    )
    state.share = state.stats.share
    state.log_prob_sum = state.stats.log_prob_sum


def m_step(fit, state):
    """Experts from the Gram matrices, then the gate (warm-started L-BFGS) and the variances."""
    if stale(state):
        statistics(fit, state)
    stats = state.stats
    state.experts = solve_linear_experts(
        state.templates, stats.gram, fit.x_offset, fit.summary.y_mean, fit.summary.n_positive
    )
    state.load = stats.load
    gate = state.gate.estimator
    if state.gate_context is None:
        gate._validate_params()  # as the gate's prepare, once per run
        state.gate_context = fit.context
    recipe = state.recipe

    def passes(func, *params):
        return reduce_resp(func, fit.data, recipe, fit.spec, *params)

    # The noise variances ride on the first pass of the gate's M-step (neither
    # depends on the other); L-BFGS always evaluates its starting point.
    variance_job = (variance_block, (state.experts, fit.likelihood, fit.expert_features))
    n_gate = fit.data.n_features if fit.gate_features is None else fit.gate_features.size
    parts = gate.fit_blocks(passes, (fit.data.n_samples, n_gate), fit.data.X.dtype, stats.share,
                            state.gate_context, extra=variance_job)
    num = sum(part[0] for part in parts)
    tot = sum(part[1] for part in parts)
    floor = fit.likelihood.floor_
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(tot > 0, num / np.where(tot > 0, tot, 1.0), floor)
    state.params = np.maximum(variance, floor)
    if fit.estimator.min_prior is not None:
        _prune(fit, state)


def _prune(fit, state):
    """Remove experts whose mean gate probability is below ``min_prior`` (``_EMDriver._prune``)."""
    gate = copy.deepcopy(as_plain_gate(state.gate.estimator))
    parts = reduce_blocks(gate_share_block, fit.data, [], gate, fit.gate_features)
    prior = sum(parts) / fit.weight_total
    small = select_pruned(prior, fit.estimator.min_prior, state)
    if small.size:
        remove_experts(fit, state, small, record=False)


def e_step(fit, state):
    """Responsibilities of the current parameters (a new recipe) and their statistics."""
    # A copy: the gate's next M-step changes the gate in place.
    model = copy.deepcopy(
        (state.experts, state.params, as_plain_gate(state.gate.estimator), fit.likelihood,
         fit.columns)
    )
    state.recipe = Recipe(len(state.experts), [(e_step_block, (model,))])
    statistics(fit, state)


def objective(fit, state):
    """Mean log-likelihood minus the gate's penalty (also sets ``state.log_likelihood``)."""
    state.log_likelihood = state.log_prob_sum / fit.weight_total
    return state.log_likelihood - state.gate.penalty()


def _slice_thresholds(fit, state, n_slices, slice_share, tag):
    """Log-likelihood values that cut the worst-explained weight into slices of ``slice_share``.

    A weighted quantile of a blockwise sample of rows (all rows when there
    are few), not a global sort: slice ``j`` is
    ``thresholds[j] <= log_prob < thresholds[j + 1]``.
    """
    index = sample_index(fit.data.chunks, THRESHOLD_SAMPLE_ROWS, np.random.RandomState(tag))
    parts = reduce_resp(log_prob_sample_block, fit.data, state.recipe, fit.spec, per_block=index)
    log_prob = np.concatenate([part[0] for part in parts])
    weight = np.concatenate([part[1] for part in parts])
    order = np.argsort(log_prob, kind="stable")
    cumulative = np.cumsum(weight[order]) / weight.sum()
    positions = np.searchsorted(cumulative, np.arange(n_slices + 1) * slice_share, side="right")
    ordered = log_prob[order]
    thresholds = np.where(positions < ordered.size, ordered[np.minimum(positions, ordered.size - 1)], np.inf)
    thresholds[0] = -np.inf
    return thresholds


def handle_degenerate(fit, state):
    """``_EMDriver._handle_degenerate`` with blockwise passes; whether any expert was starved or degenerate."""
    share = state.share
    n_experts = share.shape[0]
    if n_experts == 1:
        return False
    bad, remove = classify_experts(share, fit, state)
    if bad.size == 0:
        return False
    if remove:
        remove_experts(fit, state, remove)
        # The others still starved or degenerate are re-seeded in the reduced
        # state, as in memory: left as they are, they would be fitted on no weight.
        bad = np.flatnonzero(np.isin(np.setdiff1d(np.arange(n_experts), remove), bad))
        if bad.size == 0:
            return True
    n_left = state.recipe.n_experts
    # Each starved expert takes a slice of the worst-explained rows, each holding
    # 1 / (2 * n_experts) of the weight, cut by thresholds on the log-likelihood.
    tag = int(state.reseeds.sum()) + 7919 * len(state.events["removed"])
    thresholds = _slice_thresholds(fit, state, bad.size, 0.5 / n_left, tag)
    state.recipe = state.recipe.then(reseed_block, bad, thresholds)
    for k in bad:
        state.reseeds[k] += 1
        expert_id = int(state.expert_ids[k])
        state.events["reseeded"][expert_id] = state.events["reseeded"].get(expert_id, 0) + 1
    return True


def remove_experts(fit, state, remove, record=True):
    """Drop experts ``remove``: templates, experts, gate outputs, variances and their responsibilities."""
    keep = np.setdiff1d(np.arange(len(state.experts)), remove)
    if record:
        state.events["removed"].extend(int(state.expert_ids[k]) for k in remove)
    state.templates = [state.templates[k] for k in keep]
    state.experts = [state.experts[k] for k in keep]
    state.params = fit.likelihood.subset(state.params, keep)
    state.expert_ids = state.expert_ids[keep]
    state.load = None if state.load is None else state.load[keep]
    state.reseeds = np.zeros(keep.size, dtype=int)
    state.gate.remove_experts(keep)
    gate = copy.deepcopy(as_plain_gate(state.gate.estimator))
    state.recipe = state.recipe.then(keep_block, keep, gate, fit.gate_features, n_experts=keep.size)
