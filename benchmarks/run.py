"""Benchmark of skmoe's EM with linear experts against scikit-learn baselines.

Usage::

    python benchmarks/run.py                 # n in {1e4, 1e5, 1e6}, d in {10, 50}, k in {4, 16}
    python benchmarks/run.py --quick         # n in {1e4, 1e5} only
    python benchmarks/run.py --sizes 1e4 --features 10 --experts 4 --repeat 5
    python benchmarks/run.py --quick --memory --output results.md

For every configuration ``(n, d, k)`` (samples, features, experts) one data
set is drawn and every measurement below is taken on it, in one process:
``X`` (float64, C-contiguous) and ``y`` come from
:func:`skmoe.datasets.make_gated_regression` (``random_state=0``). The
responsibilities ``resp`` are the probabilities of the true gate of that data
(``return_params=True``): structured like the responsibilities EM produces,
so the gate and LogisticRegression fits below face a real classification
problem. ``weights_T = resp.T`` as a C-contiguous ``(k, n)`` array.

Times are wall-clock milliseconds, the best of ``--repeat`` runs
(``time.perf_counter``). Without ``--repeat`` the count is 3 for ``n < 1e6``
and 1 for ``n >= 1e6``; an explicit ``--repeat`` applies to every size.

Time budget (``--budget``, default 540 s): measurements run size by size; at
each size the measurements are taken one kind at a time over all
configurations, largest configuration first, in the order of the columns
below (the full fit last). Before each measurement its time is predicted from
the same measurement at the previous size (linear in ``n``, scaled by the
repeat count); when the prediction, times 1.5, would overrun the budget the
measurement is skipped and shown as ``skip``. Measurements at the first size
are always taken. ``--budget 0`` turns this off.

Columns of the time tables
--------------------------
GEMM floor
    ``k *`` the time of ``X.T @ X``: the flops every expert's normal
    equations need at least.
expert M
    ``_solvers.fit_linear_experts([LinearRegression()] * k, X, y, weights_T)``.
    Expert M, E-step and gate M run as in the estimator's EM loop: inside
    ``utils._threads.row_parallel()`` (BLAS single-threaded, the passes over
    the rows split over one Python thread per former BLAS thread).
E-step
    ``gate.predict_log_proba(X).T`` (made C-contiguous, as the estimator
    does) + ``_experts.predict_linear_experts`` + ``_em.gaussian_log_density``
    + ``_em.responsibilities`` (the fused E-step), from a fitted state: the experts of the expert M-step,
    a ``LinearGate`` fitted to ``resp`` (one L-BFGS iteration; the cost of
    the E-step does not depend on the gate's values) and noise variances from
    ``_em.weighted_variance_update``.
EM iter
    One iteration of the EM loop (M-step, E-step, objective), measured as a
    difference of public ``fit`` calls: ``MixtureOfExpertsRegressor(
    n_experts=k, max_iter=1, tol=0, warm_start=True, random_state=0)`` is
    fitted once (untimed), then "warm fit" is timed, then the same warm fit
    with ``max_iter=3``; "EM iter" = (the second - the first) / 2, which
    cancels the validation and the E-step of the stored state that every
    warm fit repeats before its loop.
warm fit
    One warm ``fit`` with ``max_iter=1``: validation + E-step of the stored
    state + one M-step + one E-step. Successive timed fits continue EM.
GMM iter
    ``GaussianMixture(n_components=k, covariance_type="full", max_iter=1,
    tol=0, init_params="random_from_data", random_state=0,
    warm_start=True)`` on ``[X, y]``: fitted once (untimed), then one more
    ``fit`` is timed. Such a warm ``fit`` validates the data, runs one E-step
    and one M-step, then a final E-step: the same work (2 E + 1 M) as our
    "warm fit", with which it is compared.
gate M
    The gate M-step exactly as the estimator runs it: the ``LinearGate`` of
    ``MixtureOfExpertsRegressor(n_experts=k)`` (``alpha=1e-4`` and the
    estimator's cap on L-BFGS iterations per M-step), warm-started: a copy
    is first fitted to ``resp`` to convergence (untimed), then each timed
    fit starts from a copy of it and fits ``resp2``, ``resp`` perturbed by a
    factor ``exp(0.1 * N(0, 1))`` per entry and renormalised (in EM the
    responsibilities move a little between iterations). As in the
    estimator's M-step, the gate's weights and standardisation are computed
    once (untimed) and each timed fit takes ``resp2`` in the core layout,
    ``(k, n)`` (``LinearGate.fit_prepared``).
LogReg
    ``LogisticRegression(max_iter=100).fit(X, resp.argmax(axis=1))``
    (lbfgs, multinomial).
k x LR
    ``k`` separate ``LinearRegression().fit(X, y, sample_weight=resp[:, j])``.
fit/iter
    ``MixtureOfExpertsRegressor(n_experts=k, max_iter=10, tol=0,
    random_state=0).fit(X, y)``, timed once, divided by ``n_iter_ + 1`` (the
    initialisation -- k-means, one M-step and one E-step -- counts as one
    iteration). Compared with "EM iter" it shows the overhead outside the
    iteration (validation, initialisation, snapshots).
gate it, LR it
    L-BFGS iterations of the (last) timed gate fit and of the
    LogisticRegression fit.

Note: with responsibilities independent of ``X`` (a flat Dirichlet, as an
earlier version of this script drew them) LogisticRegression meets an almost
flat optimum and stops after 1-2 iterations; that made "gate/LogReg" a
comparison of two trivial fits (0.9-1.2), not of a gate M-step with the
classifier fit it replaces.

Columns of the ratio tables
---------------------------
M/GEMM
    expert M / GEMM floor.
LR/M
    k x LR / expert M: the speed-up of the batched M-step.
iter/GEMM
    EM iter / GEMM floor.
iter/GMM
    warm fit / GMM iter (the same work on both sides: 2 E-steps, 1 M-step,
    validation).
gate/LogReg
    gate M / LogReg.

The summary table gives, for each target of the issue, the worst ratio over
the configurations with ``n >= 1e5`` that the target concerns (and how many
of them were measured), and PASS (every one meets the target) or MISS.

Peak memory (``--memory``)
--------------------------
For the largest configuration requested (by default n=1e6, d=50, k=16; with
``--quick`` n=1e5) each measurement runs in a fresh subprocess of this script
that draws ``X, y``, resets the kernel's RSS high-water mark
(``/proc/self/clear_refs``, so that the temporaries of the data generator do
not hide the fit's peak), then fits ``MixtureOfExpertsRegressor(
n_experts=k, max_iter=3, random_state=0)``. Reported:

* ``ru_maxrss``: ``(ru_maxrss after fit - ru_maxrss before fit) /
  X.nbytes``;
* ``tracemalloc``: peak of the memory traced during the fit (NumPy reports
  its array buffers to tracemalloc) / ``X.nbytes``, in a second subprocess.

The memory runs are outside the time budget; the correctness check is inside it.

Correctness
-----------
On ``make_gated_regression(n_samples=20000, n_features=5, n_experts=3,
random_state=0, return_labels=True, return_params=True)``,
``MixtureOfExpertsRegressor(n_experts=3, random_state=0, n_init=3)`` is
fitted; its experts are matched
to the true ones (least total coefficient distance) and the script reports
the largest coefficient and intercept errors, the relative error of each
noise standard deviation, the agreement of the argmax gate with the true
argmax gate, and whether every log-likelihood curve (all restarts) is
non-decreasing (each step ``>= -1e-12 * max(1, |log-likelihood|)``).
"""

import argparse
import copy
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

try:
    import skmoe
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import skmoe

import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from scipy.special import softmax
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info

from skmoe import MixtureOfExpertsRegressor
from skmoe._em import gaussian_log_density, responsibilities, weighted_variance_update
from skmoe._solvers import fit_linear_experts, predict_linear_experts
from skmoe.gates import LinearGate
from skmoe.gates._protocol import make_gate
from skmoe.utils._threads import row_parallel

from skmoe.datasets import make_gated_regression

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
DEFAULT_FEATURES = (10, 50)
DEFAULT_EXPERTS = (4, 16)
DEFAULT_BUDGET = 540.0  # seconds
BUDGET_SAFETY = 1.5  # predicted times are multiplied by this before the budget check
LARGE_N = 1_000_000  # from here on the default repeat count is 1
PASS_MIN_N = 100_000  # targets are judged on n >= 1e5 only
FULL_FIT_ITER = 10
EXTRA_ITER = 2  # "EM iter" = (warm fit with 1 + EXTRA_ITER iterations - with 1) / EXTRA_ITER
PERTURBATION = 0.1

TIME_COLUMNS = [
    ("gemm_floor", "GEMM floor"),
    ("expert_m", "expert M"),
    ("e_step", "E-step"),
    ("em_iter", "EM iter"),
    ("warm_fit", "warm fit"),
    ("gmm_iter", "GMM iter"),
    ("gate_m", "gate M"),
    ("logreg", "LogReg"),
    ("separate_lr", "k x LR"),
    ("fit_per_iter", "fit/iter"),
]
RATIO_COLUMNS = [
    ("m_over_gemm", "M/GEMM"),
    ("lr_over_m", "LR/M"),
    ("iter_over_gemm", "iter/GEMM"),
    ("iter_over_gmm", "iter/GMM"),
    ("gate_over_logreg", "gate/LogReg"),
]
# (issue row, measured quantity, target text, ratio key, comparison, bound, applies to (d, k))
TARGETS = [
    ("expert M-step, linear experts", "expert M / GEMM floor", "<= 2", "m_over_gemm", "le", 2.0,
     lambda d, k: True),
    ("expert M-step, linear experts", "k x LR / expert M (speed-up)", ">= 10", "lr_over_m", "ge",
     10.0, lambda d, k: True),
    ("one EM iteration, d=50", "EM iter / GEMM floor", "<= 3", "iter_over_gemm", "le", 3.0,
     lambda d, k: d == 50),
    ("one EM iteration, d=50", "warm fit / GMM iter", "< 1", "iter_over_gmm", "lt", 1.0,
     lambda d, k: d == 50),
    ("one EM iteration, d=10", "warm fit / GMM iter", "<= 1.5", "iter_over_gmm", "le", 1.5,
     lambda d, k: d == 10),
    ("gate M-step, 16 experts", "gate M / LogReg", "<= 0.2", "gate_over_logreg", "le", 0.2,
     lambda d, k: k == 16),
]
MEMORY_TARGET = 3.0


# ---------------------------------------------------------------------------
# Output


class Report:
    """Print headings, lines and aligned tables; keep a markdown copy."""

    def __init__(self):
        self.markdown = []

    def heading(self, text):
        print(f"\n== {text} ==", flush=True)
        self.markdown += ["", f"### {text}", ""]

    def line(self, text=""):
        print(text, flush=True)
        self.markdown.append(text)

    def table(self, headers, rows):
        """Print a pipe table with padded columns (valid markdown as well).

        Columns whose cells all look numeric are right-aligned, others left.
        """
        cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
        widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
        right = [all(_numeric(r[j]) for r in cells[1:]) for j in range(len(headers))]

        def fmt(row):
            padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
            return "| " + " | ".join(padded) + " |"

        rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                              for w, r in zip(widths, right)) + "|"
        for text in [fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]]:
            self.line(text)

    def write(self, path):
        Path(path).write_text("\n".join(self.markdown).lstrip() + "\n")


def _numeric(text):
    if text in ("-", "skip"):
        return True
    try:
        float(text.rstrip("%"))
        return True
    except ValueError:
        return False


def fmt_ms(seconds):
    if seconds is None:
        return "skip"
    ms = 1e3 * seconds
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_ratio(value):
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def fmt_n(n):
    exponent = int(round(np.log10(n)))
    return f"1e{exponent}" if 10**exponent == n else str(n)


# ---------------------------------------------------------------------------
# Data


def make_data(n, d, k, seed=0):
    """``X`` (C-contiguous float64), ``y`` and the true gate's probabilities ``(n, k)``."""
    X, y, params = make_gated_regression(
        n_samples=n, n_features=d, n_experts=k, return_labels=False, return_params=True,
        random_state=seed,
    )
    logits = params["gate_sharpness"] * (X @ params["gate_coef"].T + params["gate_intercept"])
    resp = softmax(logits, axis=1)
    return (np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
            resp)


def perturb(resp, rng, scale=PERTURBATION):
    """``resp * exp(scale * N(0, 1))``, rows renormalised."""
    moved = resp * np.exp(scale * rng.standard_normal(resp.shape))
    moved /= moved.sum(axis=1, keepdims=True)
    return moved


class Case:
    """One configuration: its data, what was measured on it, and the time spent."""

    def __init__(self, n, d, k, repeat, seed=0):
        self.n, self.d, self.k, self.repeat = n, d, k, repeat
        self.X, self.y, self.resp = make_data(n, d, k, seed)
        rng = np.random.default_rng(seed)
        self.resp2 = perturb(self.resp, rng)
        self.weights_T = np.ascontiguousarray(self.resp.T)
        self.labels = self.resp.argmax(axis=1)
        self.results = {"n": n, "d": d, "k": k, "repeat": repeat}
        self.spent = {}  # measurement -> wall seconds, untimed parts included
        self.skipped = {}  # measurement -> predicted seconds

    def release(self):
        """Drop the arrays; keep results and timings."""
        self.X = self.y = self.resp = self.resp2 = self.weights_T = self.labels = None


# ---------------------------------------------------------------------------
# Measurements: each takes a Case and a repeat count, returns a dict of results


def best_of(func, repeat, setup=None):
    """Best wall time of ``repeat`` calls of ``func(*setup())``; also the last result."""
    best, result = np.inf, None
    for _ in range(repeat):
        args = setup() if setup is not None else ()
        gc.collect()
        start = time.perf_counter()
        result = func(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def measure_gemm_floor(case, repeat):
    X = case.X
    seconds, _ = best_of(lambda: X.T @ X, repeat)
    return {"gemm_floor": case.k * seconds}


def measure_expert_m(case, repeat):
    templates = [LinearRegression()] * case.k
    with row_parallel():
        seconds, _ = best_of(lambda: fit_linear_experts(templates, case.X, case.y, case.weights_T), repeat)
    return {"expert_m": seconds}


def e_step_pass(gate, experts, variance, X, y):
    """What the estimator's E-step does with linear experts (see ``_base._e_step``)."""
    log_gate_T = np.ascontiguousarray(gate.predict_log_proba(X).T, dtype=np.float64)
    mean_T = predict_linear_experts(experts, X)
    log_lik_T = gaussian_log_density(y, mean_T, variance, out=mean_T)
    return responsibilities(log_gate_T, log_lik_T, out=log_lik_T)


def measure_e_step(case, repeat):
    X, y = case.X, case.y
    experts = fit_linear_experts([LinearRegression()] * case.k, X, y, case.weights_T)
    mean_T = predict_linear_experts(experts, X)
    variance = weighted_variance_update(y, mean_T, case.weights_T, np.ones(case.n), 1e-6 * np.var(y))
    del mean_T
    gate = LinearGate(alpha=1e-4, max_iter=1).fit(X, case.resp)
    with row_parallel():
        seconds, _ = best_of(lambda: e_step_pass(gate, experts, variance, X, y), repeat)
    return {"e_step": seconds}


def measure_em_iter(case, repeat):
    model = MixtureOfExpertsRegressor(
        n_experts=case.k, max_iter=1, tol=0, warm_start=True, random_state=0
    ).fit(case.X, case.y)  # untimed: initialisation and one iteration

    def warm_fit(max_iter):
        return model.set_params(max_iter=max_iter).fit(case.X, case.y)

    one, _ = best_of(lambda: warm_fit(1), repeat)
    more, _ = best_of(lambda: warm_fit(1 + EXTRA_ITER), repeat)
    return {"warm_fit": one, "em_iter": (more - one) / EXTRA_ITER}


def measure_gmm_iter(case, repeat):
    Xy = np.column_stack([case.X, case.y])
    gmm = GaussianMixture(
        n_components=case.k, covariance_type="full", max_iter=1, tol=0,
        init_params="random_from_data", random_state=0, warm_start=True,
    ).fit(Xy)  # untimed: initialisation and a first iteration
    seconds, _ = best_of(lambda: gmm.fit(Xy), repeat)
    return {"gmm_iter": seconds}


def measure_gate_m(case, repeat):
    # The estimator's own gate, as its M-step runs it.
    params = MixtureOfExpertsRegressor(n_experts=case.k).get_params()
    m_step_gate = make_gate(params["gate"], backend="numpy", alpha=params["gate_alpha"], device=None,
                            random_state=0).estimator
    gate = clone(m_step_gate).set_params(max_iter=200).fit(case.X, case.resp)  # untimed, converged
    gate.set_params(max_iter=m_step_gate.max_iter)
    # Once per EM run in the estimator, so untimed here.
    context = gate.prepare(case.X, np.ones(case.n))
    resp2_T = np.ascontiguousarray(case.resp2.T)

    def fit(g):
        return g.fit_prepared(case.X, resp2_T, context)

    seconds, warm = best_of(fit, repeat, setup=lambda: (copy.deepcopy(gate),))
    return {"gate_m": seconds, "gate_iter": warm.n_iter_}


def measure_logreg(case, repeat):
    seconds, model = best_of(
        lambda: LogisticRegression(max_iter=100).fit(case.X, case.labels), repeat
    )
    return {"logreg": seconds, "logreg_iter": int(np.max(model.n_iter_))}


def measure_separate_lr(case, repeat):
    def fits():
        return [LinearRegression().fit(case.X, case.y, sample_weight=w) for w in case.weights_T]

    seconds, _ = best_of(fits, repeat)
    return {"separate_lr": seconds}


def measure_full_fit(case, repeat):
    model = MixtureOfExpertsRegressor(
        n_experts=case.k, max_iter=FULL_FIT_ITER, tol=0, random_state=0
    )
    start = time.perf_counter()
    model.fit(case.X, case.y)
    return {"fit_per_iter": (time.perf_counter() - start) / (model.n_iter_ + 1)}


# (key, function, untimed calls of about the cost of a timed one, runs once whatever the repeat)
MEASUREMENTS = [
    ("gemm_floor", measure_gemm_floor, 0, False),
    ("expert_m", measure_expert_m, 0, False),
    ("e_step", measure_e_step, 1, False),
    ("em_iter", measure_em_iter, 1, False),
    ("gmm_iter", measure_gmm_iter, 1, False),
    ("gate_m", measure_gate_m, 1, False),
    ("logreg", measure_logreg, 0, False),
    ("separate_lr", measure_separate_lr, 0, False),
    ("fit_per_iter", measure_full_fit, 0, True),
]


def ratios(r):
    def div(a, b):
        return r[a] / r[b] if r.get(a) is not None and r.get(b) is not None else None

    return {
        "m_over_gemm": div("expert_m", "gemm_floor"),
        "lr_over_m": div("separate_lr", "expert_m"),
        "iter_over_gemm": div("em_iter", "gemm_floor"),
        "iter_over_gmm": div("warm_fit", "gmm_iter"),
        "gate_over_logreg": div("gate_m", "logreg"),
    }


# ---------------------------------------------------------------------------
# Scheduling under the time budget


def predict_seconds(case, previous, key, extra, once):
    """Time of measurement ``key`` on ``case`` predicted from the same (d, k) at a smaller n."""
    before = previous.get((case.d, case.k))
    if before is None:
        return None
    seconds = before.spent.get(key, before.skipped.get(key))  # skipped there: its prediction
    calls_now = 1 if once else case.repeat + extra
    calls_before = 1 if once else before.repeat + extra
    return seconds * (case.n / before.n) * calls_now / calls_before


def run_size(n, configs, repeat, deadline, previous, verbose=False):
    """Every measurement of every (d, k) at one n; returns the Cases (data released)."""
    cases = [Case(n, d, k, repeat) for d, k in configs]
    largest_first = sorted(cases, key=lambda c: (c.d * c.k, c.d), reverse=True)
    for key, func, extra, once in MEASUREMENTS:
        for case in largest_first:
            predicted = predict_seconds(case, previous, key, extra, once)
            if (deadline is not None and predicted is not None
                    and time.perf_counter() + BUDGET_SAFETY * predicted > deadline):
                case.skipped[key] = predicted
                case.results[key] = None
                continue
            start = time.perf_counter()
            case.results.update(func(case, repeat))
            case.spent[key] = time.perf_counter() - start
            if verbose:
                print(f"  [n={fmt_n(n)} d={case.d} k={case.k} {key}: {case.spent[key]:.1f} s]",
                      file=sys.stderr, flush=True)
    for case in cases:
        case.results.update(ratios(case.results))
        case.release()
    return cases


# ---------------------------------------------------------------------------
# Peak memory (subprocesses)


def _maxrss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _reset_peak_rss():
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(spec):
    """Body of the ``--memory-child n,d,k,mode`` subprocess: print one JSON line."""
    n, d, k, mode = spec.split(",")
    n, d, k = int(float(n)), int(d), int(k)
    X, y, _ = make_data(n, d, k)
    model = MixtureOfExpertsRegressor(n_experts=k, max_iter=3, random_state=0)
    gc.collect()
    out = {"n": n, "d": d, "k": k, "mode": mode, "x_bytes": X.nbytes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if mode == "rusage":
            out["reset"] = _reset_peak_rss()
            out["baseline_kib"] = _maxrss_kib()
            model.fit(X, y)
            out["peak_kib"] = _maxrss_kib()
            out["ratio"] = (out["peak_kib"] - out["baseline_kib"]) * 1024 / X.nbytes
        else:
            tracemalloc.start()
            model.fit(X, y)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out["peak_bytes"] = peak
            out["ratio"] = peak / X.nbytes
    print(json.dumps(out))


def run_memory_child(n, d, k, mode):
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-child", f"{n},{d},{k},{mode}"],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_memory(n, d, k):
    rss = run_memory_child(n, d, k, "rusage")
    traced = run_memory_child(n, d, k, "tracemalloc")
    return {"n": n, "d": d, "k": k, "x_bytes": rss["x_bytes"], "rusage": rss, "tracemalloc": traced}


def report_memory(report, mem):
    report.heading(
        f"Peak memory of MixtureOfExpertsRegressor(n_experts={mem['k']}, max_iter=3).fit, "
        f"n={fmt_n(mem['n'])}, d={mem['d']}"
    )
    mib = 2.0**20
    rss, traced = mem["rusage"], mem["tracemalloc"]
    report.table(
        ["measure", "X MiB", "baseline MiB", "peak - baseline MiB", "/ X bytes"],
        [
            ["ru_maxrss", f"{mem['x_bytes'] / mib:.0f}", f"{rss['baseline_kib'] / 1024:.0f}",
             f"{(rss['peak_kib'] - rss['baseline_kib']) / 1024:.0f}", f"{rss['ratio']:.2f}"],
            ["tracemalloc", f"{mem['x_bytes'] / mib:.0f}", "-",
             f"{traced['peak_bytes'] / mib:.0f}", f"{traced['ratio']:.2f}"],
        ],
    )
    if not rss["reset"]:
        report.line("(could not reset the RSS high-water mark: the ru_maxrss baseline includes "
                    "the data generator's peak, so the ratio may be too low)")


# ---------------------------------------------------------------------------
# Tables


def report_size(report, n, cases):
    repeat = cases[0].repeat
    rows = [c.results for c in cases]
    report.heading(f"n = {fmt_n(n)}: times in ms (best of {repeat}; fit/iter: one fit)")
    report.table(
        ["d", "k"] + [label for _, label in TIME_COLUMNS] + ["gate it", "LR it"],
        [[r["d"], r["k"]] + [fmt_ms(r[key]) for key, _ in TIME_COLUMNS]
         + [r.get("gate_iter", "-"), r.get("logreg_iter", "-")] for r in rows],
    )
    skipped = [f"{key} at d={c.d}, k={c.k} (predicted {s:.0f} s)"
               for c in cases for key, s in c.skipped.items()]
    if skipped:
        report.line("skipped to stay within --budget: " + "; ".join(skipped))
    report.heading(f"n = {fmt_n(n)}: ratios")
    report.table(
        ["d", "k"] + [label for _, label in RATIO_COLUMNS],
        [[r["d"], r["k"]] + [fmt_ratio(r[key]) for key, _ in RATIO_COLUMNS] for r in rows],
    )


def _passes(value, op, bound):
    return {"le": value <= bound, "lt": value < bound, "ge": value >= bound}[op]


def summary_rows(results, memory):
    rows = []
    for what, measured, target, key, op, bound, applies in TARGETS:
        pool = [r for r in results if r["n"] >= PASS_MIN_N and applies(r["d"], r["k"])]
        done = [r for r in pool if r[key] is not None]
        if not done:
            rows.append([what, measured, target, "-", "-", f"0/{len(pool)}", "n/a"])
            continue
        pick = min if op == "ge" else max
        worst = pick(done, key=lambda r: r[key])
        ok = all(_passes(r[key], op, bound) for r in done)
        where = f"n={fmt_n(worst['n'])}, d={worst['d']}, k={worst['k']}"
        rows.append([what, measured, target, fmt_ratio(worst[key]), where,
                     f"{len(done)}/{len(pool)}", "PASS" if ok else "MISS"])
    if memory is None:
        rows.append(["peak memory of fit", "(peak RSS - baseline) / X bytes",
                     f"<= {MEMORY_TARGET:g}", "-", "not run (--memory)", "-", "n/a"])
    else:
        value = memory["rusage"]["ratio"]
        where = f"n={fmt_n(memory['n'])}, d={memory['d']}, k={memory['k']}"
        status = ("PASS" if value <= MEMORY_TARGET else "MISS") if memory["n"] >= PASS_MIN_N else "n/a"
        rows.append(["peak memory of fit", "(peak RSS - baseline) / X bytes",
                     f"<= {MEMORY_TARGET:g}", f"{value:.2f}", where, "1/1", status])
    return rows


def report_summary(report, results, memory):
    report.heading("Summary: worst ratio over n >= 1e5 against the issue's targets")
    report.table(["what", "measured", "target", "worst", "at", "measured/configs", "status"],
                 summary_rows(results, memory))


# ---------------------------------------------------------------------------
# Correctness


def match_experts(est_coef, true_coef):
    """``perm`` with estimated expert ``j`` matched to true expert ``perm[j]`` (least L1 distance)."""
    cost = np.abs(est_coef[:, None, :] - true_coef[None, :, :]).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(len(rows), dtype=int)
    perm[rows] = cols
    return perm


def _status(flag):
    return "PASS" if flag else "MISS"


def _non_decreasing(curve):
    curve = np.asarray(curve)
    return bool(np.all(np.diff(curve) >= -1e-12 * np.maximum(1.0, np.abs(curve[1:]))))


def correctness_rows():
    X, y, labels, params = make_gated_regression(
        n_samples=20000, n_features=5, n_experts=3, random_state=0, return_labels=True,
        return_params=True,
    )
    # The noise std an oracle knowing the true labels and coefficients would
    # measure on these samples: the parameter up to sampling error, which at
    # ~6,700 samples per expert is itself about 1% (one standard deviation).
    residual = y - np.einsum("ij,ij->i", X, params["expert_coef"][labels]) - params["expert_intercept"][labels]
    realised_std = np.array([residual[labels == k].std() for k in range(3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MixtureOfExpertsRegressor(n_experts=3, random_state=0, n_init=3).fit(X, y)
    if model.n_experts_ != 3:
        return [["experts kept", "3", str(model.n_experts_), "MISS"]]
    coef = np.vstack([e.coef_ for e in model.experts_])
    intercept = np.array([e.intercept_ for e in model.experts_])
    perm = match_experts(coef, params["expert_coef"])
    coef_err = np.max(np.abs(coef - params["expert_coef"][perm]))
    intercept_err = np.max(np.abs(intercept - params["expert_intercept"][perm]))
    noise_err = np.abs(np.sqrt(model.noise_variance_) / params["noise_std"][perm] - 1)
    oracle_err = np.abs(realised_std[perm] / params["noise_std"][perm] - 1)
    realised_err = np.abs(np.sqrt(model.noise_variance_) / realised_std[perm] - 1)
    true_gate = np.argmax(X @ params["gate_coef"].T + params["gate_intercept"], axis=1)
    agreement = np.mean(perm[model.predict_expert(X)] == true_gate)
    min_step = float(np.min(np.diff(model.log_likelihood_curve_), initial=np.inf))
    monotone = all(_non_decreasing(c) for c in model.log_likelihood_curves_)
    return [
        ["max abs coef error (slopes)", "< 0.02", f"{coef_err:.4f}", _status(coef_err < 0.02)],
        ["max abs intercept error", "< 0.02", f"{intercept_err:.4f}", _status(intercept_err < 0.02)],
        ["noise std relative error per expert", "<= 2%",
         ", ".join(f"{100 * e:.2f}%" for e in noise_err), _status(np.all(noise_err <= 0.02))],
        ["  the same for the oracle (true labels and coefficients)", "(sampling error)",
         ", ".join(f"{100 * e:.2f}%" for e in oracle_err), "-"],
        ["noise std relative to the oracle's, per expert", "<= 2%",
         ", ".join(f"{100 * e:.2f}%" for e in realised_err), _status(np.all(realised_err <= 0.02))],
        ["argmax gate agreement", ">= 98%", f"{100 * agreement:.2f}%", _status(agreement >= 0.98)],
        [f"log-likelihood non-decreasing ({len(model.log_likelihood_curves_)} restarts)",
         "steps >= -1e-12", f"smallest step {min_step:.2e} (best run, {model.n_iter_} iter)",
         _status(monotone)],
    ]


def report_correctness(report, rows):
    report.heading(
        "Correctness: make_gated_regression(20000 samples, 5 features, 3 experts), "
        "MixtureOfExpertsRegressor(n_experts=3, n_init=3)"
    )
    report.table(["check", "target", "measured", "status"], rows)


# ---------------------------------------------------------------------------
# Header and driver


def report_header(report, args, sizes, budget):
    report.heading("Environment")
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name)
        report.line(f"{name}: {'set to ' + repr(value) if value is not None else 'not set'}")
    report.line(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, skmoe {getattr(skmoe, '__version__', '?')}"
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    report.line(f"CPUs: os.cpu_count()={os.cpu_count()}, usable={usable}; "
                f"load average at start {load}")
    report.table(
        ["user_api", "internal_api", "version", "num_threads", "architecture", "library"],
        [[i.get("user_api"), i.get("internal_api"), i.get("version"), i.get("num_threads"),
          i.get("architecture", "-"), Path(i.get("filepath", "")).name] for i in threadpool_info()],
    )
    repeat = args.repeat if args.repeat is not None else f"3 (1 for n >= {fmt_n(LARGE_N)})"
    report.line(
        f"sizes {[fmt_n(n) for n in sizes]}, features {args.features}, experts {args.experts}, "
        f"repeat {repeat}, budget {'none' if budget is None else f'{budget:g} s'}"
    )


def parse_ints(text):
    return [int(float(v)) for v in text.split(",") if v.strip()]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_ints, default=None,
                        help="comma-separated sample counts (default 1e4,1e5,1e6)")
    parser.add_argument("--features", type=parse_ints, default=list(DEFAULT_FEATURES),
                        help="comma-separated feature counts (default 10,50)")
    parser.add_argument("--experts", type=parse_ints, default=list(DEFAULT_EXPERTS),
                        help="comma-separated expert counts (default 4,16)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="best-of repeat count (default 3, and 1 for n >= 1e6)")
    parser.add_argument("--quick", action="store_true", help="n in {1e4, 1e5} only")
    parser.add_argument("--memory", action="store_true",
                        help="also measure the peak memory of fit (subprocesses)")
    parser.add_argument("--output", metavar="FILE.md", help="also write the tables as markdown")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                        help="seconds; skip measurements predicted to overrun it (0: no limit)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the time of each measurement to stderr as it ends")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    return parser


def repeat_for(n, args):
    if args.repeat is not None:
        return max(1, args.repeat)
    return 1 if n >= LARGE_N else 3


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    start = time.perf_counter()
    sizes = sorted(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    if args.quick:
        sizes = [n for n in sizes if n <= max(QUICK_SIZES)]
    budget = args.budget if args.budget > 0 else None
    report = Report()
    report_header(report, args, sizes, budget)

    memory = None
    if args.memory:  # first, while this process is small; outside the budget
        memory = measure_memory(max(sizes), max(args.features), max(args.experts))
        report_memory(report, memory)
    budget_start = time.perf_counter()
    checks = correctness_rows()  # printed last

    deadline = None if budget is None else budget_start + budget
    configs = [(d, k) for d in args.features for k in args.experts]
    results, previous = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for n in sizes:
            cases = run_size(n, configs, repeat_for(n, args), deadline, previous, args.verbose)
            report_size(report, n, cases)
            results += [c.results for c in cases]
            previous = {(c.d, c.k): c for c in cases}

    report_summary(report, results, memory)
    report_correctness(report, checks)
    report.line()
    report.line(f"total wall time {time.perf_counter() - start:.1f} s")
    if args.output:
        report.write(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
