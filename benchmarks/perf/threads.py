"""The measurement behind the thread rule of ``skmoe.utils._threads``.

``python benchmarks/run.py --threads`` (or ``python -m perf.threads`` from
``benchmarks/``). Two tables, each comparing two threads with one, CPU
seconds (``time.process_time``, every thread) and wall seconds, best of
``REPEAT`` alternating runs:

1. A pass of the EM loop over the rows split by a :class:`RowPool`: the
   products of ``2k`` rows of coefficients with the rows of ``X`` (d=5, k=3)
   and their exponentials, the shape of the gate's objective and the
   experts' predictions, inside :func:`row_parallel` (BLAS single-threaded),
   at work per thread from 2**15 to 2**23 multiply-adds. The rule's
   :data:`~skmoe.utils._threads.MIN_WORK_PER_THREAD` is where the second
   thread's CPU overhead falls to about 20% or less; below it the second
   thread costs CPU and, on a busy machine, buys no wall time.
2. Compiled code with its own OpenMP threads: ``HistGradientBoostingRegressor
   (max_iter=20)`` fits (d=5) inside ``threadpool_limits(1)`` against 2,
   at n from 1,000 to 100,000 (the experts of the generic M-step).

On a quiet machine the second thread should halve the wall time above the
threshold; on a busy one it cannot, and the CPU overhead is what remains.
"""

import time

import numpy as np
from threadpoolctl import threadpool_limits

from skmoe.utils._threads import MIN_WORK_PER_THREAD, RowPool, row_parallel

from .cpu import load_average
from .report import Report, report_environment

REPEAT = 7
D, K = 5, 3


def _timed(func, reps):
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(reps):
        func()
    return (time.process_time() - cpu) / reps, (time.perf_counter() - wall) / reps


def row_pass_rows(repeat=REPEAT):
    """Row-pool pass: one thread against two, per work per thread."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(2 * K, D))
    rows = []
    with threadpool_limits(limits=2), row_parallel() as pool:
        two = pool if pool.n_threads >= 2 else None
        if two is None:
            return rows
        one = RowPool(1, None)
        for exponent in range(15, 24):
            work = 2**exponent
            n = 2 * work // (2 * K * D)  # two threads, each ``work`` multiply-adds
            X = rng.normal(size=(n, D))
            out = np.empty((2 * K, n))

            def kernel(start, stop, X=X, out=out):
                np.matmul(A, X[start:stop].T, out=out[:, start:stop])
                np.exp(out[:, start:stop], out=out[:, start:stop])

            reps = max(3, int(2e7 // (n * D * 2 * K)))
            best = {1: [np.inf, np.inf], 2: [np.inf, np.inf]}
            for _ in range(repeat):
                for threads, p in ((1, one), (2, two)):
                    bounds = [(0, n)] if threads == 1 else [(0, n // 2), (n // 2, n)]
                    cpu, wall = _timed(lambda p=p, bounds=bounds, kernel=kernel: p.map(kernel, bounds), reps)
                    best[threads] = [min(best[threads][0], cpu), min(best[threads][1], wall)]
            rows.append((work, n, *best[1], *best[2]))
    return rows


def openmp_rows(repeat=3):
    """HistGradientBoosting fits: one OpenMP thread against two, per n."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    rows = []
    for n in (1_000, 10_000, 100_000):
        X = rng.normal(size=(n, D))
        y = X @ rng.normal(size=D) + rng.normal(size=n)
        best = {1: [np.inf, np.inf], 2: [np.inf, np.inf]}
        for _ in range(repeat):
            for threads in (1, 2):
                with threadpool_limits(limits=threads):
                    est = HistGradientBoostingRegressor(max_iter=20, early_stopping=False, random_state=0)
                    cpu, wall = _timed(lambda est=est, X=X, y=y: est.fit(X, y), 1)
                best[threads] = [min(best[threads][0], cpu), min(best[threads][1], wall)]
        rows.append((n, n * D, *best[1], *best[2]))
    return rows


def main(output=None):
    report = Report()
    report_environment(report)
    report.line(f"MIN_WORK_PER_THREAD = {MIN_WORK_PER_THREAD:,} (2**{int(np.log2(MIN_WORK_PER_THREAD))})")
    report.heading(f"Row-pool pass (d={D}, {2 * K} rows of coefficients): 2 threads against 1, "
                   f"best of {REPEAT}, us per pass")
    rows = row_pass_rows()
    if not rows:
        report.line("one CPU: nothing to compare")
    report.table(
        ["work / thread", "rows", "1 thr CPU", "1 thr wall", "2 thr CPU", "2 thr wall", "CPU x", "wall x"],
        [[f"2**{int(np.log2(w))}", f"{n:,}", f"{c1 * 1e6:.0f}", f"{w1 * 1e6:.0f}", f"{c2 * 1e6:.0f}",
          f"{w2 * 1e6:.0f}", f"{c2 / c1:.2f}", f"{w2 / w1:.2f}"] for w, n, c1, w1, c2, w2 in rows],
    )
    report.line(f"load average after: {load_average():.1f}")
    report.heading("HistGradientBoostingRegressor(max_iter=20) fits, d=5: 2 OpenMP threads against 1, ms")
    report.table(
        ["n", "n x d", "1 thr CPU", "1 thr wall", "2 thr CPU", "2 thr wall", "CPU x", "wall x"],
        [[f"{n:,}", f"{nd:,}", f"{c1 * 1e3:.0f}", f"{w1 * 1e3:.0f}", f"{c2 * 1e3:.0f}", f"{w2 * 1e3:.0f}",
          f"{c2 / c1:.2f}", f"{w2 / w1:.2f}"] for n, nd, c1, w1, c2, w2 in openmp_rows()],
    )
    report.line(f"load average after: {load_average():.1f}")
    report.write(output)
    return 0


if __name__ == "__main__":
    main()
