"""Fresh expert objects for each generic M-step (``skmoe._experts.fresh_copy``)."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skmoe._experts import fit_experts, fresh_copy


class _CustomClone(LinearRegression):
    cloned = 0

    def __sklearn_clone__(self):
        type(self).cloned += 1
        return super().__sklearn_clone__()


class _NotAnEstimator:
    """Duck-typed expert: get_params/set_params but no BaseEstimator."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def get_params(self, deep=True):
        return {"alpha": self.alpha}

    def set_params(self, **params):
        self.alpha = params.get("alpha", self.alpha)
        return self

    def fit(self, X, y, sample_weight=None):
        self.coef_ = np.zeros(X.shape[1])
        return self

    def predict(self, X):
        return X @ self.coef_


TEMPLATES = [
    LinearRegression(),
    Ridge(alpha=0.3),
    DecisionTreeRegressor(max_depth=3, random_state=4),
    HistGradientBoostingRegressor(max_iter=5, random_state=2),
    make_pipeline(StandardScaler(), FunctionTransformer(lambda X: X * 2.0), Ridge()),
]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: type(t).__name__)
def test_fresh_copy_is_what_clone_builds(template):
    copied, cloned = fresh_copy(template), clone(template)
    assert copied is not template and type(copied) is type(cloned)
    params_copy, params_clone = copied.get_params(deep=False), cloned.get_params(deep=False)
    assert params_copy.keys() == params_clone.keys()
    for key in params_copy:
        if hasattr(params_clone[key], "get_params") or isinstance(params_clone[key], list):
            continue  # nested estimators: new objects on both sides
        assert params_copy[key] == params_clone[key] or params_copy[key] is params_clone[key]
    rng = np.random.RandomState(0)
    X, y, w = rng.randn(60, 3), rng.randn(60), rng.rand(60)
    weights = {"sample_weight": w} if not hasattr(template, "steps") else {}
    np.testing.assert_array_equal(
        copied.fit(X, y, **weights).predict(X), cloned.fit(X, y, **weights).predict(X)
    )


def test_custom_clone_and_duck_typed_experts_keep_clone():
    _CustomClone.cloned = 0
    fresh_copy(_CustomClone())
    assert _CustomClone.cloned == 1
    duck = _NotAnEstimator(alpha=2.0)
    copied = fresh_copy(duck)
    assert copied is not duck and copied.alpha == 2.0


def test_generic_m_step_fits_new_objects_each_time():
    rng = np.random.RandomState(0)
    X, y = rng.randn(50, 2), rng.randn(50)
    weights_T = rng.rand(2, 50)
    templates = [DecisionTreeRegressor(max_depth=2, random_state=0)] * 2
    first = fit_experts(templates, X, y, weights_T)
    second = fit_experts(templates, X, y, weights_T)
    assert all(a is not b for a in first for b in second)
    assert all(not hasattr(t, "tree_") for t in templates)


class _Weighted(RegressorMixin, BaseEstimator):
    def fit(self, X, y, sample_weight=None):
        self.mean_ = np.average(y, weights=sample_weight)
        return self

    def predict(self, X):
        return np.full(X.shape[0], self.mean_)


def test_pipeline_weights_are_routed_to_every_step_that_takes_them():
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 2), rng.randn(40)
    weights_T = np.vstack([np.r_[np.ones(20), np.zeros(20)], np.r_[np.zeros(20), np.ones(20)]])
    experts = fit_experts([make_pipeline(StandardScaler(), _Weighted())] * 2, X, y, weights_T)
    assert experts[0][-1].mean_ == pytest.approx(y[:20].mean())
    assert experts[1][-1].mean_ == pytest.approx(y[20:].mean())
