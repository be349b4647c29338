"""Behaviour of the two estimators: recovery, EM properties, API citizenship."""

import pickle
import re
import warnings
from itertools import permutations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import gated_regression_mean, make_gated_regression, make_xor_blobs
from tests._tolerances import tol


def _matched_accuracy(true, pred, k):
    """Accuracy after the best permutation of predicted labels."""
    best = 0.0
    for perm in permutations(range(k)):
        best = max(best, np.mean(np.asarray(perm)[pred] == true))
    return best


@pytest.fixture(scope="module")
def gated_data():
    X, y, labels, params = make_gated_regression(
        n_samples=4000, n_features=5, n_experts=3, noise=0.3, return_labels=True,
        return_params=True, random_state=0,
    )
    return X, y, labels, params


@pytest.fixture(scope="module")
def gated_fit(gated_data):
    X, y, labels, params = gated_data
    X_train, X_test, y_train, y_test, l_train, l_test = train_test_split(
        X, y, labels, train_size=3000, random_state=0
    )
    moe = MixtureOfExpertsRegressor(n_experts=3, n_init=3, random_state=0).fit(X_train, y_train)
    return moe, (X_train, X_test, y_train, y_test, l_train, l_test), params


# ----------------------------------------------------------------------------
# Recovery and EM properties


def test_recovers_regions_and_matches_true_model(gated_fit):
    moe, (X_train, X_test, y_train, y_test, l_train, l_test), params = gated_fit
    assert moe.converged_
    assert _matched_accuracy(l_test, moe.predict_expert(X_test), 3) >= 0.9
    r2_moe = moe.score(X_test, y_test)
    r2_true = r2_score(y_test, gated_regression_mean(X_test, params))
    assert r2_moe >= r2_true - 0.02, (r2_moe, r2_true)


def test_recovers_expert_parameters(gated_fit):
    moe, _, params = gated_fit
    coef = np.vstack([e.coef_ for e in moe.experts_])
    # Match each fitted expert to the closest true one.
    order = [int(np.argmin(np.abs(params["expert_coef"] - c).sum(axis=1))) for c in coef]
    assert sorted(order) == [0, 1, 2]
    assert_allclose(coef, params["expert_coef"][order], atol=0.1)
    assert_allclose(np.sqrt(moe.noise_variance_), params["noise_std"][order], rtol=0.15)


def test_log_likelihood_non_decreasing_linear_experts(gated_fit):
    moe, _, _ = gated_fit
    for curve in moe.log_likelihood_curves_:
        assert np.all(np.diff(curve) >= -1e-10), np.diff(curve).min()


def test_monotone_when_stepping_with_warm_start(gated_data):
    X, y, _, _ = gated_data
    moe = MixtureOfExpertsRegressor(n_experts=3, max_iter=1, warm_start=True, random_state=1)
    previous = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(15):
            moe.fit(X, y)
            assert moe.log_likelihood_ >= previous - 1e-12
            previous = moe.log_likelihood_


def test_warm_start_equals_one_long_fit(gated_data):
    X, y, _, _ = gated_data
    long = MixtureOfExpertsRegressor(n_experts=3, max_iter=6, tol=0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        long.fit(X, y)
    stepped = MixtureOfExpertsRegressor(n_experts=3, max_iter=3, tol=0, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        stepped.fit(X, y)
        stepped.fit(X, y)
    assert_allclose(stepped.predict(X), long.predict(X), rtol=1e-6, atol=1e-8)


def test_max_iter_zero_initialises_without_warning(gated_data):
    X, y, _, _ = gated_data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        moe = MixtureOfExpertsRegressor(n_experts=3, max_iter=0, random_state=0).fit(X, y)
    assert moe.n_iter_ == 0 and not moe.converged_
    assert moe.log_likelihood_curve_.shape == (1,)


def test_convergence_warning_names_advice(gated_data):
    X, y, _, _ = gated_data
    with pytest.warns(ConvergenceWarning, match="increase max_iter"):
        MixtureOfExpertsRegressor(n_experts=3, max_iter=2, tol=0, random_state=0).fit(X, y)


def test_n_init_keeps_best(gated_data):
    X, y, _, _ = gated_data
    moe = MixtureOfExpertsRegressor(n_experts=3, n_init=4, init="random", random_state=3).fit(X, y)
    finals = [c[-1] for c in moe.log_likelihood_curves_]
    assert len(finals) == 4
    assert moe.log_likelihood_ == pytest.approx(max(finals))


def test_bic_picks_true_number_of_experts():
    X, y = make_gated_regression(
        n_samples=1500, n_features=2, n_experts=3, noise=0.2, return_labels=False, random_state=2
    )
    bics = {
        k: MixtureOfExpertsRegressor(n_experts=k, n_init=3, random_state=0).fit(X, y).bic(X, y)
        for k in range(1, 6)
    }
    assert min(bics, key=bics.get) == 3, bics
    aics = {k: MixtureOfExpertsRegressor(n_experts=k, n_init=2, random_state=0).fit(X, y).aic(X, y) for k in (1, 3)}
    assert aics[3] < aics[1]


def test_single_expert_equals_plain_estimator(gated_data):
    X, y, _, _ = gated_data
    w = np.random.RandomState(0).uniform(0.5, 2.0, X.shape[0])
    moe = MixtureOfExpertsRegressor(n_experts=1, random_state=0).fit(X, y, sample_weight=w)
    lr = LinearRegression().fit(X, y, sample_weight=w)
    # Weighted least squares two ways (normal equations, SVD): equal to about
    # cond(X)^2 * eps at the scale of y; absolute, as some predictions are ~0.
    Xw = np.c_[X, np.ones(len(X))] * np.sqrt(w)[:, None]
    atol = tol(np.float64, cond=np.linalg.cond(Xw) ** 2) * np.abs(y).max()
    assert_allclose(moe.predict(X), lr.predict(X), rtol=0, atol=atol)
    resid = y - lr.predict(X)
    assert moe.noise_variance_[0] == pytest.approx(np.average(resid**2, weights=w), rel=1e-9)
    assert_allclose(moe.predict_gate(X), 1.0)


def test_permuting_initial_labels_permutes_experts(gated_data):
    X, y, labels, _ = gated_data
    perm = np.array([2, 0, 1])
    a = MixtureOfExpertsRegressor(n_experts=3, init=labels, random_state=0).fit(X, y)
    b = MixtureOfExpertsRegressor(n_experts=3, init=perm[labels], random_state=0).fit(X, y)
    # The same fit, and the experts numbered by the same stable rule whatever
    # the initial labels (label switching undone).
    assert_allclose(b.predict_gate(X), a.predict_gate(X), atol=1e-5)
    assert_allclose(b.predict(X), a.predict(X), rtol=1e-6, atol=1e-6)
    assert_allclose(b.noise_variance_, a.noise_variance_, rtol=1e-6)
    means = [np.mean(e.predict(X)) for e in a.experts_]
    assert means == sorted(means)


def test_invariant_to_feature_scaling(gated_data):
    X, y, _, _ = gated_data
    scale = np.array([1e-3, 1.0, 50.0, 1e3, 7.0])
    shift = np.array([5.0, -2.0, 1e3, 0.0, 1.0])
    # The init and experts are exactly invariant; the gate (standardised
    # internally) up to its solver tolerance, so compare tightly converged fits.
    kw = dict(n_experts=3, tol=1e-8, max_iter=500, random_state=0)
    a = MixtureOfExpertsRegressor(**kw).fit(X, y)
    b = MixtureOfExpertsRegressor(**kw).fit(X * scale + shift, y)
    assert_allclose(b.predict(X * scale + shift), a.predict(X), rtol=1e-3, atol=1e-3)
    # The stopping rule compares a relative change with tol: the same fixed
    # point, reached within one iteration of each other.
    assert abs(b.n_iter_ - a.n_iter_) <= 1


def test_integer_weights_equal_repeated_rows(gated_data):
    X, y, _, _ = gated_data
    X, y = X[:400], y[:400]
    w = np.random.RandomState(0).randint(0, 4, size=400)
    a = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y, sample_weight=w)
    b = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(np.repeat(X, w, 0), np.repeat(y, w))
    assert_allclose(a.predict(X), b.predict(X), rtol=1e-6, atol=1e-8)


def test_reproducible_with_random_state(gated_data):
    X, y, _, _ = gated_data
    kw = dict(n_experts=3, init="random", n_init=2, random_state=7)
    a = MixtureOfExpertsRegressor(**kw).fit(X, y)
    b = MixtureOfExpertsRegressor(**kw).fit(X, y)
    assert_array_equal(a.predict(X), b.predict(X))
    c = MixtureOfExpertsRegressor(**{**kw, "random_state": 8}).fit(X, y)
    assert not np.array_equal(a.log_likelihood_curves_[0], c.log_likelihood_curves_[0])


def test_n_jobs_gives_same_result(gated_data):
    X, y, _, _ = gated_data
    kw = dict(n_experts=3, expert=DecisionTreeRegressor(max_depth=3), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MixtureOfExpertsRegressor(**kw, n_jobs=1).fit(X, y)
        b = MixtureOfExpertsRegressor(**kw, n_jobs=2).fit(X, y)
    assert_array_equal(a.predict(X), b.predict(X))


def test_float32_input(gated_data):
    X, y, _, _ = gated_data
    a = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
    b = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X.astype(np.float32), y)
    pred = b.predict(X.astype(np.float32))
    assert np.all(np.isfinite(pred))
    assert r2_score(y, pred) == pytest.approx(r2_score(y, a.predict(X)), abs=1e-3)


# ----------------------------------------------------------------------------
# Predictions, pooling and introspection


def test_predict_std_and_log_prob(gated_fit):
    moe, (X_train, X_test, y_train, y_test, *_), _ = gated_fit
    mean, std = moe.predict(X_test, return_std=True)
    assert_allclose(mean, moe.predict(X_test))
    assert np.all(std >= np.sqrt(moe.noise_variance_.min()) - 1e-12)
    gate = moe.predict_gate(X_test)
    experts = moe.predict_experts(X_test)
    expected = np.sum(gate * (moe.noise_variance_ + (experts - mean[:, None]) ** 2), axis=1)
    assert_allclose(std**2, expected, rtol=1e-9)
    lp = moe.log_prob(X_test, y_test)
    dens = np.sum(gate * np.exp(-0.5 * (y_test[:, None] - experts) ** 2 / moe.noise_variance_)
                  / np.sqrt(2 * np.pi * moe.noise_variance_), axis=1)
    assert_allclose(lp, np.log(dens), rtol=1e-9)
    n_params = 2 * 6 + 3 * 6 + 3  # gate (K-1)(d+1), experts K(d+1), variances K
    assert moe.bic(X_test, y_test) == pytest.approx(-2 * lp.sum() + n_params * np.log(len(y_test)))


def test_argmax_pooling_uses_one_expert(gated_fit):
    moe, (X_train, X_test, *_), _ = gated_fit
    hard = clone(moe).set_params(pooling="argmax").fit(X_train, _[2] if False else gated_fit[1][2])
    experts = hard.predict_experts(X_test)
    chosen = hard.predict_expert(X_test)
    mean, std = hard.predict(X_test, return_std=True)
    assert_allclose(mean, experts[np.arange(len(chosen)), chosen])
    assert_allclose(std, np.sqrt(hard.noise_variance_[chosen]))


def test_top_k_sparse_gate(gated_data):
    X, y, _, _ = gated_data
    moe = MixtureOfExpertsRegressor(n_experts=4, top_k=2, random_state=0).fit(X, y)
    gate = moe.predict_gate(X)
    assert np.all(np.sum(gate > 0, axis=1) <= 2)
    assert_allclose(gate.sum(axis=1), 1.0)
    # The true mixture itself explains about 0.90 of the variance here.
    assert moe.score(X, y) > 0.89


def test_expert_share_sums_to_one(gated_fit):
    moe, *_ = gated_fit
    assert moe.expert_share_.shape == (3,)
    assert moe.expert_share_.sum() == pytest.approx(1.0)
    assert np.all(moe.expert_share_ > 0.1)


def test_starved_expert_reseeded_or_removed_never_nan():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(300, 1))
    y = 2 * X[:, 0] + 0.01 * rng.randn(300)  # one linear regime, many experts
    init = np.zeros(300, dtype=int)
    init[:3] = [1, 2, 3]  # three experts start with one sample each
    with pytest.warns(ConvergenceWarning, match="re-seeded|removed"):
        moe = MixtureOfExpertsRegressor(n_experts=4, init=init, random_state=0).fit(X, y)
    pred = moe.predict(X)
    assert np.all(np.isfinite(pred))
    assert moe.score(X, y) > 0.99
    assert moe.n_experts_ == len(moe.experts_) == moe.predict_gate(X).shape[1]


@pytest.mark.parametrize(
    "init",
    ["kmeans", "random", "tree", AgglomerativeClustering(3), "labels", "resp"],
    ids=["kmeans", "random", "tree", "clusterer", "labels", "resp"],
)
def test_init_strategies(gated_data, init):
    X, y, labels, _ = gated_data
    if init == "labels":
        init = labels
    elif init == "resp":
        init = np.eye(3)[labels] * 0.8 + 0.2 / 3
    moe = MixtureOfExpertsRegressor(n_experts=3, init=init, n_init=2 if isinstance(init, str) else 1,
                                    random_state=0).fit(X, y)
    assert moe.score(X, y) > 0.85


class _FitPredictOnly(KMeans):
    """A clusterer with fit and predict but no fit_predict, as dask-ml's KMeans."""

    def __getattribute__(self, name):
        if name == "fit_predict":
            raise AttributeError(name)
        return super().__getattribute__(name)


def test_init_clusterer_without_fit_predict(gated_data):
    X, y, _, _ = gated_data
    clusterer = _FitPredictOnly(3, n_init=1, random_state=0)
    assert not hasattr(clusterer, "fit_predict")
    moe = MixtureOfExpertsRegressor(n_experts=3, init=clusterer, random_state=0).fit(X, y)
    assert moe.score(X, y) > 0.85
    assert not hasattr(clusterer, "labels_")  # cloned, never fitted itself


def test_heterogeneous_and_pipeline_experts(gated_data):
    X, y, _, _ = gated_data
    experts = [
        LinearRegression(),
        Ridge(alpha=1.0),
        make_pipeline(StandardScaler(), PolynomialFeatures(2), LinearRegression()),
    ]
    moe = MixtureOfExpertsRegressor(n_experts=3, expert=experts, random_state=0).fit(X, y)
    assert type(moe.experts_[2]).__name__ == "Pipeline"
    assert moe.score(X, y) > 0.9
    assert experts[0] is not moe.experts_[0] and not hasattr(experts[0], "coef_")


def test_tree_experts_generalised_em(gated_data):
    X, y, _, _ = gated_data
    moe = MixtureOfExpertsRegressor(n_experts=3, expert=DecisionTreeRegressor(max_depth=4), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe.fit(X, y)
    # Generalised EM keeps the best iterate.
    assert moe.log_likelihood_ == pytest.approx(max(moe.log_likelihood_curve_))


# ----------------------------------------------------------------------------
# Classifier


@pytest.fixture(scope="module")
def xor_data():
    return make_xor_blobs(n_samples=600, noise=0.3, random_state=0)


def test_classifier_solves_xor(xor_data):
    X, y = xor_data
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    assert LogisticRegression().fit(X_train, y_train).score(X_test, y_test) < 0.65
    clf = MixtureOfExpertsClassifier(n_experts=4, random_state=0).fit(X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.95
    proba = clf.predict_proba(X_test)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_array_equal(clf.predict(X_test), clf.classes_[proba.argmax(axis=1)])
    assert_allclose(clf.predict_log_proba(X_test), np.log(proba))
    lp = clf.log_prob(X_test, y_test)
    assert_allclose(lp, np.log(proba[np.arange(len(y_test)), np.searchsorted(clf.classes_, y_test)]), rtol=1e-9)


def test_classifier_string_labels_and_partial_class_experts():
    rng = np.random.RandomState(0)
    X = np.r_[rng.randn(100, 2) + [4, 0], rng.randn(100, 2) - [4, 0]]
    # Left half has classes a/b, right half b/c: each expert sees only some classes.
    y = np.r_[np.where(X[:100, 1] > 0, "a", "b"), np.where(X[100:, 1] > 0, "b", "c")]
    init = np.r_[np.zeros(100, int), np.ones(100, int)]
    expert = DecisionTreeClassifier(max_depth=2)
    clf = MixtureOfExpertsClassifier(n_experts=2, expert=expert, init=init, random_state=0).fit(X, y)
    assert_array_equal(clf.classes_, ["a", "b", "c"])
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 3) and np.all(np.isfinite(proba))
    assert clf.score(X, y) > 0.95


def test_classifier_multiclass_and_argmax(xor_data):
    X, y = xor_data
    y3 = y + (X[:, 0] > 1.5)  # three classes
    clf = MixtureOfExpertsClassifier(n_experts=4, pooling="argmax", random_state=0).fit(X, y3)
    assert clf.predict_proba(X).shape == (X.shape[0], 3)
    assert clf.score(X, y3) > 0.85


# ----------------------------------------------------------------------------
# scikit-learn citizenship


def test_pipeline_gridsearch_cross_val(gated_data):
    X, y, _, _ = gated_data
    X, y = X[:600], y[:600]
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(random_state=0))
    grid = GridSearchCV(pipe, {"mixtureofexpertsregressor__n_experts": [1, 3]}, cv=3).fit(X, y)
    assert grid.best_params_["mixtureofexpertsregressor__n_experts"] == 3
    scores = cross_val_score(MixtureOfExpertsRegressor(n_experts=3, random_state=0), X, y, cv=3)
    assert scores.min() > 0.8


def test_pickle_round_trip(gated_fit, xor_data):
    moe, (X_train, X_test, *_), _ = gated_fit
    again = pickle.loads(pickle.dumps(moe))
    assert_array_equal(again.predict(X_test), moe.predict(X_test))
    X, y = xor_data
    clf = MixtureOfExpertsClassifier(n_experts=4, random_state=0).fit(X, y)
    assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), clf.predict_proba(X))


def test_pandas_feature_names(gated_data):
    pd = pytest.importorskip("pandas")
    X, y, _, _ = gated_data
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(df, pd.Series(y))
    assert_array_equal(moe.feature_names_in_, df.columns)
    with pytest.warns(UserWarning, match="feature names"):
        moe.predict(X)


def test_does_not_mutate_user_expert(gated_data):
    X, y, _, _ = gated_data
    expert = Ridge(alpha=2.0)
    moe = MixtureOfExpertsRegressor(n_experts=2, expert=expert, random_state=0).fit(X, y)
    assert not hasattr(expert, "coef_") and moe.expert is expert


def test_verbose_output(gated_data, capsys):
    X, y, _, _ = gated_data
    MixtureOfExpertsRegressor(n_experts=2, n_init=2, max_iter=3, tol=0, verbose=2, random_state=0).fit(X[:200], y[:200])
    out = capsys.readouterr().out
    assert out.count("Initialization") == 2
    assert out.count("Iteration") == 6


def test_unfitted_raises():
    with pytest.raises(NotFittedError):
        MixtureOfExpertsRegressor().predict_gate(np.ones((2, 2)))


# ----------------------------------------------------------------------------
# Bad input: clear errors before any work


X_OK = np.random.RandomState(0).randn(30, 2)
Y_OK = X_OK[:, 0] * 2.0


class _NoWeights:
    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(len(X))

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self


@pytest.mark.parametrize(
    "params, X, y, error, match",
    [
        ({}, np.r_[X_OK[:-1], [[np.nan, 1.0]]], Y_OK, ValueError, "NaN"),
        ({}, np.r_[X_OK[:-1], [[np.inf, 1.0]]], Y_OK, ValueError, "infinity"),
        ({}, X_OK, np.r_[Y_OK[:-1], np.nan], ValueError, "NaN"),
        ({}, np.empty((0, 2)), np.empty(0), ValueError, "0 sample"),
        ({"n_experts": 4}, X_OK[:3], Y_OK[:3], ValueError, "n_samples=3 should be >= n_experts=4"),
        ({"init": np.zeros(5, dtype=int)}, X_OK, Y_OK, ValueError, r"init labels must have shape \(n_samples,\)"),
        ({"n_experts": 2, "init": np.ones((30, 3))}, X_OK, Y_OK, ValueError, r"shape \(n_samples, n_experts\) = \(30, 2\)"),
        ({"n_experts": 2, "init": np.full(30, 5)}, X_OK, Y_OK, ValueError, r"integers in \[0, n_experts\)"),
        ({"n_experts": 0}, X_OK, Y_OK, ValueError, "'n_experts' parameter"),
        ({"pooling": "mean"}, X_OK, Y_OK, ValueError, "'pooling' parameter"),
        ({"gate": "quadratic"}, X_OK, Y_OK, ValueError, "'gate' parameter"),
        ({"init": "spectral"}, X_OK, Y_OK, ValueError, "'init' parameter"),
        ({"n_experts": 2, "top_k": 3}, X_OK, Y_OK, ValueError, "top_k=3 must be <= n_experts=2"),
        ({}, X_OK, np.array(["a", "b"] * 15), ValueError, "numeric target"),
        ({"n_experts": 3, "expert": [LinearRegression()]}, X_OK, Y_OK, ValueError, "list of 1 estimators but n_experts=3"),
        ({"expert": _NoWeights()}, X_OK, Y_OK, TypeError, "_NoWeights does not accept sample_weight"),
        ({"expert": LinearRegression(), "n_experts": 2, "init": AgglomerativeClustering(3)}, X_OK, Y_OK,
         ValueError, "found 3 clusters but n_experts=2"),
    ],
)
def test_regressor_bad_input(params, X, y, error, match):
    with pytest.raises(error, match=match):
        MixtureOfExpertsRegressor(**{"n_experts": 2, **params}).fit(X, y)


@pytest.mark.parametrize(
    "params, y, error, match",
    [
        ({}, np.zeros(30, dtype=int), ValueError, "at least 2 classes"),
        ({}, np.linspace(0, 1, 30), ValueError, "Unknown label type"),
        ({"expert": SVC()}, (X_OK[:, 0] > 0).astype(int), TypeError, "SVC has no predict_proba"),
    ],
)
def test_classifier_bad_input(params, y, error, match):
    with pytest.raises(error, match=match):
        MixtureOfExpertsClassifier(**{"n_experts": 2, **params}).fit(X_OK, y)


def test_bad_gate_object_lists_missing_methods():
    class HalfGate:
        def fit(self, X, resp, sample_weight=None):
            return self

    with pytest.raises(ValueError, match=re.escape("'gate' parameter")):
        MixtureOfExpertsRegressor(n_experts=2, gate=HalfGate()).fit(X_OK, Y_OK)


def test_log_prob_rejects_unknown_class(xor_data):
    X, y = xor_data
    clf = MixtureOfExpertsClassifier(n_experts=2, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with pytest.raises(ValueError, match="not seen in fit"):
        clf.log_prob(X[:3], [0, 1, 7])


def test_reseed_slices_keep_repeated_rows_together():
    from skmoe._fit_state import reseed_slices

    rng = np.random.RandomState(0)
    log_prob = rng.randn(40)
    weight = rng.randint(1, 3, size=40).astype(float)
    rows = np.repeat(np.arange(40), weight.astype(int))
    for n_slices, share in ((1, 0.1), (3, 0.07), (4, 0.125)):
        weighted = reseed_slices(log_prob, weight, n_slices, share)
        copies = reseed_slices(log_prob[rows], np.ones(rows.size), n_slices, share)
        for a, b in zip(weighted, copies):
            # The same rows, whether a row is weighted 2 or repeated.
            assert_array_equal(np.sort(a), np.unique(rows[b]))
            assert a.size >= 1


def test_reseeding_treats_a_weight_of_two_as_a_repeated_row():
    # Many experts on a step function: experts starve and are re-seeded.
    rng = np.random.RandomState(0)
    n = 150
    X = rng.randn(n, 3)
    y = np.sign(X[:, 0]) + 0.05 * rng.randn(n)
    sw = rng.randint(1, 3, n).astype(float)
    rows = np.repeat(np.arange(n), sw.astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weighted = MixtureOfExpertsRegressor(n_experts=8, max_iter=6, random_state=0).fit(X, y, sample_weight=sw)
        repeated = MixtureOfExpertsRegressor(n_experts=8, max_iter=6, random_state=0).fit(X[rows], y[rows])
    assert weighted.n_experts_ == repeated.n_experts_
    assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-6, atol=1e-6)


def test_init_labels_drop_the_zero_weight_rows_with_them(gated_data):
    X, y, labels, _ = gated_data
    sw = np.ones(X.shape[0])
    sw[:7] = 0.0
    kept = sw > 0
    zero = MixtureOfExpertsRegressor(n_experts=3, init=labels, random_state=0).fit(X, y, sample_weight=sw)
    dropped = MixtureOfExpertsRegressor(n_experts=3, init=labels[kept], random_state=0).fit(X[kept], y[kept])
    assert_allclose(zero.predict(X), dropped.predict(X), rtol=1e-10, atol=1e-10)
    resp = np.eye(3)[labels] * 0.8 + 0.2 / 3
    MixtureOfExpertsRegressor(n_experts=3, init=resp, random_state=0).fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError, match="init"):
        MixtureOfExpertsRegressor(n_experts=3, init=labels[:-3], random_state=0).fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("gate", ["linear", "mlp"])
def test_fitted_gate_keeps_no_per_run_caches(gated_data, gate):
    X, y, _, _ = gated_data
    moe = MixtureOfExpertsRegressor(n_experts=3, gate=gate, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moe.fit(X, y)
    # The L-BFGS pairs hold a per-sample weight array: dropped at the end of fit.
    for name in ("_lbfgs_state", "_X_cache", "_torch_state"):
        assert name not in vars(moe.gate_)
    # warm_start still continues the fit.
    moe.set_params(warm_start=True, max_iter=2).fit(X, y)
    assert np.isfinite(moe.log_likelihood_)
