"""Expert adapters: clone and seed experts, fit them with responsibility weights.

Two ways to run the expert M-step:

* the generic path: each expert is a clone of a scikit-learn estimator fitted
  with ``sample_weight = responsibility * user weight``, in parallel through
  :class:`sklearn.utils.parallel.Parallel`, so a Dask or Ray joblib backend
  spreads the experts over a cluster;
* the batched path for ``LinearRegression`` / ``Ridge`` experts: the weighted
  normal equations of all experts come from one pass over row blocks of
  ``[X, 1, y]`` and the small systems are solved together; the result is a list
  of ordinary fitted ``LinearRegression`` / ``Ridge`` objects, equal to what
  their own ``fit`` gives (see ``tests/test_experts.py``).
"""

import inspect
import numbers

import numpy as np
from scipy import linalg
from sklearn.base import clone, is_classifier
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import has_fit_parameter

from .utils._threads import MIN_ROWS_PER_THREAD, matmul_rows_T, row_parallel, small_fit_threads


def _accepts_sample_weight(estimator):
    if isinstance(estimator, Pipeline):
        return _accepts_sample_weight(estimator.steps[-1][1])
    return has_fit_parameter(estimator, "sample_weight")


def check_expert(estimator, *, classification):
    """Refuse an expert that cannot be an expert, naming it.

    Parameters
    ----------
    estimator : estimator
        Candidate expert.
    classification : bool
        Whether the mixture is a classifier (then ``predict_proba`` is needed).

    Raises
    ------
    TypeError
        If ``fit`` takes no ``sample_weight`` or, for classification, the
        expert has no ``predict_proba``.
    """
    name = type(estimator).__name__
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise TypeError(f"expert {estimator!r} must implement fit and predict.")
    if not _accepts_sample_weight(estimator):
        raise TypeError(
            f"expert {name} does not accept sample_weight in fit; mixture-of-experts "
            "training fits each expert with responsibility weights, so every expert "
            "(for a Pipeline, its last step) must support sample_weight."
        )
    if classification and not hasattr(estimator, "predict_proba"):
        raise TypeError(
            f"expert {name} has no predict_proba; a classifier expert must give "
            "class probabilities (e.g. set probability=True for SVC)."
        )


def seed_expert(estimator, rng):
    """Write integers from ``rng`` into every ``*random_state`` parameter left as None or a generator.

    Parameters
    ----------
    estimator : estimator
        Unfitted clone, modified in place.
    rng : numpy.random.RandomState
        Source of seeds.

    Returns
    -------
    estimator : estimator
        The same object.
    """
    to_set = {}
    for key, value in sorted(estimator.get_params(deep=True).items()):
        if (key == "random_state" or key.endswith("__random_state")) and not isinstance(
            value, numbers.Integral
        ):
            to_set[key] = int(rng.randint(np.iinfo(np.int32).max))
    if to_set:
        estimator.set_params(**to_set)
    return estimator


def _fit_params(estimator, sample_weight):
    if isinstance(estimator, Pipeline):
        # Route the weights to every step that takes them (a weighted scaler too).
        params = {}
        for name, step in estimator.steps:
            if step is not None and step != "passthrough" and has_fit_parameter(step, "sample_weight"):
                params[f"{name}__sample_weight"] = sample_weight
        return params
    return {"sample_weight": sample_weight}


def _fit_one(estimator, X, y, sample_weight, drop_zero_rows):
    if drop_zero_rows:
        keep = sample_weight > 0
        if not np.all(keep):
            X, y, sample_weight = X[keep], y[keep], sample_weight[keep]
    return estimator.fit(X, y, **_fit_params(estimator, sample_weight))


def fit_experts(templates, X, y, weights_T, *, sample_weight=None, n_jobs=None, drop_zero_rows=True):
    """Generic expert M-step: fit a clone of each template with its weights.

    Parameters
    ----------
    templates : list of estimators
        Unfitted, seeded experts.
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    weights_T : ndarray of shape (n_experts, n_samples)
        Responsibilities (or any per-expert weights).
    sample_weight : ndarray of shape (n_samples,), default=None
        User weights, multiplied into each expert's row of ``weights_T``.
    n_jobs : int, default=None
        Parallel jobs (joblib).
    drop_zero_rows : bool, default=True
        Pass only rows with positive weight (exactly equivalent for weighted
        fits, and what makes sparse gating cheap). Classifiers keep all rows so
        that every expert sees every class.

    Returns
    -------
    experts : list of estimators
        Fitted clones.
    """
    def weights(k):
        return weights_T[k] if sample_weight is None else weights_T[k] * sample_weight

    if n_jobs is None or n_jobs == 1 or len(templates) == 1:
        with small_fit_threads(X.shape[0]):
            return [
                _fit_one(clone(t), X, y, weights(k), drop_zero_rows)
                for k, t in enumerate(templates)
            ]
    # joblib's process workers already limit their inner threads.
    return Parallel(n_jobs=n_jobs)(
        delayed(_fit_one)(clone(t), X, y, weights(k), drop_zero_rows)
        for k, t in enumerate(templates)
    )


# ---------------------------------------------------------------------------
# Batched path for linear experts

FAST_PATH_TYPES = (LinearRegression, Ridge)


def supports_fast_path(templates):
    """Whether every expert is a plain ``LinearRegression`` or ``Ridge``.

    Parameters
    ----------
    templates : list of estimators
        Experts.

    Returns
    -------
    supported : bool
        True when the batched normal-equation M-step applies: exact types
        (no subclasses), ``positive=False`` and, for ``Ridge``, a scalar
        ``alpha`` and a direct solver.
    """
    for est in templates:
        if type(est) not in FAST_PATH_TYPES:
            return False
        if getattr(est, "positive", False):
            return False
        if isinstance(est, Ridge):
            if not isinstance(est.alpha, numbers.Real):
                return False
            # Iterative solvers stop at a tolerance; only direct solvers give the same answer.
            if est.solver not in ("auto", "cholesky", "svd"):
                return False
    return True


# Gram matrices are formed on transposed row blocks ``Z^T`` (p x m) of
# ``[X - x_offset, 1, y - y_offset]``: the weighting then runs along the long,
# contiguous axis (a row-major block makes it a loop of length p over a
# broadcast, measured 1.2-1.6x slower at d=50), and the block stays in cache
# while every expert's matrix is updated from it. Three kernels, chosen by
# measurement at n=1e4-1e6 on two cores (ratios to the GEMM floor, k times
# ``X.T @ X``):
#
# * "pairs" (p <= _PAIRS_MAX_COLUMNS and p <= 3k - 2): the p(p+1)/2 products
#   ``z_a * z_b`` of a block, then one GEMM ``W @ P^T`` gives the upper
#   triangle of every expert's matrix at once: p(p+1)/2 multiplies per row
#   instead of k*p, and one well-shaped product instead of k tiny ones
#   (k=16, d=5-14: 0.47-0.87x, "gemm" 1.1-1.8x; d=15-22: 0.65-1.1x, "syrk"
#   1.4-1.9x). Against the other kernels, both run the same way (two row
#   threads, n=1e5-1e6): d=14, k=6-8 0.5-0.7x; d=20, k=8 0.7x; at the
#   boundary about 1.0x (d=10, k=6; d=14, k=4); beyond it slower (d=10,
#   k=4 1.5x; d=20, k=4 1.2x; k=2 2.1-2.3x);
# * "gemm" (other p <= _GEMM_MAX_COLUMNS): per expert ``(w_k Z^T) Z``
#   (d=10, k=4: 1.3-1.7x; SYRK 1.9-2.0x: p is too small for SYRK to run near peak);
# * "syrk" (wider): per expert ``(sqrt(w_k) Z^T)(sqrt(w_k) Z^T)^T``, half the
#   flops for one square root per weight (d=15: 1.4-1.5x, GEMM 1.7-1.8x).
#
# Every kernel splits the rows into one chunk per thread of the RowPool
# (utils/_threads.py) from _THREADED_MIN_COLUMNS columns on with at least
# _MIN_ROWS_PER_THREAD rows per thread (d=30-100: 0.7-1.0x, serial 1.4-1.8x),
# narrower ones from _MIN_ROWS_PER_THREAD_NARROW rows per thread (measured
# with single-threaded BLAS, two threads against one: 0.5-1.0x the time at
# n=1e5-1e6, d=5-20; at n=1e4 up to 1.3x, too little work per thread).
_PAIRS_MAX_COLUMNS = 24
_GEMM_MAX_COLUMNS = 16
_GEMM_BLOCK = 4096
# Elements of one "pairs" block of products (4 MiB of float64): 6,721 rows at
# d=10; 4,096-8,192 rows measured best.
_PAIRS_BLOCK_ELEMENTS = 2**19
# Elements of one SYRK block (512 KiB of float64: it and its weighted copy
# stay in L2); 1,260 rows at d=50, measured best at 1,000-2,000.
_SYRK_BLOCK_ELEMENTS = 2**16
_THREADED_MIN_COLUMNS = 25
_MIN_ROWS_PER_THREAD = MIN_ROWS_PER_THREAD
_MIN_ROWS_PER_THREAD_NARROW = 16384


def _gram_kernel(p, n_experts):
    """Which Gram kernel serves ``p`` columns and ``n_experts`` experts, and its block rows."""
    if p <= _PAIRS_MAX_COLUMNS and p <= 3 * n_experts - 2:
        return "pairs", int(min(8192, _PAIRS_BLOCK_ELEMENTS // (p * (p + 1) // 2)))
    if p <= _GEMM_MAX_COLUMNS:
        return "gemm", _GEMM_BLOCK
    return "syrk", int(max(256, _SYRK_BLOCK_ELEMENTS // p))


def weighted_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight=None):
    """Gram matrices of ``[X - x_offset, 1, y - y_offset]`` under each expert's weights.

    One pass over the data in row blocks; every expert's matrix is updated
    from the same block while it is in cache. With more than one BLAS thread
    and enough rows, the rows are split into one contiguous chunk per thread
    and the chunks run in parallel threads with single-threaded BLAS (NumPy
    and BLAS release the GIL; see ``utils/_threads.py``): the small per-block
    products scale far better this way than through BLAS's own threads, and
    the elementwise weighting runs in parallel too (measured at n=1e5, d=50,
    two cores: 1.9x faster than the serial pass). The partial sums are added
    in chunk order, so a result depends only on the data and the thread count.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    weights_T : ndarray of shape (n_experts, n_samples)
        Non-negative weights per expert.
    x_offset : ndarray of shape (n_features,)
        Subtracted from ``X`` for accuracy (global weighted mean).
    y_offset : float
        Subtracted from ``y``.
    sample_weight : ndarray of shape (n_samples,), default=None
        Multiplied into every expert's weights, block by block (no
        ``(n_experts, n_samples)`` product is formed).

    Returns
    -------
    gram : ndarray of shape (n_experts, n_features + 2, n_features + 2)
        ``Z^T diag(w_k) Z`` for every expert, float64 and exactly symmetric.
    """
    n_samples, n_features = X.shape
    p = n_features + 2
    kernel, block = _gram_kernel(p, weights_T.shape[0])
    args = (X, y, weights_T, x_offset, y_offset, sample_weight, kernel, block)
    with row_parallel() as pool:
        min_rows = _MIN_ROWS_PER_THREAD if p >= _THREADED_MIN_COLUMNS else _MIN_ROWS_PER_THREAD_NARROW
        # Chunk bounds on block multiples: the same blocks as the serial pass.
        bounds = pool.bounds(n_samples, block=block, min_rows=min_rows)
        parts = pool.map(lambda start, stop: _gram_chunk(*args, start, stop), bounds)
    gram = parts[0]
    for part in parts[1:]:
        gram += part
    if kernel == "pairs":
        upper = gram
        gram = np.empty((weights_T.shape[0], p, p))
        rows, cols = np.triu_indices(p)
        gram[:, rows, cols] = upper
        gram[:, cols, rows] = upper
    elif kernel == "gemm":
        # The GEMM's product is not exactly symmetric in floating point; SYRK's is.
        gram += gram.transpose(0, 2, 1)
        gram *= 0.5
    return gram


def _gram_chunk(X, y, weights_T, x_offset, y_offset, sample_weight, kernel, block, start, stop):
    """Gram matrices of rows ``start:stop`` (see ``_gram_kernel``).

    Returns the ``(n_experts, p * (p + 1) // 2)`` upper triangles (row by
    row) for the "pairs" kernel, ``(n_experts, p, p)`` matrices otherwise,
    not yet symmetrised for the "gemm" kernel.
    """
    n_features = X.shape[1]
    n_experts = weights_T.shape[0]
    p = n_features + 2
    size = min(block, max(stop - start, 1))
    ZTb = np.empty((p, size))
    wb = np.empty((n_experts, size))
    if kernel == "pairs":
        # Row a of the upper triangle, columns a..p-1, starts at offset[a].
        offset = np.concatenate([[0], np.cumsum(np.arange(p, 0, -1))])
        gram = np.zeros((n_experts, offset[-1]))
        Pb = np.empty((offset[-1], size))
    else:
        gram = np.zeros((n_experts, p, p))
        STb = np.empty((p, size))
    for lo in range(start, stop, block):
        hi = min(lo + block, stop)
        m = hi - lo
        ZT = ZTb[:, :m]
        np.subtract(X[lo:hi].T, x_offset[:, None], out=ZT[:n_features])
        ZT[n_features] = 1.0
        np.subtract(y[lo:hi], y_offset, out=ZT[n_features + 1])
        w = weights_T[:, lo:hi]
        if sample_weight is not None:
            w = np.multiply(w, sample_weight[lo:hi], out=wb[:, :m])
        if kernel == "pairs":
            P = Pb[:, :m]
            for a in range(p):
                np.multiply(ZT[a], ZT[a:], out=P[offset[a] : offset[a + 1]])
            gram += w @ P.T
            continue
        if kernel == "syrk":
            w = np.sqrt(w, out=wb[:, :m])
        ST = STb[:, :m]
        for k in range(n_experts):
            np.multiply(ZT, w[k], out=ST)
            if kernel == "syrk":
                gram[k] += ST @ ST.T  # SYRK: half the flops of a general product
            else:
                gram[k] += ST @ ZT.T
    return gram


def _solve_normal_equations(A, b, *, rank_deficient_rcond):
    """Solve ``A beta = b`` for symmetric PSD ``A``: Cholesky, else minimum-norm."""
    try:
        c, lower = linalg.cho_factor(A, lower=True, check_finite=False)
        beta = linalg.cho_solve((c, lower), b, check_finite=False)
        if np.all(np.isfinite(beta)):
            # Cholesky can succeed on numerically singular systems; check the conditioning.
            diag = np.diag(c)
            if diag.min() > np.sqrt(rank_deficient_rcond) * diag.max():
                return beta
    except linalg.LinAlgError:
        pass
    # Minimum-norm solution, as scipy.linalg.lstsq gives LinearRegression.
    evals, evecs = np.linalg.eigh(A)
    keep = evals > rank_deficient_rcond * max(evals.max(), 0.0)
    inv = np.zeros_like(evals)
    inv[keep] = 1.0 / evals[keep]
    return evecs @ (inv * (evecs.T @ b))


def fit_linear_experts(templates, X, y, weights_T, sample_weight=None):
    """Batched M-step of ``LinearRegression`` / ``Ridge`` experts.

    Parameters
    ----------
    templates : list of LinearRegression or Ridge
        Unfitted experts.
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    weights_T : ndarray of shape (n_experts, n_samples)
        Weights per expert (responsibilities).
    sample_weight : ndarray of shape (n_samples,), default=None
        User weights, multiplied into every expert's weights.

    Returns
    -------
    experts : list of LinearRegression or Ridge
        Fitted estimators (``coef_``, ``intercept_``, ``n_features_in_`` and,
        for LinearRegression, ``rank_`` and ``singular_``), as their own
        ``fit`` with ``sample_weight`` would leave them.
    """
    n_samples, n_features = X.shape
    # Global weighted means: centring the blocks by them keeps the Gram
    # matrices well conditioned for features with large offsets.
    row_weight = weights_T.sum(axis=0)
    if sample_weight is not None:
        row_weight *= sample_weight
    grand = row_weight.sum()
    x_offset = (row_weight @ X) / grand
    y_offset = float(row_weight @ y / grand)
    gram = weighted_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight)
    d = n_features
    rcond = np.finfo(np.float64).eps * max(n_samples, n_features)
    experts = []
    for k, template in enumerate(templates):
        G = gram[k]
        sw = G[d, d]
        fit_intercept = template.fit_intercept
        alpha = float(template.alpha) if isinstance(template, Ridge) else 0.0
        if fit_intercept:
            mx = G[:d, d] / sw
            my = G[d, d + 1] / sw
            A = G[:d, :d] - sw * np.outer(mx, mx)
            b = G[:d, d + 1] - sw * mx * my
        else:
            # Undo the global centering: sums over the raw [X, y].
            mx, my = -x_offset, -y_offset
            A = G[:d, :d] + np.outer(G[:d, d], x_offset) + np.outer(x_offset, G[:d, d]) + sw * np.outer(x_offset, x_offset)
            b = G[:d, d + 1] + x_offset * G[d, d + 1] + y_offset * G[:d, d] + sw * x_offset * y_offset
        A = 0.5 * (A + A.T)
        if alpha > 0:
            A = A + alpha * np.eye(d)
        # Eigenvalues of a Gram matrix carry absolute rounding of about eps * its norm:
        # smaller ones are treated as zero (minimum-norm solution, as lstsq).
        coef = _solve_normal_equations(A, b, rank_deficient_rcond=rcond)
        expert = clone(template)
        expert.coef_ = coef
        if fit_intercept:
            expert.intercept_ = float(my + y_offset - (mx + x_offset) @ coef)
        else:
            expert.intercept_ = 0.0
        expert.n_features_in_ = n_features
        if isinstance(expert, LinearRegression):
            # lstsq's diagnostics from the eigenvalues of the weighted (centred) Gram matrix.
            evals = np.clip(np.linalg.eigvalsh(A)[::-1], 0.0, None)
            singular = np.sqrt(evals)
            expert.singular_ = singular
            # Same threshold as the solve: eigenvalues below eps-level rounding are zero.
            expert.rank_ = int(np.sum(evals > rcond * evals[0])) if evals[0] > 0 else 0
        else:
            expert.n_iter_ = None
            expert.solver_ = "cholesky"
        experts.append(expert)
    return experts


def predict_linear_experts(experts, X, out=None):
    """Predictions of linear experts, ``(n_experts, n_samples)``, in one product.

    Parameters
    ----------
    experts : list of fitted linear models
        Experts with ``coef_`` of shape (n_features,) and scalar ``intercept_``.
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    out : ndarray of shape (n_experts, n_samples), default=None
        Buffer.

    Returns
    -------
    mean_T : ndarray of shape (n_experts, n_samples)
        Predictions.
    """
    coef = np.vstack([np.ravel(e.coef_) for e in experts]).astype(X.dtype, copy=False)
    intercept = np.array([float(np.ravel(e.intercept_)[0]) for e in experts])
    # Written straight into the (n_experts, n_samples) layout: measured faster
    # than X @ coef.T followed by a transposed copy.
    out = matmul_rows_T(coef, X, out=out)
    out += intercept.astype(out.dtype)[:, None]
    return out


def predict_experts(experts, X):
    """Predictions of any regressors, ``(n_experts, n_samples)``.

    Parameters
    ----------
    experts : list of fitted regressors
        Experts.
    X : ndarray of shape (n_samples, n_features)
        Inputs.

    Returns
    -------
    mean_T : ndarray of shape (n_experts, n_samples)
        Predictions, float64.
    """
    if all(type(e) in FAST_PATH_TYPES and np.ndim(e.coef_) == 1 for e in experts):
        return predict_linear_experts(experts, X).astype(np.float64, copy=False)
    mean_T = np.empty((len(experts), X.shape[0]))
    for k, e in enumerate(experts):
        mean_T[k] = np.ravel(e.predict(X))
    return mean_T


def aligned_proba(expert, X, n_classes):
    """``predict_proba`` of a classifier expert aligned to ``range(n_classes)``.

    An expert whose weights left some classes out (or who never saw them)
    gets probability 0 for them.

    Parameters
    ----------
    expert : fitted classifier
        Fitted on integer-encoded labels.
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    n_classes : int
        Number of classes of the mixture.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
        Probabilities in the mixture's class order.
    """
    proba = np.asarray(expert.predict_proba(X), dtype=np.float64)
    classes = np.asarray(expert.classes_).astype(np.intp)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((X.shape[0], n_classes))
    full[:, classes] = proba
    return full


def n_expert_parameters(expert):
    """Number of free parameters of a fitted expert, for BIC/AIC.

    Counted: ``coef_`` and ``intercept_`` entries when present (a linear model;
    a binary ``LogisticRegression`` has one row), the leaves of a fitted
    decision tree, the sum over the members of an ensemble exposing
    ``estimators_``, the last step of a Pipeline. Anything else counts 0.

    Parameters
    ----------
    expert : fitted estimator
        Expert.

    Returns
    -------
    n_parameters : int
        Parameter count.
    """
    if isinstance(expert, Pipeline):
        return n_expert_parameters(expert.steps[-1][1])
    if hasattr(expert, "coef_"):
        n = int(np.size(expert.coef_))
        if getattr(expert, "fit_intercept", True):
            n += int(np.size(getattr(expert, "intercept_", 0)))
        return n
    if hasattr(expert, "tree_"):
        return int(expert.get_n_leaves()) * int(np.prod(expert.tree_.value.shape[1:2]))
    members = getattr(expert, "estimators_", None)
    if members is not None:
        flat = np.ravel(np.asarray(members, dtype=object))
        return int(sum(n_expert_parameters(m) for m in flat))
    predictors = getattr(expert, "_predictors", None)  # HistGradientBoosting: leaves of every tree
    if predictors is not None:
        return int(sum(p.get_n_leaf_nodes() for row in predictors for p in row))
    return 0


def accepts_param(func, name):
    """Whether callable ``func`` takes keyword ``name``.

    Parameters
    ----------
    func : callable
        Function.
    name : str
        Keyword.

    Returns
    -------
    accepts : bool
        True if ``name`` is a parameter of ``func``.
    """
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
