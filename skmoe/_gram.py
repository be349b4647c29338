"""Weighted Gram matrices of every expert from one pass over row blocks, and their solves.

The batched linear solver (:mod:`skmoe._solvers`) accumulates these
sufficient statistics per row block (:func:`gram_chunk`, the unit a thread
or, later, a Dask task computes), adds the blocks in a fixed order
(:func:`finish_gram`) and solves the small systems
(:func:`solve_normal_equations`).

Gram matrices are formed on transposed row blocks ``Z^T`` (p x m) of
``[X - x_offset, 1, y - y_offset]``, so the weighting runs along the long,
contiguous axis and the block stays in cache while every expert's matrix is
updated from it. Three kernels, chosen by measurement (the timings are in
``benchmarks/README.md``, "Gram kernels"):

* "pairs" (few columns, many experts): the p(p+1)/2 column products of a
  block once, then one GEMM with the weights gives every expert's upper
  triangle;
* "gemm" (other narrow designs): per expert ``(w_k Z^T) Z``;
* "syrk" (wider): per expert ``(sqrt(w_k) Z^T)(sqrt(w_k) Z^T)^T``, half the
  flops.

Rows are split into one chunk per thread of the
:class:`~skmoe.utils._threads.RowPool` once each thread gets enough rows.

Sparse weights (top-k, hard and capacity-limited routing) take a fourth
path, :func:`routed_gram_matrices`, whose cost is proportional to the
routed rows rather than to ``n_experts * n_samples`` (the crossover is
:func:`routed_rows_pay`).
"""

import numpy as np
from scipy.linalg import blas, lapack

from .utils._array_api import get_namespace
from .utils._threads import MIN_ROWS_PER_THREAD, row_parallel

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
_MIN_ROWS_PER_THREAD_NARROW = 16384
# The routed pass (each expert's own rows, routed_gram_matrices): weights
# with fewer entries than this always take the dense pass; rows per block.
_ROUTED_MIN_ENTRIES = 16384
_ROUTED_BLOCK = 16384


def gram_kernel(p, n_experts):
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
    xp, is_numpy = get_namespace(X, y, weights_T, sample_weight)
    if not is_numpy:
        # Another namespace (a device array): the same sums as plain products.
        n = X.shape[0]
        Z = xp.concat(
            [X - x_offset, xp.ones((n, 1), dtype=X.dtype), xp.reshape(y - y_offset, (n, 1))], axis=1
        )
        w = weights_T if sample_weight is None else weights_T * sample_weight
        gram = xp.stack([(xp.permute_dims(Z, (1, 0)) * w[k, :]) @ Z for k in range(w.shape[0])])
        return (gram + xp.permute_dims(gram, (0, 2, 1))) / 2
    n_samples, n_features = X.shape
    p = n_features + 2
    if routed_rows_pay(weights_T, p):
        return routed_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight)
    kernel, block = gram_kernel(p, weights_T.shape[0])
    args = (X, y, weights_T, x_offset, y_offset, sample_weight, kernel, block)
    with row_parallel() as pool:
        min_rows = MIN_ROWS_PER_THREAD if p >= _THREADED_MIN_COLUMNS else _MIN_ROWS_PER_THREAD_NARROW
        # Chunk bounds on block multiples: the same blocks as the serial pass.
        bounds = pool.bounds(n_samples, block=block, min_rows=min_rows)
        parts = pool.map(lambda start, stop: gram_chunk(*args, start, stop), bounds)
    return finish_gram(parts, kernel, p)


def routed_rows_pay(weights_T, p):
    """Whether :func:`routed_gram_matrices` beats the dense pass for these weights.

    Sparse routing (``top_k``, hard or capacity-limited assignments) leaves
    most weights zero, and the dense pass still touches every row for every
    expert. The routed pass costs about ``nnz * p^2`` plus a scan of the
    weights, but several times more per flop than the dense kernels, whose
    efficiency grows with the number of experts (one wide product). The
    crossover was measured (single-threaded CPU time, n=20,000, p from 4 to
    52, 4 to 64 experts, top-k weights; ``benchmarks/README.md``, "Gram
    kernels of routed rows"): the routed pass pays below a fraction of
    non-zero weights of about ``0.0025 * p^2 / sqrt(n_experts)``, at most
    0.5. The fraction is estimated on at most 2,048 evenly spaced columns of
    ``weights_T``.

    Parameters
    ----------
    weights_T : ndarray of shape (n_experts, n_samples)
        Weights per expert.
    p : int
        ``n_features + 2``.

    Returns
    -------
    pays : bool
        Use the routed pass.
    """
    n_experts, n_samples = weights_T.shape
    if n_experts == 1 or n_samples * n_experts < _ROUTED_MIN_ENTRIES:
        return False
    limit = min(0.5, 0.0025 * p * p / np.sqrt(n_experts))
    sample = weights_T[:, :: max(1, n_samples // 2048)]
    return np.count_nonzero(sample) <= limit * sample.size


def routed_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight=None):
    """:func:`weighted_gram_matrices` touching only each expert's non-zero-weight rows.

    The non-zero weights are listed expert by expert (one scan of
    ``weights_T != 0``); each expert gathers its rows of ``X`` (``np.take``,
    row-major: a transposed gather was measured 4x slower) and adds
    ``Z_s^T Z_s`` by SYRK, with ``Z_s = sqrt(w) (X - x_offset)``; the
    columns of ``1`` and ``y`` are summed for all experts at once
    (``np.bincount``). The cost is proportional to the routed rows, ``nnz *
    p^2``, instead of ``n_experts * n_samples * p^2``, but per flop it is
    several times that of the dense kernels (gathers, small products): see
    :func:`routed_rows_pay`. (A variant that reads the rows in order and
    sums the column products of the routed entries per expert, without a
    Python loop over the experts, was measured slower: the scan of each
    strided block of weights and the products' memory traffic dominate.)
    The experts are split between the threads of the
    :class:`~skmoe.utils._threads.RowPool` by their numbers of rows; each
    expert's sum runs in one thread in row order, so the result does not
    depend on the thread count. Equal to the dense pass up to rounding
    (zero-weight rows add nothing).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    weights_T : ndarray of shape (n_experts, n_samples)
        Non-negative weights per expert, mostly zero.
    x_offset : ndarray of shape (n_features,)
        Subtracted from ``X``.
    y_offset : float
        Subtracted from ``y``.
    sample_weight : ndarray of shape (n_samples,), default=None
        Multiplied into every expert's weights.

    Returns
    -------
    gram : ndarray of shape (n_experts, n_features + 2, n_features + 2)
        ``Z^T diag(w_k) Z`` for every expert, float64 and exactly symmetric.
    """
    n_experts, n_samples = weights_T.shape
    d = X.shape[1]
    p = d + 2
    flat = np.flatnonzero(weights_T != 0)  # expert-major: each expert's rows in order
    experts, rows = np.divmod(flat, n_samples)
    w = weights_T.ravel()[flat]
    if sample_weight is not None:
        w *= sample_weight[rows]
    # Z_s = sqrt(w) [X - x_offset, 1, y - y_offset] row by row; the columns
    # of 1 and y are gathered for every entry at once.
    root = np.sqrt(w)
    ys = np.take(y, rows)
    ys -= y_offset
    ys *= root
    starts = np.searchsorted(experts, np.arange(n_experts + 1))
    gram = np.zeros((n_experts, p, p))
    gram[:, d, d] = np.bincount(experts, weights=w, minlength=n_experts)
    gram[:, d, d + 1] = np.bincount(experts, weights=root * ys, minlength=n_experts)
    gram[:, d + 1, d + 1] = np.bincount(experts, weights=ys * ys, minlength=n_experts)

    def run(first, last):
        for k in range(first, last):
            for lo in range(starts[k], starts[k + 1], _ROUTED_BLOCK):
                hi = min(lo + _ROUTED_BLOCK, starts[k + 1])
                _add_routed_block(gram[k], X, rows[lo:hi], root[lo:hi], ys[lo:hi], x_offset)

    with row_parallel() as pool:
        # Experts in contiguous groups of about equal numbers of rows, one per thread.
        n_groups = max(1, min(pool.n_threads, flat.size // _MIN_ROWS_PER_THREAD_NARROW, n_experts))
        edges = np.searchsorted(starts, np.linspace(0, flat.size, n_groups + 1)[1:-1])
        edges = np.unique(np.r_[0, np.clip(edges, 0, n_experts), n_experts])
        pool.map(run, list(zip(edges[:-1].tolist(), edges[1:].tolist())))
    # The upper triangles, mirrored.
    lower = np.tril_indices(p, -1)
    gram[:, lower[0], lower[1]] = gram[:, lower[1], lower[0]]
    return gram


def _add_routed_block(G, X, rows, root, ys, x_offset):
    """Add the upper triangle's ``X`` rows of the routed Gram matrix of ``rows`` to ``G``.

    ``Z_s = sqrt(w) (X - x_offset)`` is formed in place on the gathered rows;
    ``Z_s^T Z_s`` by SYRK (half the flops of a product), its products with
    ``sqrt(w)`` and ``sqrt(w) (y - y_offset)`` (``ys``) in one product.
    """
    d = X.shape[1]
    # np.take, not X[rows]: measured 8x faster for a gather of whole rows.
    Zs = np.take(X, rows, axis=0)
    Zs -= x_offset
    Zs *= root[:, None]
    # Zs.T is Fortran-ordered: BLAS reads it without a copy.
    G[:d, :d] += blas.dsyrk(1.0, Zs.T, trans=0)
    G[:d, d : d + 2] += (np.vstack([root, ys]) @ Zs).T


def finish_gram(parts, kernel, p):
    """Add per-chunk statistics of :func:`gram_chunk` in order; full symmetric matrices.

    Parameters
    ----------
    parts : list of ndarray
        Partial sums of consecutive row chunks, in row order.
    kernel : {"pairs", "gemm", "syrk"}
        The kernel that computed them (:func:`gram_kernel`).
    p : int
        ``n_features + 2``.

    Returns
    -------
    gram : ndarray of shape (n_experts, p, p)
        Exactly symmetric float64 matrices.
    """
    gram = parts[0]
    for part in parts[1:]:
        gram += part
    if kernel == "pairs":
        upper = gram
        gram = np.empty((upper.shape[0], p, p))
        rows, cols = np.triu_indices(p)
        gram[:, rows, cols] = upper
        gram[:, cols, rows] = upper
    elif kernel == "gemm":
        # The GEMM's product is not exactly symmetric in floating point; SYRK's is.
        gram += gram.transpose(0, 2, 1)
        gram *= 0.5
    return gram


def gram_chunk(X, y, weights_T, x_offset, y_offset, sample_weight, kernel, block, start, stop):
    """Sufficient statistics of rows ``start:stop``: one block of the pass (see :func:`gram_kernel`).

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


def solve_normal_equations(A, b, *, rank_deficient_rcond):
    """Solve ``A beta = b`` for symmetric PSD ``A``: Cholesky, else minimum-norm.

    Parameters
    ----------
    A : ndarray of shape (d, d)
        Symmetric positive semi-definite matrix.
    b : ndarray of shape (d,)
        Right-hand side.
    rank_deficient_rcond : float
        Eigenvalues below this fraction of the largest count as zero.

    Returns
    -------
    beta : ndarray of shape (d,)
        The solution (minimum-norm when ``A`` is singular, as ``lstsq``).
    """
    # LAPACK's potrf/potrs directly: what cho_factor/cho_solve call, without
    # their per-call wrapping (measured at half of the solve time of 64 experts).
    c, info = lapack.dpotrf(A, lower=1, clean=0)
    if info == 0:
        beta, info = lapack.dpotrs(c, b, lower=1)
        if info == 0 and np.all(np.isfinite(beta)):
            # Cholesky can succeed on numerically singular systems; check the conditioning.
            diag = np.diag(c)
            if diag.min() > np.sqrt(rank_deficient_rcond) * diag.max():
                return beta
    # Minimum-norm solution, as scipy.linalg.lstsq gives LinearRegression.
    evals, evecs = np.linalg.eigh(A)
    keep = evals > rank_deficient_rcond * max(evals.max(), 0.0)
    inv = np.zeros_like(evals)
    inv[keep] = 1.0 / evals[keep]
    return evecs @ (inv * (evecs.T @ b))

