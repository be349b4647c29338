"""The EM benchmark's measurements: each takes a :class:`~perf.data.Case` and a repeat count.

Times are wall-clock seconds, the best of ``repeat`` runs (``time.perf_counter``).

Columns of the time tables
--------------------------
GEMM floor
    ``k *`` the time of ``X.T @ X``: the flops every expert's normal
    equations need at least.
expert M
    ``_solvers.fit_linear_experts([LinearRegression()] * k, X, y, weights_T)``.
    Expert M, E-step and gate M run as in the estimator's EM loop: inside
    ``utils._threads.row_parallel()`` (BLAS single-threaded, the passes over
    the rows split over one Python thread per former BLAS thread).
E-step
    ``gate.predict_log_proba(X).T`` (made C-contiguous, as the estimator
    does) + ``_experts.predict_linear_experts`` + ``_em.gaussian_log_density``
    + ``_em.responsibilities`` (the fused E-step), from a fitted state: the experts of the expert M-step,
    a ``LinearGate`` fitted to ``resp`` (one L-BFGS iteration; the cost of
    the E-step does not depend on the gate's values) and noise variances from
    ``_em.weighted_variance_update``.
EM iter
    One iteration of the EM loop (M-step, E-step, objective), measured as a
    difference of public ``fit`` calls: ``MixtureOfExpertsRegressor(
    n_experts=k, max_iter=1, tol=0, warm_start=True, random_state=0)`` is
    fitted once (untimed), then "warm fit" is timed, then the same warm fit
    with ``max_iter=3``; "EM iter" = (the second - the first) / 2, which
    cancels the validation and the E-step of the stored state that every
    warm fit repeats before its loop.
warm fit
    One warm ``fit`` with ``max_iter=1``: validation + E-step of the stored
    state + one M-step + one E-step. Successive timed fits continue EM.
GMM iter
    ``GaussianMixture(n_components=k, covariance_type="full", max_iter=1,
    tol=0, init_params="random_from_data", random_state=0,
    warm_start=True)`` on ``[X, y]``: fitted once (untimed), then one more
    ``fit`` is timed. Such a warm ``fit`` validates the data, runs one E-step
    and one M-step, then a final E-step: the same work (2 E + 1 M) as our
    "warm fit", with which it is compared.
gate M
    The gate M-step exactly as the estimator runs it: the ``LinearGate`` of
    ``MixtureOfExpertsRegressor(n_experts=k)`` (``alpha=1e-4`` and the
    estimator's cap on L-BFGS iterations per M-step), warm-started: a copy
    is first fitted to ``resp`` to convergence (untimed), then each timed
    fit starts from a copy of it and fits ``resp2``, ``resp`` perturbed by a
    factor ``exp(0.1 * N(0, 1))`` per entry and renormalised (in EM the
    responsibilities move a little between iterations). As in the
    estimator's M-step, the gate's weights and standardisation are computed
    once (untimed) and each timed fit takes ``resp2`` in the core layout,
    ``(k, n)`` (``LinearGate.fit_prepared``).
LogReg
    ``LogisticRegression(max_iter=100).fit(X, resp.argmax(axis=1))``
    (lbfgs, multinomial).
k x LR
    ``k`` separate ``LinearRegression().fit(X, y, sample_weight=resp[:, j])``.
fit/iter
    ``MixtureOfExpertsRegressor(n_experts=k, max_iter=10, tol=0,
    random_state=0).fit(X, y)``, timed once, divided by ``n_iter_ + 1`` (the
    initialisation -- k-means, one M-step and one E-step -- counts as one
    iteration). Compared with "EM iter" it shows the overhead outside the
    iteration (validation, initialisation, snapshots).
gate it, LR it
    L-BFGS iterations of the (last) timed gate fit and of the
    LogisticRegression fit.

Note: with responsibilities independent of ``X`` (a flat Dirichlet, as an
earlier version of this script drew them) LogisticRegression meets an almost
flat optimum and stops after 1-2 iterations; that made "gate/LogReg" a
comparison of two trivial fits (0.9-1.2), not of a gate M-step with the
classifier fit it replaces.
"""

import copy
import gc
import time

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.mixture import GaussianMixture

from skmoe import MixtureOfExpertsRegressor
from skmoe._em import gaussian_log_density, responsibilities, weighted_variance_update
from skmoe._solvers import fit_linear_experts, predict_linear_experts
from skmoe.gates import LinearGate
from skmoe.gates._protocol import make_gate
from skmoe.utils._threads import row_parallel

FULL_FIT_ITER = 10
EXTRA_ITER = 2  # "EM iter" = (warm fit with 1 + EXTRA_ITER iterations - with 1) / EXTRA_ITER


def best_of(func, repeat, setup=None):
    """Best wall time of ``repeat`` calls of ``func(*setup())``; also the last result."""
    best, result = np.inf, None
    for _ in range(repeat):
        args = setup() if setup is not None else ()
        gc.collect()
        start = time.perf_counter()
        result = func(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def measure_gemm_floor(case, repeat):
    X = case.X
    seconds, _ = best_of(lambda: X.T @ X, repeat)
    return {"gemm_floor": case.k * seconds}


def measure_expert_m(case, repeat):
    templates = [LinearRegression()] * case.k
    with row_parallel():
        seconds, _ = best_of(lambda: fit_linear_experts(templates, case.X, case.y, case.weights_T), repeat)
    return {"expert_m": seconds}


def e_step_pass(gate, experts, variance, X, y):
    """What the estimator's E-step does with linear experts (see ``_driver._EMDriver._e_step``)."""
    log_gate_T = np.ascontiguousarray(gate.predict_log_proba(X).T, dtype=np.float64)
    mean_T = predict_linear_experts(experts, X)
    log_lik_T = gaussian_log_density(y, mean_T, variance, out=mean_T)
    return responsibilities(log_gate_T, log_lik_T, out=log_lik_T)


def measure_e_step(case, repeat):
    X, y = case.X, case.y
    experts = fit_linear_experts([LinearRegression()] * case.k, X, y, case.weights_T)
    mean_T = predict_linear_experts(experts, X)
    variance = weighted_variance_update(y, mean_T, case.weights_T, np.ones(case.n), 1e-6 * np.var(y))
    del mean_T
    gate = LinearGate(alpha=1e-4, max_iter=1).fit(X, case.resp)
    with row_parallel():
        seconds, _ = best_of(lambda: e_step_pass(gate, experts, variance, X, y), repeat)
    return {"e_step": seconds}


def measure_em_iter(case, repeat):
    model = MixtureOfExpertsRegressor(
        n_experts=case.k, max_iter=1, tol=0, warm_start=True, random_state=0
    ).fit(case.X, case.y)  # untimed: initialisation and one iteration

    def warm_fit(max_iter):
        return model.set_params(max_iter=max_iter).fit(case.X, case.y)

    one, _ = best_of(lambda: warm_fit(1), repeat)
    more, _ = best_of(lambda: warm_fit(1 + EXTRA_ITER), repeat)
    return {"warm_fit": one, "em_iter": (more - one) / EXTRA_ITER}


def measure_gmm_iter(case, repeat):
    Xy = np.column_stack([case.X, case.y])
    gmm = GaussianMixture(
        n_components=case.k, covariance_type="full", max_iter=1, tol=0,
        init_params="random_from_data", random_state=0, warm_start=True,
    ).fit(Xy)  # untimed: initialisation and a first iteration
    seconds, _ = best_of(lambda: gmm.fit(Xy), repeat)
    return {"gmm_iter": seconds}


def measure_gate_m(case, repeat):
    # The estimator's own gate, as its M-step runs it.
    params = MixtureOfExpertsRegressor(n_experts=case.k).get_params()
    m_step_gate = make_gate(params["gate"], backend="numpy", alpha=params["gate_alpha"], device=None,
                            random_state=0).estimator
    gate = clone(m_step_gate).set_params(max_iter=200).fit(case.X, case.resp)  # untimed, converged
    gate.set_params(max_iter=m_step_gate.max_iter)
    # Once per EM run in the estimator, so untimed here.
    context = gate.prepare(case.X, np.ones(case.n))
    resp2_T = np.ascontiguousarray(case.resp2.T)

    def fit(g):
        return g.fit_prepared(case.X, resp2_T, context)

    seconds, warm = best_of(fit, repeat, setup=lambda: (copy.deepcopy(gate),))
    return {"gate_m": seconds, "gate_iter": warm.n_iter_}


def measure_logreg(case, repeat):
    seconds, model = best_of(
        lambda: LogisticRegression(max_iter=100).fit(case.X, case.labels), repeat
    )
    return {"logreg": seconds, "logreg_iter": int(np.max(model.n_iter_))}


def measure_separate_lr(case, repeat):
    def fits():
        return [LinearRegression().fit(case.X, case.y, sample_weight=w) for w in case.weights_T]

    seconds, _ = best_of(fits, repeat)
    return {"separate_lr": seconds}


def measure_full_fit(case, repeat):
    model = MixtureOfExpertsRegressor(
        n_experts=case.k, max_iter=FULL_FIT_ITER, tol=0, random_state=0
    )
    start = time.perf_counter()
    model.fit(case.X, case.y)
    return {"fit_per_iter": (time.perf_counter() - start) / (model.n_iter_ + 1)}


# (key, function, untimed calls of about the cost of a timed one, runs once whatever the repeat)
MEASUREMENTS = [
    ("gemm_floor", measure_gemm_floor, 0, False),
    ("expert_m", measure_expert_m, 0, False),
    ("e_step", measure_e_step, 1, False),
    ("em_iter", measure_em_iter, 1, False),
    ("gmm_iter", measure_gmm_iter, 1, False),
    ("gate_m", measure_gate_m, 1, False),
    ("logreg", measure_logreg, 0, False),
    ("separate_lr", measure_separate_lr, 0, False),
    ("fit_per_iter", measure_full_fit, 0, True),
]
