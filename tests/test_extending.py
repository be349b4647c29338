"""The user guide's "Extending skmoe" examples: a user-written likelihood and gate.

``docs/extending.rst`` shows these classes with ``literalinclude``, so the
code a reader copies is the code tested here.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_gated_regression
from skmoe.likelihoods import BaseLikelihood


class LaplaceLikelihood(BaseLikelihood):
    """``y | x, expert k ~ Laplace(f_k(x), b_k)``: experts robust to outliers in y."""

    def default_expert(self):
        return LinearRegression()

    def expert_outputs(self, experts, X, y, solver):
        return solver.predict_T(experts, X)  # (n_experts, n_samples) means

    def init_params(self, n_experts):
        return np.ones(n_experts)  # one scale b_k per expert

    def log_likelihood(self, outputs_T, y, params, out=None):
        b = params[:, None]
        return -np.abs(y - outputs_T) / b - np.log(2.0 * b)

    def m_step(self, y, outputs_T, resp_T, sample_weight, params):
        # The weighted mean absolute residual maximises the expected log-likelihood in b_k.
        w = resp_T * sample_weight
        scale = (w * np.abs(y - outputs_T)).sum(axis=1) / w.sum(axis=1)
        return np.maximum(scale, 1e-8 * np.abs(y).max())

    def mean_variance(self, outputs_T, params):
        return outputs_T, 2.0 * params**2

    def n_parameters(self, params):
        return len(params)

    def fitted_attributes(self, params):
        return {"laplace_scale_": params}


class LogisticRegressionGate(BaseEstimator):
    """A gate from scikit-learn's LogisticRegression: soft targets as weighted copies of the rows.

    Each row appears once per expert, labelled with that expert and weighted
    by its responsibility times the sample weight: the weighted
    cross-entropy of the copies is the gate's soft-target cross-entropy.
    """

    def __init__(self, C=100.0):
        self.C = C

    def fit(self, X, resp, sample_weight=None):
        n_samples, n_experts = resp.shape
        weight = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight)
        X_rep = np.tile(X, (n_experts, 1))
        labels = np.repeat(np.arange(n_experts), n_samples)
        w_rep = (np.asarray(resp).T * weight).ravel()
        self.model_ = LogisticRegression(C=self.C, max_iter=1000)
        self.model_.fit(X_rep, labels, sample_weight=w_rep)
        self.n_parameters_ = (n_experts - 1) * (X.shape[1] + 1)
        return self

    def predict_log_proba(self, X):
        return self.model_.predict_log_proba(X)


def test_user_likelihood_recovers_laplace_scales():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(4000, 1))
    left = X[:, 0] < 0
    scale = np.where(left, 0.1, 0.4)
    y = np.where(left, -3 * X[:, 0], 2 * X[:, 0] + 1) + rng.laplace(0.0, scale)
    moe = MixtureOfExpertsRegressor(2, likelihood=LaplaceLikelihood(), random_state=0).fit(X, y)
    order = np.argsort(moe.laplace_scale_)
    assert_allclose(moe.laplace_scale_[order], [0.1, 0.4], rtol=0.1)
    assert moe.likelihood_.params_ is moe.laplace_scale_
    # predict, return_std, log_prob and bic follow the likelihood.
    mean, std = moe.predict(X[:5], return_std=True)
    assert np.all(std > 0)
    assert np.isfinite(moe.bic(X, y))
    assert moe._n_parameters() == 2 * 2 + 2 + 2  # experts, gate, scales


def test_user_gate_fits_like_the_linear_gate():
    X, y = make_gated_regression(1500, 2, 3, noise=0.3, return_labels=False, random_state=0)
    kw = dict(n_experts=3, random_state=0, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        custom = MixtureOfExpertsRegressor(gate=LogisticRegressionGate(), **kw).fit(X, y)
        linear = MixtureOfExpertsRegressor(**kw).fit(X, y)
    assert custom.score(X, y) > linear.score(X, y) - 0.01
    assert custom.gate_.n_parameters_ == 2 * 3
    assert custom.predict_gate(X).shape == (1500, 3)


def test_user_gate_with_backend_torch_is_refused_with_the_nearest_combination():
    X, y = make_gated_regression(100, 2, 2, return_labels=False, random_state=0)
    pytest.importorskip("torch")
    moe = MixtureOfExpertsRegressor(2, gate=LogisticRegressionGate(), backend="torch")
    with pytest.raises(ValueError, match="backend='numpy'"):
        moe.fit(X, y)
