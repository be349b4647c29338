"""Coverage of the 95 % Wald intervals of ``skmoe.inference.standard_errors``.

Usage::

    python benchmarks/inference_coverage.py                     # 500 replications, n = 500
    python benchmarks/inference_coverage.py --replications 1000 --n-samples 300 --n-jobs 2
    python benchmarks/inference_coverage.py --output results.md

Each replication draws ``n`` rows from a known two-expert model, fits
``MixtureOfExpertsRegressor(2, gate_alpha=0)`` (maximum likelihood, default
k-means initialisation, ``n_init=2``, ``tol=1e-6``), matches the labels with
:func:`skmoe.inference.order_experts` (ascending mean prediction, as the true
experts are numbered) and records whether each 95 % interval of
:func:`skmoe.inference.standard_errors` covers the true value. The check
(issue "Statistical inference"): coverage averaged over the parameters within
0.95 +- 0.02.

The model: ``x ~ U(-2, 2)``; gate ``P(expert 1 | x) = sigmoid(0.3 + 1.5 x)``
(expert 0 is the reference); expert 0: ``y = 1 - 2 x + N(0, 0.5^2)``;
expert 1: ``y = 4 + 2 x + N(0, 0.7^2)``. Eight parameters: two coefficients
and ``sigma`` per expert, and the gate's intercept and slope.
"""

import argparse
import pathlib
import sys
import time
import warnings

import numpy as np

try:
    import skmoe  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from sklearn.utils.parallel import Parallel, delayed

from skmoe import MixtureOfExpertsRegressor
from skmoe.inference import order_experts, standard_errors

COEF = np.array([[1.0, -2.0], [4.0, 2.0]])  # intercept, slope per expert
SIGMA = np.array([0.5, 0.7])
GATE = np.array([0.3, 1.5])  # log-odds of expert 1 against expert 0
NAMES = [
    "expert 0 (intercept)", "expert 0 x0", "expert 0 sigma",
    "expert 1 (intercept)", "expert 1 x0", "expert 1 sigma",
    "gate 1 (intercept)", "gate 1 x0",
]
TRUTH = np.r_[COEF[0], SIGMA[0], COEF[1], SIGMA[1], GATE]


def simulate(n, rng):
    """``X, y`` from the true model."""
    x = rng.uniform(-2, 2, n)
    second = rng.uniform(size=n) < 1 / (1 + np.exp(-(GATE[0] + GATE[1] * x)))
    k = second.astype(int)
    y = COEF[k, 0] + COEF[k, 1] * x + SIGMA[k] * rng.randn(n)
    return x[:, None], y


def replicate(n, seed, level):
    """Per parameter: covered or not; and the estimates, errors and whether the fit warned."""
    rng = np.random.RandomState(seed)
    X, y = simulate(n, rng)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        moe = MixtureOfExpertsRegressor(
            2, gate_alpha=0, n_init=2, tol=1e-6, max_iter=1000, random_state=seed
        ).fit(X, y)
        order_experts(moe, X)
        table = standard_errors(moe, X, y, confidence_level=level)
    covered = (table.ci_low <= TRUTH) & (TRUTH <= table.ci_high)
    return covered, table.estimate, table.std_err, bool(caught)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replications", type=int, default=500)
    parser.add_argument("--n-samples", type=int, default=500)
    parser.add_argument("--level", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--output", help="also write the table as markdown")
    args = parser.parse_args(argv)
    start = time.time()
    seeds = np.random.RandomState(args.seed).randint(np.iinfo(np.int32).max, size=args.replications)
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(replicate)(args.n_samples, int(s), args.level) for s in seeds
    )
    covered = np.array([r[0] for r in results], dtype=float)
    estimates = np.array([r[1] for r in results])
    std_errs = np.array([r[2] for r in results])
    warned = sum(r[3] for r in results)
    coverage = covered.mean(axis=0)
    mc = np.sqrt(args.level * (1 - args.level) / args.replications)
    lines = [
        (f"{args.replications} replications, n = {args.n_samples}, {100 * args.level:g} % Wald "
         f"intervals ({time.time() - start:.0f} s; {warned} replications warned)"),
        "",
        "| parameter | true | mean estimate | sd of estimates | mean std_err | coverage |",
        "|---|---|---|---|---|---|",
    ]
    for j, name in enumerate(NAMES):
        lines.append(
            f"| {name} | {TRUTH[j]:g} | {estimates[:, j].mean():.4f} | {estimates[:, j].std(ddof=1):.4f} "
            f"| {std_errs[:, j].mean():.4f} | {coverage[j]:.3f} |"
        )
    average = coverage.mean()
    ok = abs(average - args.level) <= 0.02
    lines += [
        "",
        (f"Coverage averaged over the parameters: {average:.4f} (target {args.level:g} +- 0.02; "
         f"Monte Carlo standard error per parameter {mc:.4f}): {'PASS' if ok else 'FAIL'}"),
    ]
    text = "\n".join(lines)
    print(text)
    if args.output:
        pathlib.Path(args.output).write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
