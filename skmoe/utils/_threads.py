"""Thread control for the hot loops (threadpoolctl, row-chunk threads).

SciPy's L-BFGS-B performs many tiny BLAS calls on vectors of a few dozen
entries. With a multi-threaded BLAS each of them wakes every BLAS thread, and
on a machine whose cores are busy (other processes, joblib workers) the
threads spin and stall: a 150-sample gate fit was measured at 12 s with two
OpenBLAS threads against 0.5 s with one. So the optimiser runs with one BLAS
thread, and the large passes over the rows of ``X`` get their parallelism
from a :class:`RowPool` of Python threads instead (see :func:`row_parallel`).
"""

import contextlib
import contextvars
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

_CONTROLLER = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:  # inspecting the loaded libraries costs milliseconds: once
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


@contextlib.contextmanager
def single_blas_thread():
    """Run the block with one BLAS thread; yield the previous thread count.

    Yields
    ------
    previous : int or None
        The BLAS thread count in force before (None if no BLAS is loaded).
    """
    controller = _controller()
    blas = [info for info in controller.info() if info.get("user_api") == "blas"]
    previous = max((info["num_threads"] for info in blas), default=None)
    if previous is None or previous == 1:
        yield previous
        return
    with controller.limit(limits=1, user_api="blas"):
        yield previous


# Rows each thread of a RowPool should get at least for the split to pay.
MIN_ROWS_PER_THREAD = 4096

_ACTIVE_ROW_POOL = contextvars.ContextVar("skmoe_row_pool", default=None)


class RowPool:
    """Python threads that split the rows of a large pass, BLAS single-threaded.

    OpenBLAS's worker threads keep spinning for about 0.1-0.2 s after each
    multi-threaded call; Python threads started meanwhile compete with them
    for the cores (a threaded Gram pass right after a multi-threaded product
    was measured 1.9x slower). So inside :func:`row_parallel` every BLAS call
    is single-threaded, and the passes over the rows of ``X`` (Gram matrices,
    gate objective, logits, expert predictions) get their parallelism from
    this pool: one contiguous chunk of rows per thread, partial results
    combined in chunk order (deterministic for a given thread count).

    Parameters
    ----------
    n_threads : int
        Threads available (the BLAS thread count before the region).
    executor : concurrent.futures.ThreadPoolExecutor or None
        Its threads; None for ``n_threads == 1``.
    """

    def __init__(self, n_threads, executor):
        self.n_threads = n_threads
        self._executor = executor

    def bounds(self, n_rows, block=1, min_rows=MIN_ROWS_PER_THREAD):
        """Chunks of rows, one per thread, on multiples of ``block``.

        Parameters
        ----------
        n_rows : int
            Rows to split.
        block : int, default=1
            Chunk boundaries fall on multiples of this (the caller's blocks).
        min_rows : int, default=MIN_ROWS_PER_THREAD
            Fewest rows per chunk; fewer rows give fewer chunks.

        Returns
        -------
        bounds : list of (int, int)
            ``(start, stop)`` of each chunk, covering ``range(n_rows)``.
        """
        if n_rows <= 0:
            return [(0, 0)]
        n_chunks = max(1, min(self.n_threads, n_rows // max(1, min_rows)))
        n_blocks = -(-n_rows // block)
        edges = [min(n_rows, block * (n_blocks * i // n_chunks)) for i in range(n_chunks + 1)]
        return [(edges[i], edges[i + 1]) for i in range(n_chunks) if edges[i] < edges[i + 1]]

    def map(self, func, bounds):
        """``[func(start, stop) for each chunk]``, the chunks in parallel threads.

        Parameters
        ----------
        func : callable
            Called as ``func(start, stop)``.
        bounds : list of (int, int)
            Chunks, from :meth:`bounds`.

        Returns
        -------
        results : list
            One result per chunk, in chunk order.
        """
        if len(bounds) == 1 or self._executor is None:
            return [func(start, stop) for start, stop in bounds]
        return list(self._executor.map(lambda chunk: func(*chunk), bounds))


@contextlib.contextmanager
def row_parallel():
    """Region with single-threaded BLAS and a :class:`RowPool` of the previous thread count.

    Nested regions share the outer pool.

    Yields
    ------
    pool : RowPool
        The pool of the region.
    """
    pool = _ACTIVE_ROW_POOL.get()
    if pool is not None:
        yield pool
        return
    with single_blas_thread() as previous:
        n_threads = max(1, previous or 1)
        executor = ThreadPoolExecutor(max_workers=n_threads) if n_threads > 1 else None
        token = _ACTIVE_ROW_POOL.set(RowPool(n_threads, executor))
        try:
            yield _ACTIVE_ROW_POOL.get()
        finally:
            _ACTIVE_ROW_POOL.reset(token)
            if executor is not None:
                executor.shutdown(wait=True)


def active_row_pool():
    """The :class:`RowPool` of the enclosing :func:`row_parallel` region, or None.

    Returns
    -------
    pool : RowPool or None
        The active pool.
    """
    return _ACTIVE_ROW_POOL.get()


def matmul_rows_T(A, X, out=None):
    """``A @ X.T`` into a C-contiguous ``(len(A), n_samples)`` array.

    Inside a :func:`row_parallel` region with several threads the rows of
    ``X`` are split over its pool (each thread writes its own columns of
    ``out``); elsewhere one product with BLAS's own threads.

    Parameters
    ----------
    A : ndarray of shape (m, n_features)
        Small left factor (gate weights, expert coefficients).
    X : ndarray of shape (n_samples, n_features)
        Data.
    out : ndarray of shape (m, n_samples), default=None
        C-contiguous buffer for the result.

    Returns
    -------
    out : ndarray of shape (m, n_samples)
        The product.
    """
    pool = active_row_pool()
    if pool is None or pool.n_threads == 1 or X.shape[0] < 2 * MIN_ROWS_PER_THREAD:
        return np.matmul(A, X.T, out=out)
    if out is None:
        out = np.empty((A.shape[0], X.shape[0]), dtype=np.result_type(A, X))

    def part(start, stop):
        np.matmul(A, X[start:stop].T, out=out[:, start:stop])

    pool.map(part, pool.bounds(X.shape[0]))
    return out


# Below this many rows an expert fit is too short for OpenMP threads to pay:
# HistGradientBoosting experts on ~100-row data were measured at 132 s per
# mixture fit with two OpenMP threads on busy cores against 0.8 s with one.
SMALL_FIT_ROWS = 20_000


@contextlib.contextmanager
def small_fit_threads(n_samples):
    """Run expert fits on ``n_samples`` rows with one OpenMP thread if small.

    The generic M-step fits every expert once per EM iteration, hundreds of
    short fits in all; a multi-threaded OpenMP runtime wakes (and, on busy
    cores, stalls on) its threads for each of them.

    Parameters
    ----------
    n_samples : int
        Rows the experts are fitted on.

    Yields
    ------
    None
    """
    if n_samples >= SMALL_FIT_ROWS:
        yield
        return
    # A fresh look at the loaded libraries (about 3 ms), not the cached
    # controller: an expert may bring its own OpenMP runtime, loaded after
    # the cache was made.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield
