"""The weighted Lloyd iteration of the k-means initialisation (``skmoe._kmeans``, used by ``skmoe._init``)."""

import threading
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

import skmoe._kmeans as kmeans_module
from skmoe._init import (
    initial_responsibilities,
    standardised_design,
    weighted_kmeans_plusplus,
    weighted_lloyd,
)
from skmoe.datasets import make_gated_regression
from skmoe.utils import _threads
from tests._tolerances import tol


def _problem(n, d, k, seed, weighted):
    X, y = make_gated_regression(n, d, k, noise=0.5, return_labels=False, random_state=seed)
    rng = np.random.RandomState(seed)
    w = rng.randint(1, 4, size=n).astype(float) if weighted else np.ones(n)
    Z = standardised_design(X, y, w, include_target=True)
    return Z, w, weighted_kmeans_plusplus(Z, w, k, rng)


@pytest.mark.parametrize("n, d, k", [(300, 3, 3), (2_000, 5, 4), (20_000, 5, 3), (3_000, 2, 12)])
@pytest.mark.parametrize("weighted", [False, True])
def test_run_to_the_last_label_change_it_is_scikit_learns_kmeans(n, d, k, weighted):
    Z, w, centers = _problem(n, d, k, n + k, weighted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = KMeans(k, init=centers, n_init=1, max_iter=100, tol=0.0).fit_predict(
            Z, sample_weight=w
        )
    assert_array_equal(weighted_lloyd(Z, w, centers, tol=0.0), expected)


def test_the_tolerance_stops_early_without_moving_the_partition_much():
    Z, w, centers = _problem(20_000, 5, 3, 0, False)
    passes = []
    original = kmeans_module._lloyd_pass

    def counting(*args, **kwargs):
        passes.append(kwargs.get("update", True))
        return original(*args, **kwargs)

    kmeans_module._lloyd_pass = counting
    try:
        strict = weighted_lloyd(Z, w, centers, tol=0.0)
        n_strict = len(passes)
        passes.clear()
        early = weighted_lloyd(Z, w, centers)
    finally:
        kmeans_module._lloyd_pass = original
    assert len(passes) < n_strict
    assert np.mean(early == strict) > 0.9


def test_threads_and_blocks_do_not_change_the_labels(monkeypatch):
    Z, w, centers = _problem(5_000, 4, 5, 1, True)
    expected = weighted_lloyd(Z, w, centers)
    monkeypatch.setattr(kmeans_module, "_LLOYD_BLOCK", 700)
    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)
    seen = []
    original = kmeans_module._closest

    def recording(*args):
        seen.append(threading.get_ident())
        return original(*args)

    monkeypatch.setattr(kmeans_module, "_closest", recording)
    with threadpool_limits(limits=2):
        got = weighted_lloyd(Z, w, centers)
    assert_array_equal(got, expected)
    assert len(set(seen)) == max(1, min(2, _threads._cpu_count()))  # the pool's threads ran the blocks


def test_empty_clusters_are_moved_to_the_farthest_rows():
    # Two distinct points for three clusters: one cluster starts empty.
    Z = np.array([[0.0, 0.0]] * 5 + [[10.0, 0.0]] * 5 + [[10.0, 1.0]])
    centers = np.array([[0.0, 0.0], [0.0, 0.0], [10.0, 0.0]])
    labels = weighted_lloyd(Z, np.ones(len(Z)), centers)
    assert len(np.unique(labels)) == 3


def test_weights_are_repeated_rows():
    Z, _, _ = _problem(600, 3, 3, 3, False)
    w = np.random.RandomState(0).randint(1, 3, size=600).astype(float)
    centers = weighted_kmeans_plusplus(Z, w, 3, np.random.RandomState(0))
    repeated = np.repeat(Z, w.astype(int), axis=0)
    labels_w = weighted_lloyd(Z, w, centers)
    labels_r = weighted_lloyd(repeated, np.ones(len(repeated)), centers)
    assert_array_equal(np.repeat(labels_w, w.astype(int)), labels_r)


def test_kmeans_init_responsibilities_are_one_hot():
    X, y = make_gated_regression(500, 3, 3, return_labels=False, random_state=0)
    resp_T = initial_responsibilities("kmeans", X, y, np.ones(500), 3, np.random.RandomState(0),
                                      is_regression=True)
    assert resp_T.shape == (3, 500)
    assert set(np.unique(resp_T)) <= {0.0, 1.0} and np.all(resp_T.sum(axis=0) == 1)


def _sparse_problem(n, seed, weighted):
    """A design of one-hot and dense columns, as a CSR matrix, with its target and weights."""
    rng = np.random.RandomState(seed)
    X = np.zeros((n, 12))
    X[np.arange(n), rng.randint(0, 8, size=n)] = 1.0
    X[:, 8:] = rng.standard_normal((n, 4)) + 5.0  # offsets: the centring matters
    X[rng.uniform(size=n) < 0.3, 9] = 0.0
    y = X[:, 8] * (X[:, :4].sum(axis=1) - 0.5) + 0.1 * rng.standard_normal(n)
    w = rng.randint(1, 4, size=n).astype(float) if weighted else np.ones(n)
    return X, sp.csr_matrix(X), y, w


@pytest.mark.parametrize("weighted", [False, True])
def test_the_sparse_design_is_the_dense_standardised_design(weighted):
    X, Xs, y, w = _sparse_problem(500, 0, weighted)
    Z = standardised_design(X, y, w, include_target=True)
    design = standardised_design(Xs, y, w, include_target=True)
    assert design.shape == Z.shape
    M = np.random.RandomState(1).standard_normal((Z.shape[1], 3))
    B = np.random.RandomState(2).standard_normal((3, Z.shape[0]))
    scale = np.abs(Z).max() * Z.shape[1]
    assert_allclose(design @ M, Z @ M, atol=tol(cond=scale))
    assert_allclose(B @ design, B @ Z, atol=tol(cond=scale * Z.shape[0]))
    assert_allclose(design[7], Z[7], atol=tol(cond=scale))
    assert_allclose(design[100:130] @ M, Z[100:130] @ M, atol=tol(cond=scale))
    assert_allclose(design.squared_norms(), np.einsum("ij,ij->i", Z, Z), atol=tol(cond=scale**2))
    first, second = design.column_moments(w)
    assert_allclose(first, w @ Z, atol=tol(cond=scale * w.sum()))
    assert_allclose(second, w @ (Z * Z), rtol=tol(cond=scale))


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_on_sparse_input_gives_the_dense_partition(weighted):
    X, Xs, y, w = _sparse_problem(3_000, 3, weighted)
    Z = standardised_design(X, y, w, include_target=True)
    design = standardised_design(Xs, y, w, include_target=True)
    centers = weighted_kmeans_plusplus(Z, w, 4, np.random.RandomState(0))
    assert_allclose(weighted_kmeans_plusplus(design, w, 4, np.random.RandomState(0)), centers,
                    atol=tol(cond=np.abs(Z).max()))
    assert_array_equal(weighted_lloyd(design, w, centers), weighted_lloyd(Z, w, centers))
    for init in ("kmeans", "random", "tree"):
        dense = initial_responsibilities(init, X, y, w, 4, np.random.RandomState(5), is_regression=True)
        sparse = initial_responsibilities(init, Xs, y, w, 4, np.random.RandomState(5), is_regression=True)
        assert_allclose(sparse, dense, atol=tol(cond=np.abs(Z).max() * Z.shape[1]))
