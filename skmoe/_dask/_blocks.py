"""Per-block passes over Dask row chunks, reduced on the client.

Every pass of the blockwise EM is one task per row block whose small
result (statistics of the block) is gathered to the client by
:func:`gather` and combined there in row order: :func:`reduce_blocks` for
passes over the data, :func:`~skmoe._dask._resp.reduce_resp` for passes
that need the responsibilities. Each task runs its kernels with one BLAS
thread (:func:`in_task`): a worker's threads are its parallelism, so BLAS
must not start threads of its own on the same cores.

Dask is imported inside the functions only: importing skmoe, or fitting
NumPy data, never imports it.
"""

import numpy as np
from sklearn import config_context

from ..utils._threads import single_blas_thread

DASK_MISSING_MESSAGE = (
    "Fitting or predicting on Dask collections requires dask; install it with "
    "`pip install 'skmoe[dask]'` (dask[array,dataframe] and distributed)."
)


def import_dask():
    """Import and return ``(dask, dask.array)``, or fail with installation advice.

    Returns
    -------
    dask, da : module
        :mod:`dask` and :mod:`dask.array`.
    """
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - dask input implies dask
        raise ImportError(DASK_MISSING_MESSAGE) from exc
    return dask, da


def is_dask(a):
    """Whether ``a`` is a Dask collection (checked without importing dask)."""
    return a is not None and type(a).__module__.partition(".")[0] == "dask"


def in_task(func, *args):
    """``func(*args)`` as a task runs it: one BLAS thread, no repeated finite checks.

    Parameters
    ----------
    func : callable
        The kernel.
    *args : object
        Its arguments (blocks and small parameters).

    Returns
    -------
    result : object
        ``func(*args)``.
    """
    # The data were checked for NaN and infinity once, in the first pass.
    with single_blas_thread(), config_context(assume_finite=True):
        return func(*args)


# Rows per piece of a row-wise kernel: its (n_experts, rows) temporaries stay
# a few MB whatever the chunk size, so a worker's memory is its chunks.
ROWS_PER_PIECE = 32768


def row_pieces(n_rows, size=ROWS_PER_PIECE):
    """``(lo, hi)`` bounds of consecutive pieces of ``n_rows`` rows."""
    return [(lo, min(lo + size, n_rows)) for lo in range(0, max(n_rows, 1), size)]


def rowwise_task(func, n_out, n_rows_args, *args):
    """A row-wise block function run piece by piece into one ``(n_out, rows)`` result.

    The first ``n_rows_args`` arguments are the row-aligned blocks (``X``,
    ``y``, the sample weights or None, then ``(k, rows)`` arrays); the others
    are parameters. Column ``i`` of ``func``'s result depends on row ``i``
    only, so the pieces give the result of one call with a fraction of its
    temporaries.
    """
    rows, params = args[:n_rows_args], args[n_rows_args:]
    n_rows = rows[0].shape[0]
    out = np.empty((n_out, n_rows))
    for lo, hi in row_pieces(n_rows):
        piece = [
            None if a is None else (a[lo:hi] if i < 3 else a[:, lo:hi])
            for i, a in enumerate(rows)
        ]
        out[:, lo:hi] = func(*piece, *params)
    return out


def gather(tasks):
    """Compute Dask objects and return their results on the client, in order.

    Every client-side result of a fit passes through here (tests wrap it to
    check that none is as large as the data).

    Parameters
    ----------
    tasks : list of dask.delayed.Delayed
        Small per-block results.

    Returns
    -------
    results : list
        Their values.
    """
    dask, _ = import_dask()
    return list(dask.compute(*tasks))


def run_tasks(func, blocks, params, per_block=None):
    """``in_task(func, *block, *params[, per_block[b]])`` for every block, gathered in order.

    The parameters travel inside each task (a few kB: the model, a recipe):
    no task of their own to run on one worker and fetch from the others, and
    nothing hashes them.

    Parameters
    ----------
    func : callable
        The block function.
    blocks : list of tuple
        Per block, its delayed arguments (row blocks, block index...).
    params : tuple
        Small parameters shared by the blocks.
    per_block : list, default=None
        One more argument per block (for example its rows of a sample).

    Returns
    -------
    parts : list
        One result per block, in row order.
    """
    dask, _ = import_dask()
    task = dask.delayed(in_task, pure=False)
    extra = [()] * len(blocks) if per_block is None else [(p,) for p in per_block]
    return gather([task(func, *b, *params, *e) for b, e in zip(blocks, extra)])


def reduce_blocks(func, data, arrays, *params, per_block=None):
    """``func(X_block, y_block, sw_block, *array_blocks, *params)`` on every row block.

    Parameters
    ----------
    func : callable
        The block function; ``sw_block`` is None for unit weights. Returns a
        small result (statistics of the block).
    data : RowData
        Training data.
    arrays : list of dask.array.Array
        ``(k, n_samples)`` arrays chunked ``((k,), rows)``.
    *params : object
        Small parameters, in the graph once per call.
    per_block : list, default=None
        One more (last) argument per block.

    Returns
    -------
    parts : list
        One result per block, in row order.
    """
    return run_tasks(func, data.blocks(*arrays), params, per_block)


def is_materialised(a):
    """Whether a dask array's chunks already exist (persisted or from memory): nothing left to compute."""
    return all(
        isinstance(v, np.ndarray) or type(v).__name__ in ("Future", "DataNode")
        for v in dict(a.__dask_graph__()).values()
    )


# ----------------------------------------------------------------------
# Row samples


def _sample_block(X, y, sw, index):
    weight = np.ones(index.size) if sw is None else sw[index]
    return X[index], y[index], weight


def sample_rows(data, n_rows, rng):
    """A uniform sample of rows without replacement, drawn blockwise.

    Each block contributes in proportion to its size (a hypergeometric split
    of ``n_rows``); the indices are drawn on the client, the rows taken on
    the workers.

    Parameters
    ----------
    data : RowData
        Training data.
    n_rows : int
        Sample size (all rows when there are not more).
    rng : numpy.random.RandomState
        Random generator.

    Returns
    -------
    X, y, sample_weight : ndarray
        The sampled rows, in row order.
    """
    index = sample_index(data.chunks, n_rows, rng)
    parts = reduce_blocks(_sample_block, data, [], per_block=index)
    return (np.concatenate([p[i] for p in parts]) for i in range(3))


def sample_index(chunks, n_rows, rng):
    """Per block, sorted row indices of a uniform sample of ``n_rows`` rows (all rows if fewer)."""
    sizes = np.asarray(chunks, dtype=np.int64)
    total = int(sizes.sum())
    if n_rows >= total:
        return [np.arange(s) for s in sizes]
    counts = np.zeros(sizes.size, dtype=np.int64)
    # Sampling without replacement: the counts per block are hypergeometric.
    remaining, left = total, n_rows
    for b, size in enumerate(sizes):
        remaining -= size
        counts[b] = rng.hypergeometric(size, remaining, left) if left and remaining else left
        left -= counts[b]
    return [np.sort(rng.choice(size, count, replace=False)) for size, count in zip(sizes, counts)]
