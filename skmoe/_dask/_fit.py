"""Blockwise EM of the regressor on Dask arrays: the driver of :func:`fit_dask`.

The same iterations as the in-memory driver (:class:`skmoe._base._BaseMixtureOfExperts`),
step for step, with every pass over the rows split into tasks over the row
chunks:

* E-step: a ``map_blocks``-style pass writes the responsibilities and the
  per-row log-likelihood as an ``(n_experts + 1, n_samples)`` dask array
  ``E`` aligned with the row chunks (responsibilities in the first rows);
  small per-block sums give the objective and the experts' shares.
* Experts' M-step: each block returns its weighted Gram matrices
  (:func:`~skmoe._gram.gram_chunk`, the kernel of the in-memory fast path,
  with the same centring offsets); the client adds them in row order
  (:func:`~skmoe._gram.finish_gram`) and solves the small systems
  (:func:`~skmoe._solvers.solve_linear_experts`). The noise variances come
  from the weighted squared residuals of the new experts, summed in the
  tasks of the gate's first objective evaluation (the two are independent).
* Gate's M-step: L-BFGS on the client, the objective summed over blocks
  (:mod:`skmoe._dask._gate`).

About eight passes per iteration: the Gram pass, the gate's evaluations
(five L-BFGS iterations at most per M-step) and the E-step.

``E`` is persisted on the workers when the data are (their chunks are
already computed); otherwise it stays lazy and each pass recomputes its
blocks from the previous parameters, so data larger than the cluster's
memory are read chunk by chunk and nothing of the size of the data is ever
held. The dask config key ``skmoe.persist_responsibilities`` (True or False)
overrides the choice.
"""

import copy
import time
import warnings

import numpy as np
from sklearn.base import clone, is_regressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from .. import _em
from .._base import (
    _MIN_SHARE,
    classify_experts,
    _converged,
    _EMResult,
    _EMState,
    _select_columns,
)
from .._experts import seed_expert
from .._gram import finish_gram, gram_chunk, gram_kernel
from .._solvers import BatchedLinearSolver, solve_linear_experts
from ..gates._linear import LinearGate
from ..gates._protocol import GateAdapter
from ..gates._softmax import SoftmaxContext
from ..likelihoods import GaussianLikelihood
from ..utils._threads import single_blas_thread
from ._blocks import (
    as_row_data,
    import_dask,
    is_materialised,
    map_rows,
    reduce_blocks,
    reduce_indexed,
    row_pieces,
    sample_index,
    summarise,
)
from ._gate import as_blockwise_gate, as_plain_gate, gate_moments_block
from ._init import initial_responsibilities, responsibility_totals

SUPPORTED = (
    "MixtureOfExpertsRegressor with LinearRegression or Ridge experts (Ridge with a "
    "scalar alpha and solver='auto', 'cholesky' or 'svd'; positive=False), "
    "likelihood='gaussian', gate='linear' (or a LinearGate) with backend='numpy', and "
    "soft EM (algorithm='em', routing='token_choice', top_k, capacity_factor and "
    "balance None, gate_noise=0); gate_features, expert_features and min_prior work as "
    "in memory"
)
# Parameters that must keep their default for the blockwise EM.
_DEFAULTS = {
    "backend": "numpy", "top_k": None, "algorithm": "em", "routing": "token_choice",
    "capacity_factor": None, "balance": None, "gate_noise": 0.0,
}
# Rows of log-likelihood sampled to place the re-seeding slices.
_THRESHOLD_SAMPLE_ROWS = 200_000


def _is_default(value, default):
    if default is None or value is None:
        return value is default
    if isinstance(default, str) or isinstance(value, str):
        return value == default
    try:
        return float(value) == float(default)
    except (TypeError, ValueError):
        return False


def check_supported(estimator, templates=None, likelihood=None):
    """Refuse, before any work, what the blockwise EM does not implement.

    Parameters
    ----------
    estimator : estimator
        The mixture of experts.
    templates : list of estimators, default=None
        Its resolved experts (checked when given).
    likelihood : BaseLikelihood, default=None
        Its likelihood (with ``templates``).

    Raises
    ------
    ValueError
        Listing what is not supported, what is, and the alternative for
        in-memory data (``n_jobs`` with the dask joblib backend).
    """
    problems = []
    if not is_regressor(estimator):
        problems.append(f"{type(estimator).__name__} (only the regressor)")
    else:
        lik = getattr(estimator, "likelihood", "gaussian")
        if not (isinstance(lik, str) and lik == "gaussian") and type(lik) is not GaussianLikelihood:
            problems.append(f"likelihood={lik!r}")
    gate = estimator.gate
    if not (isinstance(gate, str) and gate == "linear") and type(gate) is not LinearGate:
        problems.append(f"gate={gate!r}")
    for name, default in _DEFAULTS.items():
        value = getattr(estimator, name, default)
        if not _is_default(value, default):
            problems.append(f"{name}={value!r}")
    if templates is not None and not problems:
        unsupported = [t for t in templates if not BatchedLinearSolver.supports([t], likelihood)]
        if unsupported:
            names = ", ".join(dict.fromkeys(repr(t) for t in unsupported))
            problems.append(f"expert={names}")
    if problems:
        raise ValueError(
            f"Dask input is not supported with {'; '.join(problems)}. The blockwise EM on "
            f"Dask arrays supports {SUPPORTED}. For other estimators, fit in memory and "
            "spread the experts' fits over the Dask cluster with n_jobs and the dask "
            "joblib backend: `with joblib.parallel_backend('dask'): "
            "est.set_params(n_jobs=-1).fit(X.compute(), y.compute())` (see 'Scaling out' "
            "in the user guide)."
        )


class _Fit:
    """What the helpers of one Dask fit share (the counterpart of ``_FitContext``)."""

    def __init__(self, estimator, data, summary, likelihood, templates, rng, gate_features,
                 expert_features):
        dask, _ = import_dask()
        self.estimator = estimator
        self.data = data
        self.summary = summary
        self.likelihood = likelihood
        self.rng = rng
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.columns = (gate_features, expert_features)
        self.iterations_before = 0  # iterations of the fit a warm start continues
        self.weight_total = summary.sum_w
        # Effective sample size as in memory: total weight in units of the smallest positive weight.
        self.n_effective = float(summary.sum_w / summary.min_w)
        n_expert_features = data.n_features if expert_features is None else expert_features.size
        self.min_effective = [
            likelihood.min_effective_samples(
                BatchedLinearSolver.n_parameters_per_expert([t], n_expert_features)
            )
            for t in templates
        ]
        self.exact = BatchedLinearSolver(templates).exact
        # The centring offsets of the experts' Gram pass (the weighted means,
        # as linear_offsets gives them for responsibilities summing to one
        # per row) and the gate's standardisation.
        self.x_offset = _select(summary.x_mean, expert_features)
        self.context = SoftmaxContext(
            None, _select(summary.x_mean, gate_features), _select(summary.x_scale, gate_features)
        )
        persist = dask.config.get("skmoe.persist_responsibilities", None)
        self.persist = is_materialised(data.X) if persist is None else bool(persist)


def _select(values, columns):
    return values if columns is None else values[columns]


class _FittedView:
    """What ``_set_fitted_state`` reads of a fit context."""

    def __init__(self, fit):
        self.likelihood = fit.likelihood
        self.gate_features = fit.gate_features
        self.expert_features = fit.expert_features
        self.iterations_before = fit.iterations_before
        self.sample_weight = np.ones(1)  # with shares as "responsibilities" of one row


# ----------------------------------------------------------------------
# Block functions (run in the tasks, one BLAS thread each)


def _experts_block(X, y, sw, E, columns, x_offset, y_offset, kernel, block, weight_total):
    """Weighted Gram matrices, load and the gate's target moments of one block.

    Piece by piece (:func:`~skmoe._dask._blocks.row_pieces`), so that the
    temporaries stay small whatever the chunk size.
    """
    gate_columns, expert_columns = columns
    n_experts = E.shape[0] - 1
    gram = load = moment = total = 0.0
    if expert_columns is None:  # gram_chunk keeps its own buffers small: one call
        gram = gram_chunk(X, y, E[:n_experts], x_offset, y_offset, sw, kernel, block, 0, X.shape[0])
    for lo, hi in row_pieces(X.shape[0]):
        R = E[:n_experts, lo:hi]
        w = None if sw is None else sw[lo:hi]
        if expert_columns is not None:
            X_expert = _select_columns(X[lo:hi], expert_columns)
            gram = gram + gram_chunk(X_expert, y[lo:hi], R, x_offset, y_offset, w, kernel, block,
                                     0, hi - lo)
        positive = (R > 0).astype(np.float64)
        load = load + (positive.sum(axis=1) if w is None else positive @ w)
        m, t = gate_moments_block(_select_columns(X[lo:hi], gate_columns), R, w, weight_total)
        moment, total = moment + m, total + t
    return gram, load, moment, total


def _variance_block(X, y, sw, E, experts, likelihood, columns):
    """Weighted squared residuals of the new experts and the weights, per expert."""
    n_experts = len(experts)
    num = np.zeros(n_experts)
    tot = np.zeros(n_experts)
    for lo, hi in row_pieces(X.shape[0]):
        yp = y[lo:hi]
        mean_T = likelihood.expert_outputs(
            experts, _select_columns(X[lo:hi], columns[1]), yp, BatchedLinearSolver
        )
        for k in range(n_experts):
            residual = mean_T[k] - yp
            rw = E[k, lo:hi] if sw is None else E[k, lo:hi] * sw[lo:hi]
            tot[k] += rw.sum(dtype=np.float64)
            num[k] += np.dot(rw, residual * residual)
    return num, tot


def _e_step_block(X, y, model):
    """Responsibilities (first rows) and per-row log-likelihood (last row) of a block."""
    experts, params, gate, likelihood, (gate_columns, expert_columns) = model
    outputs_T = likelihood.expert_outputs(
        experts, _select_columns(X, expert_columns), y, BatchedLinearSolver
    )
    log_lik_T = likelihood.log_likelihood(outputs_T, y, params, out=outputs_T)
    log_gate_T = GateAdapter(gate).log_proba_T(_select_columns(X, gate_columns))
    resp_T, log_prob = _em.responsibilities(log_gate_T, log_lik_T, out=log_lik_T)
    out = np.empty((resp_T.shape[0] + 1, resp_T.shape[1]))
    out[:-1] = resp_T
    out[-1] = log_prob
    return out


def _e_stats_block(X, y, sw, E):
    """Weighted sum of the log-likelihood and each expert's weighted responsibility."""
    log_prob, resp = E[-1], E[:-1]
    if sw is None:
        return float(log_prob.sum()), resp.sum(axis=1)
    return float(sw @ log_prob), resp @ sw


def _log_prob_sample_block(X, y, sw, E, index):
    return E[-1][index], (np.ones(index.size) if sw is None else sw[index])


def _reseed_block(X, y, E, bad, thresholds):
    """Hand each starved expert the rows of its slice of the log-likelihood."""
    out = E.copy()
    n_experts = E.shape[0] - 1
    log_prob = E[-1]
    for j, k in enumerate(bad):
        lo, hi = thresholds[j], thresholds[j + 1]
        rows = (log_prob >= lo) & (log_prob < hi) if hi > lo else log_prob == lo
        out[:n_experts, rows] = 0.0
        out[k, rows] = 1.0
    return out


def _keep_block(X, y, E, keep, gate, gate_columns):
    """Responsibilities of the kept experts, renormalised; a row they all left takes its gate row."""
    resp = E[keep]
    orphans = resp.sum(axis=0) <= 0
    if np.any(orphans):
        with np.errstate(under="ignore"):
            resp[:, orphans] = np.exp(
                GateAdapter(gate).log_proba_T(_select_columns(X, gate_columns)[orphans])
            )
    resp /= resp.sum(axis=0)
    out = np.empty((keep.size + 1, E.shape[1]))
    out[:-1] = resp
    out[-1] = E[-1]
    return out


def _gate_share_block(X, y, sw, gate, gate_columns):
    """Each expert's weighted sum of gate probabilities over a block (``min_prior``)."""
    with np.errstate(under="ignore"):
        proba = np.exp(GateAdapter(gate).log_proba_T(_select_columns(X, gate_columns)))
    return proba.sum(axis=1) if sw is None else proba @ sw


def _fill_block(X, y, E, empty):
    """Give the experts ``empty`` a tiny uniform share, below the starvation threshold."""
    out = E.copy()
    resp = out[:-1]
    resp[empty] = 0.1 * _MIN_SHARE
    resp /= resp.sum(axis=0)
    return out


def _mix_block(X, y, A, B):
    """Half of each of two responsibility arrays (the symmetry break of the initialisation)."""
    return 0.5 * A + 0.5 * B


# ----------------------------------------------------------------------
# EM steps


def _m_step(fit, state):
    """Experts from the per-block Gram matrices, variances, then the gate (warm-started L-BFGS)."""
    data, summary, E = fit.data, fit.summary, state.E
    n_experts = len(state.templates)
    p = fit.x_offset.size + 2
    kernel, block = gram_kernel(p, n_experts)
    parts = reduce_blocks(
        _experts_block, data, [E], fit.columns, fit.x_offset, summary.y_mean, kernel, block,
        fit.weight_total,
    )
    gram = finish_gram([part[0] for part in parts], kernel, p)
    state.experts = solve_linear_experts(
        state.templates, gram, fit.x_offset, summary.y_mean, summary.n_positive
    )
    state.load = sum(part[1] for part in parts) / fit.weight_total
    moment = sum(part[2] for part in parts)
    total = sum(part[3] for part in parts)
    gate = state.gate.estimator
    if state.gate_context is None:
        gate._validate_params()  # as the gate's prepare, once per run
        state.gate_context = fit.context
    # The noise variances' pass rides on the first pass of the gate's M-step
    # (neither depends on the other): one pass over the data fewer.
    variance_job = (_variance_block, (state.experts, fit.likelihood, fit.columns))
    residuals = gate.fit_blocks(data, fit.gate_features, E, moment, total, fit.weight_total,
                                state.gate_context, extra=variance_job)
    if residuals is None:  # pragma: no cover - the gate's L-BFGS always evaluates its start
        residuals = reduce_blocks(_variance_block, data, [E], *variance_job[1])
    num = sum(part[0] for part in residuals)
    tot = sum(part[1] for part in residuals)
    floor = fit.likelihood.floor_
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(tot > 0, num / np.where(tot > 0, tot, 1.0), floor)
    state.params = np.maximum(variance, floor)
    if fit.estimator.min_prior is not None:
        _prune(fit, state)


def _prune(fit, state):
    """Remove experts whose mean gate probability is below ``min_prior`` (``_BaseMixtureOfExperts._prune``)."""
    gate = copy.deepcopy(as_plain_gate(state.gate.estimator))
    parts = reduce_blocks(_gate_share_block, fit.data, [], gate, fit.gate_features)
    prior = sum(parts) / fit.weight_total
    min_prior = fit.estimator.min_prior
    small = np.flatnonzero(prior < min_prior)
    if small.size == 0:
        return
    if small.size == prior.size:
        raise ValueError(
            f"min_prior={min_prior} would remove every expert (mean gate "
            f"probabilities {np.array2string(prior, precision=3)}); lower min_prior."
        )
    for k in small:
        state.events["reasons"][int(state.expert_ids[k])] = f"mean gate probability {prior[k]:.3g}"
    state.events["pruned"].extend(int(state.expert_ids[k]) for k in small)
    _remove_experts(fit, state, small, record=False)


def _e_step(fit, state):
    """New ``E`` from the current parameters; the objective's sum and the shares."""
    state.E = None  # not needed by the E-step: let a persisted one go first
    model = copy.deepcopy(
        (state.experts, state.params, as_plain_gate(state.gate.estimator), fit.likelihood,
         fit.columns)
    )
    E = map_rows(_e_step_block, fit.data, [], len(state.experts) + 1, model, weights=False,
                 name="skmoe-e-step")
    if fit.persist:
        E = E.persist()
    state.E = E
    _update_shares(fit, state)


def _update_shares(fit, state):
    parts = reduce_blocks(_e_stats_block, fit.data, [state.E])
    state.log_prob_sum = sum(part[0] for part in parts)
    state.share = sum(part[1] for part in parts) / fit.weight_total
    state.share_stale = False


def _objective(fit, state):
    """Mean log-likelihood minus the gate's penalty (also sets ``state.log_likelihood``)."""
    state.log_likelihood = state.log_prob_sum / fit.weight_total
    return state.log_likelihood - state.gate.penalty()


def _slice_thresholds(fit, state, n_slices, slice_share, tag):
    """Log-likelihood values that cut the worst-explained weight into slices of ``slice_share``.

    A weighted quantile of a blockwise sample of rows (all rows when there
    are few), not a global sort: slice ``j`` is
    ``thresholds[j] <= log_prob < thresholds[j + 1]``.
    """
    index = sample_index(
        fit.data.chunks, _THRESHOLD_SAMPLE_ROWS, np.random.RandomState(tag)
    )
    parts = reduce_indexed(_log_prob_sample_block, fit.data, index, state.E)
    log_prob = np.concatenate([part[0] for part in parts])
    weight = np.concatenate([part[1] for part in parts])
    order = np.argsort(log_prob, kind="stable")
    cumulative = np.cumsum(weight[order]) / weight.sum()
    positions = np.searchsorted(cumulative, np.arange(n_slices + 1) * slice_share, side="right")
    ordered = log_prob[order]
    thresholds = np.where(positions < ordered.size, ordered[np.minimum(positions, ordered.size - 1)], np.inf)
    thresholds[0] = -np.inf
    return thresholds


def _handle_degenerate(fit, state):
    """``_BaseMixtureOfExperts._handle_degenerate`` with blockwise passes; whether any expert was."""
    share = state.share
    n_experts = share.shape[0]
    if n_experts == 1:
        return False
    bad, remove = classify_experts(share, fit, state)
    if bad.size == 0:
        return False
    slice_share = 0.5 / n_experts
    if remove:
        _remove_experts(fit, state, remove)
        return True
    # Each starved expert takes a slice of the worst-explained rows, each holding
    # 1 / (2 * n_experts) of the weight, cut by thresholds on the log-likelihood.
    tag = int(state.reseeds.sum()) + 7919 * len(state.events["removed"])
    thresholds = _slice_thresholds(fit, state, bad.size, slice_share, tag)
    state.E = map_rows(_reseed_block, fit.data, [state.E], n_experts + 1, bad, thresholds,
                       weights=False, name="skmoe-reseed")
    state.share_stale = True
    for k in bad:
        state.reseeds[k] += 1
        expert_id = int(state.expert_ids[k])
        state.events["reseeded"][expert_id] = state.events["reseeded"].get(expert_id, 0) + 1
    return True


def _remove_experts(fit, state, remove, record=True):
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
    if state.E is None:
        return
    gate = copy.deepcopy(as_plain_gate(state.gate.estimator))
    state.E = map_rows(_keep_block, fit.data, [state.E], keep.size + 1, keep, gate,
                       fit.gate_features, weights=False, name="skmoe-remove")
    state.share_stale = True


def _snapshot(state):
    other = state.snapshot()
    # A persisted E is as large as the data's rows: kept only when the shares need it.
    other.E = state.E if state.share_stale else None
    return other


def _run_em(fit, state):
    """EM iterations from an initialised state (``_BaseMixtureOfExperts._run_em``, blockwise)."""
    estimator = fit.estimator
    state.objective = _objective(fit, state)
    curve = [state.objective]
    ll_curve = [state.log_likelihood]
    best = None if fit.exact else _snapshot(state)
    converged = False
    n_iter = 0
    # A warm start continues the previous fit: its iterations count towards
    # the minimum before convergence.
    done_before = fit.iterations_before
    reseeded = _handle_degenerate(fit, state)
    for n_iter in range(1, estimator.max_iter + 1):
        tic = time.time()
        _m_step(fit, state)
        _e_step(fit, state)
        objective = _objective(fit, state)
        change = objective - curve[-1]
        state.objective = objective
        curve.append(objective)
        ll_curve.append(state.log_likelihood)
        if estimator.verbose >= 2:
            print(
                f"  Iteration {n_iter}: objective {objective:.8f} "
                f"(change {change:+.3e}), time {time.time() - tic:.3f}s"
            )
        if best is not None and objective > best.objective:
            best = _snapshot(state)
        just_reseeded = reseeded
        reseeded = _handle_degenerate(fit, state)
        if reseeded:
            best = None if fit.exact else _snapshot(state)
        if not just_reseeded and not reseeded and _converged(
            change, objective, done_before + n_iter, estimator.tol
        ):
            converged = True
            break
    if best is not None and best.objective > state.objective:
        state = best
    if state.share_stale:  # the shares of the final responsibilities, as in memory
        _update_shares(fit, state)
    state.E = None
    return _EMResult(state, curve, ll_curve, converged, n_iter)


def _initialize(fit, templates):
    """First responsibilities, then an M-step and an E-step (``_BaseMixtureOfExperts._initialize``)."""
    estimator, rng, data = fit.estimator, fit.rng, fit.data
    n_experts = estimator.n_experts
    E = initial_responsibilities(estimator.init, data, fit.summary, n_experts, rng)
    totals, spread = responsibility_totals(E, data)
    empty = totals <= 0
    if np.any(empty):
        # Labels or responsibilities that leave an expert without samples: a
        # tiny uniform share, so that the first bookkeeping re-seeds it.
        E = map_rows(_fill_block, data, [E], n_experts + 1, empty, weights=False, name="skmoe-fill")
        spread = responsibility_totals(E, data)[1]
    if n_experts > 1 and spread <= 1e-12:
        warnings.warn(
            "The initial responsibilities are the same for every expert, a fixed "
            "point where all experts stay identical; mixing in a random soft "
            "partition (init='random') to break the symmetry.",
            UserWarning,
        )
        other = initial_responsibilities("random", data, fit.summary, n_experts, rng)
        E = map_rows(_mix_block, data, [E, other], n_experts + 1, weights=False, name="skmoe-mix")
    seeded = [seed_expert(clone(t), rng) for t in templates]
    gate = GateAdapter(as_blockwise_gate(estimator._new_gate(rng).estimator))
    state = _EMState(seeded, None, gate, fit.likelihood.init_params(len(seeded)))
    state.E = E.persist() if fit.persist else E
    state.share_stale = True
    _m_step(fit, state)
    _e_step(fit, state)
    return state


def _resume_state(fit):
    """The previous fit's parameters as a new run's state, after an E-step."""
    estimator = fit.estimator
    state = _EMState(list(estimator._templates), list(estimator.experts_),
                     GateAdapter(as_blockwise_gate(estimator.gate_)), estimator.likelihood_.params_)
    state.expert_ids = np.asarray(estimator._expert_ids_)
    state.load = np.asarray(estimator.expert_load_)
    _e_step(fit, state)
    return state


def fit_dask(estimator, X, y, sample_weight=None):
    """Fit a mixture of experts on Dask collections by blockwise EM.

    Called by the estimators' ``fit`` when ``X``, ``y`` or ``sample_weight``
    is a Dask collection. Leaves the same fitted attributes as an in-memory
    fit, so the model predicts NumPy data as usual (and Dask data lazily,
    through :func:`~skmoe._dask.predict_dask`).

    Parameters
    ----------
    estimator : MixtureOfExpertsRegressor
        The estimator, its parameters validated.
    X : dask array or dask DataFrame of shape (n_samples, n_features)
        Inputs, chunked by rows (converted with known chunk sizes).
    y : dask array, dask Series or array-like of shape (n_samples,)
        Targets.
    sample_weight : dask array or array-like of shape (n_samples,), default=None
        Non-negative weights. Unlike in memory, rows of weight zero are kept
        (they weigh nothing), so an ``init`` array has one row per row of ``X``.

    Returns
    -------
    estimator : MixtureOfExpertsRegressor
        The fitted estimator.
    """
    check_supported(estimator)
    likelihood = estimator._make_likelihood()
    templates = estimator._resolve_experts(likelihood)
    check_supported(estimator, templates, likelihood)
    data = as_row_data(X, y, sample_weight)
    estimator.n_features_in_ = data.n_features
    if data.feature_names is not None:
        estimator.feature_names_in_ = data.feature_names
    elif hasattr(estimator, "feature_names_in_"):
        del estimator.feature_names_in_
    gate_features = estimator._resolve_features(estimator.gate_features, "gate_features", data.n_features)
    expert_features = estimator._resolve_features(
        estimator.expert_features, "expert_features", data.n_features
    )
    summary = summarise(data)
    if summary.n_positive < estimator.n_experts:
        raise ValueError(
            f"n_samples={summary.n_positive} should be >= n_experts={estimator.n_experts}: "
            "every expert needs samples."
        )
    # GaussianLikelihood.prepare_target's floor, from the blockwise moments of y.
    likelihood.floor_ = max(
        likelihood.variance_floor * summary.y_var, 1e-12 * max(1.0, summary.y_mean**2)
    )
    fit = _Fit(estimator, data, summary, likelihood, templates,
               check_random_state(estimator.random_state), gate_features, expert_features)
    few_samples = estimator._few_samples_note(fit)
    resume = estimator._can_resume(templates, gate_features, expert_features)
    if resume:
        likelihood.check_warm_start(estimator.likelihood_)
        fit.iterations_before = getattr(estimator, "_n_iter_total_", 0)
    n_init = 1 if resume else estimator.n_init
    results = []
    with single_blas_thread():
        for init in range(n_init):
            start = time.time()
            state = _resume_state(fit) if resume else _initialize(fit, templates)
            result = _run_em(fit, state)
            results.append(result)
            if estimator.verbose:
                status = "converged" if result.converged else "did not converge"
                print(
                    f"Initialization {init}: {status} after {result.n_iter} iterations, "
                    f"objective {result.state.objective:.6f}, time {time.time() - start:.2f}s"
                )
    best = max(results, key=lambda r: r.state.objective)  # the first of equals
    estimator._warn_experts(best.state, n_init, few_samples)
    if not best.converged and estimator.max_iter > 0 and not resume:
        warnings.warn(
            f"Best of {n_init} initialisation(s) did not converge in max_iter="
            f"{estimator.max_iter} iterations (tol={estimator.tol}). Try different init "
            "parameters, increase max_iter or tol, or check for degenerate data.",
            ConvergenceWarning,
        )
    state = best.state
    state.gate = GateAdapter(as_plain_gate(state.gate.estimator))
    state.resp_T = state.share[:, None]  # what _set_fitted_state reads the shares from
    estimator._set_fitted_state(
        _FittedView(fit), best, [np.asarray(r.log_likelihood_curve) for r in results]
    )
    _order_experts(estimator, fit)
    return estimator


def _order_experts(estimator, fit):
    """``_BaseMixtureOfExperts._order_experts`` without a pass over the data.

    The key of an expert is its sample-weighted mean prediction over the
    training inputs; for a linear expert, its prediction at the weighted
    mean of the inputs (the same number up to rounding, and no pass).
    """
    if (
        estimator.n_experts_ < 2
        or isinstance(estimator.expert, list)
        or not callable(getattr(estimator.gate_, "remove_experts", None))
    ):
        return
    from ..inference import order_experts

    keys = np.array([
        float(np.ravel(e.coef_) @ fit.x_offset + np.ravel(e.intercept_)[0])
        for e in estimator.experts_
    ])
    order_experts(estimator, by=np.argsort(keys, kind="stable"))
