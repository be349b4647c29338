"""Initial partition of the input space: ``init=`` -> first responsibilities.

Every built-in strategy is a deterministic function of the *weighted set* of
samples and the random generator: repeating a row or giving it weight 2 yields
the same partition, as does shuffling the rows. This is what makes the whole
fit honour ``sample_weight`` exactly (scikit-learn's sample-weight
equivalence check), and it costs nothing: k-means++ seeding draws its
candidates from a canonical ordering of the rows, and the random strategy is a
random softmax gate, a function of the row's values rather than its index.

Every strategy runs under the fit's thread rule (:mod:`skmoe.utils._threads`):
k-means is a weighted Lloyd iteration of our own whose passes over the rows
go to the row pool only when their size pays for it, and the tree, the GMM
and a user's clusterer run with the BLAS and OpenMP threads their size pays
for (one on small data, where scikit-learn's OpenMP k-means was measured at
30x the CPU time of one thread on a busy 2-core machine).
"""

import numpy as np
from sklearn.base import clone
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import has_fit_parameter

from .gates._linear import weighted_standardisation
from .utils._threads import fit_threads, row_parallel, threads_for

# k-means stops when its centres move less than this (squared shifts summed
# over the centres, relative to the data's mean weighted variance; the data
# are standardised, so about 1), or when no label changes: scikit-learn's
# KMeans default. The former tol=0 ran to the last label change, 75 Lloyd
# iterations at n=20,000 where the partition EM starts from was settled after
# about 10-20; the pinned fits keep their partitions (tests/test_init.py).
KMEANS_TOL = 1e-4
KMEANS_MAX_ITER = 100
# Rows per block of a Lloyd pass: the (rows, n_clusters) temporaries stay in cache.
_LLOYD_BLOCK = 8192


def standardised_design(X, y, sample_weight, include_target):
    """Weighted-standardised copy of ``X`` (and of ``y`` as a last column).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Numeric target (used only when ``include_target``).
    sample_weight : ndarray of shape (n_samples,)
        Weights.
    include_target : bool
        Append the standardised target, so that k-means separates regimes of
        the response as well as of the inputs.

    Returns
    -------
    Z : ndarray of shape (n_samples, n_features + include_target)
        Standardised design, float64.
    """
    # One new array, standardised in place: this copy is the largest
    # allocation of a whole fit, so no temporaries beside it.
    if include_target:
        Z = np.column_stack([X, y]).astype(np.float64, copy=False)
    else:
        Z = np.array(X, dtype=np.float64, copy=True)
    weight = sample_weight / sample_weight.sum()
    mean, scale = weighted_standardisation(Z, weight)
    Z -= mean
    Z /= scale
    return Z


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
        diff = Z[start : start + _LLOYD_BLOCK] - centers[labels[start : start + _LLOYD_BLOCK]]
        distance[start : start + _LLOYD_BLOCK] = np.einsum("ij,ij->i", diff, diff)
    n_empty = empty.shape[0]
    far = np.argpartition(distance, -n_empty)[: -n_empty - 1 : -1]
    for cluster, row in zip(empty, far):
        old = labels[row]
        sums[old] -= weight[row] * Z[row]
        mass[old] -= weight[row]
        sums[cluster] = weight[row] * Z[row]
        mass[cluster] = weight[row]


def _one_hot(labels, n_experts):
    resp_T = np.zeros((n_experts, labels.shape[0]))
    resp_T[labels, np.arange(labels.shape[0])] = 1.0
    return resp_T


def _fill_empty_experts(resp_T):
    """Give an expert left without samples a small uniform share; return how many."""
    empty = resp_T.sum(axis=1) <= 0
    if np.any(empty):
        resp_T[empty] = 1e-3
        resp_T /= resp_T.sum(axis=0)
    return int(np.sum(empty))


def weighted_gmm_responsibilities(Z, sample_weight, n_components, rng, *, max_iter=100, tol=1e-4,
                                  reg_covar=1e-6):
    """Posterior of a full-covariance Gaussian mixture fitted with sample weights.

    scikit-learn's ``GaussianMixture`` takes no ``sample_weight``; this is the
    same EM with every sufficient statistic weighted, started from the
    weighted k-means++ centres (so the result depends on the weighted set of
    rows only: a weight of 2 and a repeated row give the same posterior).

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Standardised data.
    sample_weight : ndarray of shape (n_samples,)
        Positive weights.
    n_components : int
        Number of components.
    rng : numpy.random.RandomState
        Random generator (k-means++ seeding).
    max_iter : int, default=100
        EM iterations at most.
    tol : float, default=1e-4
        Stop when the weighted mean log-likelihood gains less.
    reg_covar : float, default=1e-6
        Added to the covariances' diagonals (the data are standardised).

    Returns
    -------
    resp_T : ndarray of shape (n_components, n_samples)
        Posterior probabilities; columns sum to one.
    """
    n_samples, n_features = Z.shape
    weight = sample_weight / sample_weight.sum()
    centers = weighted_kmeans_plusplus(Z, sample_weight, n_components, rng)
    dist = np.stack([_squared_distances(Z, c) for c in centers])
    resp_T = _one_hot(np.argmin(dist, axis=0), n_components)
    _fill_empty_experts(resp_T)
    previous = -np.inf
    log_joint = np.empty((n_components, n_samples))
    for _ in range(max_iter):
        # M-step, weighted.
        rw = resp_T * weight
        mass = rw.sum(axis=1) + 10 * np.finfo(np.float64).eps
        means = (rw @ Z) / mass[:, None]
        for k in range(n_components):
            diff = Z - means[k]
            cov = (diff * rw[k][:, None]).T @ diff / mass[k]
            cov.flat[:: n_features + 1] += reg_covar
            chol = np.linalg.cholesky(cov)
            solved = np.linalg.solve(chol, diff.T)
            log_det = 2.0 * np.sum(np.log(np.diag(chol)))
            log_joint[k] = np.log(mass[k]) - 0.5 * (
                np.einsum("ij,ij->j", solved, solved) + log_det + n_features * np.log(2 * np.pi)
            )
        # E-step.
        shift = log_joint.max(axis=0)
        resp_T = np.exp(log_joint - shift)
        total = resp_T.sum(axis=0)
        resp_T /= total
        mean_log_lik = float(weight @ (np.log(total) + shift))
        if mean_log_lik - previous < tol:
            break
        previous = mean_log_lik
    return resp_T


def initial_responsibilities(init, X, y, sample_weight, n_experts, rng, *, is_regression):
    """First responsibilities from the ``init`` strategy.

    Parameters
    ----------
    init : {"kmeans", "random", "tree", "gmm"}, clusterer or array-like
        The strategy (see the estimators' ``init`` parameter).
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Target (float for regression, encoded labels for classification).
    sample_weight : ndarray of shape (n_samples,)
        Positive weights.
    n_experts : int
        Number of experts.
    rng : numpy.random.RandomState
        Random generator.
    is_regression : bool
        Whether ``y`` is a continuous target (then k-means and the random
        strategy also see the standardised ``y``).

    Returns
    -------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities; every column sums to one and every expert has some.
    """
    n_samples, n_features = X.shape
    seed = rng.randint(np.iinfo(np.int32).max)
    # The widest pass of each strategy, per row, for the thread rule.
    width = {"kmeans": (n_features + 1) * n_experts, "gmm": (n_features + 1) ** 2 * n_experts}
    if isinstance(init, str):
        with fit_threads(n_samples, width.get(init, n_features)):
            resp_T = _builtin_responsibilities(
                init, X, y, sample_weight, n_experts, rng, seed, is_regression
            )
        _fill_empty_experts(resp_T)
        return resp_T

    if hasattr(init, "fit_predict"):
        clusterer = clone(init)
        with fit_threads(n_samples, n_features * n_experts):
            Z = standardised_design(X, y, sample_weight, include_target=is_regression)
            if has_fit_parameter(clusterer, "sample_weight"):
                labels = clusterer.fit_predict(Z, sample_weight=sample_weight)
            else:
                labels = clusterer.fit_predict(Z)
        uniq, labels = np.unique(np.asarray(labels), return_inverse=True)
        if uniq.shape[0] != n_experts:
            raise ValueError(
                f"init={init!r} found {uniq.shape[0]} clusters but n_experts={n_experts}; "
                "the clusterer must produce exactly one cluster per expert."
            )
        return _one_hot(labels.ravel(), n_experts)

    return responsibilities_from_array(init, n_samples, n_experts)


def _builtin_responsibilities(init, X, y, sample_weight, n_experts, rng, seed, is_regression):
    """Responsibilities of a built-in ``init`` strategy (before empty experts are filled)."""
    if init == "kmeans":
        Z = standardised_design(X, y, sample_weight, include_target=is_regression)
        centers = weighted_kmeans_plusplus(Z, sample_weight, n_experts, rng)
        # Duplicate centres (fewer distinct rows than experts) leave clusters
        # empty: initial_responsibilities gives them a small share.
        return _one_hot(weighted_lloyd(Z, sample_weight, centers), n_experts)
    if init == "random":
        Z = standardised_design(X, y, sample_weight, include_target=is_regression)
        # A random softmax gate: soft, spatially coherent, a function of the row values.
        weights = rng.normal(size=(n_experts, Z.shape[1])) * 2.0
        offsets = rng.normal(size=n_experts)
        logits = weights @ Z.T + offsets[:, None]
        logits -= logits.max(axis=0)
        resp_T = np.exp(logits)
        resp_T /= resp_T.sum(axis=0)
        return resp_T
    if init == "gmm":
        Z = standardised_design(X, y, sample_weight, include_target=is_regression)
        return weighted_gmm_responsibilities(Z, sample_weight, n_experts, rng)
    if init == "tree":
        tree_cls = DecisionTreeRegressor if is_regression else DecisionTreeClassifier
        tree = tree_cls(max_leaf_nodes=max(n_experts, 2), random_state=seed)
        tree.fit(X, y, sample_weight=sample_weight)
        _, labels = np.unique(tree.apply(X), return_inverse=True)
        return _one_hot(labels % n_experts, n_experts)
    raise ValueError(f"Unknown init={init!r}.")  # pragma: no cover - guarded by parameter validation


def responsibilities_from_array(init, n_samples, n_experts):
    """Validate a user-given array of labels or responsibilities.

    Parameters
    ----------
    init : array-like of shape (n_samples,) or (n_samples, n_experts)
        Initial expert labels in ``[0, n_experts)``, or responsibilities
        (non-negative rows with positive sums, normalised here).
    n_samples : int
        Number of training samples (after dropping zero-weight rows).
    n_experts : int
        Number of experts.

    Returns
    -------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities.
    """
    arr = np.asarray(init)
    if arr.ndim == 1:
        if arr.shape[0] != n_samples:
            raise ValueError(
                f"init labels must have shape (n_samples,) = ({n_samples},); got {arr.shape}."
            )
        if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
            raise ValueError("init labels must be finite integers.")
        if np.any(arr != np.round(arr)) or arr.min() < 0 or arr.max() >= n_experts:
            raise ValueError(
                f"init labels must be integers in [0, n_experts) = [0, {n_experts}); "
                f"got values in [{arr.min()}, {arr.max()}]."
            )
        # Experts the labels leave empty are starved: the driver re-seeds them.
        return _one_hot(arr.astype(np.intp), n_experts)
    if arr.ndim == 2:
        if arr.shape != (n_samples, n_experts):
            raise ValueError(
                "init responsibilities must have shape (n_samples, n_experts) = "
                f"({n_samples}, {n_experts}); got {arr.shape}."
            )
        arr = np.asarray(arr, dtype=np.float64)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError("init responsibilities must be finite and non-negative.")
        totals = arr.sum(axis=1)
        if np.any(totals <= 0):
            raise ValueError("Every row of the init responsibilities must have a positive sum.")
        return np.ascontiguousarray((arr / totals[:, None]).T)
    raise ValueError(
        f"init array must be labels (n_samples,) or responsibilities (n_samples, n_experts); "
        f"got an array with shape {arr.shape}."
    )
