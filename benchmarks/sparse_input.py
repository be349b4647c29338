"""Benchmark of sparse input: one EM iteration on a sparse one-hot design against the same data densified.

Usage::

    python benchmarks/sparse_input.py                          # n = 1e5 and 1e6; dense at 1e5 only
    python benchmarks/sparse_input.py --sizes 1e5 --dense-max 1e5
    python benchmarks/sparse_input.py --output sparse.md       # also write the table as markdown

The design: 10 categorical features of 101 levels each, one-hot encoded
without their first level (``OneHotEncoder(drop="first")``: 1,000 sparse
columns, each about 1 % non-zero, full rank beside the intercept), plus 10
dense standard-normal columns, in one CSR matrix (float64, int32 indices).
The target switches between 4 linear regimes on the sign of two dense
columns. The model: ``MixtureOfExpertsRegressor(n_experts=4)`` with its
defaults (``LinearRegression`` experts on the batched solver, the linear
gate, k-means initialisation).

Every case runs in a fresh subprocess (``--child``) that builds the data
(the dense case directly as a dense array: no sparse copy beside it):

* CPU seconds of one EM iteration: a fit with ``max_iter=1`` and
  ``warm_start=True`` (untimed: initialisation and a first iteration), then
  warm fits of 1 and 2 iterations; one iteration is their difference of
  ``time.process_time`` (every thread of the process);
* peak memory, in a second subprocess: the peak traced by ``tracemalloc``
  (NumPy and SciPy report their arrays' buffers) during the warm fit of one
  iteration and during the first fit (initialisation included), and the
  RSS high-water mark (``ru_maxrss``, reset through ``/proc/self/clear_refs``
  once the data exist) of the first fit, all relative to the bytes of ``X``
  (``data + indices + indptr`` for CSR).

The dense n = 1e6 case needs 8 GB for ``X`` and as much again for the
k-means initialisation's standardised copy: it runs only when
``--dense-max`` allows it.
"""

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the perf package beside this file

import numpy as np
import scipy.sparse as sp
from perf.memory import _reset_peak_rss
from perf.report import Report, fmt_n, report_environment
from sklearn.exceptions import ConvergenceWarning

N_CATEGORICAL, N_LEVELS, N_DENSE, N_EXPERTS = 10, 101, 10, 4


def make_design(n, dense, seed=0):
    """``X, y``: the one-hot design (CSR, or built dense in place) and the target."""
    rng = np.random.RandomState(seed)
    levels = rng.randint(0, N_LEVELS, size=(n, N_CATEGORICAL))
    numeric = rng.standard_normal((n, N_DENSE))
    n_onehot = N_CATEGORICAL * (N_LEVELS - 1)
    # Column of each non-first level; the first level of every feature is dropped.
    present = levels > 0
    columns = (levels - 1 + (N_LEVELS - 1) * np.arange(N_CATEGORICAL))
    level_effect = rng.standard_normal(n_onehot)
    onehot_part = np.where(present, level_effect[np.where(present, columns, 0)], 0.0).sum(axis=1)
    regime = 2 * (numeric[:, 0] > 0) + (numeric[:, 1] > 0)
    slopes = rng.standard_normal((N_EXPERTS, N_DENSE))
    y = np.einsum("ij,ij->i", numeric, slopes[regime]) + 3.0 * regime + 0.5 * onehot_part
    y += 0.3 * rng.standard_normal(n)
    if dense:
        X = np.zeros((n, n_onehot + N_DENSE))
        rows = np.nonzero(present)[0]
        X[rows, columns[present]] = 1.0
        X[:, n_onehot:] = numeric
        return X, y
    counts = present.sum(axis=1) + N_DENSE
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    indices = np.empty(indptr[-1], dtype=np.int32)
    data = np.empty(indptr[-1])
    # Row by row in CSR order: the one-hot columns (ascending), then the dense ones.
    order = np.argsort(np.where(present, columns, -1), axis=1, kind="stable")
    sorted_cols = np.take_along_axis(np.where(present, columns, -1), order, axis=1)
    keep = sorted_cols >= 0
    full = np.concatenate([np.where(keep, sorted_cols, -1),
                           np.broadcast_to(n_onehot + np.arange(N_DENSE), (n, N_DENSE))], axis=1)
    values = np.concatenate([keep.astype(np.float64), numeric], axis=1)
    mask = full >= 0
    indices[:] = full[mask]
    data[:] = values[mask]
    X = sp.csr_matrix((data, indices, indptr), shape=(n, n_onehot + N_DENSE))
    return X, y


def x_bytes(X):
    if sp.issparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return X.nbytes


def _model(**params):
    from skmoe import MixtureOfExpertsRegressor

    return MixtureOfExpertsRegressor(n_experts=N_EXPERTS, random_state=0, tol=0.0, **params)


def child(spec):
    """Body of a ``--child n,kind,mode`` subprocess: one JSON line on stdout."""
    n, kind, mode = spec.split(",")
    n = int(float(n))
    X, y = make_design(n, dense=kind == "dense")
    gc.collect()
    out = {"n": n, "kind": kind, "mode": mode, "x_bytes": x_bytes(X), "shape": list(X.shape)}
    if sp.issparse(X):
        out["density"] = X.nnz / (X.shape[0] * X.shape[1])
    warnings.simplefilter("ignore", ConvergenceWarning)
    if mode == "time":
        model = _model(max_iter=1, warm_start=True)
        start = time.process_time()
        model.fit(X, y)
        out["first_fit_cpu"] = time.process_time() - start
        cpu = {}
        for max_iter in (1, 2):
            model.set_params(max_iter=max_iter)
            start = time.process_time()
            model.fit(X, y)
            cpu[max_iter] = time.process_time() - start
        out["warm1_cpu"], out["warm2_cpu"] = cpu[1], cpu[2]
        out["em_iter_cpu"] = cpu[2] - cpu[1]
        out["score"] = float(model.score(X, y))
    else:
        model = _model(max_iter=1, warm_start=True)
        out["reset"] = _reset_peak_rss()
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        model.fit(X, y)
        out["first_fit_traced"] = tracemalloc.get_traced_memory()[1]
        out["first_fit_rss"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) * 1024
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        model.fit(X, y)  # one warm iteration
        out["iter_traced"] = tracemalloc.get_traced_memory()[1]
        out["iter_traced_extra"] = out["iter_traced"] - before
        tracemalloc.stop()
        # The fitted model's arrays (experts and gate): what the target allows beside 2x X.
        coef = sum(np.size(e.coef_) for e in model.experts_) + np.size(model.gate_.coef_)
        out["model_bytes"] = 8 * int(coef)
    print(json.dumps(out))


def run_child(n, kind, mode):
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", f"{n},{kind},{mode}"],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"subprocess {n},{kind},{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e5,1e6", help="comma-separated n")
    parser.add_argument("--dense-max", type=float, default=1e5,
                        help="largest n whose dense case runs (1e6 needs about 16 GB)")
    parser.add_argument("--output", default=None, help="also write the tables as markdown")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return
    report = Report()
    report_environment(report)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    mib = 2.0**20
    rows = []
    dense_cpu = {}
    for n in sizes:
        for kind in ("dense", "sparse"):  # dense first: the sparse row shows the speed-up
            if kind == "dense" and n > args.dense_max:
                rows.append([fmt_n(n), kind] + ["skip"] * 8)
                continue
            timing = run_child(n, kind, "time")
            memory = run_child(n, kind, "memory")
            print(json.dumps({"time": timing, "memory": memory}), flush=True)
            xb = memory["x_bytes"]
            cpu = timing["em_iter_cpu"]
            if kind == "dense":
                dense_cpu[n] = cpu
            speedup = f"{dense_cpu[n] / cpu:.1f}" if kind == "sparse" and n in dense_cpu else "-"
            rows.append([
                fmt_n(n), kind, f"{xb / mib:.0f}", f"{cpu:.2f}", speedup,
                f"{timing['first_fit_cpu']:.1f}", f"{memory['iter_traced'] / mib:.0f}",
                f"{(xb + memory['iter_traced']) / xb:.2f}", f"{(xb + memory['first_fit_traced']) / xb:.2f}",
                f"{(xb + memory['first_fit_rss']) / xb:.2f}",
            ])
    report.heading(
        f"One EM iteration, {N_EXPERTS} LinearRegression experts, one-hot design "
        f"(1,000 sparse columns at ~1 % + {N_DENSE} dense)"
    )
    report.table(
        ["n", "X", "X MiB", "CPU s / EM iteration", "dense / sparse CPU",
         "CPU s first fit (init + 1 it.)", "extra MiB (iteration)", "(X + extra) / X (iteration)",
         "(X + extra) / X (first fit)", "(X + RSS extra) / X (first fit)"],
        rows,
    )
    report.write(args.output)


if __name__ == "__main__":
    main()
