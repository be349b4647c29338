"""Blockwise EM of the regressor on Dask arrays: the driver of :func:`fit_dask`.

The same iterations as the in-memory driver (:class:`skmoe._driver._EMDriver`),
step for step (:mod:`skmoe._dask._steps`), every pass over the rows split
into tasks over the row chunks. Nothing of the size of the data reaches the
client, and no process keeps responsibilities for more rows than the
budget of its cache (:mod:`skmoe._dask._resp`): by default 3 times the
largest chunk of ``X``, less the kernels' temporaries, when the data are
persisted (their chunks already computed), nothing otherwise (each pass
then reads the data again and recomputes the responsibilities). The dask
config key ``skmoe.responsibility_cache`` (a number of largest chunks)
overrides it.
"""

import numbers
import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from .._experts import seed_expert
from .._fit_state import _converged, _EMResult, _EMState
from .._solvers import BatchedLinearSolver
from ..gates._protocol import GateAdapter
from ..gates._softmax import SoftmaxContext
from ..utils._threads import single_blas_thread
from ._blocks import import_dask, is_materialised
from ._data import as_row_data, summarise
from ._gate import as_blockwise_gate, as_plain_gate
from ._init import initial_responsibilities, responsibility_totals
from ._kernels import mix_block, starve_block
from ._resp import FitSpec, release
from ._steps import e_step, handle_degenerate, m_step, objective, stale, statistics
from ._support import check_supported


class _Fit:
    """What the steps of one Dask fit share (the counterpart of ``_FitContext``)."""

    def __init__(self, estimator, data, summary, likelihood, templates, rng, gate_features,
                 expert_features, cache_chunks):
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
        mean, scale = _select(summary.x_mean, gate_features), _select(summary.x_scale, gate_features)
        self.context = SoftmaxContext(None, mean, scale)
        self.persist = is_materialised(data.X)
        largest = max(data.chunks) * data.n_features * data.X.dtype.itemsize
        budget = _cache_budget(cache_chunks, largest, self.persist)
        self.spec = FitSpec.new(budget, gate_features, mean, scale, summary.sum_w)


# The kernels' own temporaries besides the cache (a piece's responsibilities,
# the Gram kernel's buffers): under 8 MB whatever the chunk size, doubled.
_KERNEL_BYTES = 16 * 2**20


def _cache_setting():
    """The dask config key ``skmoe.responsibility_cache``, checked: largest chunks of ``X``, or None."""
    dask, _ = import_dask()
    value = dask.config.get("skmoe.responsibility_cache", None)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0
    ):
        raise ValueError(
            "The dask config key 'skmoe.responsibility_cache' must be a non-negative number "
            f"of largest chunks of X (or None for the default); got {value!r}."
        )
    return value


def _cache_budget(chunks, largest, persisted):
    """Bytes of the cache of each process: ``chunks`` largest chunks of ``X``, or the default.

    By default, for persisted data, what is left of 3 chunks by the kernels'
    temporaries, so that a process works within 3 chunks beyond its data;
    none for data read from their source by every pass (the chunk being read
    counts then).
    """
    if chunks is None:
        return max(0.0, 3.0 * largest - _KERNEL_BYTES) if persisted else 0.0
    return float(chunks) * largest


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


def _run_em(fit, state):
    """EM iterations from an initialised state (``_EMDriver._run_em``, blockwise)."""
    estimator = fit.estimator
    state.objective = objective(fit, state)
    curve = [state.objective]
    ll_curve = [state.log_likelihood]
    best = None if fit.exact else state.snapshot()
    converged = False
    n_iter = 0
    # A warm start continues the previous fit: its iterations count towards
    # the minimum before convergence.
    done_before = fit.iterations_before
    reseeded = handle_degenerate(fit, state)
    for n_iter in range(1, estimator.max_iter + 1):
        tic = time.time()
        m_step(fit, state)
        e_step(fit, state)
        value = objective(fit, state)
        change = value - curve[-1]
        state.objective = value
        curve.append(value)
        ll_curve.append(state.log_likelihood)
        if estimator.verbose >= 2:
            print(
                f"  Iteration {n_iter}: objective {value:.8f} "
                f"(change {change:+.3e}), time {time.time() - tic:.3f}s"
            )
        if best is not None and value > best.objective:
            best = state.snapshot()
        just_reseeded = reseeded
        reseeded = handle_degenerate(fit, state)
        if reseeded:
            best = None if fit.exact else state.snapshot()
        if not just_reseeded and not reseeded and _converged(
            change, value, done_before + n_iter, estimator.tol
        ):
            converged = True
            break
    if best is not None and best.objective > state.objective:
        state = best
    if stale(state):  # the shares of the final responsibilities, as in memory
        statistics(fit, state, cache=False)
    state.recipe = state.stats = None  # may hold persisted arrays of the initialisation
    return _EMResult(state, curve, ll_curve, converged, n_iter)


def _initialize(fit, templates):
    """First responsibilities, then an M-step and an E-step (``_EMDriver._initialize``)."""
    estimator, rng, data, spec = fit.estimator, fit.rng, fit.data, fit.spec
    n_experts = estimator.n_experts
    recipe = initial_responsibilities(estimator.init, data, fit.summary, n_experts, rng, spec)
    if fit.persist and recipe.arrays:  # read by every pass of the first M-step
        dask, _ = import_dask()
        recipe.arrays = dask.persist(*recipe.arrays)
    totals, spread = responsibility_totals(recipe, data, spec)
    empty = totals <= 0
    if np.any(empty):
        # Labels or responsibilities that leave an expert without samples: a
        # tiny uniform share, so that the first bookkeeping re-seeds it.
        recipe = recipe.then(starve_block, empty)
        spread = responsibility_totals(recipe, data, spec)[1]
    if n_experts > 1 and spread <= 1e-12:
        warnings.warn(
            "The initial responsibilities are the same for every expert, a fixed "
            "point where all experts stay identical; mixing in a random soft "
            "partition (init='random') to break the symmetry.",
            UserWarning,
        )
        other = initial_responsibilities("random", data, fit.summary, n_experts, rng, spec)
        recipe = recipe.then(mix_block, *other.steps[0])
    seeded = [seed_expert(clone(t), rng) for t in templates]
    gate = GateAdapter(as_blockwise_gate(estimator._new_gate(rng).estimator))
    state = _EMState(seeded, None, gate, fit.likelihood.init_params(len(seeded)))
    state.recipe, state.stats = recipe, None
    m_step(fit, state)
    e_step(fit, state)
    return state


def _resume_state(fit):
    """The previous fit's parameters as a new run's state, after an E-step."""
    estimator = fit.estimator
    state = _EMState(list(estimator._templates), list(estimator.experts_),
                     GateAdapter(as_blockwise_gate(estimator.gate_)), estimator.likelihood_.params_)
    state.expert_ids = np.asarray(estimator._expert_ids_)
    state.load = np.asarray(estimator.expert_load_)
    e_step(fit, state)
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
    cache_chunks = _cache_setting()
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
               check_random_state(estimator.random_state), gate_features, expert_features,
               cache_chunks)
    few_samples = estimator._few_samples_note(fit)
    resume = estimator._can_resume(templates, gate_features, expert_features)
    if resume:
        likelihood.check_warm_start(estimator.likelihood_)
        fit.iterations_before = getattr(estimator, "_n_iter_total_", 0)
    n_init = 1 if resume else estimator.n_init
    results = []
    try:
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
    finally:
        release(fit.spec.fit_id)
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
