"""Expert solvers: the batched linear path against each estimator's own fit, and the choice of solver."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsRegressor, _solvers
from skmoe._experts import fit_experts
from skmoe._solvers import (
    BatchedLinearSolver,
    GenericSolver,
    fit_linear_experts,
    select_solver,
)
from skmoe.likelihoods import CategoricalLikelihood, GaussianLikelihood
from tests._tolerances import normal_equations_cond, optimum_tol, tol


def _data(rng, n=500, d=6, k=4, offset=0.0):
    X = rng.randn(n, d) * rng.uniform(0.1, 10, d) + offset
    y = X @ rng.randn(d) + rng.randn(n)
    weights = rng.dirichlet(np.ones(k), size=n).T.copy() * rng.uniform(0.5, 2, n)
    return X, y, weights


def _supports(templates):
    return BatchedLinearSolver.supports(templates, GaussianLikelihood())


@pytest.mark.parametrize(
    "template",
    [LinearRegression(), LinearRegression(fit_intercept=False), Ridge(alpha=3.0), Ridge(alpha=0.5, fit_intercept=False)],
    ids=["ols", "ols-no-intercept", "ridge", "ridge-no-intercept"],
)
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_fast_path_equals_generic_path(template, offset, global_random_seed):
    rng = np.random.RandomState(global_random_seed)
    X, y, weights = _data(rng, offset=offset)
    templates = [template] * weights.shape[0]
    fast = fit_linear_experts(templates, X, y, weights)
    slow = fit_experts(templates, X, y, weights)
    for f, s, w in zip(fast, slow, weights):
        assert type(f) is type(s)
        # One least-squares problem solved two ways: equal to cond * eps of its
        # normal equations (cond ~ 1e6 without an intercept at offset 1e3).
        cond = normal_equations_cond(X, w, getattr(template, "alpha", 0.0), template.fit_intercept)
        rtol = tol(np.float64, cond=cond)
        # The size of the terms of X @ coef + intercept, which cancel at offset 1e3.
        scale = np.abs(X).max() * np.abs(s.coef_).sum() + np.abs(y).max()
        assert_allclose(f.coef_, s.coef_, rtol=0, atol=rtol * np.abs(s.coef_).max())
        assert_allclose(f.intercept_, s.intercept_, rtol=0, atol=rtol * scale)
        assert_allclose(f.predict(X), s.predict(X), rtol=0, atol=rtol * scale)
        if isinstance(s, LinearRegression):
            assert f.rank_ == s.rank_
            assert_allclose(f.singular_, s.singular_, rtol=1e-6)


def test_fast_path_rank_deficient_matches_min_norm():
    rng = np.random.RandomState(0)
    X = rng.randn(200, 3)
    X = np.c_[X, X[:, 0] + X[:, 1], 2 * X[:, 2]]  # rank 3 of 5
    y = X @ rng.randn(5) + 0.1 * rng.randn(200)
    w = rng.uniform(0.1, 1, size=(2, 200))
    fast = fit_linear_experts([LinearRegression()] * 2, X, y, w)
    slow = fit_experts([LinearRegression()] * 2, X, y, w)
    for f, s in zip(fast, slow):
        assert s.rank_ == 3 and f.rank_ == 3
        assert_allclose(f.coef_, s.coef_, rtol=1e-6, atol=1e-8)
        assert_allclose(f.predict(X), s.predict(X), rtol=1e-8)


def test_whole_fit_fast_equals_generic(monkeypatch):
    rng = np.random.RandomState(1)
    X = rng.uniform(-2, 2, size=(600, 2))
    y = np.where(X[:, 0] > 0, X @ [2.0, -1.0], X @ [-1.0, 3.0]) + 0.1 * rng.randn(600)
    # Run to convergence: mid-run, the gate (a few L-BFGS steps per M-step on a
    # nearly separable problem) drifts along a flat valley of its objective,
    # where rounding-level differences move its coefficients by ~1e-7 with
    # the log-likelihood equal to 1e-14; at the fixed point both paths agree.
    kw = {"n_experts": 2, "max_iter": 100, "tol": 1e-12, "random_state": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fast = MixtureOfExpertsRegressor(**kw).fit(X, y)
        monkeypatch.setattr(_solvers, "SOLVERS", (GenericSolver,))
        slow = MixtureOfExpertsRegressor(**kw).fit(X, y)
    assert_allclose(fast.log_likelihood_curve_, slow.log_likelihood_curve_, rtol=1e-9)
    # ... up to that valley: where the objective is flat to eps, the fixed point
    # (and so the prediction) is determined to about sqrt(eps).
    assert_allclose(fast.predict(X), slow.predict(X), rtol=0, atol=optimum_tol(np.float64) * np.abs(y).max())


def test__supports():
    assert _supports([LinearRegression(), Ridge()])
    assert not _supports([LinearRegression(positive=True)])
    assert not _supports([Ridge(solver="sag")])
    assert not _supports([LinearRegression(), DecisionTreeRegressor()])


def test_select_solver_follows_the_likelihood():
    assert isinstance(select_solver([LinearRegression()] * 2, GaussianLikelihood()), BatchedLinearSolver)
    # A likelihood without least squares never gets the normal equations.
    assert isinstance(select_solver([LinearRegression()] * 2, CategoricalLikelihood()), GenericSolver)
    assert isinstance(select_solver([DecisionTreeRegressor()], GaussianLikelihood()), GenericSolver)


def test_exactness_is_claimed_for_unpenalised_linear_experts_only():
    # A ridge penalty is not in the mixture's likelihood: its M-step is not exact.
    assert BatchedLinearSolver([LinearRegression(), Ridge(alpha=0.0)]).exact
    assert not BatchedLinearSolver([LinearRegression(), Ridge(alpha=1.0)]).exact
    assert not GenericSolver([LinearRegression()]).exact


@pytest.mark.parametrize("top", [1, 2])
def test_fast_path_on_routed_weights_equals_generic_path(top):
    # Top-k weights take the routed Gram pass; the generic path fits each
    # expert on its positive-weight rows only.
    rng = np.random.RandomState(top)
    n, k = 20000, 16
    X, y, _ = _data(rng, n=n, d=10, k=2, offset=3.0)
    scores = rng.rand(k, n)
    rank = np.argsort(np.argsort(-scores, axis=0), axis=0)
    weights = np.where(rank < top, rng.uniform(0.1, 1.0, (k, n)), 0.0)
    sample_weight = rng.uniform(0.5, 2.0, n)
    templates = [LinearRegression()] * k
    fast = fit_linear_experts(templates, X, y, weights, sample_weight)
    slow = fit_experts(templates, X, y, weights, sample_weight=sample_weight)
    for f, s in zip(fast, slow):
        assert_allclose(f.coef_, s.coef_, rtol=1e-8, atol=1e-10 * np.abs(s.coef_).max())
        assert_allclose(f.intercept_, s.intercept_, rtol=1e-8, atol=1e-8)


def test_wide_systems_solved_one_at_a_time_equal_the_batched_solve(monkeypatch):
    # Wide designs skip the stacked copy of every expert's system: the same numbers.
    rng = np.random.RandomState(3)
    X, y, weights = _data(rng, n=300, d=8, k=3)
    X[:, 7] = X[:, 6]  # rank-deficient least-squares systems, a well-posed ridge one
    templates = [LinearRegression(), Ridge(alpha=0.5), LinearRegression(fit_intercept=False)]
    batched = fit_linear_experts(templates, X, y, weights)
    monkeypatch.setattr(_solvers, "_BATCHED_SYSTEMS_ELEMENTS", 0)
    one_by_one = fit_linear_experts(templates, X, y, weights)
    # The batched solve factorises the well-posed (ridge) system by LU, the
    # single one by Cholesky: equal up to rounding; the rank-deficient ones
    # take the same minimum-norm solution either way.
    eq_tol = tol(cond=normal_equations_cond(X, weights[1], alpha=0.5))
    for a, b in zip(batched, one_by_one):
        assert_allclose(a.coef_, b.coef_, rtol=0, atol=eq_tol * np.abs(b.coef_).max())
        assert_allclose(a.intercept_, b.intercept_, rtol=eq_tol, atol=eq_tol * np.abs(b.coef_).max())
        for name in ("singular_", "rank_"):
            if hasattr(a, name):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_predictions_keep_the_dtype_of_X(dtype):
    rng = np.random.RandomState(4)
    X, y, weights = _data(rng, n=200, d=3, k=2)
    experts = fit_linear_experts([LinearRegression()] * 2, X, y, weights)
    assert BatchedLinearSolver.predict_T(experts, X.astype(dtype)).dtype == dtype
    trees = [DecisionTreeRegressor(max_depth=2).fit(X, y) for _ in range(2)]
    assert GenericSolver.predict_T(trees, X.astype(dtype)).dtype == dtype
