"""Expert adapters: checks, seeding, the generic M-step, parameter counts."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsRegressor
from skmoe._experts import aligned_proba, check_expert, fit_experts, n_expert_parameters, seed_expert


def _data(rng, n=500, d=6, k=4, offset=0.0):
    X = rng.randn(n, d) * rng.uniform(0.1, 10, d) + offset
    y = X @ rng.randn(d) + rng.randn(n)
    weights = rng.dirichlet(np.ones(k), size=n).T.copy() * rng.uniform(0.5, 2, n)
    return X, y, weights


def test_check_expert_messages():
    class NoWeight:
        def fit(self, X, y):
            return self

        def predict(self, X):
            return X

    with pytest.raises(TypeError, match="NoWeight does not accept sample_weight"):
        check_expert(NoWeight())
    check_expert(make_pipeline(StandardScaler(), LinearRegression()))


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
