"""Routing benchmark: soft, hard and stochastic EM, top-k, capacity, expert choice, balance, noise.

Usage::

    python benchmarks/routing.py                       # n=20,000, experts 4/16/64, every option
    python benchmarks/routing.py --sizes 200000 --experts 64 --options soft top1 top2
    python benchmarks/routing.py --collapse-only
    python benchmarks/routing.py --output routing.md

Two parts, each a table:

Many regions
    ``make_gated_regression(n_samples=n + n_test, n_features=10,
    n_experts=k, random_state=0)`` (as many regions as experts), the last
    ``n_test = min(n // 4, 20,000)`` rows held out, and
    ``MixtureOfExpertsRegressor(n_experts=k, max_iter=--max-iter,
    random_state=0, **option)`` fitted on the first ``n`` rows with
    ``LinearRegression`` experts (the batched linear solver).
Collapse
    Eight linear experts on ``make_gated_regression(n_samples=20,000 +
    5,000, n_features=2, n_experts=2, noise=0.3, random_state=0)`` (two
    regions), ``init="random"``, ``max_iter=60``: a case where soft EM
    leaves experts with almost no held-out gate share (see
    ``examples/05_routing.ipynb``).

Options (``--options``): ``soft`` (default EM), ``cem``, ``sem``, ``top2``,
``top1``, ``top1-cap1.25`` (``top_k=1, capacity_factor=1.25``),
``top1-cap1.1`` and ``top1-cap1`` (``capacity_factor=1.1``, ``1``),
``expert-choice``, ``balanced`` (``balance="uniform"``) and ``noisy``
(``gate_noise=1.0``). After ``soft``, the rows ``soft@top1`` and
``soft@top2`` are the same soft EM fit predicting with its gate truncated
to its top 1 or 2 experts (``set_params(top_k=...)`` after the fit, no
refit): the held-out likelihood a top-k prediction of soft EM's experts
reaches.

Columns: ``fit s`` the wall-clock fit (one run) and ``fit cpu s`` its CPU
time (all threads of the process: on a shared, loaded machine the CPU time
is the stable measure); ``iter cpu ms`` the fit's CPU time divided by the
number of M-steps (the initial one included); ``expert M ms`` the mean CPU
time of one experts' M-step (the solver's ``fit``, timed by wrapping it)
and ``M/soft`` its ratio to soft EM's at the same size;
``n_iter``; held-out ``R2`` and mean log-likelihood (``loglik``, and
``d loglik`` its difference to soft EM); the smallest and largest share of
the *plain gate on held-out data* (mean of ``predict_gate(X_test)``, an
expert removed during the fit counting 0); ``collapsed``: experts whose
held-out share is below ``1 / (4 * n_experts)``, removed ones included.

Targets of the issue: at 64 experts, top-1 and top-2 cost at most 1/4 of
soft EM's experts' M-step per iteration, with held-out mean log-likelihood
within 0.02 of soft EM; on the collapsing case, balanced and capacity
routing leave no expert below ``1 / (4 * n_experts)`` where soft EM does.
The machine's load average is printed: on a shared machine timings vary.
"""

import argparse
import os
import time
import warnings

import numpy as np

from skmoe import MixtureOfExpertsRegressor, _solvers
from skmoe.datasets import make_gated_regression

OPTIONS = {
    "soft": {},
    "cem": {"algorithm": "cem"},
    "sem": {"algorithm": "sem"},
    "top2": {"top_k": 2},
    "top1": {"top_k": 1},
    "top1-cap1.25": {"top_k": 1, "capacity_factor": 1.25},
    "top1-cap1.1": {"top_k": 1, "capacity_factor": 1.1},
    "top1-cap1": {"top_k": 1, "capacity_factor": 1.0},
    "expert-choice": {"routing": "expert_choice"},
    "balanced": {"balance": "uniform"},
    "noisy": {"gate_noise": 1.0},
}


class _MStepTimer:
    """Wraps the solvers' ``fit`` to time every experts' M-step."""

    def __init__(self):
        self.times = []

    def __enter__(self):
        self.saved = {cls: cls.fit for cls in (_solvers.BatchedLinearSolver, _solvers.GenericSolver)}
        for cls, fit in self.saved.items():
            cls.fit = self._timed(fit)
        return self

    def _timed(self, fit):
        def timed(solver, *args, **kwargs):
            start = time.process_time()
            out = fit(solver, *args, **kwargs)
            self.times.append(time.process_time() - start)
            return out

        return timed

    def __exit__(self, *exc):
        for cls, fit in self.saved.items():
            cls.fit = fit


def measure(X, y, X_test, y_test, n_experts, params, max_iter, **extra):
    """Fit one configuration: the fitted model (None when the fit raised) and its row of the tables."""
    try:
        moe, row = _fit(X, y, n_experts, params, max_iter, **extra)
        row.update(_held_out(moe, X_test, y_test, n_experts))
        return moe, row
    except Exception as exc:  # noqa: BLE001 -- reported in the table, not fatal
        return None, {"error": f"{type(exc).__name__}: {str(exc)[:80]}"}


def _held_out(moe, X_test, y_test, n_experts):
    """Held-out R2, mean log-likelihood and plain-gate shares (a removed expert counts 0)."""
    share = np.r_[moe.predict_gate(X_test).mean(axis=0), np.zeros(n_experts - moe.n_experts_)]
    return {
        "R2": moe.score(X_test, y_test),
        "loglik": float(moe.log_prob(X_test, y_test).mean()),
        "min share": share.min(),
        "max share": share.max(),
        "collapsed": int(np.sum(share < 1 / (4 * n_experts))),
    }


def _fit(X, y, n_experts, params, max_iter, **extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _MStepTimer() as timer:
            start, cpu = time.perf_counter(), time.process_time()
            moe = MixtureOfExpertsRegressor(
                n_experts, max_iter=max_iter, random_state=0, **extra, **params
            ).fit(X, y)
            fit_time, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    return moe, {
        "fit s": fit_time,
        "fit cpu s": fit_cpu,
        "iter cpu ms": 1e3 * fit_cpu / max(len(timer.times), 1),
        "expert M ms": 1e3 * float(np.mean(timer.times)),
        "n_iter": moe.n_iter_,
    }


def _table(rows, columns):
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            if isinstance(v, float):
                v = f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
            cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def many_regions(sizes, experts, options, max_iter, verbose=True):
    rows = []
    for n in sizes:
        n_test = min(n // 4, 20000)
        for k in experts:
            X, y = make_gated_regression(
                n_samples=n + n_test, n_features=10, n_experts=k, return_labels=False, random_state=0
            )
            X, X_test, y, y_test = X[:n], X[n:], y[:n], y[n:]
            soft = None
            for name in options:
                row = {"n": n, "experts": k, "option": name}
                moe, measured = measure(X, y, X_test, y_test, k, OPTIONS[name], max_iter)
                row.update(measured)
                new = [row]
                if name == "soft" and moe is not None:
                    soft = row
                    new += _truncated_rows(moe, X_test, y_test, row)
                for r in new:
                    if soft is not None and "error" not in r:
                        if "expert M ms" in r:
                            r["M/soft"] = r["expert M ms"] / soft["expert M ms"]
                        r["d loglik"] = r["loglik"] - soft["loglik"]
                    rows.append(r)
                    if verbose:
                        print(_table([r], COLUMNS).splitlines()[-1], flush=True)
    return rows


def _truncated_rows(moe, X_test, y_test, soft_row):
    """Soft EM's fit predicting with its gate truncated to its top 1 and 2 experts (no refit)."""
    rows = []
    for top_k in (1, 2):
        moe.set_params(top_k=top_k)
        row = {"n": soft_row["n"], "experts": soft_row["experts"], "option": f"soft@top{top_k}"}
        row.update(_held_out(moe, X_test, y_test, soft_row["experts"]))
        rows.append(row)
    moe.set_params(top_k=None)
    return rows


def collapse(options, verbose=True):
    X, y = make_gated_regression(
        n_samples=25000, n_features=2, n_experts=2, noise=0.3, return_labels=False, random_state=0
    )
    X, X_test, y, y_test = X[:20000], X[20000:], y[:20000], y[20000:]
    rows = []
    for name in options:
        row = {"n": 20000, "experts": 8, "option": name}
        row.update(measure(X, y, X_test, y_test, 8, OPTIONS[name], 60, init="random")[1])
        rows.append(row)
        if verbose:
            print(_table([row], COLUMNS).splitlines()[-1], flush=True)
    return rows


COLUMNS = ["n", "experts", "option", "fit s", "fit cpu s", "iter cpu ms", "expert M ms", "M/soft", "n_iter", "R2",
           "loglik", "d loglik", "min share", "max share", "collapsed", "error"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[2e4])
    parser.add_argument("--experts", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--max-iter", type=int, default=30)
    parser.add_argument("--collapse-only", action="store_true")
    parser.add_argument("--no-collapse", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    header = (
        f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
        f"max_iter={args.max_iter}"
    )
    print(header)
    print(_table([], COLUMNS))
    out = [header, ""]
    if not args.collapse_only:
        rows = many_regions([int(n) for n in args.sizes], args.experts, args.options, args.max_iter)
        out += ["Many regions (n_features=10, regions = experts):", "", _table(rows, COLUMNS), ""]
    if not args.no_collapse:
        rows = collapse(args.options)
        out += ["Collapse (8 experts, 2 regions, init='random', max_iter=60):", "",
                _table(rows, [c for c in COLUMNS if c not in ("M/soft", "d loglik")]), ""]
    text = "\n".join(out)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    print()
    print(text)


if __name__ == "__main__":
    main()
