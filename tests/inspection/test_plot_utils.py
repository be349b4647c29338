"""The helpers every display shares: the grid and the keyword merging."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import MixtureOfExpertsRegressor
from skmoe.inspection._plot_utils import (
    _check_estimator,
    _feature_grid,
    _model_input,
    _style_kwargs,
)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(60, 3)) * [1.0, 10.0, 100.0]
    y = X[:, 0] + 0.1 * rng.randn(60)
    pipe = make_pipeline(
        StandardScaler(), MixtureOfExpertsRegressor(n_experts=2, max_iter=5, random_state=0)
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(X, y)
    return _check_estimator(pipe, "test"), X


def test_check_estimator_unwraps_pipeline(fitted):
    mixture, X = fitted
    assert isinstance(mixture.model, MixtureOfExpertsRegressor)
    assert_allclose(mixture.to_model(X), mixture.estimator[0].transform(X))


def test_feature_grid_two_features(fitted):
    mixture, X = fitted
    (xx0, xx1), X_grid = _feature_grid(
        mixture, X, (2, 0), grid_resolution=4, fixed_values={1: 3.0}, eps=None
    )
    assert xx0.shape == xx1.shape == (4, 4)
    span = np.ptp(X, axis=0)
    assert_allclose(xx0[0], np.linspace(X[:, 2].min() - 0.05 * span[2],
                                        X[:, 2].max() + 0.05 * span[2], 4))
    assert_allclose(xx1[:, 0], np.linspace(X[:, 0].min() - 0.05 * span[0],
                                           X[:, 0].max() + 0.05 * span[0], 4))
    assert X_grid.shape == (16, 3)
    assert_array_equal(X_grid[:, 2], xx0.ravel())
    assert_array_equal(X_grid[:, 0], xx1.ravel())
    assert_array_equal(X_grid[:, 1], 3.0)
    # in the user's units; the model gets them scaled
    assert_allclose(_model_input(mixture, X_grid), mixture.estimator[0].transform(X_grid))


def test_feature_grid_one_feature_and_float_eps(fitted):
    mixture, X = fitted
    (x,), X_grid = _feature_grid(mixture, X, (1,), grid_resolution=5, eps=0.5)
    assert_allclose(x, np.linspace(X[:, 1].min() - 0.5, X[:, 1].max() + 0.5, 5))
    assert_allclose(X_grid[:, [0, 2]], np.tile(X[:, [0, 2]].mean(axis=0), (5, 1)))
    with pytest.raises(ValueError, match="grid_resolution must be an integer greater than 1"):
        _feature_grid(mixture, X, (1,), grid_resolution=1)


@pytest.mark.parametrize("kind", ["line", "collection"])
def test_style_kwargs_alias_replaces_default(kind):
    defaults = {"color": "k", "linewidth": 2, "label": "x"}
    merged = _style_kwargs(defaults, {"c": "r", "lw": 3}, kind=kind)
    assert merged == {"label": "x", "c": "r", "lw": 3}
    assert defaults == {"color": "k", "linewidth": 2, "label": "x"}  # not modified
    assert _style_kwargs(defaults, None) == defaults


def test_style_kwargs_collection_groups():
    defaults = {"c": [0, 1], "edgecolors": "k", "linewidths": 0.5, "s": 20}
    merged = _style_kwargs(defaults, {"facecolor": "r", "ec": "b", "lw": 1}, kind="collection")
    assert merged == {"s": 20, "facecolor": "r", "ec": "b", "lw": 1}


def test_style_kwargs_errors():
    with pytest.raises(TypeError, match="band_kw got both 'linewidth' and 'lw'"):
        _style_kwargs({}, {"lw": 1, "linewidth": 2}, param="band_kw")
    with pytest.raises(TypeError, match="gate_kw must be a dict"):
        _style_kwargs({}, ["lw", 1], param="gate_kw")
