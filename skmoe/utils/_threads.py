"""Thread control for a fit: one rule for every part, row-chunk threads, BLAS limits.

**The rule.** Every part of a fit (the initialiser, the experts, the gate,
the passes of the EM loop over the rows) asks :func:`threads_for` how many
threads its size pays for: one thread per :data:`MIN_WORK_PER_THREAD`
multiply-adds of one pass, at most the fit's share of the cores
(:func:`thread_budget`). The share is the smallest of the CPUs this process
may run on and the thread limits in force: inside a joblib worker
(``GridSearchCV(n_jobs=k)``, ``cross_val_score(n_jobs=k)``) joblib sets
those to ``cpu_count // k``, so a nested fit takes its share and no more;
``threadpoolctl.threadpool_limits`` lowers it the same way. Parts that call
compiled code with its own threads (k-means, tree or ``HistGradientBoosting``
experts, a user's clusterer) run inside :func:`fit_threads`, which lowers the
BLAS and OpenMP limits to the rule's count for the block and restores them.

**Why threads are held back.** SciPy's L-BFGS-B performs many tiny BLAS
calls on vectors of a few dozen entries. With a multi-threaded BLAS each of
them wakes every BLAS thread, and on a machine whose cores are busy (other
processes, joblib workers) the threads spin and stall: a 150-sample gate fit
was measured at 12 s with two OpenBLAS threads against 0.5 s with one, and
the k-means initialisation at n=20,000 at 0.75 CPU s with two OpenMP threads
against 0.025 s with one (one busy neighbour). So the optimiser runs with
one BLAS thread, and the large passes over the rows of ``X`` get their
parallelism from a :class:`RowPool` of Python threads instead (see
:func:`row_parallel`); these wait without spinning, so a busy core costs
them wall time, not CPU time.
"""

import contextlib
import contextvars
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from .._sparse import block_rows, matmul_T, row_block

_CONTROLLER = None
_CONTROLLER_MODULES = -1
_CPU_COUNT = None


def _controller():
    """The libraries' thread controller, rebuilt only after new modules were imported.

    Inspecting the loaded libraries costs 0.4-3 ms (more on busy cores), too
    much for every M-step; an expert may bring its own OpenMP runtime with a
    module imported after the last look, so a grown ``sys.modules`` means a
    new look.
    """
    global _CONTROLLER, _CONTROLLER_MODULES
    if _CONTROLLER is None or len(sys.modules) != _CONTROLLER_MODULES:
        _CONTROLLER_MODULES = len(sys.modules)
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


# The rule: multiply-adds (row x column visits) of one pass that one more
# thread must get before it pays. Measured by ``benchmarks/perf/threads.py``
# (a row-chunk pass of the EM loop split over two threads against one, on
# this project's 2-core machine with the other core busy): below about 2**21
# multiply-adds per thread (1-2 ms of one core) the second thread cost
# 1.2-2.8x the CPU time of one and never shortened the wall time; above it
# the CPU overhead falls under 20%. A quiet machine hands off faster, so the
# threshold errs towards fewer threads, the side that a busy machine rewards.
MIN_WORK_PER_THREAD = 2**21


def _cpu_count():
    global _CPU_COUNT
    if _CPU_COUNT is None:  # CPU affinity and cgroup quota: read once (0.2 ms)
        try:
            from joblib import cpu_count

            _CPU_COUNT = int(cpu_count())
        except ImportError:  # pragma: no cover - joblib is a scikit-learn dependency
            _CPU_COUNT = os.cpu_count() or 1
    return max(1, _CPU_COUNT)


def thread_budget():
    """Threads this fit may use now: its share of the cores.

    Inside a :func:`row_parallel` region, the region's pool. Elsewhere the
    smallest of the CPUs available to the process and the thread limits of
    the loaded BLAS and OpenMP libraries (joblib's limits inside its
    workers, ``threadpoolctl.threadpool_limits``, ``OMP_NUM_THREADS``).

    Returns
    -------
    n_threads : int
        At least 1.
    """
    pool = _ACTIVE_ROW_POOL.get()
    if pool is not None:
        return pool.n_threads
    limits = [
        lib.num_threads for lib in _controller().lib_controllers
        if lib.user_api in ("blas", "openmp") and lib.num_threads is not None
    ]
    return max(1, min([_cpu_count()] + limits))


def threads_for(n_rows, n_cols=1, *, budget=None):
    """The thread rule: threads a pass over ``n_rows x n_cols`` pays for.

    One thread per :data:`MIN_WORK_PER_THREAD` multiply-adds, at least one,
    at most the budget.

    Parameters
    ----------
    n_rows : int
        Rows of one pass.
    n_cols : int, default=1
        Multiply-adds per row of that pass (features, or features times
        experts for a product with every expert).
    budget : int, default=None
        Most threads; None reads :func:`thread_budget`.

    Returns
    -------
    n_threads : int
        At least 1.
    """
    work = int(n_rows) * max(1, int(n_cols))
    wanted = work // MIN_WORK_PER_THREAD
    if wanted <= 1:
        return 1
    budget = thread_budget() if budget is None else budget
    return int(max(1, min(budget, wanted)))


@contextlib.contextmanager
def limit_threads(n_threads):
    """Run the block with at most ``n_threads`` BLAS and OpenMP threads, then restore.

    Only lowers: a library already at fewer threads keeps its count. The
    OpenMP limit is the calling thread's (OpenMP's own rule).

    Parameters
    ----------
    n_threads : int
        Most threads for the block.

    Yields
    ------
    n_threads : int
        The same number.
    """
    lowered = []
    for lib in _controller().lib_controllers:
        if lib.user_api not in ("blas", "openmp"):
            continue
        previous = lib.num_threads
        if previous is not None and previous > n_threads:
            lib.set_num_threads(n_threads)
            lowered.append((lib, previous))
    try:
        yield n_threads
    finally:
        for lib, previous in reversed(lowered):
            lib.set_num_threads(previous)


@contextlib.contextmanager
def fit_threads(n_rows, n_cols=1):
    """Run a part of a fit with the threads its size pays for (:func:`threads_for`).

    For compiled code with its own thread pool: k-means and the other
    initialisers, the experts' ``fit``, a gate's optimiser. The BLAS and
    OpenMP limits are lowered to the rule's count for the block.

    Parameters
    ----------
    n_rows : int
        Rows the part works on.
    n_cols : int, default=1
        Multiply-adds per row of one of its passes.

    Yields
    ------
    n_threads : int
        The threads the block may use.
    """
    with limit_threads(threads_for(n_rows, n_cols)) as n_threads:
        yield n_threads


# Rows each thread of a RowPool should get at least for the split to pay,
# whatever the work per row (the rule, :func:`threads_for`, decides above).
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
        Threads available (the rule's count for the region, see :func:`row_parallel`).
    executor : concurrent.futures.ThreadPoolExecutor or None
        Its threads; None for ``n_threads == 1``.
    """

    def __init__(self, n_threads, executor):
        self.n_threads = n_threads
        self._executor = executor

    def bounds(self, n_rows, block=1, min_rows=MIN_ROWS_PER_THREAD, n_cols=None):
        """Chunks of rows, one per thread, on multiples of ``block``.

        Parameters
        ----------
        n_rows : int
            Rows to split.
        block : int, default=1
            Chunk boundaries fall on multiples of this (the caller's blocks).
        min_rows : int, default=MIN_ROWS_PER_THREAD
            Fewest rows per chunk; fewer rows give fewer chunks.
        n_cols : int, default=None
            Multiply-adds per row of the pass: then also no more chunks than
            the rule gives (:func:`threads_for`). None: ``min_rows`` only.

        Returns
        -------
        bounds : list of (int, int)
            ``(start, stop)`` of each chunk, covering ``range(n_rows)``.
        """
        if n_rows <= 0:
            return [(0, 0)]
        n_chunks = max(1, min(self.n_threads, n_rows // max(1, min_rows)))
        if n_cols is not None and n_chunks > 1:
            n_chunks = min(n_chunks, threads_for(n_rows, n_cols, budget=self.n_threads))
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
def row_parallel(n_rows=None, n_cols=1):
    """Region with single-threaded BLAS and OpenMP and a :class:`RowPool` of the rule's size.

    Nested regions share the outer pool.

    Parameters
    ----------
    n_rows : int, default=None
        Rows of the region's passes: the pool gets :func:`threads_for`
        ``(n_rows, n_cols)`` threads. None: the whole :func:`thread_budget`
        (each pass then splits by its own ``bounds``).
    n_cols : int, default=1
        Multiply-adds per row of the region's largest pass.

    Yields
    ------
    pool : RowPool
        The pool of the region.
    """
    pool = _ACTIVE_ROW_POOL.get()
    if pool is not None:
        yield pool
        return
    n_threads = thread_budget() if n_rows is None else threads_for(n_rows, n_cols)
    with limit_threads(1):
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
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Data; sparse ``X`` (CSR) is multiplied block by block, never densified.
    out : ndarray of shape (m, n_samples), default=None
        C-contiguous buffer for the result.

    Returns
    -------
    out : ndarray of shape (m, n_samples)
        The product.
    """
    if sp.issparse(X):
        return _sparse_matmul_rows_T(A, X, out)
    pool = active_row_pool()
    if pool is None or pool.n_threads == 1 or X.shape[0] < 2 * MIN_ROWS_PER_THREAD:
        return np.matmul(A, X.T, out=out)
    bounds = pool.bounds(X.shape[0], n_cols=A.shape[0] * X.shape[1])
    if len(bounds) == 1:
        return np.matmul(A, X.T, out=out)
    if out is None:
        out = np.empty((A.shape[0], X.shape[0]), dtype=np.result_type(A, X))

    def part(start, stop):
        np.matmul(A, X[start:stop].T, out=out[:, start:stop])

    pool.map(part, bounds)
    return out


def _sparse_matmul_rows_T(A, X, out):
    """:func:`matmul_rows_T` of CSR ``X``: sparse-dense products over row blocks (views of ``X``)."""
    n_samples = X.shape[0]
    if out is None:
        out = np.empty((A.shape[0], n_samples), dtype=np.result_type(A, X.dtype))
    step = block_rows(X)
    for lo in range(0, n_samples, step):
        hi = min(n_samples, lo + step)
        matmul_T(A, row_block(X, lo, hi), out=out[:, lo:hi])
    return out


# The neural gates follow the rule of the linear gate: their optimiser runs
# with one BLAS thread (and the PyTorch gate with one PyTorch thread), and
# their passes over the rows are split over the row pool (a small gate="mlp"
# fit was measured at 14.7 s with two BLAS threads against 2.0 s with one
# while the cores were busy).


@contextlib.contextmanager
def torch_threads(torch, n_threads):
    """Run the block with ``n_threads`` PyTorch intra-op threads, then restore the count.

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    n_threads : int
        Threads for the block.

    Yields
    ------
    None
    """
    previous = torch.get_num_threads()
    if previous == n_threads:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def small_fit_threads(n_samples, n_features=1):
    """Threads for expert fits on ``n_samples`` rows: :func:`fit_threads`.

    The generic M-step fits every expert once per EM iteration, hundreds of
    short fits in all; a multi-threaded OpenMP runtime wakes (and, on busy
    cores, stalls on) its threads for each of them: ``HistGradientBoosting``
    experts on ~100-row data were measured at 132 s per mixture fit with two
    OpenMP threads on busy cores against 0.8 s with one. Kept under this name
    for callers of the former fixed 20,000-row threshold.

    Parameters
    ----------
    n_samples : int
        Rows the experts are fitted on.
    n_features : int, default=1
        Columns of ``X``.

    Yields
    ------
    n_threads : int
        The threads the fits may use.
    """
    with fit_threads(n_samples, n_features) as n_threads:
        yield n_threads
