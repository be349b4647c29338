"""One EM iteration on Dask arrays against NumPy in memory, and a fit larger than the workers' memory.

Usage::

    python benchmarks/dask_bench.py                      # n = 1e6 and 1e7, out-of-core 4 GB
    python benchmarks/dask_bench.py --sizes 1e5 --out-of-core-gb 0.2   # a quick check
    python benchmarks/dask_bench.py --skip-out-of-core --output table.md
    python benchmarks/dask_bench.py --sizes "" --out-of-core-gb 4.5      # out of core only

Data: ``d = 20`` features, ``k = 8`` experts, the model of
:func:`skmoe.datasets.make_gated_regression` (its parameters drawn once with
``random_state=0``), generated chunk by chunk (10 row chunks per size; 250,000
rows per chunk out of core), each chunk from its own seed, so NumPy and Dask
fit the same rows.

Per size, each side runs in a fresh subprocess and fits
``MixtureOfExpertsRegressor(n_experts=8, init="random", max_iter=4, tol=0,
random_state=0)`` with ``verbose=2``; the time of one EM iteration is the
median of the four iterations the fit prints (the initialisation is not
counted), and rows per second is ``n`` divided by it. The CPU time of one
iteration is the median, over the three intervals between those prints, of
the CPU seconds (user and system) of every process of the side: the NumPy
process; the client (with the scheduler), the nannies and the workers.

* NumPy: the arrays in the process's memory, the estimator's own threads
  (BLAS single-threaded, one row thread per core).
* Dask: a ``distributed.LocalCluster`` of 2 worker processes with 1 thread
  each; ``X`` and ``y`` generated on the workers and persisted there, so each
  worker caches its blocks' gate objectives for the M-step (within its
  budget of 3 chunks, :mod:`skmoe._dask._resp`).
* Out of core: ``X`` written to a memory-mappable ``.npy`` file of
  ``--out-of-core-gb`` GB, 2 workers with ``memory_limit="2GB"``, a fit of
  ``--out-of-core-iter`` iteration(s) (default 1) after the
  initialisation; each chunk
  is read from the file by its task (``np.fromfile`` at the chunk's offset),
  so every EM pass reads the data again and recomputes the
  responsibilities piece by piece (no cache).

Memory: each process's peak resident set during the fit (a sampler thread
reads ``psutil`` every 20 ms), and, for the workers, its increase over the
resident set before the fit (the data they hold), the "working memory" the
issue bounds by 3 chunks plus the model.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

N_FEATURES = 20
N_EXPERTS = 8
ROOT = Path(__file__).resolve().parents[1]
# A script's folder comes first on sys.path: a module there named like a package
# (``sparse``, which dask.array imports) would stand for it; keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


# ----------------------------------------------------------------------
# Data


def model_params():
    from skmoe.datasets import make_gated_regression

    _, _, params = make_gated_regression(
        10, N_FEATURES, N_EXPERTS, return_labels=False, return_params=True, random_state=0
    )
    return params


def make_chunk(n_rows, seed, params):
    """Rows of the gated-regression model from their own seed: ``(X, y)``."""
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n_rows, N_FEATURES))
    logits = params["gate_sharpness"] * (X @ params["gate_coef"].T + params["gate_intercept"])
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    labels = (proba.cumsum(axis=1) > rng.uniform(size=(n_rows, 1))).argmax(axis=1)
    y = (
        np.einsum("ij,ij->i", X, params["expert_coef"][labels])
        + params["expert_intercept"][labels]
        + params["noise_std"][labels] * rng.standard_normal(n_rows)
    )
    return X, y


def _chunk_sizes(n, n_chunks):
    edges = np.linspace(0, n, n_chunks + 1).astype(np.int64)
    return np.diff(edges).tolist()


# ----------------------------------------------------------------------
# Measurements (run in subprocesses)


class PeakSampler:
    """Peak resident set of this process, sampled by a thread."""

    def __init__(self, period=0.02):
        import psutil

        self.process = psutil.Process()
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self.period = period
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.period)

    def stop(self):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return self.base, self.peak


def _start_worker_sampler(dask_worker):
    dask_worker._skmoe_sampler = PeakSampler()
    dask_worker._skmoe_stored = dask_worker.state.nbytes


def _stop_worker_sampler(dask_worker):
    """Base and peak RSS, and the bytes of stored keys gained meanwhile (copies of other workers' chunks)."""
    base, peak = dask_worker._skmoe_sampler.stop()
    return base, peak, max(0, dask_worker.state.nbytes - dask_worker._skmoe_stored)


def cpu_seconds(processes):
    """User and system CPU seconds of ``processes`` (those that ended count no more)."""
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class _IterationClock:
    """A stdout that keeps what the fit prints and the CPU seconds of ``processes`` at each iteration line."""

    def __init__(self, processes):
        self.processes = processes
        self.text = []
        self.cpu = []

    def write(self, text):
        if "Iteration" in text:
            self.cpu.append(cpu_seconds(self.processes))
        self.text.append(text)

    def flush(self):
        pass


def _fit_and_time(estimator, X, y, processes):
    """Fit with verbose=2: the iteration times it prints, CPU seconds per iteration, the fit's wall time."""
    import contextlib
    import warnings

    clock = _IterationClock(processes)
    start = time.perf_counter()
    with contextlib.redirect_stdout(clock), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)
    wall = time.perf_counter() - start
    times = [float(t) for t in re.findall(r"Iteration \d+:.*time ([0-9.]+)s", "".join(clock.text))]
    return times, np.diff(clock.cpu).tolist(), wall


def _estimator(max_iter=4):
    from skmoe import MixtureOfExpertsRegressor

    return MixtureOfExpertsRegressor(
        n_experts=N_EXPERTS, init="random", max_iter=max_iter, tol=0.0, random_state=0, verbose=2
    )


def run_numpy(n):
    params = model_params()
    sizes = _chunk_sizes(n, 10)
    X = np.empty((n, N_FEATURES))
    y = np.empty(n)
    start = 0
    for b, size in enumerate(sizes):
        X[start : start + size], y[start : start + size] = make_chunk(size, b, params)
        start += size
    import psutil

    sampler = PeakSampler()
    times, cpu, wall = _fit_and_time(_estimator(), X, y, [psutil.Process()])
    base, peak = sampler.stop()
    return {"times": times, "cpu": cpu, "fit": wall, "peak": peak, "base": base,
            "data": X.nbytes + y.nbytes, "load": os.getloadavg()[0]}


def _load_rows(path, lo, hi):
    """Rows ``lo:hi`` of a ``.npy`` file, read from disk into a new array (no mapping kept)."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        f.seek(f.tell() + lo * row)
        out = np.fromfile(f, dtype=dtype, count=(hi - lo) * row // dtype.itemsize)
    return out.reshape((hi - lo,) + tuple(shape[1:]))


def _dask_data_from_file(X_path, y_path, sizes):
    import dask
    import dask.array as da

    edges = np.concatenate([[0], np.cumsum(sizes)])
    X_parts, y_parts = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        X_parts.append(da.from_delayed(dask.delayed(_load_rows)(str(X_path), int(lo), int(hi)),
                                       shape=(int(hi - lo), N_FEATURES), dtype=np.float64))
        y_parts.append(da.from_delayed(dask.delayed(_load_rows)(str(y_path), int(lo), int(hi)),
                                       shape=(int(hi - lo),), dtype=np.float64))
    return da.concatenate(X_parts), da.concatenate(y_parts)


def _dask_data_generated(n, params):
    import dask
    import dask.array as da

    sizes = _chunk_sizes(n, 10)
    X_parts, y_parts = [], []
    for b, size in enumerate(sizes):
        chunk = dask.delayed(make_chunk, nout=2)(size, b, params)
        X_parts.append(da.from_delayed(chunk[0], shape=(size, N_FEATURES), dtype=np.float64))
        y_parts.append(da.from_delayed(chunk[1], shape=(size,), dtype=np.float64))
    return da.concatenate(X_parts), da.concatenate(y_parts)


def run_dask(n, memory_limit=None, out_of_core=None, max_iter=4, stealing=True):
    import dask
    import psutil
    from distributed import Client, LocalCluster

    kwargs = {} if memory_limit is None else {"memory_limit": memory_limit}
    # One chunk read ahead per worker thread at most (root-task queuing).
    dask.config.set({"distributed.scheduler.worker-saturation": 1.0,
                     "distributed.scheduler.work-stealing": stealing})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, **kwargs) as cluster, Client(cluster) as client:
        if out_of_core is None:
            X, y = _dask_data_generated(n, model_params())
            X, y = client.persist([X, y])
            client.wait_for_workers(2)
            from distributed import wait

            wait([X, y])
            chunk_bytes = max(X.chunks[0]) * N_FEATURES * 8
        else:
            X, y = _dask_data_from_file(*out_of_core)
            chunk_bytes = max(X.chunks[0]) * N_FEATURES * 8
        # Warm the workers (imports) before measuring.
        client.run(lambda: __import__("skmoe._dask._fit"))
        client.run(_start_worker_sampler)
        sampler = PeakSampler()
        processes = [psutil.Process()] + psutil.Process().children(recursive=True)
        times, cpu, wall = _fit_and_time(_estimator(max_iter), X, y, processes)
        client_base, client_peak = sampler.stop()
        workers = client.run(_stop_worker_sampler)
    return {
        "times": times, "cpu": cpu, "fit": wall, "client_peak": client_peak,
        "client_base": client_base, "workers": list(workers.values()), "chunk_bytes": chunk_bytes,
        "data": n * (N_FEATURES + 1) * 8, "load": os.getloadavg()[0],
    }


def write_file_data(directory, n, gb_rows_per_chunk=250_000):
    """``X.npy`` and ``y.npy`` of ``n`` rows, written chunk by chunk; the chunk sizes."""
    params = model_params()
    X_path, y_path = Path(directory) / "X.npy", Path(directory) / "y.npy"
    X = np.lib.format.open_memmap(X_path, mode="w+", dtype=np.float64, shape=(n, N_FEATURES))
    y = np.lib.format.open_memmap(y_path, mode="w+", dtype=np.float64, shape=(n,))
    sizes = [min(gb_rows_per_chunk, n - lo) for lo in range(0, n, gb_rows_per_chunk)]
    start = 0
    for b, size in enumerate(sizes):
        X[start : start + size], y[start : start + size] = make_chunk(size, b, params)
        start += size
    X.flush()
    y.flush()
    del X, y
    return X_path, y_path, sizes


def _child(args):
    kind = args.child
    if kind == "numpy":
        result = run_numpy(args.n)
    elif kind == "dask":
        result = run_dask(args.n, stealing=not args.no_stealing)
    else:
        result = run_dask(args.n, memory_limit=args.memory_limit,
                          out_of_core=(args.X_path, args.y_path, json.loads(args.chunks)),
                          max_iter=args.out_of_core_iter)
    print("RESULT " + json.dumps(result))


def _spawn(*extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True,
                          env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{' '.join(extra)} failed:\n{proc.stderr[-4000:]}")


# ----------------------------------------------------------------------
# Report


def _gb(x):
    return f"{x / 1e9:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e6,1e7")
    parser.add_argument("--out-of-core-gb", type=float, default=4.0)
    parser.add_argument("--skip-out-of-core", action="store_true")
    parser.add_argument("--out-of-core-iter", type=int, default=1)
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--no-stealing", action="store_true",
                        help="turn Dask's work stealing off (persisted data stay on their worker)")
    parser.add_argument("--output")
    parser.add_argument("--child")
    parser.add_argument("--n", type=int)
    parser.add_argument("--X-path")
    parser.add_argument("--y-path")
    parser.add_argument("--chunks")
    args = parser.parse_args()
    if args.child:
        return _child(args)

    lines = [
        (f"d = {N_FEATURES}, k = {N_EXPERTS}, 2 cores; one EM iteration = median of 4 "
         "(init='random', tol=0); CPU = all processes of the side; working memory = a "
         "worker's peak RSS above its RSS before the fit, in largest chunks of X."),
        "",
        ("| n | side | wall s / iter | CPU s / iter | rows / s (wall) | Dask / NumPy per row: "
         "wall, CPU | load | peak RSS (GB) | working memory |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    per_iter = {}
    for n in (int(float(s)) for s in args.sizes.split(",") if s.strip()):
        numpy_result = _spawn("--child", "numpy", "--n", str(n))
        dask_result = _spawn("--child", "dask", "--n", str(n),
                             *(["--no-stealing"] if args.no_stealing else []))
        t_np, t_dk = (float(np.median(r["times"])) for r in (numpy_result, dask_result))
        c_np, c_dk = (float(np.median(r["cpu"])) for r in (numpy_result, dask_result))
        per_iter[n] = (t_np, t_dk, c_np, c_dk)
        lines.append(
            f"| {n:.0e} | NumPy | {t_np:.2f} | {c_np:.2f} | {n / t_np:,.0f} | | "
            f"{numpy_result['load']:.1f} | {_gb(numpy_result['peak'])} | |"
        )
        chunk = dask_result["chunk_bytes"]
        workers = ", ".join(f"{_gb(peak)}" for _, peak, _ in dask_result["workers"])
        working = ", ".join(
            f"{(peak - base) / chunk:.2f}x" + (f" ({(peak - base - copies) / chunk:.2f}x without "
                                               f"{copies / 1e6:.0f} MB of copied chunks)" if copies else "")
            for base, peak, copies in dask_result["workers"]
        )
        lines.append(
            f"| {n:.0e} | Dask, 2 workers | {t_dk:.2f} | {c_dk:.2f} | {n / t_dk:,.0f} | "
            f"{t_dk / t_np:.2f}, {c_dk / c_np:.2f} | {dask_result['load']:.1f} | client "
            f"{_gb(dask_result['client_peak'])} (+{_gb(dask_result['client_peak'] - dask_result['client_base'])}); "
            f"workers {workers} | {working} of {chunk / 1e6:.0f} MB |"
        )
        print("\n".join(lines[-2:]), flush=True)
    sizes = sorted(per_iter)
    if len(sizes) >= 2:
        lo, hi = sizes[0], sizes[-1]
        growth = [per_iter[hi][i] / per_iter[lo][i] for i in range(4)]
        lines += [
            "",
            (f"Per-iteration cost from n = {lo:.0e} to {hi:.0e} ({hi / lo:.0f}x the rows): NumPy "
             f"{growth[0]:.1f}x wall, {growth[2]:.1f}x CPU; Dask {growth[1]:.1f}x wall, "
             f"{growth[3]:.1f}x CPU."),
        ]
    if not args.skip_out_of_core and args.out_of_core_gb > 0:
        n = int(args.out_of_core_gb * 1e9 / (N_FEATURES * 8))
        with tempfile.TemporaryDirectory(dir=os.environ.get("SKMOE_BENCH_DIR")) as directory:
            tic = time.perf_counter()
            X_path, y_path, chunks = write_file_data(directory, n)
            written = time.perf_counter() - tic
            result = _spawn("--child", "ooc", "--n", str(n), "--X-path", str(X_path),
                            "--y-path", str(y_path), "--chunks", json.dumps(chunks),
                            "--memory-limit", args.memory_limit,
                            "--out-of-core-iter", str(args.out_of_core_iter))
        t = float(np.median(result["times"]))
        chunk = result["chunk_bytes"]
        working = max(peak - base for base, peak, _ in result["workers"])
        lines += [
            "",
            f"Out of core: X of {n:,} rows ({_gb(n * N_FEATURES * 8)} GB, written in "
            f"{written:.0f} s) in a .npy file, chunks of {max(chunks):,} rows "
            f"({chunk / 1e6:.0f} MB), 2 workers with memory_limit={args.memory_limit}: the fit "
            f"(initialisation and {len(result['times'])} iteration(s)) took {result['fit']:.0f} s, "
            f"{t:.1f} s per iteration ({n / t:,.0f} rows/s). Peak RSS: client "
            f"{_gb(result['client_peak'])} GB; workers "
            + ", ".join(f"{_gb(peak)} GB (+{_gb(peak - base)} during the fit)"
                        for base, peak, _ in result["workers"])
            + f". Largest working memory {working / chunk:.1f}x the largest chunk "
            "(the model is a few kB).",
        ]
        print("\n".join(lines[-2:]), flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
