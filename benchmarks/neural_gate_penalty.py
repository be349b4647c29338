"""Default L2 penalty of the neural gates: held-out log-likelihood against ``gate_alpha``.

Usage::

    python benchmarks/neural_gate_penalty.py             # every data set, ~20 min on 2 busy cores
    python benchmarks/neural_gate_penalty.py --quick     # small data sets, one repeat
    python benchmarks/neural_gate_penalty.py --output penalty.md --json penalty.json

``gate="mlp"`` (:class:`~skmoe.gates.MLPGate` with 16 hidden units) with
``gate_alpha`` in ``ALPHAS`` and with ``gate_alpha = c / n_train`` for ``c``
in ``PER_SAMPLE_C`` (``n_train`` the rows of the training fold: a penalty
that fades as the data grow, the way scikit-learn's ``MLPClassifier``
divides its ``alpha`` by the number of samples), next to the linear gate at
its default as the reference. On the data sets of at least
``LARGE`` rows, also ``gate=MLPGate(hidden_layer_sizes=(64,), alpha=...)``
with the budget per M-step of ``gate="mlp"``.

Data sets, each fitted with the estimators' defaults otherwise (one
initialisation, ``random_state`` the repeat):

- regression, :class:`~skmoe.MixtureOfExpertsRegressor` with its default
  (linear) experts: the data sets of ``benchmarks/when_to_use.py``
  (statsmodels' longley, scotland and ccard if installed, motorcycle,
  diabetes: 3 experts; piecewise-linear data, 3 experts; zero-inflated
  counts, 2 experts and ``likelihood="poisson"``, their true family),
  :func:`skmoe.datasets.make_gated_regression` for a few
  ``(n, d, n_experts)`` with n in {800, 5000, 30000}, and data whose true
  gate is not linear in ``x`` (:func:`make_radial_gated_regression`);
- classification, :class:`~skmoe.MixtureOfExpertsClassifier` with its
  default (logistic) experts on standardised features: breast cancer, wine,
  digits 0-4 (3 experts), ``make_moons``, ``make_classification`` (3
  experts) and :func:`skmoe.datasets.make_xor_blobs` (2 experts).

Scores, by shuffled K-fold cross-validation (5 folds; 3 repetitions for at
most ``SMALL`` rows, 2 up to ``LARGE`` rows; above, 2 of the 5 folds once): the held-out mean
log-likelihood per row, the regressor's ``log_prob(X, y)``, the
classifier's ``predict_log_proba`` of the true class (probabilities clipped
at 1e-15), pooled over the test folds of a repetition and averaged over
repetitions; the pooled R^2 or accuracy; the mean EM iterations and CPU
seconds (``time.process_time``, one BLAS thread) of one fit.

Summary per configuration, over the data sets, among the neural gates of one
size: the mean rank of the held-out log-likelihood (1 = best), the number of
data sets within 0.01 of the best, the largest shortfall from the best, the
number within 0.01 of (or above) the linear gate, and the geometric means
of EM iterations and CPU seconds relative to ``gate_alpha=1e-6``.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn.datasets import (
    load_breast_cancer,
    load_digits,
    load_wine,
    make_classification,
    make_moons,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from when_to_use import load_datasets, report_parser, run_and_report

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.datasets import make_gated_regression, make_xor_blobs
from skmoe.gates import MLPGate
from skmoe.gates._protocol import _NEURAL_GATE_ITER_PER_M_STEP

ALPHAS = (1e-6, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2)
PER_SAMPLE_C = (1.0, 3.0, 10.0)  # gate_alpha = c / n_train
SMALL = 500  # at most this many rows: 5 folds x 3 repetitions
LARGE = 5000  # at least this many rows: also the MLP(64) gate; above it, 2 of 5 folds
TIE = 0.01  # held-out mean log-likelihoods this close count as a tie
PROBA_FLOOR = 1e-15


# ---------------------------------------------------------------------------
# Data


def make_radial_gated_regression(n_samples, *, noise=0.3, sharpness=3.0, random_state=0):
    """Three linear experts behind a gate quadratic in ``x``.

    ``x ~ N(0, I_2)``; the expert is drawn from
    ``softmax(sharpness * [1 - |x|^2, x0, -x0])``: the disc around the
    origin, and the left and right of the plane outside it, which no gate
    linear in ``x`` separates. Expert ``k`` has intercept ``2 (k - 1)`` and
    coefficients of magnitude 1-3 with random signs; Gaussian noise ``noise``.
    """
    rng = np.random.RandomState(random_state)
    X = rng.standard_normal((n_samples, 2))
    logits = sharpness * np.column_stack(
        [1.0 - np.sum(X**2, axis=1), X[:, 0], -X[:, 0]]
    )
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    labels = (rng.uniform(size=(n_samples, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)
    coef = rng.choice([-1.0, 1.0], size=(3, 2)) * rng.uniform(1.0, 3.0, size=(3, 2))
    y = np.einsum("ij,ij->i", X, coef[labels]) + 2.0 * (labels - 1.0)
    return X, y + noise * rng.standard_normal(n_samples)


def _entry(X, y, task, n_experts, **params):
    return {"X": X, "y": y, "task": task, "n_experts": n_experts, "params": params}


def regression_datasets(quick):
    out = {}
    for name, (X, y, _, _) in load_datasets(quick).items():
        if name.startswith("zero-inflated"):
            out[name] = _entry(X, y, "regression", 2, likelihood="poisson")
        else:
            out[name] = _entry(X, y, "regression", 3)
    gated = [(800, 2, 3), (800, 5, 3), (800, 10, 4)]
    if not quick:
        gated += [(5000, 2, 3), (5000, 5, 4), (5000, 10, 8), (30000, 5, 3), (30000, 10, 8)]
    for n, d, k in gated:
        X, y = make_gated_regression(n, d, k, return_labels=False, random_state=0)
        out[f"gated n={n} d={d} k={k}"] = _entry(X, y, "regression", k)
    for n in (1000,) if quick else (1000, 5000):
        out[f"radial gate n={n}"] = _entry(*make_radial_gated_regression(n), "regression", 3)
    return out


def classification_datasets(quick):
    sets = {"moons 1000": make_moons(1000, noise=0.3, random_state=0) + (3,),
            "wine": load_wine(return_X_y=True) + (3,)}
    if not quick:
        sets["breast cancer"] = load_breast_cancer(return_X_y=True) + (3,)
        sets["digits 0-4"] = load_digits(n_class=5, return_X_y=True) + (3,)
        sets["make_classification 2000"] = make_classification(
            2000, 10, n_informative=6, n_classes=3, n_clusters_per_class=2, random_state=0
        ) + (3,)
        sets["xor blobs 800"] = make_xor_blobs(800, noise=0.5, random_state=0) + (2,)
    return {
        name: _entry(StandardScaler().fit_transform(X), y, "classification", k)
        for name, (X, y, k) in sets.items()
    }


# ---------------------------------------------------------------------------
# Configurations: (gate family, label, gate_alpha as a function of n_train)


def configurations(n_samples):
    configs = [("linear", "linear 1e-6", lambda n: 1e-6)]
    families = ["mlp16", "mlp64"] if n_samples >= LARGE else ["mlp16"]
    for family in families:
        configs += [(family, f"{family} {a:g}", lambda n, a=a: a) for a in ALPHAS]
        configs += [(family, f"{family} {c:g}/n", lambda n, c=c: c / n) for c in PER_SAMPLE_C]
    return configs


def make_estimator(entry, family, alpha):
    if family == "mlp64":
        gate = MLPGate(hidden_layer_sizes=(64,), alpha=alpha, max_iter=_NEURAL_GATE_ITER_PER_M_STEP)
    else:
        gate = "mlp" if family == "mlp16" else "linear"
    cls = MixtureOfExpertsRegressor if entry["task"] == "regression" else MixtureOfExpertsClassifier
    return cls(n_experts=entry["n_experts"], gate=gate, gate_alpha=alpha, **entry["params"])


def cv_plan(n_samples):
    """``(n_splits, n_repeats, folds used per repeat)``."""
    if n_samples <= SMALL:
        return 5, 3, 5
    return (5, 2, 5) if n_samples <= LARGE else (5, 1, 2)


# ---------------------------------------------------------------------------
# Measurement


def _held_out(est, X, y, task):
    """Per-row held-out log-likelihood and predictions."""
    if task == "regression":
        return est.log_prob(X, y), est.predict(X)
    proba = est.predict_proba(X)
    true = np.searchsorted(est.classes_, y)
    return np.log(np.maximum(proba[np.arange(len(y)), true], PROBA_FLOOR)), est.predict(X)


def _pooled_score(y, pred, task):
    if task == "classification":
        return float(np.mean(pred == y))
    return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def cross_validate(entry, family, alpha_of_n):
    X, y, task = entry["X"], entry["y"], entry["task"]
    n_splits, n_repeats, n_used = cv_plan(len(y))
    splitter = StratifiedKFold if task == "classification" else KFold
    loglik, score, iters, cpu, failures = [], [], [], [], []
    for repeat in range(n_repeats):
        cv = splitter(n_splits, shuffle=True, random_state=repeat)
        lls, ys, preds = [], [], []
        for train, test in list(cv.split(X, y))[:n_used]:
            est = make_estimator(entry, family, alpha_of_n(len(train)))
            est.set_params(random_state=repeat)
            start = time.process_time()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    warnings.simplefilter("ignore", UserWarning)
                    est.fit(X[train], y[train])
            except Exception as exc:  # noqa: BLE001 (a failed fit is a result, not a crash)
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            cpu.append(time.process_time() - start)
            iters.append(est.n_iter_)
            ll, pred = _held_out(est, X[test], y[test], task)
            lls.append(ll)
            ys.append(y[test])
            preds.append(pred)
        if len(lls) == n_used:
            loglik.append(float(np.mean(np.concatenate(lls))))
            score.append(_pooled_score(np.concatenate(ys), np.concatenate(preds), task))
    ok = bool(loglik) and np.all(np.isfinite(loglik))
    return {
        "loglik": float(np.mean(loglik)) if ok else None,
        "score": float(np.mean(score)) if ok else None,
        "iters": float(np.mean(iters)) if iters else None,
        "cpu": float(np.mean(cpu)) if cpu else None,
        "failures": failures,
    }


def run(quick=False, verbose=False):
    datasets = {**regression_datasets(quick), **classification_datasets(quick)}
    results = {}
    for name, entry in datasets.items():
        n_splits, n_repeats, n_used = cv_plan(len(entry["y"]))
        res = {
            "task": entry["task"], "n": int(entry["X"].shape[0]), "d": int(entry["X"].shape[1]),
            "n_experts": entry["n_experts"],
            "cv": f"{n_used}/{n_splits}-fold x {n_repeats}", "configs": {},
        }
        for family, label, alpha_of_n in configurations(len(entry["y"])):
            start = time.process_time()
            out = cross_validate(entry, family, alpha_of_n)
            out["family"] = family
            res["configs"][label] = out
            if verbose:
                ll = "fail" if out["loglik"] is None else f"{out['loglik']:.3f}"
                print(f"{name:>26} {label:>12}: loglik {ll:>8} "
                      f"({time.process_time() - start:5.1f} CPU s)", file=sys.stderr, flush=True)
        results[name] = res
    return results


# ---------------------------------------------------------------------------
# Report


def _fmt(value, spec):
    return "fail" if value is None else format(value, spec)


def _family_labels(results, family):
    labels = []
    for res in results.values():
        for label, out in res["configs"].items():
            if out["family"] == family and label not in labels:
                labels.append(label)
    return labels


def _table(results, labels, key, spec, title, bold_best=False):
    lines = [title, "", "| data set | n | d | k | CV | " + " | ".join(labels) + " |",
             "|---|---:|---:|---:|---|" + "---:|" * len(labels)]
    for name, res in results.items():
        if labels[-1] not in res["configs"]:
            continue
        values = [res["configs"][lab][key] for lab in labels]
        neural = [v for lab, v in zip(labels, values)
                  if not lab.startswith("linear") and v is not None]
        best = max(neural) if neural else None
        cells = []
        for lab, v in zip(labels, values):
            cell = _fmt(v, spec)
            if bold_best and v is not None and best is not None and not lab.startswith("linear") \
                    and v >= best - TIE:
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append(f"| {name} | {res['n']} | {res['d']} | {res['n_experts']} | {res['cv']} | "
                     + " | ".join(cells) + " |")
    return lines + [""]


def summarise(results, family):
    """Per configuration of ``family``: the summary statistics over the data sets."""
    labels = _family_labels(results, family)
    base = f"{family} {ALPHAS[0]:g}"
    rows = {lab: {"ranks": [], "ties": 0, "gaps": [], "vs_linear": 0, "cpu": [], "iters": []}
            for lab in labels}
    n_sets = 0
    for res in results.values():
        if base not in res["configs"]:
            continue
        ll = np.array([res["configs"][lab]["loglik"] for lab in labels], dtype=float)
        if np.all(np.isfinite(ll)) and np.ptp(ll) < TIE:
            continue  # every penalty gives the same fit: no evidence either way
        n_sets += 1
        ll_ranked = np.where(np.isnan(ll), -np.inf, ll)  # a failure ranks last
        ranks = rankdata(-ll_ranked)
        best = np.nanmax(ll)
        linear = res["configs"]["linear 1e-6"]["loglik"]
        for i, lab in enumerate(labels):
            row, out = rows[lab], res["configs"][lab]
            row["ranks"].append(ranks[i])
            row["gaps"].append(best - ll[i] if np.isfinite(ll[i]) else np.inf)
            row["ties"] += bool(np.isfinite(ll[i]) and ll[i] >= best - TIE)
            row["vs_linear"] += bool(np.isfinite(ll[i]) and linear is not None
                                     and ll[i] >= linear - TIE)
            b = res["configs"][base]
            if out["cpu"] and b["cpu"]:
                row["cpu"].append(out["cpu"] / b["cpu"])
                row["iters"].append(out["iters"] / b["iters"])
    lines = [
        (f"Summary, {family} gate, over the {n_sets} data sets where the penalty changes the "
         f"held-out mean log-likelihood by at least {TIE}"), "",
        ("| gate_alpha | mean rank | within 0.01 of best | largest shortfall | "
         "within 0.01 of linear (or above) | EM iterations vs 1e-6 (geo-mean) | "
         "CPU vs 1e-6 (geo-mean) |"),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lab, row in rows.items():
        geo = lambda v: float(np.exp(np.mean(np.log(v)))) if v else None
        lines.append(
            f"| {lab.split(' ', 1)[1]} | {np.mean(row['ranks']):.2f} | {row['ties']}/{n_sets} | "
            f"{max(row['gaps']):.3g} | {row['vs_linear']}/{n_sets} | "
            f"{_fmt(geo(row['iters']), '.2f')} | {_fmt(geo(row['cpu']), '.2f')} |"
        )
    return lines + [""]


def markdown_tables(results):
    lines = []
    for family, what in (("mlp16", 'gate="mlp" (MLPGate(16,))'),
                         ("mlp64", ("gate=MLPGate(hidden_layer_sizes=(64,)), data sets of "
                                    f"at least {LARGE} rows"))):
        labels = ["linear 1e-6"] + _family_labels(results, family)
        if len(labels) == 1:
            continue
        lines += [f"### {what}", ""]
        lines += _table(results, labels, "loglik", ".3f",
                        "Held-out mean log-likelihood (higher is better; bold: within "
                        f"{TIE} of the best neural gate)", bold_best=True)
        lines += _table(results, labels, "score", ".3f", "Held-out R^2 (regression) or accuracy")
        lines += _table(results, labels, "iters", ".1f", "EM iterations per fit (mean)")
        lines += _table(results, labels, "cpu", ".3g", "CPU seconds per fit (mean)")
        lines += summarise(results, family)
    failures = [f"- {name}, {lab}: {len(out['failures'])} failed fits, e.g. {out['failures'][0]}"
                for name, res in results.items() for lab, out in res["configs"].items()
                if out["failures"]]
    if failures:
        lines += ["Failures:", "", *failures]
    return "\n".join(lines)


def main(argv=None):
    parser = report_parser(__doc__, quick_help="small data sets only, fewer of them")
    args = parser.parse_args(argv)
    return run_and_report(args, lambda: run(quick=args.quick, verbose=args.verbose),
                          markdown_tables)


if __name__ == "__main__":
    sys.exit(main())
