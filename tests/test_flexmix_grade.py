"""Flexmix-grade statistics: the maximum-likelihood default fit, what is reported,
concomitant variables, pruning, the GMM initialisation and posteriors."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._init import weighted_gmm_responsibilities
from skmoe.datasets import load_motorcycle, make_gated_regression, make_xor_blobs
from skmoe.exceptions import DegenerateExpertWarning

pd = pytest.importorskip("pandas")

# flexmix 2.3-19, FLXMRglm(~ times) with FLXPmultinom(~ times), k=4, best of 5
# stepFlexmix restarts (the measurement): total log-likelihood.
FLEXMIX_MOTORCYCLE_LOGLIK = -551.30


@pytest.fixture(scope="module")
def data():
    X, y = make_gated_regression(600, 3, 3, noise=0.3, return_labels=False, random_state=0)
    return X, y


def test_default_fit_reaches_flexmix_loglik_on_motorcycle():
    X, y = load_motorcycle(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe = MixtureOfExpertsRegressor(4, n_init=10, random_state=0).fit(X, y)
    total = moe.log_likelihood_ * len(y)
    assert total > FLEXMIX_MOTORCYCLE_LOGLIK - 0.5


def test_reported_loglik_is_the_mean_training_loglik(data):
    X, y = data
    w = np.random.RandomState(0).uniform(0.5, 2, len(y))
    moe = MixtureOfExpertsRegressor(3, gate_alpha=1e-2, top_k=2, random_state=0).fit(X, y, sample_weight=w)
    mean = np.average(moe.log_prob(X, y), weights=w)
    assert_allclose(moe.log_likelihood_, mean, rtol=1e-10)
    # top_k makes EM generalised: the iterate of the best objective is returned.
    assert np.any(np.isclose(moe.log_likelihood_curve_, moe.log_likelihood_, rtol=1e-12))
    assert_allclose(moe.objective_, np.max(moe.objective_curve_), rtol=1e-12)
    # The objective subtracts the gate's penalty.
    assert_allclose(moe.objective_, moe.log_likelihood_ - moe.gate_.penalty(), rtol=1e-10)
    assert moe.objective_ < moe.log_likelihood_
    assert moe.objective_curve_.shape == moe.log_likelihood_curve_.shape
    # Argmax pooling changes predictions, not what the fit reports.
    argmax = MixtureOfExpertsRegressor(3, gate_alpha=1e-2, top_k=2, pooling="argmax", random_state=0)
    argmax.fit(X, y, sample_weight=w)
    assert_allclose(argmax.log_likelihood_, moe.log_likelihood_, rtol=1e-10)


def test_constant_gate_is_a_mixture_of_regressions(data):
    X, y = data
    moe = MixtureOfExpertsRegressor(3, gate_features=[], random_state=0).fit(X, y)
    gate = moe.predict_gate(X)
    assert_allclose(gate, np.broadcast_to(gate[0], gate.shape), rtol=1e-12)
    assert moe.gate_.n_parameters_ == 2  # n_experts - 1 mixing proportions
    assert_allclose(gate[0], moe.expert_share_, atol=1e-3)


def test_gate_and_expert_features_by_index_name_and_mask(data):
    X, y = data
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    by_index = MixtureOfExpertsRegressor(3, gate_features=[0], expert_features=[1, 2], random_state=0).fit(X, y)
    by_name = MixtureOfExpertsRegressor(3, gate_features=["a"], expert_features=["b", "c"], random_state=0).fit(df, y)
    by_mask = MixtureOfExpertsRegressor(
        3, gate_features=[True, False, False], expert_features=np.array([False, True, True]), random_state=0
    ).fit(X, y)
    for other in (by_name, by_mask):
        assert_allclose(other.predict(X if other is by_mask else df), by_index.predict(X), rtol=1e-10)
    assert by_index.gate_.n_features_in_ == 1
    assert all(e.coef_.shape == (2,) for e in by_index.experts_)
    # predict, predict_gate, log_prob, bic use the same columns.
    assert np.isfinite(by_index.bic(X, y))
    assert by_index.predict_gate(X).shape == (600, by_index.n_experts_)


@pytest.mark.parametrize(
    "params, X_kind, match",
    [
        ({"gate_features": ["zzz"]}, "frame", "unknown columns"),
        ({"gate_features": [5]}, "array", "out of range"),
        ({"gate_features": ["a"]}, "array", "no feature names"),
        ({"expert_features": []}, "array", "selects no column"),
        ({"gate_features": [True]}, "array", "boolean mask of 1"),
        ({"gate_features": [0, 0]}, "array", "twice"),
    ],
)
def test_feature_selection_errors(data, params, X_kind, match):
    X, y = data
    X = pd.DataFrame(X, columns=["a", "b", "c"]) if X_kind == "frame" else X
    with pytest.raises(ValueError, match=match):
        MixtureOfExpertsRegressor(2, **params).fit(X, y)


def test_feature_names_after_column_transformer_with_pandas_output(data):
    X, y = data
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    pre = ColumnTransformer([("s", StandardScaler(), ["a", "b", "c"])], verbose_feature_names_out=False)
    pre.set_output(transform="pandas")
    pipe = make_pipeline(pre, MixtureOfExpertsRegressor(3, gate_features=["a"], random_state=0)).fit(df, y)
    assert pipe[-1].gate_.n_features_in_ == 1
    assert pipe.predict(df).shape == (600,)


def test_warm_start_with_changed_gate_features_starts_fresh(data):
    X, y = data
    moe = MixtureOfExpertsRegressor(3, warm_start=True, random_state=0).fit(X, y)
    moe.set_params(gate_features=[0])
    with pytest.warns(UserWarning, match="gate_features changed"):
        moe.fit(X, y)
    assert moe.gate_.n_features_in_ == 1


def test_min_prior_prunes_small_experts(data):
    X, y = data
    with pytest.warns(DegenerateExpertWarning, match="pruned expert"):
        moe = MixtureOfExpertsRegressor(5, min_prior=0.2, random_state=0).fit(X, y)
    assert moe.n_experts_ < 5
    gate = moe.predict_gate(X)
    assert gate.shape == (600, moe.n_experts_)
    assert np.all(np.average(gate, axis=0) >= 0.2 - 0.05)
    assert moe.noise_variance_.shape == moe.expert_share_.shape == (moe.n_experts_,)
    with pytest.raises(ValueError, match="every expert"):
        MixtureOfExpertsRegressor(3, min_prior=0.9, random_state=0).fit(X, y)


def test_gmm_init_honours_sample_weight():
    X, y = make_gated_regression(200, 2, 3, return_labels=False, random_state=1)
    Z = np.c_[X, y]
    w = np.random.RandomState(0).randint(1, 3, 200).astype(float)
    weighted = weighted_gmm_responsibilities(Z, w, 3, np.random.RandomState(0))
    repeated = weighted_gmm_responsibilities(np.repeat(Z, w.astype(int), axis=0), np.ones(int(w.sum())), 3,
                                             np.random.RandomState(0))
    first = np.cumsum(w.astype(int)) - w.astype(int)
    assert_allclose(repeated[:, first], weighted, rtol=1e-8, atol=1e-10)
    moe = MixtureOfExpertsRegressor(3, init="gmm", random_state=0).fit(X, y, sample_weight=w)
    assert moe.score(X, y) > 0.5
    clf = MixtureOfExpertsClassifier(4, init="gmm", random_state=0).fit(*make_xor_blobs(300, random_state=0))
    assert clf.n_experts_ >= 2


def test_labels_leaving_an_expert_empty_are_reseeded(data):
    X, y = data
    labels = np.zeros(600, dtype=int)
    labels[300:] = 1  # expert 2 gets nothing
    with pytest.warns(DegenerateExpertWarning, match="re-seeded expert"):
        moe = MixtureOfExpertsRegressor(3, init=labels, random_state=0).fit(X, y)
    assert moe.n_experts_ == 3


def test_predict_responsibilities(data):
    X, y = data
    moe = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    resp = moe.predict_responsibilities(X, y)
    assert resp.shape == (600, 3)
    assert_allclose(resp.sum(axis=1), 1.0)
    # Bayes: gate times expert likelihood, normalised.
    gate = moe.predict_gate(X)
    mean = moe.predict_experts(X)
    dens = np.exp(-0.5 * (y[:, None] - mean) ** 2 / moe.noise_variance_) / np.sqrt(2 * np.pi * moe.noise_variance_)
    expected = gate * dens / np.sum(gate * dens, axis=1, keepdims=True)
    assert_allclose(resp, expected, rtol=1e-8, atol=1e-12)
    assert_allclose(moe.expert_share_, resp.mean(axis=0), rtol=1e-8)
