"""The EM core's array functions run unchanged on another array namespace.

``array_api_strict`` is a minimal implementation of the array-API standard:
what runs on it uses no NumPy-only feature, so it will run on torch tensors
through ``array_api_compat``.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skmoe import _em

# array_api_compat is not needed: array_api_strict's arrays name their namespace.
# (Installing array_api_compat beside scikit-learn 1.6 breaks the import of its
# estimator checks unless SCIPY_ARRAY_API=1 is set.)
xp = pytest.importorskip("array_api_strict")


def _to(a):
    return xp.asarray(a)


def _np(a):
    return np.asarray(a)


@pytest.fixture
def arrays():
    rng = np.random.RandomState(0)
    k, n = 4, 50
    logits = rng.randn(k, n) * 3
    log_gate_T = logits - np.log(np.exp(logits).sum(axis=0))
    return {
        "y": rng.randn(n),
        "mean_T": rng.randn(k, n),
        "variance": rng.uniform(0.1, 2.0, k),
        "log_gate_T": log_gate_T,
        "log_lik_T": rng.randn(k, n) * 5,
        "sample_weight": rng.uniform(0.5, 2.0, n),
    }


def test_gaussian_log_density(arrays):
    a = arrays
    expected = _em.gaussian_log_density(a["y"], a["mean_T"].copy(), a["variance"])
    got = _em.gaussian_log_density(_to(a["y"]), _to(a["mean_T"]), _to(a["variance"]))
    assert_allclose(_np(got), expected, rtol=1e-12)


@pytest.mark.parametrize("func", [_em.responsibilities, _em.e_step])
def test_e_steps(arrays, func):
    a = arrays
    expected = func(a["log_gate_T"].copy(), a["log_lik_T"].copy())
    got = func(_to(a["log_gate_T"]), _to(a["log_lik_T"]))
    for g, e in zip(got, expected):
        assert_allclose(_np(g), e, rtol=1e-12, atol=1e-12)


def test_m_step_pieces(arrays):
    a = arrays
    resp_T, _ = _em.responsibilities(a["log_gate_T"].copy(), a["log_lik_T"].copy())
    expected = _em.weighted_variance_update(a["y"], a["mean_T"], resp_T, a["sample_weight"], 1e-3)
    got = _em.weighted_variance_update(
        _to(a["y"]), _to(a["mean_T"]), _to(resp_T), _to(a["sample_weight"]), 1e-3
    )
    assert_allclose(_np(got), expected, rtol=1e-12)
    share = _em.responsibility_share(_to(resp_T), _to(a["sample_weight"]))
    assert_allclose(_np(share), _em.responsibility_share(resp_T, a["sample_weight"]), rtol=1e-12)
    mean = _em.mean_log_likelihood(_to(a["y"]), _to(a["sample_weight"]))
    assert_allclose(mean, _em.mean_log_likelihood(a["y"], a["sample_weight"]), rtol=1e-12)


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_gate_masks(arrays, top_k):
    a = arrays
    expected = _em.top_k_log_gate(a["log_gate_T"], top_k)
    got = _np(_em.top_k_log_gate(_to(a["log_gate_T"]), top_k))
    assert_allclose(np.exp(got), np.exp(expected), rtol=1e-12, atol=1e-300)
    assert_allclose(
        _np(_em.argmax_log_gate(_to(a["log_gate_T"]))), _em.argmax_log_gate(a["log_gate_T"])
    )


def test_mixture_moments(arrays):
    a = arrays
    gate_T = np.exp(a["log_gate_T"])
    expected = _em.mixture_mean_std(gate_T, a["mean_T"], a["variance"])
    got = _em.mixture_mean_std(_to(gate_T), _to(a["mean_T"]), _to(a["variance"]))
    for g, e in zip(got, expected):
        assert_allclose(_np(g), e, rtol=1e-12)


def test_batched_linear_statistics():
    from skmoe._gram import weighted_gram_matrices
    from skmoe._solvers import linear_offsets

    rng = np.random.RandomState(1)
    X, y = rng.randn(300, 4) + 2.0, rng.randn(300)
    weights_T = rng.dirichlet(np.ones(3), size=300).T.copy()
    sample_weight = rng.uniform(0.5, 2.0, 300)
    x_offset, y_offset = linear_offsets(X, y, weights_T, sample_weight)
    expected = weighted_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight)
    xo, yo = linear_offsets(_to(X), _to(y), _to(weights_T), _to(sample_weight))
    assert_allclose(_np(xo), x_offset, rtol=1e-12)
    got = weighted_gram_matrices(_to(X), _to(y), _to(weights_T), xo, yo, _to(sample_weight))
    assert_allclose(_np(got), expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
