"""Which ``init`` and ``n_init`` should a mixture of experts use by default?

Usage::

    pip install statsmodels                 # for this measurement only (3 data sets)
    python benchmarks/defaults.py           # every data set of when_to_use.py (~45 min)
    python benchmarks/defaults.py --quick   # data sets of at most 500 rows
    python benchmarks/defaults.py --experts 3 --output defaults.md --json defaults.json

For each data set of ``when_to_use.py`` (same loaders, same cross-validation
plan: 10 folds x 3 shuffles up to 500 rows, 5 folds x 1 above) and each
combination of ``init`` in {"kmeans", "tree", "random"} and ``n_init`` in
{1, 3, 5}, ``MixtureOfExpertsRegressor(n_experts=4,
expert=LinearRegression(), init=init, n_init=n_init)`` (``n_experts=4``, the
default, unless ``--experts`` says otherwise) is measured by

- the cross-validated R^2 and MSE (out-of-fold predictions pooled per
  shuffle, then averaged; the estimator's ``random_state`` is the shuffle's
  index), and the mean wall time of one ``fit`` on a training fold;
- the training log-likelihood reached on all the rows (``log_likelihood_``,
  mean per sample, in nats) with ``random_state`` 0-4: the mean over the five
  seeds and its gap to the best value any configuration and seed reached on
  that data set (0 = always finds the best optimum seen).

Everything runs with one thread (``threadpoolctl``). ``ConvergenceWarning``
is silenced; a fit that raises counts as a failure (``fail``).

The script runs from a checkout without installing skmoe.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
from when_to_use import (  # noqa: E402  (the benchmark beside this file)
    cross_validate_pooled,
    cv_plan,
    fmt_or_fail,
    load_datasets,
    mixture,
    report_parser,
    run_and_report,
)

INITS = ("kmeans", "tree", "random")
N_INITS = (1, 3, 5)
SEEDS = range(5)


def train_log_likelihood(X, y, n_experts, init, n_init):
    """``log_likelihood_`` of a fit on all rows, one per seed (None if the fit raised)."""
    values = []
    for seed in SEEDS:
        model = mixture(n_experts, init=init, n_init=n_init, random_state=seed)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                values.append(float(model.fit(X, y).log_likelihood_))
        except Exception:  # a failed fit is a result, not a crash
            values.append(None)
    return values


def run(n_experts=4, quick=False, verbose=False):
    results = {}
    for name, (X, y, *_) in load_datasets(quick).items():
        if quick and len(y) > 500:
            continue
        n_splits, n_repeats = cv_plan(len(y))
        entry = {"n_samples": int(len(y)), "cv": f"{n_splits}-fold x {n_repeats}", "configs": {}}
        for init in INITS:
            for n_init in N_INITS:
                start = time.perf_counter()
                model = mixture(n_experts, init=init, n_init=n_init)
                res = cross_validate_pooled(model, X, y, n_splits, n_repeats)
                res["train_ll"] = train_log_likelihood(X, y, n_experts, init, n_init)
                entry["configs"][f"{init}/{n_init}"] = res
                if verbose:
                    print(
                        f"{name:>22} {init:>6} n_init={n_init}: "
                        f"{time.perf_counter() - start:6.1f} s",
                        file=sys.stderr,
                    )
        finite = [v for r in entry["configs"].values() for v in r["train_ll"] if v is not None]
        entry["best_train_ll"] = max(finite) if finite else None
        results[name] = entry
    return results


def markdown_tables(results):
    configs = list(next(iter(results.values()))["configs"])
    head = "| data set | " + " | ".join(configs) + " |"
    rule = "|---|" + "---:|" * len(configs)
    lines = ["Cross-validated R^2 (pooled out-of-fold), columns init/n_init", "", head, rule]
    for name, entry in results.items():
        cells = [fmt_or_fail(r["r2"], ".3f") for r in entry["configs"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Cross-validated MSE (pooled out-of-fold)", "", head, rule]
    for name, entry in results.items():
        cells = [fmt_or_fail(r["mse"], ".4g") for r in entry["configs"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Training log-likelihood per sample: gap of the mean over seeds 0-4 to the best "
        "reached on the data set (nats; 0 is best)",
        "",
        head,
        rule,
    ]
    for name, entry in results.items():
        cells = []
        for r in entry["configs"].values():
            ll = [v for v in r["train_ll"] if v is not None]
            gap = entry["best_train_ll"] - np.mean(ll) if ll else None
            cells.append(fmt_or_fail(gap, ".3f"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Mean fit time per training fold (ms)", "", head, rule]
    for name, entry in results.items():
        cells = [fmt_or_fail(r["fit_ms"], ".0f") for r in entry["configs"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Summary over data sets (geometric mean of MSE / the best config's MSE)", ""]
    lines += ["| init/n_init | MSE ratio | mean fit ms ratio to kmeans/1 |", "|---|---:|---:|"]
    for config in configs:
        ratios, times = [], []
        for entry in results.values():
            mses = [r["mse"] for r in entry["configs"].values() if r["mse"] is not None]
            r = entry["configs"][config]
            base = entry["configs"]["kmeans/1"]["fit_ms"]
            if r["mse"] is not None and mses:
                ratios.append(r["mse"] / min(mses))
            if r["fit_ms"] is not None and base:
                times.append(r["fit_ms"] / base)
        lines.append(
            f"| {config} | {np.exp(np.mean(np.log(ratios))):.3f} | "
            f"{np.exp(np.mean(np.log(times))):.2f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = report_parser(__doc__, quick_help="data sets of <= 500 rows only")
    parser.add_argument("--experts", type=int, default=4, help="n_experts (default 4)")
    args = parser.parse_args(argv)
    return run_and_report(
        args,
        lambda: run(n_experts=args.experts, quick=args.quick, verbose=args.verbose),
        markdown_tables,
        preamble=f"n_experts={args.experts}\n\n",
    )


if __name__ == "__main__":
    sys.exit(main())
