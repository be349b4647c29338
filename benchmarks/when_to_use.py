"""When (not) to use a mixture of experts: a cross-validated comparison.

Usage::

    pip install statsmodels                 # for this measurement only (3 data sets)
    python benchmarks/when_to_use.py        # every data set, 10-30 min on 2 busy cores
    python benchmarks/when_to_use.py --quick            # small data sets only
    python benchmarks/when_to_use.py --output results.md --json results.json

Compares :class:`skmoe.MixtureOfExpertsRegressor` with linear experts against
``LinearRegression``, ``RidgeCV`` (after ``StandardScaler``, alphas
``1e-3 .. 1e3``) and ``HistGradientBoostingRegressor`` (defaults), on

- small real data sets: statsmodels' ``longley`` (16 rows), ``scotland``
  (32), ``ccard`` (72), the bundled motorcycle data (133,
  :func:`skmoe.datasets.load_motorcycle`) and scikit-learn's diabetes (442);
- regime-structured synthetic data: piecewise-linear data from
  :func:`skmoe.datasets.make_gated_regression` (2 features, 3 regimes, noise
  0.3) and zero-inflated counts (a point mass at 0 or a Poisson count around
  a linear trend, the gate a logistic function of one feature), each with 300
  and 3,000 rows.

statsmodels is not a dependency of skmoe (nor of its tests or CI): without
it the three statsmodels data sets are skipped with a note.

Mixtures: ``n_experts`` fixed at 2, 3 and 4, and chosen by BIC among 1-5 on
each training fold (``MoE BIC``; its fit time includes the five candidate
fits); all with ``expert=LinearRegression()``, ``n_init=3`` (as the
tutorials use) and the default ``init``.

Scores: K-fold cross-validation with shuffled folds, 10 folds for data sets
of at most 500 rows (repeated 3 times with different shuffles), 5 folds for
the larger ones (once). Every out-of-fold prediction of one repetition is
pooled before scoring, so that even 16 rows give a defined R^2:
``R2 = 1 - sum((y - oof)^2) / sum((y - mean(y))^2)`` and
``MSE = mean((y - oof)^2)``, averaged over the repetitions. ``fit ms`` is the
mean wall time of one ``fit`` on a training fold, every model limited to one
thread (BLAS and OpenMP, ``threadpoolctl``): the data sets are small, and
single-threaded times compare fairly without oversubscribing the cores. A fit
that raises is counted as a failure and shown as ``fail``. For the synthetic
data the R^2 of the true ``E[y | x]`` on all rows ("true mean") is the best a
model can expect.

The script runs from a checkout without installing skmoe (it adds the
repository root to ``sys.path`` when ``import skmoe`` fails).
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.datasets import load_diabetes
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

try:
    import skmoe
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import skmoe

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import gated_regression_mean, load_motorcycle, make_gated_regression

SMALL = 500  # at most this many rows: 10 folds x 3 repeats; above: 5 folds x 1
MAX_EXPERTS_BIC = 5


# ---------------------------------------------------------------------------
# Data


def _zero_inflated_parts(X):
    return expit(3.0 * X[:, 0]), np.maximum(10.0 + 4.0 * X[:, 1] + 2.0 * X[:, 2], 0.5)


def make_zero_inflated_counts(n_samples, random_state=0):
    """Counts that are 0 in one regime and a Poisson trend in the other.

    ``X ~ N(0, I_3)``. With probability ``expit(3 * x0)`` the row is a
    structural zero; otherwise ``y ~ Poisson(max(10 + 4 * x1 + 2 * x2, 0.5))``.
    """
    rng = np.random.RandomState(random_state)
    X = rng.standard_normal((n_samples, 3))
    p_zero, rate = _zero_inflated_parts(X)
    zero = rng.uniform(size=n_samples) < p_zero
    y = np.where(zero, 0.0, rng.poisson(rate)).astype(np.float64)
    return X, y


def zero_inflated_mean(X):
    """True ``E[y | x]`` of :func:`make_zero_inflated_counts`."""
    p_zero, rate = _zero_inflated_parts(X)
    return (1.0 - p_zero) * rate


def _statsmodels(name):
    from statsmodels import datasets

    data = getattr(datasets, name).load_pandas()
    return data.exog.to_numpy(np.float64), data.endog.to_numpy(np.float64)


def load_datasets(quick=False):
    """``{name: (X, y, description, true mean)}``; statsmodels' only if installed.

    The true mean ``E[y | x]`` at the rows of ``X`` is known for the synthetic
    data sets (None for the real ones): its R^2 is the best any model can
    expect.
    """
    out = {}
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        print(
            "note: statsmodels is not installed; skipping longley, scotland and "
            "ccard (pip install statsmodels)",
            file=sys.stderr,
        )
    else:
        out["longley"] = (*_statsmodels("longley"), "employment, 6 economic series", None)
        out["scotland"] = (
            *_statsmodels("scotland"), "1997 referendum vote share by council", None
        )
        out["ccard"] = (*_statsmodels("ccard"), "credit card spending vs age, income", None)
    X, y = load_motorcycle(return_X_y=True)
    out["motorcycle"] = (X, y, "head acceleration vs time after impact", None)
    X, y = load_diabetes(return_X_y=True)
    out["diabetes"] = (X, y, "disease progression, 10 clinical features", None)
    sizes = (300,) if quick else (300, 3000)
    for n in sizes:
        X, y, params = make_gated_regression(
            n, 2, 3, noise=0.3, return_labels=False, return_params=True, random_state=0
        )
        out[f"piecewise-linear {n}"] = (
            X, y, "make_gated_regression, 3 regimes", gated_regression_mean(X, params)
        )
    for n in sizes:
        X, y = make_zero_inflated_counts(n, random_state=0)
        out[f"zero-inflated {n}"] = (
            X, y, "point mass at 0 + Poisson linear trend", zero_inflated_mean(X)
        )
    return out


# ---------------------------------------------------------------------------
# Models


def mixture(n_experts, **params):
    params = {"n_init": 3, "random_state": 0, **params}
    return MixtureOfExpertsRegressor(n_experts=n_experts, expert=LinearRegression(), **params)


class BICMixture(RegressorMixin, BaseEstimator):
    """Mixture of linear experts whose ``n_experts`` is chosen by BIC on the training data."""

    def __init__(self, max_experts=MAX_EXPERTS_BIC, n_init=3, random_state=0):
        self.max_experts = max_experts
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X, y):
        best, best_bic = None, np.inf
        for k in range(1, min(self.max_experts, len(y)) + 1):
            model = mixture(k, n_init=self.n_init, random_state=self.random_state)
            bic = model.fit(X, y).bic(X, y)
            if bic < best_bic:
                best, best_bic = model, bic
        self.best_estimator_ = best
        self.n_experts_ = best.n_experts
        return self

    def predict(self, X):
        return self.best_estimator_.predict(X)


def models():
    return {
        "Linear": LinearRegression(),
        "RidgeCV": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "HGB": HistGradientBoostingRegressor(random_state=0),
        "MoE k=2": mixture(2),
        "MoE k=3": mixture(3),
        "MoE k=4": mixture(4),
        "MoE BIC": BICMixture(),
    }


# ---------------------------------------------------------------------------
# Cross-validation


def cv_plan(n_samples):
    """``(n_splits, n_repeats)`` for a data set of ``n_samples`` rows."""
    return (10, 3) if n_samples <= SMALL else (5, 1)


def cross_validate_pooled(model, X, y, n_splits, n_repeats, extra=None):
    """Pooled out-of-fold R^2 and MSE (mean over repeats) and mean fit time.

    ``extra(fitted_model)`` may return a number recorded per fold (e.g. the
    number of experts BIC chose); its values come back under ``"extra"``.
    """
    r2, mse, fit_s, extras, failures = [], [], [], [], []
    sst = np.sum((y - y.mean()) ** 2)
    for repeat in range(n_repeats):
        cv = KFold(n_splits=n_splits, shuffle=True, random_state=repeat)
        oof = np.full(len(y), np.nan)
        for train, test in cv.split(X):
            est = clone(model)
            if "random_state" in est.get_params(deep=False):
                est.set_params(random_state=repeat)
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    est.fit(X[train], y[train])
            except Exception as exc:  # a failed fit is a result, not a crash
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            fit_s.append(time.perf_counter() - start)
            oof[test] = est.predict(X[test])
            if extra is not None:
                extras.append(extra(est))
        if np.isnan(oof).any():
            continue
        sse = np.sum((y - oof) ** 2)
        r2.append(1.0 - sse / sst)
        mse.append(sse / len(y))
    return {
        "r2": float(np.mean(r2)) if r2 else None,
        "r2_std": float(np.std(r2)) if r2 else None,
        "mse": float(np.mean(mse)) if mse else None,
        "fit_ms": 1e3 * float(np.mean(fit_s)) if fit_s else None,
        "extra": extras,
        "failures": failures,
    }


def run(quick=False, verbose=False):
    results = {}
    for name, (X, y, descr, true_mean) in load_datasets(quick).items():
        n_splits, n_repeats = cv_plan(len(y))
        entry = {
            "n_samples": int(X.shape[0]),
            "n_features": int(X.shape[1]),
            "description": descr,
            "cv": f"{n_splits}-fold x {n_repeats}",
            "true_mean_r2": None,
            "models": {},
        }
        if true_mean is not None:
            sst = np.sum((y - y.mean()) ** 2)
            entry["true_mean_r2"] = float(1.0 - np.sum((y - true_mean) ** 2) / sst)
        for model_name, model in models().items():
            start = time.perf_counter()
            extra = (lambda est: est.n_experts_) if model_name == "MoE BIC" else None
            entry["models"][model_name] = cross_validate_pooled(
                model, X, y, n_splits, n_repeats, extra=extra
            )
            if verbose:
                print(
                    f"{name:>22} {model_name:>8}: {time.perf_counter() - start:6.1f} s",
                    file=sys.stderr,
                )
        results[name] = entry
    return results


# ---------------------------------------------------------------------------
# Report


def fmt_or_fail(value, spec):
    """``value`` formatted by ``spec``; ``"fail"`` for a failed fit (``None``)."""
    return "fail" if value is None else format(value, spec)


def _bic_choice(res):
    ks = res["extra"]
    if not ks:
        return ""
    counts = np.bincount(ks)
    mode = int(np.argmax(counts))
    return f"{mode} ({100 * counts[mode] / len(ks):.0f}%)"


def markdown_tables(results):
    names = list(next(iter(results.values()))["models"])
    lines = [
        "Cross-validated R^2 (pooled out-of-fold; higher is better; best in bold)",
        "",
        "| data set | n | d | CV | " + " | ".join(names) + " | BIC k | true mean |",
        "|---|---:|---:|---|" + "---:|" * len(names) + "---|---:|",
    ]
    for name, entry in results.items():
        scores = {m: r["r2"] for m, r in entry["models"].items()}
        best = max(v for v in scores.values() if v is not None)
        cells = []
        for m in names:
            cell = fmt_or_fail(scores[m], ".3f")
            # Within 0.005 of the best counts as a tie.
            if scores[m] is not None and scores[m] >= best - 0.005:
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append(
            f"| {name} | {entry['n_samples']} | {entry['n_features']} | {entry['cv']} | "
            + " | ".join(cells)
            + f" | {_bic_choice(entry['models']['MoE BIC'])} | "
            + ("" if entry["true_mean_r2"] is None else f"{entry['true_mean_r2']:.3f}")
            + " |"
        )
    lines += [
        "",
        "BIC k: the n_experts BIC chose most often over the training folds (and how often);"
        " true mean: R^2 of the true E[y | x] (synthetic data), the best to expect.",
        "",
        "Cross-validated MSE (pooled out-of-fold) and mean fit time per training fold (ms)",
        "",
        "| data set | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for name, entry in results.items():
        cells = [
            f"{fmt_or_fail(r['mse'], '.4g')} / {fmt_or_fail(r['fit_ms'], '.0f')}"
            for r in entry["models"].values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    failures = [
        f"- {name}, {m}: {len(r['failures'])} failed fits, e.g. {r['failures'][0]}"
        for name, entry in results.items()
        for m, r in entry["models"].items()
        if r["failures"]
    ]
    if failures:
        lines += ["", "Failures:", "", *failures]
    return "\n".join(lines)


def header():
    import platform

    import sklearn

    return (
        f"skmoe {skmoe.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {time.strftime('%Y-%m-%d')}"
    )


def report_parser(doc, quick_help):
    """The command line of this benchmark and of those built on it: ``--quick``, the outputs, ``-v``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--output", help="also write the tables to this markdown file")
    parser.add_argument("--json", help="also write every number to this JSON file")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    return parser


def run_and_report(args, run, tables, preamble=""):
    """Run ``run()`` on one thread; print and write (``--output``, ``--json``) the report.

    The report is the environment (:func:`header`), ``preamble``,
    ``tables(results)`` and the total wall time.
    """
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        results = run()
    text = f"{header()}\n\n{preamble}{tables(results)}\n"
    text += f"\n(total {time.perf_counter() - start:.0f} s)\n"
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


def main(argv=None):
    args = report_parser(__doc__, quick_help="small data sets only").parse_args(argv)
    return run_and_report(args, lambda: run(quick=args.quick, verbose=args.verbose), markdown_tables)


if __name__ == "__main__":
    sys.exit(main())
