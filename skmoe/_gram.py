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
from scipy.linalg import lapack

from ._routed import RoutedWeights, routed_fraction, routed_from_dense
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


def weighted_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight=None, routed=None):
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
    routed : RoutedWeights, default=None
        The non-zero entries of ``weights_T`` when the router listed them
        (:mod:`skmoe._routed`): the routed pass then needs no scan of
        ``weights_T`` and is chosen by its exact fraction of entries.

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
            [X - x_offset, xp.ones((n, 1), dtype=X.dtype, device=X.device),
             xp.reshape(y - y_offset, (n, 1))], axis=1
        )
        w = weights_T if sample_weight is None else weights_T * sample_weight
        gram = xp.stack([(xp.permute_dims(Z, (1, 0)) * w[k, :]) @ Z for k in range(w.shape[0])])
        return (gram + xp.permute_dims(gram, (0, 2, 1))) / 2
    n_samples, n_features = X.shape
    p = n_features + 2
    n_experts = weights_T.shape[0]
    if routed is not None:
        if routed_pays(routed_fraction(routed), p, n_experts, n_samples):
            return routed_gram_matrices(X, y, routed, x_offset, y_offset, sample_weight)
    elif routed_rows_pay(weights_T, p):
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
    non-zero weights of about ``0.0125 * p^1.5 / sqrt(n_experts)``, at most
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
    sample = weights_T[:, :: max(1, n_samples // 2048)]
    return routed_pays(np.count_nonzero(sample != 0) / sample.size, p, n_experts, n_samples)


def routed_pays(fraction, p, n_experts, n_samples):
    """Whether the routed pass beats the dense one at this fraction of non-zero weights (:func:`routed_rows_pay`)."""
    if n_experts == 1 or n_samples * n_experts < _ROUTED_MIN_ENTRIES:
        return False
    return fraction <= min(0.5, 0.0125 * p**1.5 / np.sqrt(n_experts))


def routed_gram_matrices(X, y, weights, x_offset, y_offset, sample_weight=None):
    """:func:`weighted_gram_matrices` touching only each expert's non-zero-weight rows.

    The non-zero weights, listed expert by expert (by the router, or by one
    scan of ``weights_T != 0``), are laid out in blocks of 64 to 1,024 rows,
    each expert's rows in order and its last block padded with zero rows.
    Chunks of blocks are gathered into a reused buffer
    (:func:`_add_routed_block`) and every block's ``Z_b Z_b^T`` is formed in
    one batched product, ``Z_b = sqrt(w) [X - x_offset, 1, y - y_offset]^T``
    on the block's rows; each expert's blocks are then added in order
    (``np.add.reduceat``). The cost is proportional to the routed rows,
    ``nnz * p^2`` plus the scan of the weights, instead of ``n_experts *
    n_samples * p^2``, with no Python loop over the experts (see
    :func:`routed_rows_pay` for the crossover). The chunks run in the
    threads of the :class:`~skmoe.utils._threads.RowPool`; a block's
    product does not depend on the chunking and the sums run in block
    order, so the result does not depend on the thread count. Equal to the
    dense pass up to rounding (zero-weight rows add nothing).

    Parameters and returns as :func:`weighted_gram_matrices`; here
    ``weights`` is mostly zero: a :class:`~skmoe._routed.RoutedWeights`,
    or a dense ``(n_experts, n_samples)`` array whose non-zero entries are
    listed first (one scan of it).
    """
    routed = weights if isinstance(weights, RoutedWeights) else routed_from_dense(weights)
    n_experts = routed.indptr.size - 1
    rows = routed.rows
    p = X.shape[1] + 2
    # Rows per block, a power of two from 64 to 1,024: about an eighth of an
    # expert's mean rows, so that the padding (under one block per expert)
    # stays under a few tenths of the rows, and the products get larger
    # where the experts have many rows.
    block = int(2 ** np.clip(np.floor(np.log2(max(rows.size, 1) / (8 * n_experts))), 6, 10))
    counts = np.diff(routed.indptr)
    blocks = -(-counts // block)
    first = np.zeros(n_experts + 1, dtype=np.intp)
    np.cumsum(blocks, out=first[1:])
    # Padded position of each routed entry: its expert's first block, then in order.
    shift = first[:-1] * block - (np.cumsum(counts) - counts)
    dest = np.arange(rows.size) + np.repeat(shift, counts)
    source = np.zeros(first[-1] * block, dtype=np.intp)
    source[dest] = rows
    weight = routed.weights.copy()
    if sample_weight is not None:
        weight *= np.take(sample_weight, rows)
    root = np.zeros(first[-1] * block)
    root[dest] = np.sqrt(weight)
    block_gram = np.empty((first[-1], p, p))
    # Blocks per gathered chunk of about 2^16 elements (buffers reused in
    # cache; fresh arrays per chunk were measured 3x slower, page faults).
    step = max(1, _ROUTED_BLOCK * 4 // (p * block))

    def run(start, stop):
        buffers = (np.empty((p, step * block)), np.empty((step * block, p - 2), dtype=X.dtype),
                   np.empty(step * block, dtype=y.dtype))
        for lo in range(start, stop, step):
            hi = min(lo + step, stop)
            rows_ = slice(lo * block, hi * block)
            _add_routed_block(block_gram[lo:hi], X, y, source[rows_], root[rows_], x_offset, y_offset, buffers)

    with row_parallel() as pool:
        min_blocks = max(1, _MIN_ROWS_PER_THREAD_NARROW // block)
        pool.map(run, pool.bounds(int(first[-1]), block=step, min_rows=min_blocks))
    gram = np.zeros((n_experts, p, p))
    used = blocks > 0
    if np.any(used):
        gram[used] = np.add.reduceat(block_gram, first[:-1][used], axis=0)
    # The upper triangles, mirrored (a product's two halves may round differently).
    lower = np.tril_indices(p, -1)
    gram[:, lower[0], lower[1]] = gram[:, lower[1], lower[0]]
    return gram


def _add_routed_block(out, X, y, source, root, x_offset, y_offset, buffers):
    """Write ``Z_b Z_b^T`` of consecutive blocks of gathered rows into ``out``.

    ``Z = sqrt(w) [X - x_offset, 1, y - y_offset]^T`` on the rows ``source``
    (``root`` is ``sqrt(w)``, zero on padding rows), formed in the reused
    ``buffers`` (a float64 ``(p, m)`` array and ``(m, n_features)`` and
    ``(m,)`` arrays of ``X``'s and ``y``'s dtypes, ``m`` at least
    ``source.size``) and cut into ``out.shape[0]`` blocks of equal
    length; one batched product.
    """
    n_blocks, p, _ = out.shape
    d, m = p - 2, source.size
    ZT, gathered, ys = buffers[0][:, :m], buffers[1][:m], buffers[2][:m]
    # np.take, not X[rows]: measured 8x faster for a gather of whole rows;
    # the transposed layout makes the elementwise steps run along long rows.
    np.take(X, source, axis=0, out=gathered, mode="clip")
    np.subtract(gathered.T, x_offset[:, None], out=ZT[:d])
    ZT[d] = 1.0
    np.take(y, source, out=ys)
    np.subtract(ys, y_offset, out=ZT[d + 1])
    ZT *= root
    Zb = ZT.reshape(p, n_blocks, -1).transpose(1, 0, 2)
    np.matmul(Zb, Zb.transpose(0, 2, 1), out=out)


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


def solve_normal_equations_batch(A, b, *, rank_deficient_rcond):
    """:func:`solve_normal_equations` for a stack of systems, batched where Cholesky succeeds.

    One batched Cholesky factorisation checks every system (positive
    definite, smallest diagonal of the factor above ``sqrt(rcond)`` times
    its largest) and one batched solve answers the systems that pass; the
    others (singular or rank-deficient experts, rare) take
    :func:`solve_normal_equations` one by one, whose minimum-norm solution
    they need. Equal to solving each system alone up to rounding (the
    batched solve factorises ``A`` by LU, not by its Cholesky factor);
    64 systems of 10 unknowns measured 2.3x faster than one at a time.

    Parameters
    ----------
    A : ndarray of shape (n_systems, d, d)
        Symmetric positive semi-definite matrices.
    b : ndarray of shape (n_systems, d)
        Right-hand sides.
    rank_deficient_rcond : float
        Eigenvalues below this fraction of the largest count as zero.

    Returns
    -------
    beta : ndarray of shape (n_systems, d)
        The solutions.
    """
    beta = np.empty(b.shape)
    try:
        diag = np.diagonal(np.linalg.cholesky(A), axis1=1, axis2=2)
        well = np.all(np.isfinite(diag), axis=1) & (
            diag.min(axis=1) > np.sqrt(rank_deficient_rcond) * diag.max(axis=1)
        )
    except np.linalg.LinAlgError:  # a system that is not positive definite
        well = np.zeros(A.shape[0], dtype=bool)
    if well.any():
        beta[well] = np.linalg.solve(A[well], b[well][..., None])[..., 0]
        well &= np.all(np.isfinite(beta), axis=1)
    for k in np.flatnonzero(~well):
        beta[k] = solve_normal_equations(A[k], b[k], rank_deficient_rcond=rank_deficient_rcond)
    return beta
