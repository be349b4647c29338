"""skmoe against R's flexmix on the same data and model: log-likelihood and coefficients.

Usage::

    python benchmarks/flexmix_compare.py          # needs Rscript with flexmix installed

For each case the same model is fitted by both: Gaussian linear experts on
every column, a gate of intercepts only (``gate_features=[]``; flexmix
without concomitant variables) or a multinomial logit gate on the same
columns (``FLXPmultinom``), no gate penalty (``gate_alpha=0``), the same
relative stopping rule (flexmix's ``tolerance=1e-6``, skmoe's ``tol=1e-6``)
and the same number of restarts, best by training log-likelihood; random
starts for the constant gate (as flexmix), k-means for the concomitant one. Reports the
total log-likelihood, the coefficients and noise standard deviations of the
matched components (flexmix's order matched to skmoe's by the smallest
coefficient distance), and CPU seconds. R and flexmix are never dependencies
of skmoe or its CI (``apt-get install -y r-base-core r-cran-flexmix``).
"""

import itertools
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
from skmoe.datasets import load_motorcycle, make_gated_regression


def flexmix_fit(X, y, k, concomitant, nrep):
    result = run_rscript("fit.R", X, y, k, int(concomitant), nrep)
    result["comps"] = list(result.pop("comp"))
    return result


def skmoe_fit(X, y, k, concomitant, nrep):
    # flexmix starts from random hard partitions; for a constant gate (the
    # components overlap in x) k-means on [X, y] finds worse optima than
    # random starts (motorcycle, k=4, 10 restarts: -654.73 against -646.49).
    moe = MixtureOfExpertsRegressor(
        k, gate_features=None if concomitant else [], gate_alpha=0.0, tol=1e-6, max_iter=2000,
        n_init=nrep, init="kmeans" if concomitant else "random", random_state=0,
    )
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moe.fit(X, y)
    cpu = time.process_time() - start
    # flexmix's parameter order: intercept, coefficients, sigma.
    comps = [np.r_[e.intercept_, e.coef_, np.sqrt(v)] for e, v in zip(moe.experts_, moe.noise_variance_)]
    return {"loglik": moe.log_likelihood_ * len(y), "cpu": cpu, "comps": comps, "model": moe}


def match(ours, theirs):
    """flexmix's components in the order that best matches ours."""
    if len(ours) != len(theirs):
        return None
    best = min(itertools.permutations(range(len(theirs))),
               key=lambda p: sum(np.sum((ours[i] - theirs[j]) ** 2) for i, j in enumerate(p)))
    return [theirs[j] for j in best]


def cases():
    X, y = load_motorcycle(return_X_y=True)
    yield "motorcycle, k=4, constant gate", X, y, 4, False
    yield "motorcycle, k=4, concomitant gate", X, y, 4, True
    Xs, ys = make_gated_regression(2000, 2, 3, noise=0.5, return_labels=False, random_state=0)
    yield "gated n=2000 d=2, k=3, constant gate", Xs, ys, 3, False
    yield "gated n=2000 d=2, k=3, concomitant gate", Xs, ys, 3, True


def main(nrep=5):
    print(f"skmoe {skmoe.__version__}; restarts per fit: {nrep}; tolerance 1e-6 (relative); no gate penalty\n")
    print("| case | flexmix loglik | skmoe loglik | difference | flexmix CPU s | skmoe CPU s | max coef diff |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    details = []
    for name, X, y, k, conc in cases():
        theirs = flexmix_fit(X, y, k, conc, nrep)
        ours = skmoe_fit(X, y, k, conc, nrep)
        matched = match(ours["comps"], theirs["comps"])
        diff = np.nan if matched is None else max(
            np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))) for a, b in zip(ours["comps"], matched)
        )
        print(f"| {name} | {theirs['loglik']:.2f} | {ours['loglik']:.2f} | "
              f"{ours['loglik'] - theirs['loglik']:+.2f} | {theirs['cpu']:.2f} | {ours['cpu']:.2f} | {diff:.3g} |")
        details.append((name, ours["comps"], matched))
    print("\nCoefficients (intercept, slopes, sigma) per matched component, skmoe / flexmix:")
    for name, ours_c, theirs_c in details:
        print(f"\n{name}")
        for j, a in enumerate(ours_c):
            b = theirs_c[j] if theirs_c is not None else None
            print(f"  {j}: {np.array2string(a, precision=3)}" + (
                "" if b is None else f" / {np.array2string(b, precision=3)}"))


if __name__ == "__main__":
    main()
