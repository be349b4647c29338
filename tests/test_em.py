"""Pure EM array functions: log-space E-step, variances, top-k, pooling."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose
from scipy.stats import norm

from skmoe import _em
from tests._tolerances import tol

finite = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False)
# Log-gates and log-likelihoods drawn from `finite` add up to |100|: absolute rounding in
# the log-space E-step scales with that, and exp() turns it into relative error.
LOG_SCALE = 100.0


def _log_arrays(max_experts=6, max_samples=20):
    return st.tuples(st.integers(1, max_experts), st.integers(1, max_samples)).flatmap(
        lambda shape: st.tuples(arrays(np.float64, shape, elements=finite), arrays(np.float64, shape, elements=finite))
    )


@given(_log_arrays())
def test_responsibilities_sum_to_one(pair):
    log_gate, log_lik = pair
    log_gate = log_gate - np.logaddexp.reduce(log_gate, axis=0)
    log_resp, log_prob = _em.e_step(log_gate, log_lik)
    assert np.all(np.isfinite(log_resp)) and np.all(np.isfinite(log_prob))
    assert_allclose(np.exp(log_resp).sum(axis=0), 1.0, rtol=tol(np.float64, cond=LOG_SCALE))


@given(_log_arrays(), st.floats(-1e3, 1e3))
def test_e_step_invariant_to_constant_shift(pair, shift):
    log_gate, log_lik = pair
    r1, p1 = _em.e_step(log_gate, log_lik)
    r2, p2 = _em.e_step(log_gate, log_lik + shift)
    atol = tol(np.float64, cond=LOG_SCALE + abs(shift))
    assert_allclose(r1, r2, rtol=0, atol=atol)
    assert_allclose(p2 - p1, shift, rtol=0, atol=atol)


@given(_log_arrays(), st.randoms(use_true_random=False))
def test_permuting_experts_permutes_responsibilities(pair, random):
    log_gate, log_lik = pair
    perm = np.array(random.sample(range(log_gate.shape[0]), log_gate.shape[0]))
    r1, p1 = _em.e_step(log_gate, log_lik)
    r2, p2 = _em.e_step(log_gate[perm], log_lik[perm])
    # Another order of summation; log_prob can be ~0, so absolute tolerances.
    assert_allclose(r1[perm], r2, rtol=0, atol=tol(np.float64, cond=LOG_SCALE))
    assert_allclose(p1, p2, rtol=0, atol=tol(np.float64, cond=LOG_SCALE))


def test_e_step_extreme_log_likelihoods_stay_finite():
    # Plain-space products would underflow to 0/0 = NaN here.
    log_gate = np.log(np.full((3, 4), 1 / 3))
    log_lik = np.array([[-1e4, -2e4, -800, 0.0], [-1e4 - 1, -2e4, -900, 0], [-3e4, -2e4 + 5, -1000, 0]])
    log_resp, log_prob = _em.e_step(log_gate, log_lik)
    resp = np.exp(log_resp)
    assert np.all(np.isfinite(resp))
    assert_allclose(resp.sum(axis=0), 1.0)
    assert resp[0, 0] == pytest.approx(1 / (1 + np.exp(-1)))
    assert resp[2, 1] == pytest.approx(np.exp(5) / (2 + np.exp(5)))


def test_gaussian_log_density_matches_scipy(rng):
    y = rng.randn(50)
    mean = rng.randn(3, 50)
    var = np.array([0.5, 1.0, 2.0])
    out = _em.gaussian_log_density(y, mean, var)
    expected = norm.logpdf(y[None, :], loc=mean, scale=np.sqrt(var)[:, None])
    assert_allclose(out, expected, rtol=tol(np.float64))


def test_weighted_variance_update_and_floor(rng):
    y = rng.randn(200)
    mean = np.vstack([y + 0.5 * rng.randn(200), y])  # second expert interpolates
    resp = np.full((2, 200), 0.5)
    w = rng.uniform(0.5, 2, 200)
    var = _em.weighted_variance_update(y, mean, resp, w, floor=1e-3)
    expected = np.sum(resp[0] * w * (mean[0] - y) ** 2) / np.sum(resp[0] * w)
    assert var[0] == pytest.approx(expected)
    assert var[1] == 1e-3  # zero residual floored


@given(_log_arrays(max_experts=6), st.integers(1, 6))
def test_top_k_keeps_k_nonzeros(pair, k):
    log_gate, _ = pair
    log_gate = log_gate - np.logaddexp.reduce(log_gate, axis=0)
    masked = _em.top_k_log_gate(log_gate, k)
    gate = np.exp(masked)
    n_kept = np.sum(gate > 0, axis=0)
    assert np.all(n_kept <= min(k, log_gate.shape[0]))
    assert np.all(n_kept >= 1)
    assert_allclose(gate.sum(axis=0), 1.0, rtol=tol(np.float64, cond=LOG_SCALE))
    # The kept entries are the largest ones.
    kept_min = np.where(gate > 0, log_gate, np.inf).min(axis=0)
    dropped_max = np.where(gate > 0, -np.inf, log_gate).max(axis=0)
    assert np.all(kept_min >= dropped_max)


def test_top_k_none_is_identity(rng):
    g = rng.randn(4, 10)
    assert _em.top_k_log_gate(g, None) is g


def test_argmax_log_gate_one_hot(rng):
    g = rng.randn(4, 30)
    one_hot = np.exp(_em.argmax_log_gate(g))
    assert_allclose(one_hot.sum(axis=0), 1.0)
    assert np.array_equal(one_hot.argmax(axis=0), g.argmax(axis=0))


def test_mixture_mean_std_law_of_total_variance(rng):
    gate = rng.dirichlet(np.ones(3), size=100).T
    means = rng.randn(3, 100) * 5 + 1e6  # large offset: no E[y^2]-E[y]^2 cancellation
    var = np.array([0.1, 1.0, 3.0])
    mean, std = _em.mixture_mean_std(gate, means, var)
    exp_mean = np.sum(gate * means, axis=0)
    exp_var = np.sum(gate * (var[:, None] + (means - exp_mean) ** 2), axis=0)
    assert_allclose(mean, exp_mean)
    assert_allclose(std**2, exp_var, rtol=1e-9)


def test_mean_log_likelihood_weighted():
    lp = np.array([-1.0, -3.0])
    assert _em.mean_log_likelihood(lp) == -2.0
    assert _em.mean_log_likelihood(lp, np.array([3.0, 1.0])) == pytest.approx(-1.5)


@given(_log_arrays(), st.floats(-700, 700))
def test_fused_responsibilities_match_log_space_e_step(pair, shift):
    # The fused E-step used by the EM loop (one exp, in place) against the
    # plain log-sum-exp one, also with log-likelihoods far from zero.
    log_gate, log_lik = pair
    log_gate = log_gate - np.logaddexp.reduce(log_gate, axis=0)
    log_resp, log_prob = _em.e_step(log_gate, log_lik + shift)
    buffer = log_lik + shift
    resp, fused_log_prob = _em.responsibilities(log_gate, buffer, out=buffer)
    assert resp is buffer
    assert np.all(np.isfinite(resp))
    scale_tol = tol(np.float64, cond=LOG_SCALE + abs(shift))
    assert_allclose(resp, np.exp(log_resp), rtol=scale_tol, atol=1e-300)
    assert_allclose(resp.sum(axis=0), 1.0, rtol=scale_tol)
    assert_allclose(fused_log_prob, log_prob, rtol=0, atol=scale_tol)


def test_em_loop_with_row_threads_equals_single_thread_fit():
    # With linear experts and the linear gate, the EM loop splits its passes
    # over the rows between threads (one per BLAS thread, BLAS itself
    # single-threaded). One thread or two: the same fit, up to summation order.
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from skmoe import MixtureOfExpertsRegressor
    from skmoe.datasets import make_gated_regression
    from skmoe.utils._threads import active_row_pool

    X, y = make_gated_regression(
        n_samples=9000, n_features=30, n_experts=3, return_labels=False, random_state=0
    )
    fits = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            moe = MixtureOfExpertsRegressor(n_experts=3, max_iter=15, tol=0, random_state=0)
            fits.append(moe.fit(X, y))
    assert active_row_pool() is None  # the region ends with the fit
    one, two = fits
    assert_allclose(one.log_likelihood_curve_, two.log_likelihood_curve_, rtol=1e-9)
    for a, b in zip(one.experts_, two.experts_):
        assert_allclose(a.coef_, b.coef_, rtol=1e-7, atol=1e-9)
    assert_allclose(one.gate_.coef_, two.gate_.coef_, rtol=1e-6, atol=1e-8)
    assert_allclose(one.predict(X), two.predict(X), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_in_column_blocks_equals_one_pass(dtype, monkeypatch):
    from skmoe.gates import _base

    Z = (30 * np.random.RandomState(0).standard_normal((5, 10_001))).astype(dtype)
    expected = Z - Z.max(axis=0)
    with np.errstate(under="ignore"):
        expected -= np.log(np.exp(expected).sum(axis=0))
    monkeypatch.setattr(_base, "_LOG_SOFTMAX_BLOCK", 5 * 97)  # many blocks, a short last one
    got = _base.log_softmax_columns(Z.copy())
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
