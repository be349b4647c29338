"""Tests of skmoe.datasets: generators and the bundled motorcycle data."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import r2_score
from sklearn.utils import Bunch

from skmoe.datasets import (
    gated_regression_mean,
    load_motorcycle,
    make_contaminated_regression,
    make_count_regression,
    make_gated_regression,
    make_positive_regression,
    make_xor_blobs,
)
from tests._tolerances import tol

PARAM_SHAPES = {
    "gate_coef": lambda k, d: (k, d),
    "gate_intercept": lambda k, d: (k,),
    "expert_coef": lambda k, d: (k, d),
    "expert_intercept": lambda k, d: (k,),
    "noise_std": lambda k, d: (k,),
}


# --------------------------------------------------------------------------
# make_gated_regression


@pytest.mark.parametrize("n_features, n_experts", [(1, 1), (1, 3), (2, 3), (5, 4)])
def test_make_gated_regression_shapes(n_features, n_experts):
    X, y, labels, params = make_gated_regression(
        n_samples=300,
        n_features=n_features,
        n_experts=n_experts,
        return_labels=True,
        return_params=True,
        random_state=0,
    )
    assert X.shape == (300, n_features)
    assert y.shape == (300,)
    assert labels.shape == (300,)
    assert np.issubdtype(labels.dtype, np.integer)
    assert labels.min() >= 0 and labels.max() < n_experts
    for key, shape in PARAM_SHAPES.items():
        assert params[key].shape == shape(n_experts, n_features), key
    assert params["gate_sharpness"] == 5.0
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(y))


def test_make_gated_regression_default_warns_and_returns_labels():
    # Deprecation (0.2 -> 0.3): without return_labels, the old 3-tuple and a
    # FutureWarning that says what changes and how to choose.
    with pytest.warns(FutureWarning, match=r"return \(X, y\) from version 0\.3") as record:
        out = make_gated_regression(n_samples=50, random_state=0)
    assert len(record) == 1
    assert "return_labels=True" in str(record[0].message)
    assert "return_labels=False" in str(record[0].message)
    # Attributed to the caller, so the caller's filters apply.
    assert record[0].filename == __file__
    assert len(out) == 3
    expected = make_gated_regression(n_samples=50, return_labels=True, random_state=0)
    for got, want in zip(out, expected):
        assert_array_equal(got, want)


def test_make_gated_regression_default_with_params_warns():
    with pytest.warns(FutureWarning, match="return_labels"):
        out = make_gated_regression(n_samples=50, return_params=True, random_state=0)
    assert len(out) == 4 and isinstance(out[3], dict)


@pytest.mark.parametrize(
    "return_labels, return_params, kinds",
    [
        (False, False, ["X", "y"]),
        (True, False, ["X", "y", "labels"]),
        (False, True, ["X", "y", "params"]),
        (True, True, ["X", "y", "labels", "params"]),
        (np.bool_(False), False, ["X", "y"]),
    ],
)
def test_make_gated_regression_return_flags(return_labels, return_params, kinds):
    # An explicit flag never warns; the tuple is X, y, [labels], [params].
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = make_gated_regression(
            n_samples=40,
            return_labels=return_labels,
            return_params=return_params,
            random_state=0,
        )
    assert len(out) == len(kinds)
    full = make_gated_regression(
        n_samples=40, return_labels=True, return_params=True, random_state=0
    )
    reference = dict(zip(["X", "y", "labels", "params"], full))
    for kind, value in zip(kinds, out):
        if kind == "params":
            assert set(value) == set(reference["params"])
        else:
            # The flags change the output, never the draws.
            assert_array_equal(value, reference[kind])


def test_make_gated_regression_reproducible():
    a = make_gated_regression(
        n_samples=200, return_labels=True, return_params=True, random_state=42
    )
    b = make_gated_regression(
        n_samples=200,
        return_labels=True,
        return_params=True,
        random_state=np.random.RandomState(42),
    )
    for u, v in zip(a[:3], b[:3]):
        assert_array_equal(u, v)
    for key in PARAM_SHAPES:
        assert_array_equal(a[3][key], b[3][key])
    c = make_gated_regression(n_samples=200, return_labels=False, random_state=43)
    assert not np.allclose(a[1], c[1])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_features, n_experts", [(1, 3), (2, 3), (3, 5)])
def test_make_gated_regression_every_region_present(seed, n_features, n_experts):
    # The gate intercepts balance the regions: each holds about 1 / n_experts.
    _, _, labels = make_gated_regression(
        n_samples=1000,
        n_features=n_features,
        n_experts=n_experts,
        return_labels=True,
        random_state=seed,
    )
    share = np.bincount(labels, minlength=n_experts) / labels.size
    assert share.min() > 0.1, share
    assert_allclose(share, 1 / n_experts, atol=0.06)


def test_make_gated_regression_noise_recovered_per_region():
    noise = np.array([0.1, 0.5, 1.0])
    X, y, labels, params = make_gated_regression(
        n_samples=30_000, noise=noise, return_labels=True, return_params=True,
        random_state=0,
    )
    assert_array_equal(params["noise_std"], noise)
    expert_mean = np.einsum("ij,ij->i", X, params["expert_coef"][labels])
    residual = y - expert_mean - params["expert_intercept"][labels]
    for k in range(3):
        std = residual[labels == k].std()
        assert abs(std - noise[k]) < 0.1 * noise[k], (k, std)


@pytest.mark.parametrize("noise", [0.3, np.float32(0.3), np.array(0.3)])
def test_make_gated_regression_scalar_noise_broadcast(noise):
    *_, params = make_gated_regression(
        n_samples=10, n_experts=4, noise=noise, return_labels=False, return_params=True,
        random_state=0,
    )
    # Equal up to one rounding of 0.3 to the dtype the noise was given in.
    rtol = tol(np.asarray(noise).dtype, factor=1)
    assert_allclose(params["noise_std"], np.full(4, 0.3), rtol=rtol)


def test_make_gated_regression_zero_noise_is_exact():
    X, y, labels, params = make_gated_regression(
        n_samples=100, noise=0.0, return_labels=True, return_params=True, random_state=0
    )
    expected = (
        np.einsum("ij,ij->i", X, params["expert_coef"][labels])
        + params["expert_intercept"][labels]
    )
    assert_allclose(y, expected)


def test_make_gated_regression_experts_distinct():
    *_, params = make_gated_regression(
        n_samples=10, n_experts=4, return_labels=False, return_params=True, random_state=0
    )
    coef = params["expert_coef"]
    assert np.all((np.abs(coef) >= 1) & (np.abs(coef) <= 3))
    gate = params["gate_coef"]
    dist = np.linalg.norm(gate[:, None] - gate[None], axis=-1)
    assert dist[np.triu_indices(4, k=1)].min() > 0.1


@pytest.mark.parametrize("seed", range(3))
def test_true_mean_explains_most_variance(seed):
    X, y, params = make_gated_regression(
        n_samples=5000, gate_sharpness=20.0, return_labels=False, return_params=True,
        random_state=seed,
    )
    assert r2_score(y, gated_regression_mean(X, params)) > 0.85
    # Linear regression on all the data cannot find the regions.
    design = np.column_stack([X, np.ones(len(X))])
    linear = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    assert r2_score(y, gated_regression_mean(X, params)) > r2_score(y, linear) + 0.1


def test_true_mean_matches_label_means_when_sharp():
    # With an almost hard gate, the true mean is the labelled expert's line.
    X, _, labels, params = make_gated_regression(
        n_samples=2000, gate_sharpness=1e4, noise=0.0, return_labels=True,
        return_params=True, random_state=0,
    )
    hard = (
        np.einsum("ij,ij->i", X, params["expert_coef"][labels])
        + params["expert_intercept"][labels]
    )
    close = np.isclose(gated_regression_mean(X, params), hard, atol=1e-6)
    assert close.mean() > 0.99


def test_gate_sharpness_controls_label_randomness():
    def agreement(sharpness):
        X, _, labels, params = make_gated_regression(
            n_samples=5000, gate_sharpness=sharpness, return_labels=True,
            return_params=True, random_state=0,
        )
        logits = X @ params["gate_coef"].T + params["gate_intercept"]
        return np.mean(np.argmax(logits, axis=1) == labels)

    assert agreement(50.0) > 0.97
    assert agreement(0.5) < agreement(5.0) < agreement(50.0)


def test_gated_regression_mean_checks_features():
    X, _, params = make_gated_regression(
        n_samples=10, return_labels=False, return_params=True
    )
    with pytest.raises(ValueError, match="2 features"):
        gated_regression_mean(X[:, :1], params)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"n_features": 0}, "n_features"),
        ({"n_experts": 0}, "n_experts"),
        ({"n_experts": "3"}, "n_experts"),
        ({"noise": -0.1}, "noise"),
        ({"noise": np.nan}, "noise"),
        ({"noise": [0.1, 0.2]}, r"noise .*shape \(n_experts,\)"),
        ({"noise": [0.1, -0.2, 0.3]}, "noise"),
        ({"noise": "loud"}, "noise"),
        ({"gate_sharpness": 0.0}, "gate_sharpness"),
        ({"gate_sharpness": np.inf}, "gate_sharpness"),
        ({"return_params": "yes"}, "return_params"),
        ({"return_labels": "yes"}, "return_labels"),
        ({"return_labels": None}, "return_labels"),
        ({"return_labels": 1}, "return_labels"),
    ],
)
def test_make_gated_regression_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_gated_regression(**{"return_labels": False, **kwargs})


# --------------------------------------------------------------------------
# Every gated generator: the arguments, the draws and the output they share

GATED_GENERATORS = [
    make_gated_regression,
    make_count_regression,
    make_positive_regression,
    make_contaminated_regression,
]


@pytest.mark.parametrize("make", GATED_GENERATORS)
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_features": 1.5}, "n_features"),
        ({"n_experts": 0}, "n_experts"),
        ({"gate_sharpness": -1.0}, "gate_sharpness"),
        ({"return_params": "yes"}, "return_params"),
        ({"return_labels": None}, "return_labels"),
    ],
)
def test_gated_generators_check_shared_arguments(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**{"return_labels": False, **kwargs})


@pytest.mark.parametrize("make", GATED_GENERATORS)
def test_gated_generators_share_gate_and_labels(make):
    # The gate is drawn first, the same way for every family: the same seed
    # gives the same gate whatever the experts.
    X, _, labels, params = make(
        400, 3, 3, return_labels=True, return_params=True, random_state=0
    )
    X_ref, _, labels_ref, params_ref = make_gated_regression(
        400, 3, 3, return_labels=True, return_params=True, random_state=0
    )
    assert_array_equal(params["gate_coef"], params_ref["gate_coef"])
    assert_array_equal(params["gate_intercept"], params_ref["gate_intercept"])
    assert params["gate_sharpness"] == params_ref["gate_sharpness"]
    for name, shape in PARAM_SHAPES.items():
        if name in params:
            assert params[name].shape == shape(3, 3), name
    assert X.shape == X_ref.shape and labels.shape == labels_ref.shape
    assert set(np.unique(labels)) <= {0, 1, 2}


# --------------------------------------------------------------------------
# make_xor_blobs


def test_make_xor_blobs_shapes_and_labels():
    X, y = make_xor_blobs(n_samples=401, random_state=0)
    assert X.shape == (401, 2) and y.shape == (401,)
    assert set(np.unique(y)) == {0, 1}
    assert abs(np.bincount(y)[0] - np.bincount(y)[1]) <= 1


def test_make_xor_blobs_label_is_xor_of_signs():
    X, y = make_xor_blobs(n_samples=400, noise=0.3, random_state=0)
    xor = (X[:, 0] > 0) != (X[:, 1] > 0)
    # With noise 0.3 a sample crosses an axis with probability about 0.001.
    assert np.mean(xor == y.astype(bool)) > 0.99


def test_make_xor_blobs_reproducible():
    a = make_xor_blobs(random_state=1)
    b = make_xor_blobs(random_state=1)
    assert_array_equal(a[0], b[0])
    assert_array_equal(a[1], b[1])


def test_make_xor_blobs_not_linearly_separable():
    X, y = make_xor_blobs(n_samples=800, random_state=0)
    assert LogisticRegression().fit(X, y).score(X, y) < 0.7


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_samples": 0}, "n_samples"), ({"noise": -1.0}, "noise")],
)
def test_make_xor_blobs_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_xor_blobs(**kwargs)


# --------------------------------------------------------------------------
# load_motorcycle


def test_load_motorcycle_bunch():
    data = load_motorcycle()
    assert isinstance(data, Bunch)
    assert data.data.shape == (133, 1)
    assert data.target.shape == (133,)
    assert data.data.dtype == np.float64
    assert data.feature_names == ["times"]
    assert data.target_names == ["accel"]
    assert data.frame is None
    assert "Silverman" in data.DESCR and "MASS" in data.DESCR
    assert_allclose(data.data[0], [2.4])
    assert data.target[0] == 0.0
    assert_allclose([data.data[-1, 0], data.target[-1]], [57.6, 10.7])
    # The times are sorted, as in MASS::mcycle.
    assert np.all(np.diff(data.data[:, 0]) >= 0)


def test_load_motorcycle_return_X_y():
    X, y = load_motorcycle(return_X_y=True)
    data = load_motorcycle()
    assert_array_equal(X, data.data)
    assert_array_equal(y, data.target)


def test_load_motorcycle_as_frame():
    pd = pytest.importorskip("pandas")
    data = load_motorcycle(as_frame=True)
    assert isinstance(data.frame, pd.DataFrame)
    assert list(data.frame.columns) == ["times", "accel"]
    assert data.frame.shape == (133, 2)
    assert isinstance(data.data, pd.DataFrame)
    assert list(data.data.columns) == ["times"]
    assert isinstance(data.target, pd.Series)
    assert data.target.name == "accel"
    assert data.frame.iloc[0].tolist() == [2.4, 0.0]
    X, y = load_motorcycle(return_X_y=True, as_frame=True)
    assert isinstance(X, pd.DataFrame) and isinstance(y, pd.Series)


@pytest.mark.parametrize("kwargs", [{"return_X_y": 1}, {"as_frame": "no"}])
def test_load_motorcycle_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        load_motorcycle(**kwargs)
