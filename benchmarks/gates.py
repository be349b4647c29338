"""Benchmark of the gates: linear, MLP(64) and MLP(256, 256), NumPy against PyTorch on CPU.

Usage::

    python benchmarks/gates.py                    # the three parts below (~10 min on 2 cores)
    python benchmarks/gates.py --parts case800    # the 800-row case only
    python benchmarks/gates.py --parts mstep --sizes 1e4 --features 16 --experts 8
    python benchmarks/gates.py --output gates.md  # also write the tables as markdown

Three parts, each a table:

``case800``
    The neural-gates issue's first example: 800 samples, 5 features, 3
    experts (``make_gated_regression(800, n_features=5, n_experts=3,
    random_state=0)``), ``MixtureOfExpertsRegressor(n_experts=3, gate=...,
    random_state=0)`` with its defaults. CPU seconds of a whole fit (median
    of 3, after one warm-up fit that also imports PyTorch), EM iterations
    and the objective. Runs against any skmoe version (put another checkout
    first on ``PYTHONPATH`` to measure it).
``mstep``
    One gate M-step as the EM loop runs it (:func:`skmoe.gates._protocol.make_gate`'s
    gate and budget, ``prepare`` once, then ``fit`` on the responsibilities,
    inside the loop's row-thread region), for n in {1e4, 1e5}, d in {16,
    256}, experts in {8, 64}: the first (cold) M-step, then the mean of two
    warm M-steps on slightly moved responsibilities. Only the gate: the
    experts' cost at d=256 and 64 experts would dominate a whole fit.
``fits``
    Whole fits with linear experts at d=16 and 8 experts: n=1e4 for the
    three gates, n=1e5 for the linear and MLP(64) gates (whole fits of
    MLP(256, 256) at n=1e5 take minutes; its time per EM iteration comes
    from the ``mstep`` part). Time of the fit, EM iterations, time per EM
    iteration (the fit less its initialisation, ``max_iter=0``, divided by
    the iterations), and the objective.

CPU seconds (``time.process_time``, every thread of the process) are
reported next to wall seconds: on a busy machine the wall time mostly
measures the neighbours.
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the perf package beside this file

import numpy as np
from perf.report import Report, fmt_n, report_environment
from sklearn.exceptions import ConvergenceWarning

GATES = ("linear", "mlp64", "mlp256x256")
BACKENDS = ("numpy", "torch")


def _gated_regression(n, d, k, seed=0):
    from skmoe.datasets import make_gated_regression

    try:
        data = make_gated_regression(n, n_features=d, n_experts=k, return_labels=False,
                                     random_state=seed)
    except TypeError:  # versions without return_labels
        data = make_gated_regression(n, n_features=d, n_experts=k, random_state=seed)
    return data[0], data[1]


def _timed(func, *args):
    """``(result, cpu seconds, wall seconds)`` of ``func(*args)``."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = func(*args)
    return result, time.process_time() - cpu, time.perf_counter() - wall


def _gate_param(gate, backend, alpha):
    """``gate=`` of the estimator: the strings as they are, MLP(...) as gate objects."""
    if gate == "linear":
        return "linear"
    if gate == "mlp":
        return "mlp"
    from skmoe.gates import MLPGate, TorchGate
    from skmoe.gates._protocol import _NEURAL_GATE_ITER_PER_M_STEP

    hidden = {"mlp64": (64,), "mlp256x256": (256, 256)}[gate]
    if backend == "torch":
        return TorchGate(hidden, alpha=alpha, max_iter=_NEURAL_GATE_ITER_PER_M_STEP, device="cpu")
    return MLPGate(hidden, alpha=alpha, max_iter=_NEURAL_GATE_ITER_PER_M_STEP)


def _estimator(n_experts, gate, backend, **params):
    from skmoe import MixtureOfExpertsRegressor

    alpha = MixtureOfExpertsRegressor().get_params().get("gate_alpha", 1e-4)
    gate = _gate_param(gate, backend, alpha)
    if not isinstance(gate, str):  # a gate object trains itself: the backend is NumPy's
        backend = "numpy"
    options = {"device": "cpu"} if backend == "torch" else {}
    return MixtureOfExpertsRegressor(
        n_experts=n_experts, gate=gate, backend=backend, random_state=0, **options, **params,
    )


def part_case800(report, repeat):
    report.heading("The 800-row case: 800 samples, 5 features, 3 experts (whole fits)")
    X, y = _gated_regression(800, 5, 3)
    rows = []
    for gate, backend in (("linear", "numpy"), ("mlp", "numpy"), ("mlp", "torch")):
        estimator = _estimator(3, gate, backend)
        estimator.fit(X, y)  # warm-up (imports)
        times = [_timed(estimator.fit, X, y)[1:] for _ in range(repeat)]
        cpu = statistics.median(t[0] for t in times)
        wall = statistics.median(t[1] for t in times)
        objective = getattr(estimator, "objective_", estimator.log_likelihood_)
        rows.append([gate, backend, f"{cpu:.3f}", f"{wall:.3f}", estimator.n_iter_,
                     f"{objective:.4f}"])
    linear = float(rows[0][2])
    for row in rows:
        row.insert(4, f"{float(row[2]) / linear:.1f}")
    report.table(["gate", "backend", "CPU s", "wall s", "x linear CPU", "EM iterations",
                  "objective"], rows)


def _m_step_gate(gate, backend, k):
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.gates._protocol import make_gate

    alpha = MixtureOfExpertsRegressor().get_params()["gate_alpha"]
    param = _gate_param(gate, backend, alpha)
    return make_gate(param, backend=backend, alpha=alpha, device="cpu", random_state=0)


def _responsibilities(X, k, rng):
    """Soft targets from a random softmax gate on the first features."""
    W = rng.randn(k, min(X.shape[1], 8))
    Z = X[:, : W.shape[1]] @ W.T
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    return 0.9 * P + 0.1 / k


def part_mstep(report, sizes, features, experts, gates):
    from skmoe.utils._threads import row_parallel

    report.heading("One gate M-step as the EM loop runs it (ms; first = cold start)")
    rows = []
    for n in sizes:
        for d in features:
            rng = np.random.RandomState(0)
            X = rng.randn(n, d)
            for k in experts:
                resp = _responsibilities(X, k, rng)
                moved = [0.95 * resp + 0.05 * _responsibilities(X, k, rng) for _ in range(2)]
                for gate in gates:
                    cells = {}
                    for backend in BACKENDS:
                        adapter = _m_step_gate(gate, backend, k)
                        times = []
                        with row_parallel():
                            context = adapter.prepare(X, None)
                            for target in [resp, *moved]:
                                resp_T = np.ascontiguousarray(target.T)
                                times.append(
                                    _timed(adapter.fit, X, resp_T, None, context)[1:])
                        cold = times[0]
                        warm = [statistics.mean(t[i] for t in times[1:]) for i in (0, 1)]
                        cells[backend] = (cold, warm)
                    ratio = cells["torch"][1][0] / cells["numpy"][1][0]
                    rows.append([
                        fmt_n(n), d, k, gate,
                        *(f"{1e3 * cells[b][0][0]:.0f}" for b in BACKENDS),
                        *(f"{1e3 * cells[b][1][0]:.0f}" for b in BACKENDS),
                        *(f"{1e3 * cells[b][1][1]:.0f}" for b in BACKENDS),
                        f"{ratio:.2f}",
                    ])
                    print(rows[-1], flush=True)
    report.table(
        ["n", "d", "experts", "gate", "cold CPU numpy", "cold CPU torch", "warm CPU numpy",
         "warm CPU torch", "warm wall numpy", "warm wall torch", "torch/numpy warm CPU"],
        rows,
    )


def part_fits(report, configs):
    report.heading("Whole fits with linear experts (s; per iteration in ms)")
    rows = []
    for n, d, k, gates in configs:
        X, y = _gated_regression(n, d, k)
        for gate in gates:
            cells = {}
            for backend in BACKENDS:
                init = _timed(_estimator(k, gate, backend, max_iter=0).fit, X, y)
                estimator, cpu, wall = _timed(_estimator(k, gate, backend).fit, X, y)
                per_iter = [(t - t0) / max(1, estimator.n_iter_)
                            for t, t0 in ((cpu, init[1]), (wall, init[2]))]
                cells[backend] = (cpu, wall, estimator.n_iter_, per_iter, estimator.objective_)
                print(n, d, k, gate, backend, cells[backend], flush=True)
            rows.append([
                fmt_n(n), d, k, gate,
                *(f"{cells[b][0]:.2f}" for b in BACKENDS),
                *(f"{cells[b][1]:.2f}" for b in BACKENDS),
                *(cells[b][2] for b in BACKENDS),
                *(f"{1e3 * cells[b][3][0]:.0f}" for b in BACKENDS),
                *(f"{cells[b][4]:.4f}" for b in BACKENDS),
            ])
    report.table(
        ["n", "d", "experts", "gate", "CPU numpy", "CPU torch", "wall numpy", "wall torch",
         "iters numpy", "iters torch", "CPU/iter numpy", "CPU/iter torch", "objective numpy",
         "objective torch"],
        rows,
    )


def parse_ints(text):
    return [int(float(v)) for v in text.split(",") if v.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="case800,mstep,fits")
    parser.add_argument("--sizes", type=parse_ints, default=[10_000, 100_000])
    parser.add_argument("--features", type=parse_ints, default=[16, 256])
    parser.add_argument("--experts", type=parse_ints, default=[8, 64])
    parser.add_argument("--gates", default=",".join(GATES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    parts = args.parts.split(",")
    report = Report()
    report_environment(report)
    if "case800" in parts:
        part_case800(report, args.repeat)
    if "mstep" in parts:
        part_mstep(report, args.sizes, args.features, args.experts, args.gates.split(","))
    if "fits" in parts:
        part_fits(report, [(10_000, 16, 8, GATES), (100_000, 16, 8, GATES[:2])])
    if args.output:
        report.write(args.output)


if __name__ == "__main__":
    main()
