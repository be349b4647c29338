"""Initial partition of the input space: ``init=`` -> first responsibilities.

Every built-in strategy is a deterministic function of the *weighted set* of
samples and the random generator: repeating a row or giving it weight 2 yields
the same partition, as does shuffling the rows. This is what makes the whole
fit honour ``sample_weight`` exactly (scikit-learn's sample-weight
equivalence check), and it costs nothing: k-means++ seeding draws its
candidates from a canonical ordering of the rows, and the random strategy is a
random softmax gate, a function of the row's values rather than its index.

Every strategy runs under the fit's thread rule (:mod:`skmoe.utils._threads`):
k-means is a weighted Lloyd iteration of our own (:mod:`skmoe._kmeans`) whose
passes over the rows go to the row pool only when their size pays for it,
and the tree, the GMM and a user's clusterer run with the BLAS and OpenMP
threads their size pays for (one on small data, where scikit-learn's OpenMP
k-means was measured at 30x the CPU time of one thread on a busy 2-core
machine).

Sparse ``X`` is never densified: k-means and the random strategy work on an
implicitly standardised design
(:class:`~skmoe._sparse_design.StandardisedSparseDesign`), the tree takes
the sparse matrix, a user's clusterer a scaled sparse copy, and ``"gmm"``
(full covariances) refuses it.
"""

import numpy as np
from sklearn.base import clone
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import has_fit_parameter

from ._kmeans import _squared_distances, weighted_kmeans_plusplus, weighted_lloyd
from ._sparse import SPARSE_GMM_MESSAGE, is_sparse
from ._sparse import weighted_standardisation as sparse_standardisation
from ._sparse_design import StandardisedSparseDesign
from .gates._linear import weighted_standardisation
from .utils._threads import fit_threads


def standardised_design(X, y, sample_weight, include_target):
    """Weighted-standardised copy of ``X`` (and of ``y`` as a last column).

    For sparse ``X`` no copy is made: the design is a
    :class:`~skmoe._sparse_design.StandardisedSparseDesign`, which the
    k-means and random strategies use as they use the dense array.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
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
    Z : ndarray or StandardisedSparseDesign of shape (n_samples, n_features + include_target)
        Standardised design, float64.
    """
    weight = sample_weight / sample_weight.sum()
    if is_sparse(X):
        mean, scale = sparse_standardisation(X, weight)
        target = np.empty((X.shape[0], 0))
        if include_target:
            target = np.asarray(y, dtype=np.float64).reshape(-1, 1)
            y_mean, y_scale = weighted_standardisation(target, weight)
            target = (target - y_mean) / y_scale
        return StandardisedSparseDesign(X, mean, scale, target)
    # One new array, standardised in place: this copy is the largest
    # allocation of a whole fit, so no temporaries beside it.
    if include_target:
        Z = np.column_stack([X, y]).astype(np.float64, copy=False)
    else:
        Z = np.array(X, dtype=np.float64, copy=True)
    mean, scale = weighted_standardisation(Z, weight)
    Z -= mean
    Z /= scale
    return Z


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

    if is_clusterer_init(init):
        clusterer = clone(init)
        with fit_threads(n_samples, n_features * n_experts):
            Z = standardised_design(X, y, sample_weight, include_target=is_regression)
            if isinstance(Z, StandardisedSparseDesign):
                Z = Z.scaled_matrix()
            labels = cluster_labels(clusterer, Z, sample_weight)
        uniq, labels = np.unique(np.asarray(labels), return_inverse=True)
        if uniq.shape[0] != n_experts:
            raise ValueError(
                f"init={init!r} found {uniq.shape[0]} clusters but n_experts={n_experts}; "
                "the clusterer must produce exactly one cluster per expert."
            )
        return _one_hot(labels.ravel(), n_experts)

    return responsibilities_from_array(init, n_samples, n_experts)


def is_clusterer_init(init):
    """Whether ``init`` is a clusterer: ``fit_predict``, or ``fit`` and ``predict`` (dask-ml's KMeans)."""
    return not isinstance(init, str) and (
        hasattr(init, "fit_predict") or (hasattr(init, "fit") and hasattr(init, "predict"))
    )


def cluster_labels(clusterer, Z, sample_weight):
    """Labels of the rows of ``Z`` from a fresh ``clusterer``, with the weights where it takes them."""
    kwargs = {"sample_weight": sample_weight} if has_fit_parameter(clusterer, "sample_weight") else {}
    if hasattr(clusterer, "fit_predict"):
        return clusterer.fit_predict(Z, **kwargs)
    clusterer.fit(Z, **kwargs)
    labels = getattr(clusterer, "labels_", None)
    return clusterer.predict(Z) if labels is None else labels


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
        if isinstance(Z, StandardisedSparseDesign):
            logits = np.ascontiguousarray((Z @ weights.T).T) + offsets[:, None]
        else:
            logits = weights @ Z.T + offsets[:, None]
        logits -= logits.max(axis=0)
        resp_T = np.exp(logits)
        resp_T /= resp_T.sum(axis=0)
        return resp_T
    if init == "gmm":
        if is_sparse(X):
            raise TypeError(SPARSE_GMM_MESSAGE)
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
