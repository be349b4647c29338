"""skmoe against R's flexmix for Gaussian, Poisson and Gamma mixtures of regressions.

Usage::

    python benchmarks/flexmix_likelihoods.py                 # n = 2,000 and 200,000, 3 restarts
    python benchmarks/flexmix_likelihoods.py --sizes 2000 --restarts 5
    python benchmarks/flexmix_likelihoods.py --output table.md

Needs ``Rscript`` with flexmix (``apt-get install -y r-base-core
r-cran-flexmix``); R and flexmix are never dependencies of skmoe or its CI.

For each family and size one data set is drawn from a two-component mixture
of regressions on one feature ``x ~ N(0, 1)`` with mixing proportions 0.4 /
0.6 (no concomitant variable):

* Gaussian: ``y = a_k + b_k x + sigma_k eps`` with ``(a, b, sigma) = (0, 1,
  0.5)`` and ``(2, -1, 1)``;
* Poisson: ``y ~ Poisson(exp(a_k + b_k x))`` with ``(a, b) = (0.5, 0.5)`` and
  ``(2, -0.5)``;
* Gamma: ``y ~ Gamma(shape 5, mean exp(a_k + b_k x))``, the same ``(a, b)``.

Both fit the same model: two GLM experts ``y ~ x`` (identity link for the
Gaussian, log link for Poisson and Gamma), constant mixing proportions
(skmoe: ``gate_features=[]``; flexmix: no concomitant), no gate penalty
(``gate_alpha=0``), the same relative stopping rule (flexmix's default
``tolerance=1e-6``, skmoe's ``tol=1e-6``), at most 2,000 iterations, no
pruning, and the best of the same number of restarts by log-likelihood
(flexmix: ``stepFlexmix(nrep=R)`` from random partitions; skmoe:
``n_init=R, init="random"``). skmoe's experts are its defaults:
``LinearRegression``, ``PoissonRegressor(alpha=0, solver="newton-cholesky")``,
``GammaRegressor(alpha=0, solver="newton-cholesky")``; flexmix's are
``lm.wfit`` / ``glm.fit`` (IRLS). flexmix's Gamma family has the inverse
link, so ``benchmarks/flexmix/fit_family.R`` gives flexmix a Gamma component
with the log link (its own code otherwise).

Reported: the total log-likelihood of the returned fit on the training data
(skmoe's ``log_prob(X, y).sum()``, flexmix's ``logLik``), CPU seconds (user +
system of the whole process, so both count all their threads) and wall
seconds of the fit alone (data loading excluded), the EM iterations of the
returned (best) run, and the largest relative coefficient difference of the
matched components. The models are not
estimated identically: flexmix's Gaussian ``sigma`` divides by
``sum(w) (n - rank) / n`` rather than ``sum(w)`` and its Gamma shape is
``sum(w) / deviance`` rather than the maximum-likelihood shape skmoe solves
for, so skmoe's log-likelihood is at least flexmix's at the same optimum.
"""

import argparse
import itertools
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

try:
    import skmoe
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import skmoe

from perf.rscript import run_rscript  # the perf package beside this file

from skmoe import MixtureOfExpertsRegressor

FAMILIES = ("gaussian", "poisson", "gamma")


def make_data(family, n, random_state=0):
    """One feature, two components with proportions 0.4 / 0.6."""
    rng = np.random.RandomState(random_state)
    x = rng.standard_normal(n)
    label = (rng.uniform(size=n) > 0.4).astype(int)
    if family == "gaussian":
        a, b, sigma = np.array([0.0, 2.0]), np.array([1.0, -1.0]), np.array([0.5, 1.0])
        y = a[label] + b[label] * x + sigma[label] * rng.standard_normal(n)
    else:
        a, b = np.array([0.5, 2.0]), np.array([0.5, -0.5])
        mean = np.exp(a[label] + b[label] * x)
        y = rng.poisson(mean).astype(float) if family == "poisson" else rng.gamma(5.0, mean / 5.0)
    return x[:, None], y


def flexmix_fit(family, X, y, restarts):
    result = run_rscript("fit_family.R", X, y, family, 2, restarts, names=["x"])
    result["comps"] = list(result.pop("comp")[:, :2])  # intercept and slope
    return result


def skmoe_fit(family, X, y, restarts):
    moe = MixtureOfExpertsRegressor(
        2, likelihood=family, gate_features=[], gate_alpha=0.0, tol=1e-6, max_iter=2000,
        n_init=restarts, init="random", random_state=0,
    )
    cpu, wall = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moe.fit(X, y)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    comps = [np.r_[e.intercept_, np.ravel(e.coef_)] for e in moe.experts_]
    return {"loglik": float(moe.log_prob(X, y).sum()), "cpu": cpu, "wall": wall, "comps": comps,
            "iter": moe.n_iter_}


def coef_difference(ours, theirs):
    """Largest relative difference of the coefficients under the best matching of components."""
    if len(ours) != len(theirs):
        return np.nan
    return min(
        max(np.max(np.abs(ours[i] - theirs[j]) / np.maximum(1.0, np.abs(theirs[j])))
            for i, j in enumerate(perm))
        for perm in itertools.permutations(range(len(theirs)))
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,200000", help="sample counts, comma-separated")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--restarts", type=int, default=3, help="restarts of both (best of)")
    parser.add_argument("--output", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    families = args.families.split(",")

    header = (
        f"skmoe {skmoe.__version__}; restarts (best of): {args.restarts}; tolerance 1e-6 (relative); "
        f"two components, constant mixing proportions, no penalty; {os.cpu_count()} CPUs, "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    lines = [
        header, "",
        ("| family | n | flexmix loglik | skmoe loglik | difference | flexmix CPU s | skmoe CPU s "
         "| flexmix wall s | skmoe wall s | flexmix iter | skmoe iter | max coef diff |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for family in families:
        for n in sizes:
            X, y = make_data(family, n)
            theirs = flexmix_fit(family, X, y, args.restarts)
            ours = skmoe_fit(family, X, y, args.restarts)
            row = (
                f"| {family} | {n:,} | {theirs['loglik']:.2f} | {ours['loglik']:.2f} | "
                f"{ours['loglik'] - theirs['loglik']:+.2f} | {theirs['cpu']:.2f} | {ours['cpu']:.2f} | "
                f"{theirs['wall']:.2f} | {ours['wall']:.2f} | {theirs['iter']:.0f} | {ours['iter']} | "
                f"{coef_difference(ours['comps'], theirs['comps']):.2g} |"
            )
            print(row, flush=True)
            lines.append(row)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
