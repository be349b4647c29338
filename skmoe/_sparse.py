"""Sparse inputs: CSR row blocks, the products the EM passes need, and who accepts sparse ``X``.

Sparse ``X`` (any SciPy sparse matrix or array) is validated once into CSR
(:func:`as_csr`; a CSC matrix costs one conversion) and never densified:
the passes over the rows read it in row blocks that are views of its
arrays (:func:`row_block`), the products with small dense factors run as
sparse-dense products (:func:`matmul_T`, :func:`left_matmul`), and the
column statistics that standardise it (:func:`weighted_standardisation`)
are sums over its non-zeros. Centring, where a model needs it, is done
implicitly, as scikit-learn's linear models do for sparse input: the
batched linear experts centre their Gram matrices
(:mod:`skmoe._sparse_gram`), the gate folds the mean into its bias
(:class:`~skmoe.gates._softmax.SoftmaxObjective`), the initialisation into
its products (:class:`~skmoe._sparse_design.StandardisedSparseDesign`).

:func:`sparse_refusal` says, before any work, which expert, gate or
clusterer cannot take sparse ``X`` (scikit-learn's ``input_tags.sparse``).
"""

import numpy as np
import scipy.sparse as sp
from sklearn.utils import get_tags

# Non-zeros per row block of the sparse passes: the block's copies (its
# transpose, its weighted values) stay a few MiB.
SPARSE_BLOCK_NNZ = 2**18


def is_sparse(X):
    """Whether ``X`` is a SciPy sparse matrix or array."""
    return sp.issparse(X)


def as_csr(X):
    """``X`` as a canonical CSR matrix (sorted indices, no duplicates).

    A CSR input in canonical form is returned as it is; any other format is
    converted (a copy), and duplicate entries are summed in the copy, never
    in the caller's matrix.

    Parameters
    ----------
    X : sparse matrix or array of shape (n_samples, n_features)
        Validated input.

    Returns
    -------
    X : scipy.sparse.csr_matrix or csr_array
        The same values in CSR form.
    """
    if X.format != "csr":
        X = X.tocsr()
    elif not X.has_canonical_format:
        X = X.copy()
    if not X.has_canonical_format:
        X.sum_duplicates()
    return X


class _CSRView(sp.csr_matrix):
    """A CSR matrix over slices of another one's ``data`` and ``indices``, never copied.

    SciPy's constructor "prunes" its arrays, copying any that is a view of
    an array more than twice its size: every row block of a large matrix
    would be copied, and so would its transpose (measured: 115 MB for half
    of a 1e6-row design). The slices of :func:`row_block` end at their last
    non-zero, so there is nothing to prune.
    """

    def prune(self):
        pass

    def transpose(self, axes=None, copy=False):
        if axes is not None or copy:
            return super().transpose(axes=axes, copy=copy)
        return _CSCView((self.data, self.indices, self.indptr), shape=self.shape[::-1], copy=False)


class _CSCView(sp.csc_matrix):
    """The transpose of a :class:`_CSRView`, sharing its arrays."""

    def prune(self):
        pass


def csr_view(data, indices, indptr, shape):
    """A CSR matrix on these arrays as they are (views of larger arrays are not copied)."""
    return _CSRView((data, indices, indptr), shape=shape, copy=False)


def row_block(X, lo, hi):
    """Rows ``lo:hi`` of ``X``: a slice of a dense array, a CSR view of a sparse one.

    The CSR block shares ``data`` and ``indices`` with ``X`` (only its small
    ``indptr`` is new), so a pass over the blocks copies nothing of ``X``.
    """
    if not sp.issparse(X):
        return X[lo:hi]
    start, stop = X.indptr[lo], X.indptr[hi]
    return csr_view(
        X.data[start:stop], X.indices[start:stop], X.indptr[lo : hi + 1] - start, (hi - lo, X.shape[1])
    )


def block_rows(X, max_rows=None):
    """Rows per block of a sparse pass: about :data:`SPARSE_BLOCK_NNZ` non-zeros.

    Parameters
    ----------
    X : sparse matrix of shape (n_samples, n_features)
        CSR input.
    max_rows : int, default=None
        Upper bound (the dense buffers of the caller).

    Returns
    -------
    rows : int
        At least 256 rows.
    """
    per_row = max(1.0, X.nnz / max(1, X.shape[0]))
    rows = max(256, int(SPARSE_BLOCK_NNZ / per_row))
    return rows if max_rows is None else min(rows, max_rows)


def matmul_T(A, rows, out=None):
    """``A @ rows.T``, shape ``(len(A), n_rows)``, for dense or CSR ``rows``.

    Parameters
    ----------
    A : ndarray of shape (m, n_features)
        Small dense factor.
    rows : ndarray or sparse matrix of shape (n_rows, n_features)
        Data.
    out : ndarray of shape (m, n_rows), default=None
        Buffer.

    Returns
    -------
    out : ndarray of shape (m, n_rows)
        The product, of the result type of ``A`` and ``rows``.
    """
    if not sp.issparse(rows):
        return np.matmul(A, rows.T, out=out)
    product = np.asarray(rows @ A.T).T  # sparse @ dense: (n_rows, m), one pass over the non-zeros
    if out is None:
        return np.ascontiguousarray(product)
    out[...] = product
    return out


def left_matmul(B, rows):
    """``B @ rows``, shape ``(len(B), n_features)``, for dense or CSR ``rows``.

    Parameters
    ----------
    B : ndarray of shape (m, n_rows)
        Small dense factor (weights per row).
    rows : ndarray or sparse matrix of shape (n_rows, n_features)
        Data.

    Returns
    -------
    product : ndarray of shape (m, n_features)
        C-contiguous.
    """
    if not sp.issparse(rows):
        return np.matmul(B, rows)
    # Block by block: rows.T of a block is a CSC view whose product with the
    # block's (small, C-ordered) copy of B.T reads each non-zero once.
    n_rows = rows.shape[0]
    step = block_rows(rows)
    out = np.zeros((rows.shape[1], B.shape[0]), dtype=np.result_type(B.dtype, rows.dtype))
    for lo in range(0, n_rows, step):
        hi = min(n_rows, lo + step)
        out += np.asarray(row_block(rows, lo, hi).T @ np.ascontiguousarray(B[:, lo:hi].T))
    return np.ascontiguousarray(out.T)


def column_counts(X):
    """Non-zeros of every column of CSR ``X``, counted block by block.

    ``np.bincount`` of all of ``X.indices`` would first copy them as 64-bit
    integers (twice their int32 size); per block the copy stays small.
    """
    counts = np.zeros(X.shape[1], dtype=np.intp)
    step = block_rows(X)
    for lo in range(0, X.shape[0], step):
        counts += np.bincount(row_block(X, lo, min(X.shape[0], lo + step)).indices, minlength=X.shape[1])
    return counts


def weighted_column_squares(X, weight, centre):
    """``sum_i w_i (x_ij - centre_j)^2`` of every column of sparse ``X``, zeros included.

    Summed over the non-zeros, ``sum_nz w (x - c)^2``, plus the zeros'
    share ``(sum of their weights) c^2``: no ``E[x^2] - c^2`` cancellation
    and no densified column.

    Parameters
    ----------
    X : sparse matrix of shape (n_samples, n_features)
        CSR data.
    weight : ndarray of shape (n_samples,)
        Non-negative weights.
    centre : ndarray of shape (n_features,)
        Subtracted from every entry, the zeros included.

    Returns
    -------
    squares : ndarray of shape (n_features,)
        float64 sums.
    """
    n_samples, n_features = X.shape
    squares = np.zeros(n_features)
    nz_weight = np.zeros(n_features)
    step = block_rows(X)
    for lo in range(0, n_samples, step):
        hi = min(n_samples, lo + step)
        block = row_block(X, lo, hi)
        w = np.repeat(weight[lo:hi], np.diff(block.indptr))
        centred = block.data - centre[block.indices]
        squares += np.bincount(block.indices, weights=w * centred * centred, minlength=n_features)
        nz_weight += np.bincount(block.indices, weights=w, minlength=n_features)
    zero_weight = np.clip(weight.sum() - nz_weight, 0.0, None)
    return squares + zero_weight * centre * centre


def weighted_standardisation(X, weight):
    """Weighted mean and standard deviation of each column of sparse ``X`` (1 for constant columns).

    Equal, to rounding, to the dense
    :func:`skmoe.gates._network.weighted_standardisation`; the variance is
    :func:`weighted_column_squares` about the mean.

    Parameters
    ----------
    X : sparse matrix of shape (n_samples, n_features)
        CSR data.
    weight : ndarray of shape (n_samples,)
        Non-negative weights summing to one.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,)
        Weighted mean and standard deviation, float64.
    """
    weight = np.asarray(weight, dtype=np.float64)
    mean = np.asarray(X.T @ weight, dtype=np.float64).ravel()
    scale = np.sqrt(weighted_column_squares(X, weight, mean))
    scale[scale <= 1e-12 * (np.abs(mean) + 1.0)] = 1.0
    return mean, scale


def _accepts_sparse(estimator):
    try:
        return bool(get_tags(estimator).input_tags.sparse)
    except (AttributeError, TypeError, ValueError):  # pragma: no cover - not an estimator
        return False


SPARSE_GMM_MESSAGE = (
    "init='gmm' fits full-covariance Gaussians, which sparse X does not allow "
    "without densifying it; use init='kmeans' (the default), 'random' or 'tree', "
    "or densify X (X.toarray())."
)


def sparse_refusal(experts=(), gate=None, init=None):
    """Why sparse ``X`` cannot be fitted or predicted with these parts, or None when it can.

    An expert, a gate object or an ``init`` clusterer takes sparse ``X``
    when its scikit-learn tags say so (``input_tags.sparse``; a Pipeline's
    tags are those of its first step); ``init="gmm"`` (full covariances)
    never does. The built-in gates (strings) are the combination table's to
    refuse (:mod:`skmoe._combinations`).

    Parameters
    ----------
    experts : list of estimators
        Expert templates or fitted experts.
    gate : str or object, default=None
        The ``gate`` parameter or a fitted gate.
    init : str, object or array-like, default=None
        The ``init`` parameter.

    Returns
    -------
    message : str or None
        Names the part that refuses sparse input and the fixes.
    """
    fix = (
        "Densify X (X.toarray(), or OneHotEncoder(sparse_output=False) in the pipeline) "
        "or use {what} that accepts sparse input ({examples})."
    )
    for k, expert in enumerate(experts):
        if not _accepts_sparse(expert):
            return (
                f"expert {k} ({type(expert).__name__}) does not accept sparse X (its "
                "input_tags.sparse is False). " + fix.format(
                    what="an expert", examples="LinearRegression, Ridge, LogisticRegression, "
                    "PoissonRegressor, DecisionTreeRegressor, ...",
                )
            )
    if gate is not None and not isinstance(gate, str) and not _accepts_sparse(gate):
        return (
            f"gate={type(gate).__name__} does not accept sparse X (its input_tags.sparse "
            "is False). " + fix.format(what="a gate", examples="gate='linear'")
        )
    if isinstance(init, str) and init == "gmm":
        return SPARSE_GMM_MESSAGE
    if hasattr(init, "fit_predict") and not _accepts_sparse(init):
        return (
            f"init={type(init).__name__} does not accept sparse X (its "
            "input_tags.sparse is False). " + fix.format(
                what="an init", examples="init='kmeans', 'random' or 'tree', or KMeans()"
            )
        )
    return None
