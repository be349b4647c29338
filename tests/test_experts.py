"""Expert adapters: batched linear fast path against each estimator's own fit."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_limits

from skmoe import MixtureOfExpertsRegressor, _experts
from skmoe._experts import (
    aligned_proba,
    check_expert,
    fit_experts,
    fit_linear_experts,
    n_expert_parameters,
    seed_expert,
    supports_fast_path,
)


def _data(rng, n=500, d=6, k=4, offset=0.0):
    X = rng.randn(n, d) * rng.uniform(0.1, 10, d) + offset
    y = X @ rng.randn(d) + rng.randn(n)
    weights = rng.dirichlet(np.ones(k), size=n).T.copy() * rng.uniform(0.5, 2, n)
    return X, y, weights


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
    for f, s in zip(fast, slow):
        assert type(f) is type(s)
        assert_allclose(f.coef_, s.coef_, rtol=1e-8, atol=1e-10 * np.abs(s.coef_).max())
        assert_allclose(f.intercept_, s.intercept_, rtol=1e-8, atol=1e-8)
        assert_allclose(f.predict(X), s.predict(X), rtol=1e-8, atol=1e-8)
        if isinstance(s, LinearRegression):
            assert f.rank_ == s.rank_
            assert_allclose(f.singular_, s.singular_, rtol=1e-6)


# Every Gram kernel and its boundaries: "pairs" (up to 24 columns of [X, 1, y]
# and p <= 3k - 2), "gemm" (other ones up to 16 columns), "syrk" (the rest),
# and the threaded pass (from 25 columns).
@pytest.mark.parametrize(
    "n_features, k",
    [(3, 3), (10, 4), (10, 5), (10, 16), (14, 5), (14, 6), (15, 3), (20, 7), (20, 8),
     (22, 3), (22, 9), (23, 3), (23, 16), (40, 3)],
)
def test_gram_layouts_match_direct_products(n_features, k):
    # n spans several blocks of every kernel and two threads' chunks, with a ragged last block.
    rng = np.random.RandomState(n_features)
    n = 2 * _experts._MIN_ROWS_PER_THREAD + 37
    X, y, weights = _data(rng, n=n, d=n_features, k=k, offset=5.0)
    sample_weight = rng.uniform(0.2, 3.0, n)
    x_offset, y_offset = X.mean(axis=0), float(y.mean())
    gram = _experts.weighted_gram_matrices(X, y, weights, x_offset, y_offset, sample_weight)
    Z = np.c_[X - x_offset, np.ones(n), y - y_offset]
    for j in range(k):
        expected = (Z * (weights[j] * sample_weight)[:, None]).T @ Z
        assert_allclose(gram[j], expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
        assert_allclose(gram[j], gram[j].T, rtol=0, atol=0)
    fast = fit_linear_experts([LinearRegression()] * k, X, y, weights, sample_weight)
    slow = fit_experts([LinearRegression()] * k, X, y, weights, sample_weight=sample_weight)
    for f, s in zip(fast, slow):
        assert_allclose(f.coef_, s.coef_, rtol=1e-8, atol=1e-10 * np.abs(s.coef_).max())
        assert_allclose(f.intercept_, s.intercept_, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("n_features", [3, 10, 40])  # pairs, gemm and syrk kernels at k=4
def test_gram_matrices_do_not_depend_on_blas_threads(n_features):
    # One BLAS thread runs the serial pass; two split the rows between two
    # Python threads. Same blocks, sums in another order: equal to rounding.
    rng = np.random.RandomState(1)
    n, k = 2 * _experts._MIN_ROWS_PER_THREAD_NARROW + 101, 4
    X, y, weights = _data(rng, n=n, d=n_features, k=k, offset=3.0)
    x_offset, y_offset = X.mean(axis=0), float(y.mean())
    grams = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="blas"):
            grams.append(_experts.weighted_gram_matrices(X, y, weights, x_offset, y_offset))
    assert_allclose(grams[0], grams[1], rtol=1e-12, atol=1e-12 * np.abs(grams[0]).max())


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
    kw = dict(n_experts=2, max_iter=100, tol=1e-12, random_state=0)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fast = MixtureOfExpertsRegressor(**kw).fit(X, y)
        assert fast._use_fast_path
        monkeypatch.setattr(_experts, "FAST_PATH_TYPES", ())
        slow = MixtureOfExpertsRegressor(**kw).fit(X, y)
        assert not slow._use_fast_path
    assert_allclose(fast.log_likelihood_curve_, slow.log_likelihood_curve_, rtol=1e-9)
    assert_allclose(fast.predict(X), slow.predict(X), rtol=1e-8, atol=1e-10)


def test_supports_fast_path():
    assert supports_fast_path([LinearRegression(), Ridge()])
    assert not supports_fast_path([LinearRegression(positive=True)])
    assert not supports_fast_path([Ridge(solver="sag")])
    assert not supports_fast_path([LinearRegression(), DecisionTreeRegressor()])


def test_check_expert_messages():
    class NoWeight:
        def fit(self, X, y):
            return self

        def predict(self, X):
            return X

    with pytest.raises(TypeError, match="NoWeight does not accept sample_weight"):
        check_expert(NoWeight(), classification=False)
    with pytest.raises(TypeError, match="has no predict_proba"):
        check_expert(LinearRegression(), classification=True)
    check_expert(make_pipeline(StandardScaler(), LinearRegression()), classification=False)


def test_pipeline_routes_weights_to_every_step():
    rng = np.random.RandomState(0)
    X, y, weights = _data(rng, k=1)
    pipe = make_pipeline(StandardScaler(), LinearRegression())
    fitted = fit_experts([pipe], X, y, weights)[0]
    scaler = fitted.steps[0][1]
    assert_allclose(scaler.mean_, np.average(X, axis=0, weights=weights[0]))


def test_seed_expert_sets_only_unset_random_states():
    rng = np.random.RandomState(0)
    tree = seed_expert(DecisionTreeRegressor(), rng)
    assert isinstance(tree.random_state, int)
    fixed = seed_expert(DecisionTreeRegressor(random_state=3), rng)
    assert fixed.random_state == 3


def test_aligned_proba_fills_missing_classes():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    clf = LogisticRegression().fit(X, [0, 0, 2, 2])  # never saw class 1
    proba = aligned_proba(clf, X, 3)
    assert proba.shape == (4, 3)
    assert np.all(proba[:, 1] == 0)
    assert_allclose(proba.sum(axis=1), 1.0)


def test_n_expert_parameters():
    rng = np.random.RandomState(0)
    X, y, _ = _data(rng, d=4)
    assert n_expert_parameters(LinearRegression().fit(X, y)) == 5
    assert n_expert_parameters(LinearRegression(fit_intercept=False).fit(X, y)) == 4
    tree = DecisionTreeRegressor(max_leaf_nodes=6).fit(X, y)
    assert n_expert_parameters(tree) == 6
    assert n_expert_parameters(make_pipeline(StandardScaler(), LinearRegression()).fit(X, y)) == 5


class _ThreadProbe(LinearRegression):
    """Records the OpenMP thread count in force while it is fitted."""

    def fit(self, X, y, sample_weight=None):
        from threadpoolctl import threadpool_info

        self.openmp_threads_ = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]
        return super().fit(X, y, sample_weight=sample_weight)


def test_small_expert_fits_use_one_openmp_thread():
    from threadpoolctl import threadpool_info

    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime)

    if not any(i["user_api"] == "openmp" for i in threadpool_info()):
        pytest.skip("no OpenMP runtime loaded")
    def openmp_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]

    before = openmp_threads()
    rng = np.random.RandomState(0)
    X, y, weights = _data(rng, n=300, k=2)
    experts = fit_experts([_ThreadProbe()] * 2, X, y, weights)
    assert all(t == 1 for e in experts for t in e.openmp_threads_)
    assert openmp_threads() == before  # restored after the M-step


class _ConfigProbe(LinearRegression):
    """LinearRegression that records scikit-learn's assume_finite at each fit."""

    def fit(self, X, y, sample_weight=None):
        import sklearn

        self.assume_finite_ = sklearn.get_config()["assume_finite"]
        return super().fit(X, y, sample_weight=sample_weight)


def test_em_loop_skips_repeated_finite_checks_but_fit_still_validates():
    import sklearn

    rng = np.random.RandomState(0)
    X = rng.randn(200, 3)
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.randn(200)
    moe = MixtureOfExpertsRegressor(n_experts=2, expert=_ConfigProbe(), max_iter=3, random_state=0)
    moe.fit(X, y)
    # Inside the EM loop the experts (and the gate) skip the finite scan ...
    assert all(e.assume_finite_ for e in moe.experts_)
    # ... which is restored afterwards,
    assert sklearn.get_config()["assume_finite"] is False
    # and fit itself still refuses non-finite input.
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        moe.fit(X, y)
