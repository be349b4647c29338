"""BLAS thread control for the hot loops (threadpoolctl).

SciPy's L-BFGS-B performs many tiny BLAS calls on vectors of a few dozen
entries. With a multi-threaded BLAS each of them wakes every BLAS thread, and
on a machine whose cores are busy (other processes, joblib workers) the
threads spin and stall: a 150-sample gate fit was measured at 12 s with two
OpenBLAS threads against 0.5 s with one. So the optimiser runs with one BLAS
thread, and only the large matrix products of the objective get the
original thread count back (see ``large_products``).
"""

import contextlib

from threadpoolctl import ThreadpoolController, threadpool_limits

_CONTROLLER = None

# Products with fewer multiply-adds than this run single-threaded: the cost of
# waking threads exceeds the work.
LARGE_PRODUCT_FLOPS = 4_000_000


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:  # inspecting the loaded libraries costs milliseconds: once
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def blas_thread_count():
    """Threads the loaded BLAS would use now (1 if no BLAS is loaded).

    Returns
    -------
    n_threads : int
        The largest thread count among the loaded BLAS libraries.
    """
    blas = [info for info in _controller().info() if info.get("user_api") == "blas"]
    return max((info["num_threads"] for info in blas), default=1)


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


@contextlib.contextmanager
def blas_threads(n_threads):
    """Run the block with ``n_threads`` BLAS threads (no-op for None or 1).

    Parameters
    ----------
    n_threads : int or None
        Thread count to allow.

    Yields
    ------
    None
    """
    if n_threads is None or n_threads <= 1:
        yield
        return
    with _controller().limit(limits=n_threads, user_api="blas"):
        yield


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
