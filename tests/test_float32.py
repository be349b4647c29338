"""float32 input is kept end to end: the E-step, every prediction method, dense and sparse."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils import get_tags

import skmoe._em
from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import make_gated_regression, make_xor_blobs
from tests._tolerances import normal_equations_cond, optimum_tol

REGRESSION_METHODS = {
    "predict": lambda m, X, y: m.predict(X),
    "predict_std": lambda m, X, y: m.predict(X, return_std=True)[1],
    "predict_quantiles": lambda m, X, y: m.predict_quantiles(X, [0.1, 0.9]),
    "predict_interval": lambda m, X, y: m.predict_interval(X),
    "sample_y": lambda m, X, y: m.sample_y(X, 2, random_state=0),
    "predict_experts": lambda m, X, y: m.predict_experts(X),
    "predict_gate": lambda m, X, y: m.predict_gate(X),
    "log_prob": lambda m, X, y: m.log_prob(X, y),
    "predict_responsibilities": lambda m, X, y: m.predict_responsibilities(X, y),
}
CLASSIFICATION_METHODS = {
    "predict_proba": lambda m, X, y: m.predict_proba(X),
    "predict_log_proba": lambda m, X, y: m.predict_log_proba(X),
    "predict_experts_proba": lambda m, X, y: m.predict_experts_proba(X),
    "predict_gate": lambda m, X, y: m.predict_gate(X),
    "log_prob": lambda m, X, y: m.log_prob(X, y),
    "predict_responsibilities": lambda m, X, y: m.predict_responsibilities(X, y),
}


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _assert_dtypes(methods, model, X, y, dtype):
    """Every method's output has ``dtype`` and no NaN (log-probabilities may be -inf)."""
    for name, method in methods.items():
        out = method(model, X, y)
        assert out.dtype == dtype, name
        assert not np.any(np.isnan(out)), name


def _regression(n=600, seed=0):
    X, y = make_gated_regression(n, 3, 3, noise=0.3, return_labels=False, random_state=seed)
    return X, y


def _target(likelihood, y):
    if likelihood == "poisson":
        return np.round(np.abs(y))
    if likelihood == "gamma":
        return np.abs(y) + 0.5
    return y


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("likelihood", ["gaussian", "poisson", "gamma", "student_t"])
def test_regressor_keeps_float32(likelihood, sparse):
    X, y = _regression()
    y = _target(likelihood, y)
    X32 = X.astype(np.float32)
    if sparse:
        X32 = sp.csr_matrix(X32)
    model = _fit(MixtureOfExpertsRegressor(3, likelihood=likelihood, max_iter=10, random_state=0), X32, y)
    _assert_dtypes(REGRESSION_METHODS, model, X32, y, np.float32)
    assert model.predict_expert(X32).shape == (X.shape[0],)
    _assert_dtypes(REGRESSION_METHODS, model, X, y, np.float64)  # float64 input keeps float64


@pytest.mark.parametrize("params", [
    {"pooling": "argmax"}, {"top_k": 1}, {"top_k": 2}, {"algorithm": "cem"}, {"algorithm": "sem"},
    {"routing": "expert_choice"}, {"gate": "mlp"}, {"gate_noise": 0.3, "top_k": 2},
])
def test_pooling_and_routing_options_keep_float32(params):
    X, y = _regression(300)
    X32 = X.astype(np.float32)
    model = _fit(MixtureOfExpertsRegressor(3, max_iter=5, random_state=0, **params), X32, y)
    _assert_dtypes(REGRESSION_METHODS, model, X32, y, np.float32)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("pooling", ["weighted", "argmax"])
def test_classifier_keeps_float32(sparse, pooling):
    X, y = make_xor_blobs(n_samples=400, random_state=0)
    X32 = X.astype(np.float32)
    if sparse:
        X32 = sp.csr_matrix(X32)
    model = _fit(MixtureOfExpertsClassifier(4, pooling=pooling, max_iter=10, random_state=0), X32, y)
    _assert_dtypes(CLASSIFICATION_METHODS, model, X32, y, np.float32)
    assert_array_equal(model.predict(X32), model.classes_[np.argmax(model.predict_proba(X32), axis=1)])
    _assert_dtypes(CLASSIFICATION_METHODS, model, X, y, np.float64)


def test_generic_experts_predictions_are_cast_to_float32():
    # A tree predicts float64 whatever its input: the experts' outputs are kept in float32.
    X, y = _regression()
    model = _fit(MixtureOfExpertsRegressor(2, expert=DecisionTreeRegressor(max_depth=3), max_iter=4,
                                           random_state=0), X.astype(np.float32), y)
    assert model.predict_experts(X.astype(np.float32)).dtype == np.float32
    assert model.predict(X.astype(np.float32), return_std=True)[1].dtype == np.float32


def test_the_e_step_runs_in_float32(monkeypatch):
    seen = []
    original = skmoe._em.responsibilities

    def recording(log_gate_T, log_lik_T, out=None):
        seen.append((log_gate_T.dtype, log_lik_T.dtype))
        resp_T, log_prob = original(log_gate_T, log_lik_T, out=out)
        seen.append((resp_T.dtype, log_prob.dtype))
        return resp_T, log_prob

    monkeypatch.setattr(skmoe._em, "responsibilities", recording)
    X, y = _regression(300)
    _fit(MixtureOfExpertsRegressor(2, max_iter=3, random_state=0), X.astype(np.float32), y)
    assert seen and all(dtypes == (np.float32, np.float32) for dtypes in seen)
    seen.clear()
    _fit(MixtureOfExpertsRegressor(2, max_iter=3, random_state=0), X, y)
    assert seen and all(dtypes == (np.float64, np.float64) for dtypes in seen)


def test_float32_regression_fit_agrees_with_float64():
    # Two well-separated regimes: EM converges to the same fixed point from the same start.
    rng = np.random.RandomState(1)
    X = rng.uniform(-2, 2, size=(2_000, 2))
    y = np.where(X[:, 0] < 0, 1.0 + 2.0 * X[:, 1], -1.0 - 3.0 * X[:, 1]) + 0.1 * rng.standard_normal(2_000)
    params = {"n_experts": 2, "max_iter": 300, "tol": 1e-10, "random_state": 0}
    a = _fit(MixtureOfExpertsRegressor(**params), X, y)
    b = _fit(MixtureOfExpertsRegressor(**params), X.astype(np.float32), y)
    # The location of the EM optimum in float32: sqrt(cond * eps32) of the normal equations.
    cond = max(normal_equations_cond(X, w) for w in a.predict_responsibilities(X, y).T)
    rtol = optimum_tol(np.float32, cond=cond)
    for ea, eb in zip(a.experts_, b.experts_):
        assert_allclose(eb.coef_, ea.coef_, rtol=rtol, atol=rtol)
        assert_allclose(eb.intercept_, ea.intercept_, rtol=rtol, atol=rtol)
    assert_allclose(b.noise_variance_, a.noise_variance_, rtol=rtol)
    assert_allclose(b.log_likelihood_, a.log_likelihood_, rtol=rtol)
    X32 = X.astype(np.float32)
    assert_allclose(b.predict(X32), a.predict(X), rtol=rtol, atol=rtol * np.abs(y).max())
    assert_allclose(b.predict_gate(X32), a.predict_gate(X), atol=rtol)
    assert b.converged_  # the stopping rule's rounding is float32's


def test_float32_classification_fit_agrees_with_float64():
    X, y = make_xor_blobs(n_samples=600, random_state=0)
    params = {"n_experts": 4, "max_iter": 200, "tol": 1e-9, "random_state": 0,
                  "expert": LogisticRegression(C=10.0, tol=1e-8, max_iter=1000)}
    a = _fit(MixtureOfExpertsClassifier(**params), X, y)
    b = _fit(MixtureOfExpertsClassifier(**params), X.astype(np.float32), y)
    # Logistic experts and a softmax gate: their Hessians are well conditioned
    # (separated blobs, C=10); optimum_tol at the default condition number.
    rtol = optimum_tol(np.float32, cond=100.0)
    assert_allclose(b.predict_proba(X.astype(np.float32)), a.predict_proba(X), atol=rtol)
    # The mean log-likelihood is near 0 here (well separated classes): compared
    # absolutely, as the probabilities are (|d log p| ~ |dp| for p near 1).
    assert_allclose(b.log_likelihood_, a.log_likelihood_, rtol=rtol, atol=rtol)
    assert_array_equal(b.predict(X.astype(np.float32)), a.predict(X))


@pytest.mark.parametrize("Estimator", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier])
def test_tags_declare_the_preserved_dtypes(Estimator):
    tags = get_tags(Estimator())
    assert tags.transformer_tags.preserves_dtype == ["float64", "float32"]
