"""Weighted Gram matrices of every expert on sparse ``X``, without densifying it.

The sparse counterpart of :func:`skmoe._gram.weighted_gram_matrices` for
the batched linear solver: the Gram matrices of ``[X, 1, y - y_offset]``
under each expert's weights. ``X`` is not centred (that would fill it): the
solver centres each expert's normal equations from the Gram matrix itself
(:func:`skmoe._solvers.solve_linear_experts` with ``x_offset = 0``), the
implicit centring of scikit-learn's linear models on sparse input.

Per block of CSR rows (a view of ``X``, :func:`~skmoe._sparse.row_block`),
``X_b^T diag(w_k) X_b`` is one sparse-sparse product per expert, whose cost
is proportional to the products of non-zeros within each row,
``sum_i nnz_i^2``, instead of ``n * n_features^2``; the columns of ``1``
and ``y`` are sparse-dense products for every expert at once. Rows an
expert gives no weight (top-k, hard and capacity-limited routing) are left
out of its product when they are most of the block, so the cost follows
the routed rows. SciPy's sparse products release the GIL: the experts are
split between the threads of the :class:`~skmoe.utils._threads.RowPool`,
each expert's blocks added in row order by one thread, so a result does not
depend on the thread count.
"""

import numpy as np

from . import _sparse
from ._sparse import block_rows, column_counts, csr_view, left_matmul, row_block
from .utils._threads import row_parallel, threads_for

# An expert's product takes only its rows of positive weight when they are
# fewer than this share of the block (a gather then pays for itself).
_ROUTED_SHARE = 0.5
# Columns with non-zeros in at least this share of the rows are multiplied as
# dense columns: a sparse product pays per pair of non-zeros of a row, most
# of them involving such columns (measured in benchmarks/README.md).
_DENSE_SHARE = 0.25


def sparse_gram_matrices(X, y, weights_T, y_offset, sample_weight=None):
    """Gram matrices of ``[X, 1, y - y_offset]`` under each expert's weights, ``X`` sparse.

    Parameters
    ----------
    X : sparse matrix of shape (n_samples, n_features)
        CSR inputs, float32 or float64 (summed in float64).
    y : ndarray of shape (n_samples,)
        Targets.
    weights_T : ndarray of shape (n_experts, n_samples)
        Non-negative weights per expert.
    y_offset : float
        Subtracted from ``y``.
    sample_weight : ndarray of shape (n_samples,), default=None
        Multiplied into every expert's weights, block by block.

    Returns
    -------
    gram : ndarray of shape (n_experts, n_features + 2, n_features + 2)
        ``Z^T diag(w_k) Z`` with ``Z = [X, 1, y - y_offset]``, float64 and
        exactly symmetric.
    """
    n_samples, d = X.shape
    n_experts = weights_T.shape[0]
    gram = np.zeros((n_experts, d + 2, d + 2))
    step = block_rows(X)
    # The columns of 1 and y for every expert at once, block by block:
    # X_b^T [w_k, w_k y_c] and their sums.
    for lo in range(0, n_samples, step):
        hi = min(n_samples, lo + step)
        w = _weights(weights_T, sample_weight, lo, hi)
        yc = y[lo:hi] - y_offset
        wy = w * yc
        block = row_block(X, lo, hi)
        gram[:, :d, d] += left_matmul(w, block)
        gram[:, :d, d + 1] += left_matmul(wy, block)
        gram[:, d, d] += w.sum(axis=1)
        gram[:, d, d + 1] += wy.sum(axis=1)
        gram[:, d + 1, d + 1] += wy @ yc

    # Columns non-zero in at least _DENSE_SHARE of the rows take dense products.
    dense_cols = np.flatnonzero(column_counts(X) >= _DENSE_SHARE * n_samples)
    if dense_cols.size:  # the dense block of a row block stays about SPARSE_BLOCK_NNZ doubles
        step = min(step, max(256, _sparse.SPARSE_BLOCK_NNZ // dense_cols.size))

    def run(first, last):
        cross = np.empty((d, d))  # one expert's block product
        for lo in range(0, n_samples, step):
            hi = min(n_samples, lo + step)
            block, dense = _split_columns(row_block(X, lo, hi), dense_cols)
            w = _weights(weights_T[first:last], sample_weight, lo, hi)
            block_T = None  # the block's transpose, shared by this thread's experts
            for k in range(first, last):
                rows = np.flatnonzero(w[k - first])
                if rows.size == 0:
                    continue
                part_w = w[k - first]
                part, part_dense = block, dense
                if rows.size < _ROUTED_SHARE * (hi - lo):
                    part, part_w = block[rows], part_w[rows]
                    part_dense = None if dense is None else dense[rows]
                    part_T = part.T.tocsr()
                else:
                    if block_T is None:
                        block_T = block.T.tocsr()
                    part_T = block_T
                weighted = csr_view(
                    part.data * np.repeat(part_w, np.diff(part.indptr)), part.indices, part.indptr,
                    part.shape,
                )
                (part_T @ weighted).toarray(out=cross)
                if part_dense is not None:
                    # The dense columns' products: with the sparse ones (sparse-dense,
                    # one pass over the non-zeros) and among themselves (BLAS).
                    weighted_dense = part_dense * part_w[:, None]
                    mixed = np.asarray(part_T @ weighted_dense)
                    cross[:, dense_cols] += mixed
                    cross[dense_cols, :] += mixed.T
                    cross[np.ix_(dense_cols, dense_cols)] += part_dense.T @ weighted_dense
                gram[k, :d, :d] += cross

    with row_parallel() as pool:
        # Experts in contiguous groups, one per thread the products pay for.
        per_row = X.nnz / max(1, n_samples)
        n_groups = min(n_experts, threads_for(n_samples, per_row * per_row, budget=pool.n_threads))
        edges = np.linspace(0, n_experts, n_groups + 1).round().astype(int)
        pool.map(run, list(zip(edges[:-1].tolist(), edges[1:].tolist())))
    # The X block is symmetric up to the order of its products' roundings; the
    # border was computed once, above the diagonal.
    gram[:, :d, :d] += gram[:, :d, :d].transpose(0, 2, 1)
    gram[:, :d, :d] *= 0.5
    gram[:, d, :d] = gram[:, :d, d]
    gram[:, d + 1, :d] = gram[:, :d, d + 1]
    gram[:, d + 1, d] = gram[:, d, d + 1]
    return gram


def _split_columns(block, dense_cols):
    """A float64 CSR row block without its columns ``dense_cols``, and those columns dense (or None)."""
    if not dense_cols.size:
        if block.dtype != np.float64:
            block = csr_view(block.data.astype(np.float64), block.indices, block.indptr, block.shape)
        return block, None
    in_dense = np.zeros(block.shape[1], dtype=bool)
    in_dense[dense_cols] = True
    nz_dense = in_dense[block.indices]
    keep = ~nz_dense
    kept = np.concatenate([[0], np.cumsum(keep)])
    sparse = csr_view(
        block.data[keep].astype(np.float64, copy=False), block.indices[keep], kept[block.indptr],
        block.shape,
    )
    position = np.zeros(block.shape[1], dtype=np.intp)
    position[dense_cols] = np.arange(dense_cols.size)
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))[nz_dense]
    dense = np.zeros((block.shape[0], dense_cols.size))
    dense[rows, position[block.indices[nz_dense]]] = block.data[nz_dense]
    return sparse, dense


def _weights(weights_T, sample_weight, lo, hi):
    """float64 weights of rows ``lo:hi``, times the sample weights."""
    w = np.array(weights_T[:, lo:hi], dtype=np.float64)
    if sample_weight is not None:
        w *= sample_weight[lo:hi]
    return w
