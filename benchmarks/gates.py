"""Benchmark of the gates: linear, MLP(64) and MLP(256, 256), NumPy against PyTorch on CPU.

Usage::

    python benchmarks/gates.py                    # the five parts below (~30 min on 2 cores)
    python benchmarks/gates.py --parts case800    # the 800-row case only
    python benchmarks/gates.py --parts mstep --sizes 1e4 --features 16 --experts 8
    python benchmarks/gates.py --output gates.md  # also write the tables as markdown

Five parts, each a table:

``case800``
    The neural-gates issue's first example: 800 samples, 5 features, 3
    experts (``make_gated_regression(800, n_features=5, n_experts=3,
    random_state=0)``), ``MixtureOfExpertsRegressor(n_experts=3, gate=...,
    random_state=seed)`` with its defaults, for the seeds ``--seeds``
    (0-4): an MLP gate's EM run is sensitive to rounding, so one seed's
    iteration count is a draw (50 to 73 here). Per seed the median CPU
    seconds of ``--repeat`` fits, after one warm-up fit that also imports
    PyTorch; the table has the means over the seeds: CPU seconds, EM
    iterations, CPU per EM iteration, and the objective. Runs against any
    skmoe version (put another checkout first on ``PYTHONPATH``).
``budget``
    The MLP gate's L-BFGS iterations per M-step (the budget of
    ``gate="mlp"``, both backends), on the 800-row case for the same seeds:
    ``gate=MLPGate(max_iter=budget)``, the same gate as ``gate="mlp"`` but
    for its budget.
``crawl``
    Where the MLP gate's EM iterations go on the 800-row case, for the
    gate penalties ``--alphas`` (the estimator's ``gate_alpha``): per
    seed, the EM iterations, the iteration at which the objective first
    reaches the linear gate's final objective (same seed), the share of
    the objective's rise after that iteration that the gate's M-steps
    account for (their decreases of the gate's loss, which raise EM's
    objective by as much), the gate's L-BFGS iterations, and the held-out
    mean log-likelihood on 20,000 new rows of the same model.
``mstep``
    One gate M-step as the EM loop runs it (:func:`skmoe.gates._protocol.make_gate`'s
    gate and budget, ``prepare`` once, then ``fit`` on the responsibilities,
    inside the loop's row-thread region), for n in {1e4, 1e5}, d in {16,
    256}, experts in {8, 64}: the first (cold) M-step, then the median of
    ``--warm`` warm M-steps on slightly moved responsibilities, the two
    backends' M-steps interleaved so that both see the same load. Only the
    gate: the experts' cost at d=256 and 64 experts would dominate a whole fit.
``fits``
    Whole fits with linear experts at d=16 and 8 experts: n=1e4 for the
    three gates, n=1e5 for the linear and MLP(64) gates (whole fits of
    MLP(256, 256) at n=1e5 take minutes; its time per EM iteration comes
    from the ``mstep`` part). Time of the fit, EM iterations, time per EM
    iteration (the fit less its initialisation, ``max_iter=0``, divided by
    the iterations), and the objective.

CPU seconds (``time.process_time``, every thread of the process) are
reported next to wall seconds: on a busy machine the wall time mostly
measures the neighbours. PyTorch is imported and run once before any
timing, so that its one-time start (about a second of CPU) is not charged
to the first table row.
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
    if not isinstance(gate, str) or gate in ("linear", "mlp"):
        return gate
    from skmoe.gates import MLPGate, TorchGate
    from skmoe.gates._protocol import _NEURAL_GATE_ITER_PER_M_STEP

    hidden = {"mlp64": (64,), "mlp256x256": (256, 256)}[gate]
    if backend == "torch":
        return TorchGate(hidden, alpha=alpha, max_iter=_NEURAL_GATE_ITER_PER_M_STEP, device="cpu")
    return MLPGate(hidden, alpha=alpha, max_iter=_NEURAL_GATE_ITER_PER_M_STEP)


def _estimator(n_experts, gate, backend, seed=0, **params):
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.gates._protocol import _NEURAL_GATE_ALPHA

    # The strings take gate_alpha="auto"; the MLP(...) objects its neural value.
    gate = _gate_param(gate, backend, _NEURAL_GATE_ALPHA)
    if not isinstance(gate, str):  # a gate object trains itself: the backend is NumPy's
        backend = "numpy"
    options = {"device": "cpu"} if backend == "torch" else {}
    return MixtureOfExpertsRegressor(
        n_experts=n_experts, gate=gate, backend=backend, random_state=seed, **options, **params,
    )


def _warm_up_torch():
    """Import PyTorch and run it once, so that its start is not charged to a table row."""
    X, y = _gated_regression(200, 3, 2)
    _estimator(2, "mlp", "torch", max_iter=2).fit(X, y)


def _case800_row(X, y, gate, backend, seeds, repeat):
    """Means over the seeds of the median CPU and wall seconds of ``repeat`` fits, and more."""
    cells = []
    for seed in seeds:
        estimator = _estimator(3, gate, backend, seed=seed)
        estimator.fit(X, y)  # warm-up
        times = [_timed(estimator.fit, X, y)[1:] for _ in range(repeat)]
        objective = getattr(estimator, "objective_", estimator.log_likelihood_)
        cells.append((statistics.median(t[0] for t in times),
                      statistics.median(t[1] for t in times), estimator.n_iter_, objective))
    cpu, wall, iters, objective = (statistics.mean(c[i] for c in cells) for i in range(4))
    return cpu, wall, iters, objective, min(c[2] for c in cells), max(c[2] for c in cells)


def part_case800(report, repeat, seeds):
    report.heading("The 800-row case: 800 samples, 5 features, 3 experts "
                   f"(whole fits; means over seeds {seeds[0]}-{seeds[-1]})")
    X, y = _gated_regression(800, 5, 3)
    rows, linear = [], None
    for gate, backend in (("linear", "numpy"), ("mlp", "numpy"), ("mlp", "torch")):
        cpu, wall, iters, objective, low, high = _case800_row(X, y, gate, backend, seeds, repeat)
        linear = cpu if linear is None else linear
        rows.append([gate, backend, f"{cpu:.3f}", f"{wall:.3f}", f"{cpu / linear:.1f}",
                     f"{iters:.1f}", f"{low}-{high}", f"{1e3 * cpu / iters:.2f}",
                     f"{objective:.4f}"])
        print(rows[-1], flush=True)
    report.table(["gate", "backend", "CPU s", "wall s", "x linear CPU", "EM iterations",
                  "range", "CPU ms / EM iteration", "objective"], rows)


def part_budget(report, repeat, seeds, budgets):
    from skmoe.gates import MLPGate

    report.heading("The MLP gate's L-BFGS iterations per M-step on the 800-row case "
                   f"(means over seeds {seeds[0]}-{seeds[-1]})")
    X, y = _gated_regression(800, 5, 3)
    from skmoe.gates._protocol import (
        _NEURAL_GATE_ALPHA as alpha,  # gate="mlp"'s penalty
    )

    linear = _case800_row(X, y, "linear", "numpy", seeds, repeat)[0]
    rows = []
    for budget in budgets:
        gate = MLPGate(alpha=alpha, max_iter=budget)
        cpu, _, iters, objective, low, high = _case800_row(X, y, gate, "numpy", seeds, repeat)
        rows.append([budget, f"{cpu:.3f}", f"{cpu / linear:.1f}", f"{iters:.1f}",
                     f"{low}-{high}", f"{1e3 * cpu / iters:.2f}", f"{objective:.4f}"])
        print(rows[-1], flush=True)
    report.table(["iterations per M-step", "CPU s", "x linear CPU", "EM iterations", "range",
                  "CPU ms / EM iteration", "objective"], rows)


class _GateSteps:
    """The gate's L-BFGS calls within ``with``: the loss at the start and end of each M-step."""

    def __init__(self):
        import skmoe.gates._softmax as softmax

        self.module, self.original = softmax, softmax.minimise_lbfgs
        self.steps, self.iterations = [], 0

    def __call__(self, fun, theta, **kwargs):
        start = fun(theta)[0]
        result = self.original(fun, theta, **kwargs)
        self.steps.append((float(start), float(result[1])))
        self.iterations += result[2]
        return result

    def __enter__(self):
        self.module.minimise_lbfgs = self
        return self

    def __exit__(self, *exc):
        self.module.minimise_lbfgs = self.original


def part_crawl(report, seeds, alphas):
    from skmoe import MixtureOfExpertsRegressor

    report.heading("Where the MLP gate's EM iterations go on the 800-row case "
                   f"(means over seeds {seeds[0]}-{seeds[-1]}; held-out: 20,000 new rows)")
    X, y = _gated_regression(800, 5, 3)
    X_new, y_new = (a[800:] for a in _gated_regression(20_800, 5, 3))  # the same model's
    rows = []
    for alpha in alphas:
        cells = {"linear": [], "mlp": []}
        for seed in seeds:
            linear = MixtureOfExpertsRegressor(n_experts=3, gate_alpha=alpha, random_state=seed)
            linear.fit(X, y)
            cells["linear"].append((linear.n_iter_, np.nan, np.nan, np.nan,
                                    linear.objective_, linear.log_prob(X_new, y_new).mean()))
            mlp = MixtureOfExpertsRegressor(n_experts=3, gate="mlp", gate_alpha=alpha,
                                            random_state=seed)
            with _GateSteps() as steps:
                mlp.fit(X, y)
            curve = np.asarray(mlp.objective_curve_)
            # The first iteration at the linear gate's final objective, and the
            # gate M-steps' share of the rise after it (M-step i > 0 precedes curve[i]).
            reached = int(np.argmax(curve >= linear.objective_)) if np.any(
                curve >= linear.objective_) else len(curve) - 1
            rise = curve[-1] - curve[reached]
            decrease = sum(a - b for a, b in steps.steps[reached + 1 : len(curve)])
            cells["mlp"].append((mlp.n_iter_, reached, decrease / rise if rise > 0 else np.nan,
                                 steps.iterations, mlp.objective_,
                                 mlp.log_prob(X_new, y_new).mean()))
        for gate, values in cells.items():
            means = np.nanmean(np.asarray(values, dtype=float), axis=0)
            mlp_only = [f"{means[1]:.1f}", f"{means[2]:.2f}", f"{means[3]:.0f}"]
            rows.append([f"{alpha:g}", gate, f"{means[0]:.1f}",
                         *(["", "", ""] if gate == "linear" else mlp_only),
                         f"{means[4]:.4f}", f"{means[5]:.4f}"])
            print(rows[-1], flush=True)
    report.table(["gate_alpha", "gate", "EM iterations", "at the linear objective",
                  "gate's share of the rise after", "gate L-BFGS iterations", "objective",
                  "held-out log-likelihood"], rows)


def _m_step_gate(gate, backend, k):
    from skmoe.gates._protocol import _NEURAL_GATE_ALPHA, make_gate

    param = _gate_param(gate, backend, _NEURAL_GATE_ALPHA)
    return make_gate(param, backend=backend, alpha="auto", device="cpu", random_state=0)


def _responsibilities(X, k, rng):
    """Soft targets from a random softmax gate on the first features."""
    W = rng.randn(k, min(X.shape[1], 8))
    Z = X[:, : W.shape[1]] @ W.T
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    return 0.9 * P + 0.1 / k


def part_mstep(report, sizes, features, experts, gates, n_warm):
    from skmoe.utils._threads import row_parallel

    report.heading("One gate M-step as the EM loop runs it (ms; first = cold start, "
                   f"warm = median of {n_warm})")
    rows = []
    for n in sizes:
        for d in features:
            rng = np.random.RandomState(0)
            X = rng.randn(n, d)
            for k in experts:
                resp = _responsibilities(X, k, rng)
                moved = [0.95 * resp + 0.05 * _responsibilities(X, k, rng) for _ in range(n_warm)]
                for gate in gates:
                    adapters = {b: _m_step_gate(gate, b, k) for b in BACKENDS}
                    times = {b: [] for b in BACKENDS}
                    with row_parallel():
                        contexts = {b: adapters[b].prepare(X, None) for b in BACKENDS}
                        for target in [resp, *moved]:  # the backends in turn: the same load
                            resp_T = np.ascontiguousarray(target.T)
                            for b in BACKENDS:
                                times[b].append(
                                    _timed(adapters[b].fit, X, resp_T, None, contexts[b])[1:])
                    cold = {b: times[b][0] for b in BACKENDS}
                    warm = {b: [statistics.median(t[i] for t in times[b][1:]) for i in (0, 1)]
                            for b in BACKENDS}
                    ratio = warm["torch"][0] / warm["numpy"][0]
                    rows.append([
                        fmt_n(n), d, k, gate,
                        *(f"{1e3 * cold[b][0]:.0f}" for b in BACKENDS),
                        *(f"{1e3 * warm[b][0]:.0f}" for b in BACKENDS),
                        *(f"{1e3 * warm[b][1]:.0f}" for b in BACKENDS),
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
    parser.add_argument("--parts", default="case800,budget,crawl,mstep,fits")
    parser.add_argument("--sizes", type=parse_ints, default=[10_000, 100_000])
    parser.add_argument("--features", type=parse_ints, default=[16, 256])
    parser.add_argument("--experts", type=parse_ints, default=[8, 64])
    parser.add_argument("--gates", default=",".join(GATES))
    parser.add_argument("--seeds", type=parse_ints, default=[0, 1, 2, 3, 4])
    parser.add_argument("--budgets", type=parse_ints, default=[2, 3, 5, 8])
    parser.add_argument("--alphas", type=lambda text: [float(v) for v in text.split(",")],
                        default=[1e-6, 1e-4, 1e-3], help="gate_alpha values of the crawl part")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warm", type=int, default=4)
    parser.add_argument("--fits", default="1e4:mlp256x256,1e5",
                        help="whole-fit configurations n[:gates] at d=16, 8 experts")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    parts = args.parts.split(",")
    report = Report()
    report_environment(report)
    _warm_up_torch()
    if "case800" in parts:
        part_case800(report, args.repeat, args.seeds)
    if "budget" in parts:
        part_budget(report, args.repeat, args.seeds, args.budgets)
    if "crawl" in parts:
        part_crawl(report, args.seeds, args.alphas)
    if "mstep" in parts:
        part_mstep(report, args.sizes, args.features, args.experts, args.gates.split(","),
                   args.warm)
    if "fits" in parts:
        part_fits(report, [(n, 16, 8, gates) for n, gates in _fit_configs(args.fits)])
    if args.output:
        report.write(args.output)


def _fit_configs(text):
    """``"1e4:mlp256x256,1e5"`` -> [(10000, (linear, mlp64, mlp256x256)), (100000, (linear, mlp64))]."""
    configs = []
    for item in text.split(","):
        n, _, extra = item.partition(":")
        configs.append((int(float(n)), GATES[:2] + tuple(g for g in extra.split("+") if g)))
    return configs


if __name__ == "__main__":
    main()
