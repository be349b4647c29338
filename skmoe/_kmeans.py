"""Weighted k-means for the ``init="kmeans"`` strategy: k-means++ seeding and Lloyd's iteration.

Both are functions of the weighted set of rows only (repeating a row or
giving it weight 2 gives the same partition, as does shuffling the rows;
see :mod:`skmoe._init`) and run under the fit's thread rule. They take the
standardised design of :func:`skmoe._init.standardised_design`: a dense
array, or for sparse ``X`` a
:class:`~skmoe._sparse_design.StandardisedSparseDesign`, which answers the
same products without forming the dense matrix.
"""

import numpy as np

from ._sparse_design import StandardisedSparseDesign
from .utils._threads import row_parallel, threads_for

# k-means stops when its centres move less than this (squared shifts summed
# over the centres, relative to the data's mean weighted variance; the data
# are standardised, so about 1), or when no label changes. Ten times
# scikit-learn's KMeans default: EM only starts from the partition, whose
# last Lloyd passes move a few boundary rows that EM reassigns anyway
# (n=20,000: 63 instead of 106 passes for three restarts, the same EM optimum;
# benchmarks/README.md, "k-means tolerance").
KMEANS_TOL = 1e-3
KMEANS_MAX_ITER = 100
# Rows per block of a Lloyd pass: the (rows, n_clusters) temporaries stay in cache.
_LLOYD_BLOCK = 8192


def _canonical_order(Z):
    """Row order that depends on the rows' values only (ties: identical rows)."""
    # A fixed irrational-looking direction: distinct rows tie with probability zero.
    direction = np.sqrt(np.arange(2, Z.shape[1] + 2, dtype=np.float64))
    direction /= np.linalg.norm(direction)
    return np.argsort(Z @ direction, kind="stable")


def weighted_kmeans_plusplus(Z, sample_weight, n_clusters, rng):
    """k-means++ seeding that is invariant to duplicating or reordering rows.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Data.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights.
    n_clusters : int
        Number of centres.
    rng : numpy.random.RandomState
        Random generator; draws ``n_clusters`` uniforms, independent of n_samples.

    Returns
    -------
    centers : ndarray of shape (n_clusters, n_features)
        Initial centres.
    """
    # Work in the canonical order through the permutation only: no sorted
    # copy of Z and no (n_samples, n_features) temporaries (this runs on the
    # largest array of the fit).
    order = _canonical_order(Z)
    ws = sample_weight[order]
    draws = rng.uniform(size=n_clusters)
    centers = np.empty((n_clusters, Z.shape[1]))
    closest = None
    for c in range(n_clusters):
        mass = ws if closest is None else ws * closest
        cumulative = np.cumsum(mass)
        if cumulative[-1] <= 0:  # fewer distinct points than clusters: reuse a point
            idx = int(np.searchsorted(np.cumsum(ws), draws[c] * ws.sum()))
        else:
            idx = int(np.searchsorted(cumulative, draws[c] * cumulative[-1], side="right"))
        idx = min(idx, len(ws) - 1)
        centers[c] = Z[order[idx]]
        dist = _squared_distances(Z, centers[c])[order]
        closest = dist if closest is None else np.minimum(closest, dist)
    return centers


def _squared_distances(Z, center):
    """``||z_i - center||^2`` for every row, in row blocks (exact, no cancellation)."""
    if isinstance(Z, StandardisedSparseDesign):
        return Z.squared_distances(center)[:, 0]
    out = np.empty(Z.shape[0])
    block = max(1, 2**16 // max(1, Z.shape[1]))
    for start in range(0, Z.shape[0], block):
        diff = Z[start : start + block] - center
        out[start : start + block] = np.einsum("ij,ij->i", diff, diff)
    return out


def _closest(rows, centers, c_sq):
    """Index of the closest centre of every row (``argmin -2 z.c + |c|^2``, first of equals)."""
    if centers.shape[0] > 8:
        dist = rows @ (-2.0 * centers).T
        dist += c_sq
        return np.argmin(dist, axis=1)
    # Few centres: a running minimum over the rows of the (n_clusters, rows)
    # products, measured 2.5x faster than argmin along a short last axis.
    if isinstance(rows, StandardisedSparseDesign):
        dist = np.ascontiguousarray((rows @ (-2.0 * centers).T).T)
    else:
        dist = (-2.0 * centers) @ rows.T
    dist += c_sq[:, None]
    best = dist[0]
    labels = np.zeros(rows.shape[0], dtype=np.intp)
    for j in range(1, centers.shape[0]):
        closer = dist[j] < best
        np.minimum(best, dist[j], out=best)
        np.putmask(labels, closer, j)
    return labels


def _lloyd_pass(Z, weight, centers, labels, pool, update=True):
    """One pass of Lloyd: the labels of the closest centres, then each cluster's weighted sums.

    The rows are cut into fixed blocks of :data:`_LLOYD_BLOCK`; each block's
    partial sums are combined in block order, so the result does not depend
    on how many threads ran the blocks.
    """
    n_samples = Z.shape[0]
    n_clusters = centers.shape[0]
    c_sq = np.einsum("ij,ij->i", centers, centers)
    n_blocks = -(-n_samples // _LLOYD_BLOCK)
    ids = np.arange(n_clusters)[:, None]

    def run(first, last):
        partial = []
        for b in range(first, last):
            lo, hi = b * _LLOYD_BLOCK, min(n_samples, (b + 1) * _LLOYD_BLOCK)
            rows = Z[lo:hi]
            lab = _closest(rows, centers, c_sq)
            labels[lo:hi] = lab
            if update:
                member = (lab == ids) * weight[lo:hi]
                partial.append((member @ rows, member.sum(axis=1)))
        return partial

    n_threads = 1
    if pool is not None and pool.n_threads > 1:
        n_threads = min(n_blocks, threads_for(n_samples, Z.shape[1] * n_clusters, budget=pool.n_threads))
    if n_threads == 1:
        partial = run(0, n_blocks)
    else:
        edges = [n_blocks * i // n_threads for i in range(n_threads + 1)]
        partial = [p for part in pool.map(run, list(zip(edges[:-1], edges[1:]))) for p in part]
    if not update:
        return None, None
    sums = np.zeros_like(centers)
    mass = np.zeros(n_clusters)
    for block_sums, block_mass in partial:
        sums += block_sums
        mass += block_mass
    return sums, mass


def weighted_lloyd(Z, sample_weight, centers, *, max_iter=KMEANS_MAX_ITER, tol=KMEANS_TOL):
    """Weighted k-means (Lloyd's iteration) from given centres; the final labels.

    scikit-learn's ``KMeans`` loop with ``sample_weight``, rewritten so that
    the fit's thread rule decides its threads (``KMeans`` takes every OpenMP
    thread: 30x the CPU time of one thread on a busy 2-core machine at
    n=20,000) and its tolerance needs no ``np.var`` temporary as large as
    ``Z``: the labels of the closest centres; empty clusters moved to the
    rows farthest from their centres; stop when no label changes or when the
    centres' squared shifts sum to at most ``tol`` times the mean weighted
    variance of the columns; then label the rows by the last centres.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Data (standardised).
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights.
    centers : ndarray of shape (n_clusters, n_features)
        Initial centres (k-means++).
    max_iter : int, default=KMEANS_MAX_ITER
        Lloyd iterations at most.
    tol : float, default=KMEANS_TOL
        Relative tolerance on the centres' shift; 0 runs until no label changes.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Closest centre of every row.
    """
    n_samples, n_features = Z.shape
    n_clusters = centers.shape[0]
    centers = np.array(centers, dtype=np.float64)
    weight = np.asarray(sample_weight, dtype=np.float64)
    total = weight.sum()
    if isinstance(Z, StandardisedSparseDesign):
        first, second = Z.column_moments(weight)
        mean, variance = first / total, second / total - (first / total) ** 2
    else:
        mean = (weight @ Z) / total
        variance = np.einsum("i,ij,ij->j", weight, Z, Z) / total - mean**2
    tol_abs = tol * float(np.mean(np.clip(variance, 0.0, None)))
    labels = np.zeros(n_samples, dtype=np.intp)
    labels_old = np.full(n_samples, -1, dtype=np.intp)
    strict = False
    with row_parallel(n_rows=n_samples, n_cols=n_features * n_clusters) as pool:
        for _ in range(max_iter):
            sums, mass = _lloyd_pass(Z, weight, centers, labels, pool)
            empty = np.flatnonzero(mass <= 0)
            if empty.size:
                _relocate_empty(Z, weight, centers, labels, empty, sums, mass)
            new = centers.copy()
            filled = mass > 0
            new[filled] = sums[filled] / mass[filled, None]
            shift = float(np.sum((new - centers) ** 2))
            centers = new
            if np.array_equal(labels, labels_old):
                strict = True
                break
            if shift <= tol_abs:
                break
            labels_old[:] = labels
        if not strict:  # the labels of the last centres
            _lloyd_pass(Z, weight, centers, labels, pool, update=False)
    return labels


def _relocate_empty(Z, weight, centers, labels, empty, sums, mass):
    """Move empty clusters to the rows farthest from their centres (as scikit-learn's KMeans)."""
    distance = np.empty(Z.shape[0])
    for start in range(0, Z.shape[0], _LLOYD_BLOCK):
        rows, own = Z[start : start + _LLOYD_BLOCK], labels[start : start + _LLOYD_BLOCK]
        if isinstance(rows, StandardisedSparseDesign):
            distance[start : start + _LLOYD_BLOCK] = rows.squared_distances(centers, labels=own)
            continue
        diff = rows - centers[own]
        distance[start : start + _LLOYD_BLOCK] = np.einsum("ij,ij->i", diff, diff)
    n_empty = empty.shape[0]
    far = np.argpartition(distance, -n_empty)[: -n_empty - 1 : -1]
    for cluster, row in zip(empty, far):
        old = labels[row]
        sums[old] -= weight[row] * Z[row]
        mass[old] -= weight[row]
        sums[cluster] = weight[row] * Z[row]
        mass[cluster] = weight[row]
