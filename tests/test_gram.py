"""Weighted Gram kernels of the batched linear solver against direct products."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LinearRegression
from threadpoolctl import threadpool_limits

from skmoe import _gram
from skmoe._experts import fit_experts
from skmoe._gram import weighted_gram_matrices
from skmoe._routed import RoutedWeights
from skmoe._solvers import fit_linear_experts
from skmoe.utils._threads import MIN_ROWS_PER_THREAD


def _data(rng, n=500, d=6, k=4, offset=0.0):
    X = rng.randn(n, d) * rng.uniform(0.1, 10, d) + offset
    y = X @ rng.randn(d) + rng.randn(n)
    weights = rng.dirichlet(np.ones(k), size=n).T.copy() * rng.uniform(0.5, 2, n)
    return X, y, weights


# Every Gram kernel and its boundaries: "pairs" (up to 24 columns of [X, 1, y]
# and p <= 3k - 2), "gemm" (other ones up to 16 columns), "syrk" (the rest),
# and the threaded pass (from 25 columns).
@pytest.mark.parametrize(
    "n_features, k",
    [(3, 3), (10, 4), (10, 5), (10, 16), (14, 5), (14, 6), (15, 3), (20, 7), (20, 8),
     (22, 3), (22, 9), (23, 3), (23, 16), (40, 3)],
)
def test_gram_layouts_match_direct_products(n_features, k):
    # n spans several blocks of every kernel and two threads' chunks, with a ragged last block.
    rng = np.random.RandomState(n_features)
    n = 2 * MIN_ROWS_PER_THREAD + 37
    X, y, weights = _data(rng, n=n, d=n_features, k=k, offset=5.0)
    sample_weight = rng.uniform(0.2, 3.0, n)
    x_offset, y_offset = X.mean(axis=0), float(y.mean())
    gram = weighted_gram_matrices(X, y, weights, x_offset, y_offset, sample_weight)
    Z = np.c_[X - x_offset, np.ones(n), y - y_offset]
    for j in range(k):
        expected = (Z * (weights[j] * sample_weight)[:, None]).T @ Z
        assert_allclose(gram[j], expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
        assert_allclose(gram[j], gram[j].T, rtol=0, atol=0)
    fast = fit_linear_experts([LinearRegression()] * k, X, y, weights, sample_weight)
    slow = fit_experts([LinearRegression()] * k, X, y, weights, sample_weight=sample_weight)
    for f, s in zip(fast, slow):
        assert_allclose(f.coef_, s.coef_, rtol=1e-8, atol=1e-10 * np.abs(s.coef_).max())
        assert_allclose(f.intercept_, s.intercept_, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("n_features", [3, 10, 40])  # pairs, gemm and syrk kernels at k=4
def test_gram_matrices_do_not_depend_on_blas_threads(n_features):
    # One BLAS thread runs the serial pass; two split the rows between two
    # Python threads. Same blocks, sums in another order: equal to rounding.
    rng = np.random.RandomState(1)
    n, k = 2 * _gram._MIN_ROWS_PER_THREAD_NARROW + 101, 4
    X, y, weights = _data(rng, n=n, d=n_features, k=k, offset=3.0)
    x_offset, y_offset = X.mean(axis=0), float(y.mean())
    grams = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="blas"):
            grams.append(weighted_gram_matrices(X, y, weights, x_offset, y_offset))
    assert_allclose(grams[0], grams[1], rtol=1e-12, atol=1e-12 * np.abs(grams[0]).max())


def _routed_weights(rng, n, k, top, empty=None):
    """Weights of ``top`` experts per sample (top-k routing), optionally one expert empty."""
    scores = rng.rand(k, n)
    if empty is not None:
        scores[empty] = -1.0
    rank = np.argsort(np.argsort(-scores, axis=0), axis=0)
    return np.where(rank < top, rng.uniform(0.1, 1.0, (k, n)), 0.0)


@pytest.mark.parametrize("n_features, k, top", [(3, 16, 1), (10, 8, 2), (40, 4, 1)])
@pytest.mark.parametrize("with_sample_weight", [False, True])
def test_routed_gram_matches_direct_products(n_features, k, top, with_sample_weight):
    # Rows beyond one block of the routed pass, a ragged last block, an empty expert.
    rng = np.random.RandomState(n_features + top)
    n = 2 * _gram._ROUTED_BLOCK + 53
    X, y, _ = _data(rng, n=n, d=n_features, k=k, offset=5.0)
    weights = _routed_weights(rng, n, k, top, empty=1)
    sample_weight = rng.uniform(0.2, 3.0, n) if with_sample_weight else None
    x_offset, y_offset = X.mean(axis=0), float(y.mean())
    gram = _gram.routed_gram_matrices(X, y, weights, x_offset, y_offset, sample_weight)
    Z = np.c_[X - x_offset, np.ones(n), y - y_offset]
    sw = np.ones(n) if sample_weight is None else sample_weight
    for j in range(k):
        expected = (Z * (weights[j] * sw)[:, None]).T @ Z
        assert_allclose(gram[j], expected, rtol=1e-10, atol=1e-10 * max(np.abs(expected).max(), 1.0))
        assert_allclose(gram[j], gram[j].T, rtol=0, atol=0)
    assert not np.any(gram[1])


def _direct_grams(X, y, weights, x_offset, y_offset):
    """Each expert's ``Z^T diag(w) Z`` in float64, one product per expert."""
    Z = np.c_[X - x_offset, np.ones(X.shape[0]), y - y_offset].astype(np.float64)
    return np.stack([(Z * w.astype(np.float64)[:, None]).T @ Z for w in weights])


def test_routed_gram_blocks_at_the_edges_of_the_routed_list():
    # Lists given as RoutedWeights: an expert whose rows fill its blocks exactly,
    # an empty one, one ragged block more than a multiple, and a last expert whose
    # ragged block ends the list (its padding would read past the end).
    rng = np.random.RandomState(4)
    n, d = 3000, 5
    X, y, _ = _data(rng, n=n, d=d, offset=2.0)
    counts = [640, 0, 1281, 200]  # 2,121 entries over 4 experts: blocks of 64 rows
    rows = [np.sort(rng.choice(n, c, replace=False)) for c in counts]
    values = [rng.uniform(0.1, 2.0, c) for c in counts]
    routed = RoutedWeights(np.r_[0, np.cumsum(counts)], np.concatenate(rows), np.concatenate(values), n)
    dense = np.zeros((len(counts), n))
    for k, (r, v) in enumerate(zip(rows, values)):
        dense[k, r] = v
    x_offset, y_offset = X.mean(axis=0), float(y.mean())
    gram = _gram.routed_gram_matrices(X, y, routed, x_offset, y_offset)
    expected = _direct_grams(X, y, dense, x_offset, y_offset)
    assert_allclose(gram, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    assert not np.any(gram[1])


def test_routed_gram_keeps_float32_inputs_and_weights_accurate():
    # float32 X, y and weights: the sums run in float64 on the exact float32 values.
    rng = np.random.RandomState(5)
    n, k = 2 * _gram._ROUTED_BLOCK + 7, 16
    X, y, _ = _data(rng, n=n, d=10, k=k, offset=3.0)
    X, y = X.astype(np.float32), y.astype(np.float32)
    weights = _routed_weights(rng, n, k, 2).astype(np.float32)
    sample_weight = rng.uniform(0.5, 2.0, n).astype(np.float32)
    x_offset, y_offset = X.mean(axis=0, dtype=np.float64), float(y.mean(dtype=np.float64))
    gram = _gram.routed_gram_matrices(X, y, weights, x_offset, y_offset, sample_weight)
    assert gram.dtype == np.float64
    expected = _direct_grams(X, y, weights * sample_weight, x_offset, y_offset)
    # Only sqrt of the float32 weights rounds in float32 (relative 2**-24 each).
    assert_allclose(gram, expected, rtol=8 * np.finfo(np.float32).eps, atol=1e-7 * np.abs(expected).max())


def test_routed_gram_centres_rows_before_their_products():
    # Features far from zero against their spread (offset 1e4, scale 0.1 to 10):
    # uncentred moments would lose (1e4 / 0.1)^2 = 1e10 of float64's 1e16 and
    # miss this tolerance; the pass centres each row first, as the direct product.
    rng = np.random.RandomState(6)
    n, k = 2 * _gram._ROUTED_BLOCK + 11, 16
    X, y, _ = _data(rng, n=n, d=10, k=k, offset=1e4)
    X = X * 100 + 7  # and the X * 100 + 7 on top
    weights = _routed_weights(rng, n, k, 2)
    x_offset, y_offset = X.mean(axis=0), float(y.mean())
    gram = _gram.routed_gram_matrices(X, y, weights, x_offset, y_offset)
    expected = _direct_grams(X, y, weights, x_offset, y_offset)
    scale = np.sqrt(np.einsum("kii->ki", expected))  # each entry against sqrt(G_ii G_jj)
    error = np.abs(gram - expected) / (scale[:, :, None] * scale[:, None, :])
    # Worst-case rounding of a sum of n products (observed 1e-15; uncentred: 1e-7).
    assert error.max() < n * np.finfo(np.float64).eps


def test_routed_gram_does_not_depend_on_blas_threads():
    # Each expert's sum runs in one thread, in row order: bitwise equal.
    rng = np.random.RandomState(2)
    n, k = 3 * _gram._MIN_ROWS_PER_THREAD_NARROW, 8
    X, y, _ = _data(rng, n=n, d=10, k=k)
    weights = _routed_weights(rng, n, k, 1)
    grams = []
    for n_threads in (1, 2):
        with threadpool_limits(limits=n_threads, user_api="blas"):
            grams.append(_gram.routed_gram_matrices(X, y, weights, X.mean(axis=0), float(y.mean())))
    np.testing.assert_array_equal(grams[0], grams[1])


@pytest.mark.parametrize("n_features, k, top, routed", [
    (10, 64, 1, True), (10, 64, 2, True), (10, 16, 1, True), (10, 64, 64, False),
    (2, 16, 1, False), (50, 4, 2, True), (50, 4, 3, False),
])
def test_weighted_gram_takes_the_routed_pass_when_it_pays(monkeypatch, n_features, k, top, routed):
    rng = np.random.RandomState(0)
    n = 5000  # above _ROUTED_MIN_ENTRIES entries at 4 experts
    X, y, _ = _data(rng, n=n, d=n_features, k=2)
    weights = _routed_weights(rng, n, k, top)
    calls = []
    routed_pass = _gram.routed_gram_matrices
    monkeypatch.setattr(_gram, "routed_gram_matrices", lambda *a: calls.append(1) or routed_pass(*a))
    x_offset, y_offset = X.mean(axis=0), float(y.mean())
    gram = weighted_gram_matrices(X, y, weights, x_offset, y_offset)
    assert bool(calls) is routed
    # Either way, the same matrices as the dense kernels.
    kernel, block = _gram.gram_kernel(n_features + 2, k)
    dense = _gram.finish_gram(
        [_gram.gram_chunk(X, y, weights, x_offset, y_offset, None, kernel, block, 0, n)], kernel, n_features + 2
    )
    assert_allclose(gram, dense, rtol=1e-10, atol=1e-10 * np.abs(dense).max())
