"""Benchmark of the EM loop on a PyTorch device: seconds per EM iteration, NumPy against torch.

Usage::

    python benchmarks/device.py                                  # the grid below
    python benchmarks/device.py --sizes 1e5 --features 16 --experts 8
    python benchmarks/device.py --devices cpu cuda --output device.md

For each n in ``--sizes`` (1e5, 1e6), d in ``--features`` (16, 256) and
experts in ``--experts`` (8, 64): linear experts (``LinearRegression``) and
an MLP(256, 256) gate at 5 L-BFGS iterations per M-step (the budget of the
built-in neural gates), data from :func:`skmoe.datasets.make_gated_regression`
(float64, or float32 with ``--float32``), fitted three ways:

* ``numpy``: ``gate=MLPGate((256, 256), max_iter=5)``, the host path;
* ``torch-<device>``: ``gate=TorchGate((256, 256), max_iter=5, device=...)``,
  the whole EM loop on the device (``skmoe._device``; on the CPU with
  ``skmoe._device.CPU_RESIDENT`` set, which a fit leaves off by default).

Each fit runs ``--iterations`` EM iterations (``tol=0``) from the same
k-means start; the time of every iteration is taken between two
evaluations of the EM objective (the driver's ``_objective``, wrapped), and
the table has the median over the iterations after the first (the first
includes the gate's cold start). CPU time (``time.process_time``, all
threads of the process) for the CPU rows, and wall time after
``torch.cuda.synchronize`` for a GPU (its work is not the process's CPU
time). Also the held-out mean log-likelihood per sample (``log_prob`` on
as many fresh rows) of each fit, whose difference between the paths says
that they fit the same model.
"""

import argparse
import time
import warnings

import numpy as np

import skmoe._device
import skmoe._driver
from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_gated_regression
from skmoe.gates import MLPGate, TorchGate

HIDDEN = (256, 256)
BUDGET = 5


def _per_iteration_seconds(estimator, X, y, clock):
    """Fit; the seconds of each EM iteration, from the objective's evaluations."""
    marks = []
    objective = skmoe._driver._EMDriver._objective

    def timed(self, ctx, state):
        value = objective(self, ctx, state)
        marks.append(clock())
        return value

    skmoe._driver._EMDriver._objective = timed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(X, y)
    finally:
        skmoe._driver._EMDriver._objective = objective
    return np.diff(marks)


def _clock(device):
    if device == "cpu" or device == "numpy":
        return time.process_time
    import torch

    def wall():
        torch.cuda.synchronize()
        return time.perf_counter()

    return wall


def run(sizes, features, experts, devices, iterations, float32, seed=0):
    skmoe._device.CPU_RESIDENT = True  # torch-cpu: the device-resident loop on the CPU
    rows = []
    for n in sizes:
        for d in features:
            for k in experts:
                X, y = make_gated_regression(2 * n, n_features=d, n_experts=k, return_labels=False, random_state=seed)
                if float32:
                    X = X.astype(np.float32)
                X_train, y_train, X_test, y_test = X[:n], y[:n], X[n:], y[n:]
                row = {"n": n, "d": d, "experts": k}
                for path in ["numpy", *devices]:
                    gate = (
                        MLPGate(HIDDEN, max_iter=BUDGET, random_state=seed) if path == "numpy"
                        else TorchGate(HIDDEN, max_iter=BUDGET, device=path, random_state=seed)
                    )
                    model = MixtureOfExpertsRegressor(
                        k, gate=gate, max_iter=iterations, tol=0, random_state=seed
                    )
                    seconds = _per_iteration_seconds(model, X_train, y_train, _clock(path))
                    row[path] = float(np.median(seconds[1:])) if seconds.size > 1 else float(seconds[0])
                    row[path + " ll"] = float(np.mean(model.log_prob(X_test, y_test)))
                    print(f"  n={n:.0e} d={d} k={k} {path}: {row[path]:.3f} s/iteration "
                          f"(all: {np.round(seconds, 3).tolist()}), held-out ll {row[path + ' ll']:.6f}",
                          flush=True)
                rows.append(row)
    return rows


def table(rows, devices, clock_note):
    head = ["n", "d", "experts", "numpy s/it"]
    for device in devices:
        head += [f"torch-{device} s/it", f"numpy / torch-{device}"]
    head += ["held-out ll numpy"] + [f"ll diff torch-{device}" for device in devices]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r['n']:.0e}", str(r["d"]), str(r["experts"]), f"{r['numpy']:.3f}"]
        for device in devices:
            cells += [f"{r[device]:.3f}", f"{r['numpy'] / r[device]:.2f}x"]
        cells += [f"{r['numpy ll']:.6f}"] + [f"{r[device + ' ll'] - r['numpy ll']:+.1e}" for device in devices]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{clock_note}\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", type=float, default=[1e5, 1e6])
    parser.add_argument("--features", nargs="+", type=int, default=[16, 256])
    parser.add_argument("--experts", nargs="+", type=int, default=[8, 64])
    parser.add_argument("--devices", nargs="+", default=["cpu"])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--float32", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    rows = run([int(n) for n in args.sizes], args.features, args.experts, args.devices,
               args.iterations, args.float32)
    text = table(rows, args.devices, "CPU rows: process CPU seconds per EM iteration; GPU rows: wall seconds.")
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
