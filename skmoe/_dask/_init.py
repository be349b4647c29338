"""First responsibilities of a Dask fit, without gathering the data.

Each strategy ends in a function of a row's values applied block by block:
the first step of a :class:`~skmoe._dask._resp.Recipe`, which every pass
evaluates on its own blocks:

* ``"kmeans"``, ``"gmm"``, ``"tree"`` and clusterers: the in-memory
  strategy (:func:`skmoe._init.initial_responsibilities`) on a uniform
  sample of rows, then extended to every row: the nearest k-means centre,
  the posterior under the Gaussian mixture, the tree's leaf, the
  clusterer's ``predict``. With no more rows than the sample size, the
  sample is every row and this is the in-memory initialisation itself.
* ``"random"``: the in-memory random softmax gate, already a function of
  the row's values.
* a Dask-ML clusterer (``dask_ml.cluster.KMeans``, whose default k-means||
  initialisation is the scalable k-means++) is fitted on all rows as a
  dask array.
* an array of labels or responsibilities, NumPy or dask, of all the rows.
"""

import copy

import numpy as np
from sklearn.base import clone
from sklearn.tree import DecisionTreeRegressor

from .._init import cluster_labels, is_clusterer_init, responsibilities_from_array
from .._init import initial_responsibilities as memory_initial_responsibilities
from ..gates._linear import weighted_standardisation
from ._blocks import import_dask, is_dask, reduce_blocks, sample_rows
from ._kernels import totals_block
from ._resp import Recipe, reduce_resp

# Rows of the sample the in-memory initialisations run on.
INIT_SAMPLE_ROWS = 100_000


def _standardised(X, y, mean, scale):
    """``([X, y] - mean) / scale`` of a block, float64."""
    Z = np.empty((X.shape[0], X.shape[1] + 1))
    Z[:, :-1] = X
    Z[:, -1] = y
    Z -= mean
    Z /= scale
    return Z


def _with_log_prob_row(resp_T):
    """Responsibilities ``(K, m)`` with a row of zeros for the log-likelihood: the E layout."""
    out = np.zeros((resp_T.shape[0] + 1, resp_T.shape[1]))
    out[:-1] = resp_T
    return out


def _one_hot(labels, n_experts):
    out = np.zeros((n_experts + 1, labels.shape[0]))
    out[labels, np.arange(labels.shape[0])] = 1.0
    return out


def _nearest_block(X, y, sw, mean, scale, centers):
    Z = _standardised(X, y, mean, scale)
    # ||z - c||^2 up to the row's own norm, which does not change the argmin.
    distances = (centers * centers).sum(axis=1) - 2.0 * (Z @ centers.T)
    return _one_hot(np.argmin(distances, axis=1), centers.shape[0])


def _gmm_parameters(Z, sample_weight, resp_T, reg_covar=1e-6):
    """Weights, means and Cholesky factors of the Gaussian mixture whose posterior is ``resp_T``.

    One weighted M-step (as :func:`~skmoe._init.weighted_gmm_responsibilities`
    does) on the sample, so that every row can then be given its posterior.
    """
    weight = sample_weight / sample_weight.sum()
    rw = resp_T * weight
    mass = rw.sum(axis=1) + 10 * np.finfo(np.float64).eps
    means = (rw @ Z) / mass[:, None]
    chols = []
    for k in range(resp_T.shape[0]):
        diff = Z - means[k]
        cov = (diff * rw[k][:, None]).T @ diff / mass[k]
        cov.flat[:: Z.shape[1] + 1] += reg_covar
        chols.append(np.linalg.cholesky(cov))
    return mass, means, np.stack(chols)


def _gmm_block(X, y, sw, mean, scale, mass, means, chols):
    Z = _standardised(X, y, mean, scale)
    log_joint = np.empty((mass.size, Z.shape[0]))
    for k in range(mass.size):
        solved = np.linalg.solve(chols[k], (Z - means[k]).T)
        log_det = 2.0 * np.sum(np.log(np.diag(chols[k])))
        log_joint[k] = np.log(mass[k]) - 0.5 * (
            np.einsum("ij,ij->j", solved, solved) + log_det + Z.shape[1] * np.log(2 * np.pi)
        )
    log_joint -= log_joint.max(axis=0)
    resp_T = np.exp(log_joint)
    resp_T /= resp_T.sum(axis=0)
    return _with_log_prob_row(resp_T)


def _random_block(X, y, sw, mean, scale, weights, offsets):
    Z = _standardised(X, y, mean, scale)
    logits = weights @ Z.T + offsets[:, None]
    logits -= logits.max(axis=0)
    resp_T = np.exp(logits)
    resp_T /= resp_T.sum(axis=0)
    return _with_log_prob_row(resp_T)


def _labels_block(X, y, sw, model, uniq, n_experts, how, mean, scale):
    if how == "tree":
        labels = np.searchsorted(uniq, model.apply(X)) % n_experts
    else:
        raw = np.asarray(model.predict(_standardised(X, y, mean, scale))).ravel()
        labels = np.searchsorted(uniq, raw)
        labels = np.minimum(labels, uniq.size - 1)
        if np.any(uniq[labels] != raw):
            raise ValueError(
                f"init clusterer {type(model).__name__} predicted a label it did not "
                "give any sampled row; it must predict one of the clusters it found."
            )
    return _one_hot(labels, n_experts)


def _dask_labels_block(X, y, sw, L, n_experts):
    labels = np.asarray(L).ravel()
    return _one_hot(labels.astype(np.intp), n_experts)


def _array_block(X, y, sw, A, n_experts, labels):
    """Responsibilities of a block of a user's dask array (``A`` is ``(1, m)`` labels or ``(K, m)``)."""
    if labels:
        return _one_hot(A[0].astype(np.intp), n_experts)
    resp = np.asarray(A, dtype=np.float64)
    return _with_log_prob_row(resp / resp.sum(axis=0))


def _check_array_block(X, y, sw, A, n_experts, labels):
    """Per block: the checks of :func:`~skmoe._init.responsibilities_from_array`, as counts."""
    if labels:
        a = A[0]
        if a.dtype.kind not in "iufb":
            raise ValueError("init labels must be finite integers.")
        finite = np.isfinite(a)
        whole = finite & (a == np.round(np.where(finite, a, 0)))
        inside = whole & (a >= 0) & (a < n_experts)
        return {
            "bad": int(np.count_nonzero(~inside)),
            "min": float(a.min()) if a.size else np.inf, "max": float(a.max()) if a.size else -np.inf,
        }
    a = np.asarray(A, dtype=np.float64)
    totals = a.sum(axis=0)
    return {
        "bad": int(np.count_nonzero(~np.isfinite(a)) + np.count_nonzero(a < 0)),
        "empty_rows": int(np.count_nonzero(~(totals > 0))),
    }


def _user_dask_array(init, data, n_experts):
    """The responsibilities of a user's dask array, after a blockwise check."""
    A = init.to_dask_array(lengths=True) if hasattr(init, "to_dask_array") else init
    if A.ndim not in (1, 2):
        raise ValueError(
            "init array must be labels (n_samples,) or responsibilities (n_samples, "
            f"n_experts); got an array with shape {A.shape}."
        )
    labels = A.ndim == 1
    if A.shape[0] != data.n_samples or (not labels and A.shape[1] != n_experts):
        expected = f"({data.n_samples},)" if labels else f"({data.n_samples}, {n_experts})"
        raise ValueError(
            f"init {'labels' if labels else 'responsibilities'} must have shape {expected} "
            f"(every row of the Dask input); got {A.shape}."
        )
    # Transposed to the ((k,), rows) layout of a recipe's arrays.
    A = (A[None, :] if labels else A.T).rechunk({0: -1, 1: data.chunks})
    parts = reduce_blocks(_check_array_block, data, [A], n_experts, labels)
    if labels:
        if sum(p["bad"] for p in parts):
            raise ValueError(
                f"init labels must be integers in [0, n_experts) = [0, {n_experts}); got "
                f"values in [{min(p['min'] for p in parts)}, {max(p['max'] for p in parts)}]."
            )
    else:
        if sum(p["bad"] for p in parts):
            raise ValueError("init responsibilities must be finite and non-negative.")
        if sum(p["empty_rows"] for p in parts):
            raise ValueError("Every row of the init responsibilities must have a positive sum.")
    return Recipe.of_rows(_array_block, n_experts, n_experts, labels, arrays=[A])


def _fill_block(X, y, sw, E, empty):
    """Give the experts ``empty`` a small uniform share (as the in-memory strategies do)."""
    out = E.copy()
    resp = out[:-1]
    resp[empty] = 1e-3
    resp /= resp.sum(axis=0)
    return out


def _input_block(X, y, sw, E):
    """The block of responsibilities computed in memory (``E``), as it is."""
    return E


def _fill_empty(recipe, data, spec, n_experts):
    """The strategies' own fill (``skmoe._init._fill_empty_experts``): empty experts get 1e-3."""
    totals = responsibility_totals(recipe, data, spec)[0]
    empty = totals <= 0
    if np.any(empty):
        return recipe.then(_fill_block, empty)
    return recipe


def responsibility_totals(recipe, data, spec):
    """Each expert's total responsibility, and the largest difference between experts for a row.

    Parameters
    ----------
    recipe : Recipe
        The responsibilities.
    data : RowData
        Training data.
    spec : FitSpec
        The fit's constants.

    Returns
    -------
    totals : ndarray of shape (n_experts,)
        Unweighted sums of the responsibilities.
    spread : float
        ``max_i (max_k r_ki - min_k r_ki)`` (the symmetry check).
    """
    parts = reduce_resp(totals_block, data, recipe, spec)
    return sum(p[0] for p in parts), max(p[1] for p in parts)


def initial_responsibilities(init, data, summary, n_experts, rng, spec):
    """First responsibilities as a :class:`~skmoe._dask._resp.Recipe` (log-likelihood row zeros).

    Draws from ``rng`` as the in-memory :func:`skmoe._init.initial_responsibilities`
    does (a seed first, then the strategy's own draws), so the restarts of
    ``n_init`` follow the same stream.

    Parameters
    ----------
    init : str, clusterer, array-like or dask array
        The estimator's ``init``.
    data : RowData
        Training data.
    summary : Summary
        Weighted moments of the data (the standardisation).
    n_experts : int
        Number of experts.
    rng : numpy.random.RandomState
        The fit's random generator.
    spec : FitSpec
        The fit's constants (for the passes over the responsibilities).

    Returns
    -------
    recipe : Recipe
        Responsibilities whose columns sum to one.
    """
    mean = np.append(summary.x_mean, summary.y_mean)
    scale = np.append(summary.x_scale, summary.y_scale)
    if isinstance(init, str) and init not in ("kmeans", "gmm", "tree", "random"):
        raise ValueError(
            f"init={init!r} is not available with Dask input; use 'kmeans', 'gmm' or "
            "'tree' (fitted on a sample of rows), 'random', a clusterer "
            "(dask_ml.cluster.KMeans for k-means|| on all rows) or an array of labels "
            "or responsibilities."
        )
    if isinstance(init, str) and init == "random":
        rng.randint(np.iinfo(np.int32).max)  # the seed the in-memory strategy draws first
        weights = rng.normal(size=(n_experts, mean.size)) * 2.0
        offsets = rng.normal(size=n_experts)
        return Recipe.of_rows(_random_block, n_experts, mean, scale, weights, offsets)

    if type(init).__module__.partition(".")[0] == "dask_ml":
        rng.randint(np.iinfo(np.int32).max)  # the seed the in-memory strategy draws first
        return _dask_ml_labels(clone(init), data, mean, scale, n_experts)
    if isinstance(init, str) or is_clusterer_init(init):
        # The in-memory strategy on a uniform sample of rows, drawn from a copy
        # of rng so that rng itself is drawn from as in memory.
        sample_rng = np.random.RandomState(copy.deepcopy(rng).randint(np.iinfo(np.int32).max))
        Xs, ys, ws = sample_rows(data, INIT_SAMPLE_ROWS, sample_rng)
        if Xs.shape[0] == data.n_samples:
            # Every row fits in the sample: the in-memory initialisation itself.
            resp_T = memory_initial_responsibilities(
                init, Xs, ys, ws, n_experts, rng, is_regression=True
            )
            return _in_memory(resp_T, data)
        return _extend_from_sample(init, data, Xs, ys, ws, mean, scale, n_experts, rng, spec)

    if is_dask(init):
        return _user_dask_array(init, data, n_experts)
    return _in_memory(responsibilities_from_array(init, data.n_samples, n_experts), data)


def _in_memory(resp_T, data):
    """A recipe that reads responsibilities computed on the client (a user's array, or a small fit)."""
    _, da = import_dask()
    n_experts = resp_T.shape[0]
    E = da.from_array(_with_log_prob_row(resp_T), chunks=((n_experts + 1,), data.chunks))
    return Recipe.of_rows(_input_block, n_experts, arrays=[E])


def _extend_from_sample(init, data, Xs, ys, ws, mean, scale, n_experts, rng, spec):
    """The in-memory strategy fitted on a sample, extended blockwise to every row.

    k-means: every row goes to the nearest centre (the sample's clusters'
    weighted means); GMM: every row gets its posterior under the mixture of
    the sample's responsibilities; tree: every row goes to its leaf; a
    clusterer: its ``predict``.
    """
    if isinstance(init, str) and init == "tree":
        seed = rng.randint(np.iinfo(np.int32).max)
        tree = DecisionTreeRegressor(max_leaf_nodes=max(n_experts, 2), random_state=seed)
        tree.fit(Xs, ys, sample_weight=ws)
        uniq = np.unique(tree.apply(Xs))
        recipe = Recipe.of_rows(_labels_block, n_experts, tree, uniq, n_experts, "tree", mean,
                                scale)
        return _fill_empty(recipe, data, spec, n_experts)
    if not isinstance(init, str):
        clusterer = clone(init)
        if not hasattr(clusterer, "predict"):
            raise ValueError(
                f"init={type(init).__name__}(...) has no predict method: with Dask input a "
                "clusterer is fitted on a sample of rows and must predict the others "
                "(KMeans, MiniBatchKMeans and GaussianMixture do). For k-means on all rows "
                "pass dask_ml.cluster.KMeans(n_clusters=n_experts)."
            )
        rng.randint(np.iinfo(np.int32).max)  # the seed the in-memory strategy draws first
        Zs = _standardised(Xs, ys, mean, scale)
        labels = cluster_labels(clusterer, Zs, ws)
        uniq = np.unique(np.asarray(labels))
        if uniq.shape[0] != n_experts:
            raise ValueError(
                f"init={init!r} found {uniq.shape[0]} clusters but n_experts={n_experts}; "
                "the clusterer must produce exactly one cluster per expert."
            )
        return Recipe.of_rows(_labels_block, n_experts, clusterer, uniq, n_experts, "predict",
                              mean, scale)
    resp_s = memory_initial_responsibilities(init, Xs, ys, ws, n_experts, rng, is_regression=True)
    # The sample's own standardisation, as the in-memory strategy used it.
    s_mean, s_scale = weighted_standardisation(np.column_stack([Xs, ys]), ws / ws.sum())
    Zs = _standardised(Xs, ys, s_mean, s_scale)
    if init == "kmeans":
        rw = resp_s * ws
        centers = (rw @ Zs) / np.maximum(rw.sum(axis=1), np.finfo(np.float64).tiny)[:, None]
        recipe = Recipe.of_rows(_nearest_block, n_experts, s_mean, s_scale, centers)
    else:
        recipe = Recipe.of_rows(_gmm_block, n_experts, s_mean, s_scale,
                                *_gmm_parameters(Zs, ws, resp_s))
    return _fill_empty(recipe, data, spec, n_experts)


def _dask_ml_labels(clusterer, data, mean, scale, n_experts):
    """Labels of a Dask-ML clusterer fitted on all the (standardised) rows."""
    _, da = import_dask()
    Z = da.concatenate([data.X.astype(np.float64), data.y[:, None]], axis=1)
    Z = ((Z - mean) / scale).rechunk({0: data.chunks, 1: -1})
    clusterer.fit(Z)
    labels = getattr(clusterer, "labels_", None)
    if labels is None:
        labels = clusterer.predict(Z)
    labels = da.asarray(labels).rechunk((data.chunks,))
    parts = reduce_blocks(_count_labels_block, data, [labels[None, :]], n_experts)
    present = np.sum([p[0] for p in parts], axis=0) > 0
    if any(p[1] for p in parts) or not np.all(present):
        raise ValueError(
            f"init={type(clusterer).__name__}(...) must produce exactly one cluster per "
            f"expert, labelled 0 to n_experts - 1 = {n_experts - 1}; it did not."
        )
    return Recipe.of_rows(_dask_labels_block, n_experts, n_experts, arrays=[labels[None, :]])


def _count_labels_block(X, y, sw, L, n_experts):
    labels = np.ravel(L).astype(np.intp)
    outside = bool(labels.size and (labels.min() < 0 or labels.max() >= n_experts))
    inside = labels[(labels >= 0) & (labels < n_experts)]
    return np.bincount(inside, minlength=n_experts), outside
