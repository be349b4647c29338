"""Routed weights: the router lists the non-zero M-step weights and the solvers touch only those rows.

The routed M-step must equal the M-step on the dense weights: to rounding
for the linear experts (another summation order), exactly for the generic
experts (the same rows, in the same order, with the same weights).
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsRegressor, _gram, _solvers
from skmoe._gram import solve_normal_equations, solve_normal_equations_batch
from skmoe._routed import (
    routed_from_dense,
    routed_from_picks,
    routed_row_weights,
    routed_to_dense,
    scale_routed,
)
from skmoe._solvers import GenericSolver, fit_linear_experts
from skmoe.datasets import make_gated_regression
from skmoe.likelihoods import StudentTLikelihood
from tests._tolerances import normal_equations_cond, tol


def _picks(rng, n_experts, n, top):
    """Each sample's ``top`` distinct experts and positive weights."""
    index = np.argsort(rng.rand(n_experts, n), axis=0)[:top]
    return index, rng.uniform(0.1, 1.0, (top, n))


def _dense(index, values, n_experts):
    dense = np.zeros((n_experts, index.shape[1]))
    for j in range(index.shape[0]):
        picked = index[j] >= 0
        dense[index[j, picked], np.flatnonzero(picked)] = values[j, picked]
    return dense


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3])) and a.n_samples == b.n_samples


@pytest.mark.parametrize("top", [1, 2, 3])
def test_routed_from_picks_lists_the_non_zero_entries_in_order(top):
    rng = np.random.RandomState(top)
    index, values = _picks(rng, 7, 500, top)
    index[-1, :20] = -1  # no pick (a removed expert's)
    values[0, 30:40] = 0.0  # a pick without weight is not listed
    dense = _dense(index, values, 7)
    routed = routed_from_picks(index, values, 7)
    assert _same(routed, routed_from_dense(dense))
    assert_array_equal(routed_to_dense(routed), dense)
    for k in range(7):
        rows = routed.rows[routed.indptr[k] : routed.indptr[k + 1]]
        assert_array_equal(rows, np.flatnonzero(dense[k]))  # increasing


def test_routed_row_weights_and_scaling_follow_the_dense_weights():
    rng = np.random.RandomState(0)
    index, values = _picks(rng, 5, 300, 2)
    dense = _dense(index, values, 5)
    routed = routed_from_picks(index, values, 5)
    sample_weight = rng.uniform(0, 2, 300)
    assert_allclose(routed_row_weights(routed, sample_weight), dense.sum(axis=0) * sample_weight, rtol=1e-15)
    factor = rng.uniform(0.5, 1.5, (5, 300))
    assert_array_equal(routed_to_dense(scale_routed(routed, factor)), dense * factor)


def _linear_data(rng, n, d=10, offset=3.0):
    X = rng.randn(n, d) * rng.uniform(0.1, 10, d) + offset
    return X, X @ rng.randn(d) + rng.randn(n)


@pytest.mark.parametrize("top", [1, 2])
@pytest.mark.parametrize("weighting", ["none", "positive", "with_zeros"])
def test_routed_linear_m_step_equals_the_dense_m_step(top, weighting, monkeypatch):
    rng = np.random.RandomState(top)
    n, n_experts = 6000, 16
    X, y = _linear_data(rng, n)
    index, values = _picks(rng, n_experts, n, top)
    weights = _dense(index, values, n_experts)
    routed = routed_from_picks(index, values, n_experts)
    sample_weight = None if weighting == "none" else rng.uniform(0.5, 2.0, n)
    if weighting == "with_zeros":
        sample_weight[::7] = 0.0
    templates = [LinearRegression(), Ridge(alpha=2.0), LinearRegression(fit_intercept=False), Ridge(alpha=0.0)] * 4
    calls = []
    routed_pass = _gram.routed_gram_matrices
    monkeypatch.setattr(_gram, "routed_gram_matrices", lambda *a: calls.append(a[2]) or routed_pass(*a))
    got = fit_linear_experts(templates, X, y, weights, sample_weight, routed=routed)
    assert len(calls) == 1 and calls[0] is routed  # the listed entries, not a scan
    # The dense weights' Gram pass (its own kernels, not the routed one).
    monkeypatch.setattr(_gram, "routed_rows_pay", lambda *a: False)
    expected = fit_linear_experts(templates, X, y, weights, sample_weight)
    for k, (a, b) in enumerate(zip(got, expected)):
        w = weights[k] if sample_weight is None else weights[k] * sample_weight
        cond = normal_equations_cond(X, w, alpha=getattr(templates[k], "alpha", 0.0))
        scale = np.abs(b.coef_).max()
        assert_allclose(a.coef_, b.coef_, rtol=0, atol=tol(cond=cond) * scale)
        assert_allclose(a.intercept_, b.intercept_, rtol=0, atol=tol(cond=cond) * (abs(b.intercept_) + scale * 10))
        for name in ("rank_", "singular_"):
            if hasattr(b, name):
                assert_allclose(getattr(a, name), getattr(b, name), rtol=tol(cond=cond))


@pytest.mark.parametrize("top", [1, 2])
def test_routed_generic_m_step_is_the_dense_m_step_on_the_routed_rows_only(top, monkeypatch):
    rng = np.random.RandomState(top)
    n, n_experts = 800, 6
    X, y = _linear_data(rng, n, d=3)
    index, values = _picks(rng, n_experts, n, top)
    weights = _dense(index, values, n_experts)
    routed = routed_from_picks(index, values, n_experts)
    sample_weight = rng.uniform(0.5, 2.0, n)
    sample_weight[::5] = 0.0
    templates = [DecisionTreeRegressor(max_depth=4, random_state=0)] * n_experts
    solver = GenericSolver(templates)
    seen = []
    fit_experts = _solvers.fit_experts

    def spy(templates, X, *args, **kwargs):
        seen.append(X.shape[0])
        return fit_experts(templates, X, *args, **kwargs)

    monkeypatch.setattr(_solvers, "fit_experts", spy)
    got = solver.fit(templates, X, y, weights, sample_weight, routed=routed)
    # Each expert is handed its routed rows alone, never the n rows.
    assert seen == list(np.diff(routed.indptr))
    expected = solver.fit(templates, X, y, weights, sample_weight)
    for k, (a, b) in enumerate(zip(got, expected)):
        # The same rows with the same weights: the same tree.
        assert a.tree_.node_count == b.tree_.node_count
        assert_array_equal(a.tree_.threshold, b.tree_.threshold)
        assert_array_equal(a.tree_.value, b.tree_.value)
        assert a.tree_.weighted_n_node_samples[0] == pytest.approx((weights[k] * sample_weight).sum())


def test_routed_generic_m_step_in_parallel_equals_the_serial_one():
    from joblib import parallel_config

    rng = np.random.RandomState(0)
    X, y = _linear_data(rng, 400, d=3)
    index, values = _picks(rng, 4, 400, 2)
    routed = routed_from_picks(index, values, 4)
    weights = _dense(index, values, 4)
    templates = [DecisionTreeRegressor(max_depth=3, random_state=0)] * 4
    serial = GenericSolver(templates).fit(templates, X, y, weights, routed=routed)
    with parallel_config(backend="threading"):
        parallel = GenericSolver(templates, n_jobs=2).fit(templates, X, y, weights, routed=routed)
    for a, b in zip(serial, parallel):
        assert_array_equal(a.predict(X), b.predict(X))


def test_batched_solve_equals_one_solve_per_system_with_singular_systems():
    rng = np.random.RandomState(0)
    d = 6
    systems = []
    for kind in ["well", "singular", "rank_deficient", "well", "near_singular", "zero", "ridge"]:
        Z = rng.randn(50, d)
        if kind == "rank_deficient":
            Z[:, 3] = Z[:, 1] + Z[:, 2]
        if kind == "near_singular":
            Z[:, 4] = Z[:, 0] + 1e-9 * rng.randn(50)
        A = Z.T @ Z
        if kind == "singular":
            A = np.outer(Z[0], Z[0])
        if kind == "zero":
            A = np.zeros((d, d))
        if kind == "ridge":
            A += 2.0 * np.eye(d)
        systems.append((A, Z.T @ rng.randn(50)))
    A = np.stack([a for a, _ in systems])
    b = np.stack([v for _, v in systems])
    rcond = np.finfo(np.float64).eps * 50
    got = solve_normal_equations_batch(A, b, rank_deficient_rcond=rcond)
    for k, (a, v) in enumerate(systems):
        expected = solve_normal_equations(a, v, rank_deficient_rcond=rcond)
        cond = np.linalg.cond(a) if np.linalg.matrix_rank(a) == d else 1.0
        assert_allclose(got[k], expected, rtol=0, atol=tol(cond=min(cond, 1e12)) * max(np.abs(expected).max(), 1.0))
    # Only well-conditioned systems: one batched solve, the same solutions.
    well = [0, 3, 6]
    assert_allclose(
        solve_normal_equations_batch(A[well], b[well], rank_deficient_rcond=rcond),
        got[well], rtol=tol(cond=np.linalg.cond(A[well]).max()),
    )


ROUTED_OPTIONS = [
    {"top_k": 1},
    {"top_k": 2},
    {"top_k": 1, "capacity_factor": 1.25},
    {"routing": "expert_choice"},
    {"algorithm": "cem"},
    {"algorithm": "sem"},
]


def _spy_fits(monkeypatch, cls):
    calls = []
    fit = cls.fit

    def spy(self, templates, X, y, weights_T, sample_weight=None, **kwargs):
        calls.append((weights_T, kwargs.get("routed")))
        return fit(self, templates, X, y, weights_T, sample_weight, **kwargs)

    monkeypatch.setattr(cls, "fit", spy)
    return calls


@pytest.mark.parametrize("params", ROUTED_OPTIONS, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_sparse_routers_hand_the_m_step_their_routed_entries(monkeypatch, params):
    X, y = make_gated_regression(n_samples=1500, n_features=3, n_experts=4, random_state=0, return_labels=False)
    calls = _spy_fits(monkeypatch, _solvers.BatchedLinearSolver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MixtureOfExpertsRegressor(4, random_state=0, max_iter=6, **params).fit(X, y)
    # After the initial partition every M-step gets the routed entries: exactly
    # the non-zero weights, so the routed path cannot silently fall back.
    assert len(calls) > 2
    for weights_T, routed in calls[1:]:
        assert routed is not None
        assert_array_equal(routed_to_dense(routed), weights_T)


def test_soft_em_hands_no_routed_entries(monkeypatch):
    X, y = make_gated_regression(n_samples=500, n_features=3, n_experts=3, random_state=0, return_labels=False)
    calls = _spy_fits(monkeypatch, _solvers.BatchedLinearSolver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MixtureOfExpertsRegressor(3, random_state=0, max_iter=4).fit(X, y)
    assert all(routed is None for _, routed in calls)


@pytest.mark.parametrize("params", ROUTED_OPTIONS, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_routed_fit_equals_the_dense_fit_linear(monkeypatch, params):
    # Large and sparse enough for the routed Gram pass (routed_pays).
    X, y = make_gated_regression(n_samples=3000, n_features=10, n_experts=16, random_state=1, return_labels=False)
    sample_weight = np.random.RandomState(0).uniform(0.5, 2.0, X.shape[0])
    sample_weight[::11] = 0.0
    assert _gram.routed_pays(2 / 16, X.shape[1] + 2, 16, X.shape[0])

    def make():
        return MixtureOfExpertsRegressor(16, random_state=0, max_iter=8, **params)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        routed = make().fit(X, y, sample_weight=sample_weight)
        monkeypatch.setattr(_solvers.BatchedLinearSolver, "takes_routed", False)
        dense = make().fit(X, y, sample_weight=sample_weight)
    assert routed.n_iter_ == dense.n_iter_
    # Rounding of another summation order, carried through a few EM iterations.
    cond = normal_equations_cond(X, sample_weight)
    assert_allclose(routed.log_likelihood_curve_, dense.log_likelihood_curve_, rtol=tol(cond=cond))
    assert_allclose(routed.predict(X), dense.predict(X), rtol=0, atol=tol(cond=cond) * np.abs(y).max())


@pytest.mark.parametrize("params", ROUTED_OPTIONS, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_routed_fit_equals_the_dense_fit_generic(monkeypatch, params):
    X, y = make_gated_regression(n_samples=600, n_features=2, n_experts=3, random_state=2, return_labels=False)
    sample_weight = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0])
    sample_weight[::9] = 0.0

    def make():
        return MixtureOfExpertsRegressor(
            3, expert=DecisionTreeRegressor(max_depth=3), random_state=0, max_iter=5, **params
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        routed = make().fit(X, y, sample_weight=sample_weight)
        monkeypatch.setattr(GenericSolver, "takes_routed", False)
        dense = make().fit(X, y, sample_weight=sample_weight)
    # The same rows, order and weights reach every expert: the same fit.
    assert_array_equal(routed.log_likelihood_curve_, dense.log_likelihood_curve_)
    assert_array_equal(routed.predict(X), dense.predict(X))


def test_routed_entries_carry_the_likelihoods_extra_weights(monkeypatch):
    # A Student-t likelihood reweights each expert's rows (expert_weights):
    # the routed weights are scaled entry by entry, as the dense ones.
    X, y = make_gated_regression(n_samples=3000, n_features=3, n_experts=8, random_state=3, return_labels=False)

    def make():
        return MixtureOfExpertsRegressor(8, likelihood=StudentTLikelihood(), top_k=2, random_state=0, max_iter=6)

    calls = _spy_fits(monkeypatch, _solvers.BatchedLinearSolver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        routed = make().fit(X, y)
        for weights_T, listed in calls[1:]:
            assert_allclose(routed_to_dense(listed), weights_T, rtol=1e-15, atol=0)
        monkeypatch.setattr(_solvers.BatchedLinearSolver, "takes_routed", False)
        dense = make().fit(X, y)
    cond = normal_equations_cond(X)
    assert_allclose(routed.log_likelihood_curve_, dense.log_likelihood_curve_, rtol=tol(cond=cond))
