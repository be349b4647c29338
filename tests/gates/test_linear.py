"""Tests of the NumPy softmax gate, :class:`skmoe.gates.LinearGate`."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import BaseEstimator

from skmoe.gates import LinearGate
from skmoe.gates._network import weighted_standardisation


def _softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    return P / P.sum(axis=1, keepdims=True)


def _soft_problem(n=300, n_features=3, n_experts=3, seed=0):
    """Soft targets from a random softmax gate, mixed with Dirichlet noise."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features)
    W = rng.randn(n_experts, n_features)
    resp = 0.7 * _softmax(X @ W.T) + 0.3 * rng.dirichlet(np.ones(n_experts), n)
    return X, resp, rng


def test_recovers_known_softmax_gate():
    rng = np.random.RandomState(42)
    n = 5000
    X = rng.randn(n, 2)
    W = np.array([[3.0, 0.0], [0.0, 3.0], [-3.0, -3.0]])
    b = np.array([0.5, 0.0, -0.5])
    P = _softmax(X @ W.T + b)
    # Hard-ish labels: one expert drawn per sample from the true gate.
    labels = (rng.rand(n, 1) > np.cumsum(P, axis=1)).sum(axis=1)
    resp = np.eye(3)[labels]
    gate = LinearGate(alpha=0.0).fit(X, resp)

    def centred(A):
        return A - A.mean(axis=0)  # softmax parameters are defined up to a shift

    assert_allclose(centred(gate.coef_), centred(W), atol=0.35)
    assert_allclose(gate.intercept_, centred(b), atol=0.2)
    assert np.abs(gate.predict_proba(X) - P).mean() < 0.015


def test_invariant_to_feature_scaling_and_shift():
    X, resp, _ = _soft_problem()
    scaled = X * np.array([1e3, 1e-2, 7.0]) + np.array([-50.0, 3.0, 1e4])
    p = LinearGate().fit(X, resp).predict_proba(X)
    p_scaled = LinearGate().fit(scaled, resp).predict_proba(scaled)
    assert_allclose(p_scaled, p, rtol=1e-5, atol=1e-8)


def test_warm_start_converges_in_few_iterations():
    X, resp, rng = _soft_problem()
    gate = LinearGate().fit(X, resp)
    cold_iter = gate.n_iter_
    assert gate.fit(X, resp).n_iter_ <= 1
    # A small change of the targets, as between two EM iterations.
    resp2 = 0.95 * resp + 0.05 * rng.dirichlet(np.ones(3), len(X))
    warm_iter = gate.fit(X, resp2).n_iter_
    assert warm_iter < cold_iter
    assert_allclose(
        gate.predict_proba(X), LinearGate().fit(X, resp2).predict_proba(X), atol=1e-6
    )


def test_sample_weight_two_equals_duplicated_row():
    X, resp, _ = _soft_problem(n=40)
    sample_weight = np.ones(len(X))
    sample_weight[[0, 5]] = 2.0
    weighted = LinearGate().fit(X, resp, sample_weight=sample_weight)
    index = np.r_[np.arange(len(X)), 0, 5]
    duplicated = LinearGate().fit(X[index], resp[index])
    assert_allclose(weighted.coef_, duplicated.coef_, rtol=1e-5, atol=1e-7)
    assert_allclose(weighted.intercept_, duplicated.intercept_, rtol=1e-5, atol=1e-7)


def test_float32_input():
    X, resp, _ = _soft_problem()
    X32 = X.astype(np.float32)
    gate = LinearGate().fit(X32, resp)
    log_proba = gate.predict_log_proba(X32)
    assert log_proba.dtype == np.float32
    assert np.all(np.isfinite(log_proba))
    p64 = LinearGate().fit(X, resp).predict_proba(X)
    # A float32 L-BFGS fit pins its optimum to about sqrt(eps32), not eps32.
    assert_allclose(np.exp(log_proba), p64, atol=float(np.sqrt(np.finfo(np.float32).eps)) * 10)


def test_layout_for_the_em_loop():
    X, resp, _ = _soft_problem()
    log_proba = LinearGate().fit(X, resp).predict_log_proba(X)
    assert log_proba.shape == resp.shape
    assert log_proba.T.flags.c_contiguous
    assert_allclose(np.exp(log_proba).sum(axis=1), 1.0)


class _FitOnlyLinearGate(BaseEstimator):
    """A LinearGate behind the minimal protocol: the EM loop can only call ``fit``."""

    def __init__(self, max_iter=5):
        self.max_iter = max_iter

    def fit(self, X, resp, sample_weight=None):
        if not hasattr(self, "gate_"):
            self.gate_ = LinearGate(max_iter=self.max_iter)
        self.gate_.fit(X, resp, sample_weight)
        return self

    def predict_log_proba(self, X):
        return self.gate_.predict_log_proba(X)

    def penalty(self):
        return self.gate_.penalty()


def test_em_loop_prepared_gate_path_equals_public_fit():
    # The EM loop prepares the built-in gate's weights and standardisation once
    # per run and skips the validation of its own responsibilities; a whole
    # fit through the public fit (the same gate behind the minimal protocol)
    # must be the same.
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.datasets import make_gated_regression

    X, y = make_gated_regression(
        n_samples=600, n_features=3, n_experts=3, return_labels=False, random_state=0
    )
    sample_weight = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    fits = []
    for gate in (LinearGate(max_iter=5), _FitOnlyLinearGate(max_iter=5)):
        moe = MixtureOfExpertsRegressor(n_experts=3, gate=gate, max_iter=30, tol=0, random_state=0)
        fits.append(moe.fit(X * 100.0 + 7.0, y, sample_weight=sample_weight))
    fast, public = fits
    assert type(fast.gate_) is LinearGate and type(public.gate_) is _FitOnlyLinearGate
    assert_allclose(fast.log_likelihood_curve_, public.log_likelihood_curve_, rtol=1e-10)
    # The built-in gate can renumber its outputs, so that fit's experts are in
    # the stable order; the minimal-protocol gate keeps EM's order.
    perm = [
        int(np.argmin([np.abs(e.coef_ - f.coef_).max() for f in public.experts_])) for e in fast.experts_
    ]
    assert sorted(perm) == [0, 1, 2]
    assert_allclose(fast.gate_.coef_, public.gate_.gate_.coef_[perm], rtol=1e-8, atol=1e-12)
    Xs = X * 100.0 + 7.0
    assert_allclose(fast.predict_gate(Xs), public.predict_gate(Xs)[:, perm], rtol=1e-8, atol=1e-12)
    assert_allclose(fast.predict(Xs), public.predict(Xs), rtol=1e-10)


@pytest.mark.parametrize("params", [{"alpha": -1.0}, {"max_iter": 0}, {"tol": -1.0}])
def test_invalid_parameters(params):
    X, resp, _ = _soft_problem(n=20)
    with pytest.raises(ValueError, match=next(iter(params))):
        LinearGate(**params).fit(X, resp)


def test_wrong_number_of_features_at_predict():
    X, resp, _ = _soft_problem(n=20)
    gate = LinearGate(max_iter=5).fit(X, resp)
    message = "X has 5 features, but LinearGate is expecting 3 features as input."
    for method in (gate.predict_log_proba, gate.log_proba_T, gate.decision_function_T):
        with pytest.raises(ValueError, match=message):
            method(np.ones((4, 5)))


def test_penalty_is_half_alpha_squared_standardised_weights():
    X, resp, rng = _soft_problem()
    X = X * [1.0, 100.0, 0.01] + 3.0
    sample_weight = rng.uniform(0.5, 2.0, len(X))
    gate = LinearGate(alpha=0.1).fit(X, resp, sample_weight)
    weight = sample_weight / sample_weight.sum()
    _, scale = weighted_standardisation(X, weight)
    expected = 0.5 * 0.1 * np.sum((gate.coef_ * scale) ** 2)
    assert gate.penalty() == gate.penalty_
    assert_allclose(gate.penalty(), expected, rtol=1e-10)
    # loss_ = weighted cross-entropy + penalty.
    cross_entropy = -np.sum(weight[:, None] * resp * gate.predict_log_proba(X))
    assert_allclose(gate.loss_, cross_entropy + gate.penalty(), rtol=1e-10)

