"""Initial partition of the input space: ``init=`` -> first responsibilities.

Every built-in strategy is a deterministic function of the *weighted set* of
samples and the random generator: repeating a row or giving it weight 2 yields
the same partition, as does shuffling the rows. This is what makes the whole
fit honour ``sample_weight`` exactly (scikit-learn's sample-weight
equivalence check), and it costs nothing: k-means++ seeding draws its
candidates from a canonical ordering of the rows, and the random strategy is a
random softmax gate, a function of the row's values rather than its index.
"""

import warnings

import numpy as np
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import has_fit_parameter

from .gates._linear import weighted_standardisation


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


def initial_responsibilities(init, X, y, sample_weight, n_experts, rng, *, is_regression):
    """First responsibilities from the ``init`` strategy.

    Parameters
    ----------
    init : {"kmeans", "random", "tree"}, clusterer or array-like
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
    n_samples = X.shape[0]
    seed = rng.randint(np.iinfo(np.int32).max)
    if isinstance(init, str):
        if init == "kmeans":
            Z = standardised_design(X, y, sample_weight, include_target=is_regression)
            centers = weighted_kmeans_plusplus(Z, sample_weight, n_experts, rng)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # duplicate centres: handled below
                # copy_x=False: Z is our own copy, KMeans may centre it in place.
                # tol=0 stops when no label changes; a positive tol would make
                # KMeans compute np.var(Z), a temporary as large as Z.
                km = KMeans(
                    n_experts, init=centers, n_init=1, max_iter=100, tol=0.0,
                    random_state=seed, copy_x=False,
                )
                labels = km.fit_predict(Z, sample_weight=sample_weight)
            resp_T = _one_hot(labels, n_experts)
        elif init == "random":
            Z = standardised_design(X, y, sample_weight, include_target=is_regression)
            # A random softmax gate: soft, spatially coherent, a function of the row values.
            weights = rng.normal(size=(n_experts, Z.shape[1])) * 2.0
            offsets = rng.normal(size=n_experts)
            logits = weights @ Z.T + offsets[:, None]
            logits -= logits.max(axis=0)
            resp_T = np.exp(logits)
            resp_T /= resp_T.sum(axis=0)
        elif init == "tree":
            tree_cls = DecisionTreeRegressor if is_regression else DecisionTreeClassifier
            tree = tree_cls(max_leaf_nodes=max(n_experts, 2), random_state=seed)
            tree.fit(X, y, sample_weight=sample_weight)
            _, labels = np.unique(tree.apply(X), return_inverse=True)
            resp_T = _one_hot(labels % n_experts, n_experts)
        else:  # pragma: no cover - guarded by parameter validation
            raise ValueError(f"Unknown init={init!r}.")
        _fill_empty_experts(resp_T)
        return resp_T

    if hasattr(init, "fit_predict"):
        clusterer = clone(init)
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
        labels = arr.astype(np.intp)
        missing = np.setdiff1d(np.arange(n_experts), labels)
        if missing.size:
            raise ValueError(
                f"init labels give no sample to expert(s) {missing.tolist()}; every one "
                f"of the n_experts={n_experts} experts needs at least one sample."
            )
        return _one_hot(labels, n_experts)
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
        resp_T = np.ascontiguousarray((arr / totals[:, None]).T)
        if np.any(resp_T.sum(axis=1) <= 0):
            raise ValueError("init responsibilities leave an expert with no weight at all.")
        return resp_T
    raise ValueError(
        f"init array must be labels (n_samples,) or responsibilities (n_samples, n_experts); "
        f"got an array with shape {arr.shape}."
    )
