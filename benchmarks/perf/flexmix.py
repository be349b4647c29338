"""Whole fits of skmoe and of R's flexmix on the same data and model.

The model is flexmix's own: Gaussian linear experts on every column, a
multinomial logit gate on the same columns (``FLXPmultinom``), no gate
penalty (``gate_alpha=0``), no minimum prior, the same relative stopping
rule and value (flexmix's ``tolerance``, skmoe's ``tol``: both stop when the
log-likelihood gains less than ``tol * (|log-likelihood| + 0.1)``), the
same iteration cap and three EM runs each, the best by training
log-likelihood. Each starts its runs its own way: flexmix from random
partitions, skmoe from k-means (its default).

Held-out mean log-likelihood: both fitted models' parameters go through
:func:`mixture_log_likelihood` on the same held-out rows (for skmoe this
equals ``log_prob``, checked on every run).
"""

import warnings

import numpy as np
from scipy.special import log_softmax

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_gated_regression

from .cpu import cpu_and_wall
from .rscript import run_rscript

N_FEATURES = 5
N_EXPERTS = 3
NOISE = 0.5
N_TEST = 20_000
N_RESTARTS = 3
TOL = 1e-6  # flexmix's default tolerance
MAX_ITER = 200  # flexmix's default iter.max


def make_data(n_train, n_test=N_TEST, seed=0):
    """Train and held-out rows of one mixture: ``make_gated_regression`` (d=5, 3 experts).

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
    """
    X, y = make_gated_regression(
        n_train + n_test, N_FEATURES, N_EXPERTS, noise=NOISE, return_labels=False, random_state=seed
    )
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def mixture_log_likelihood(X, y, gate_coef, gate_intercept, coef, intercept, sigma):
    """Mean log-likelihood of a softmax-gated mixture of Gaussian linear experts.

    Parameters
    ----------
    gate_coef : ndarray of shape (k, d)
    gate_intercept : ndarray of shape (k,)
    coef : ndarray of shape (k, d)
    intercept, sigma : ndarray of shape (k,)
    """
    log_gate = log_softmax(X @ gate_coef.T + gate_intercept, axis=1)
    resid = y[:, None] - (X @ coef.T + intercept)
    log_lik = -0.5 * (resid / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)
    joint = log_gate + log_lik
    top = joint.max(axis=1, keepdims=True)
    return float(np.mean(top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))))


def flexmix_fit(X, y, *, k=N_EXPERTS, nrep=N_RESTARTS, tol=TOL, max_iter=MAX_ITER):
    """flexmix's fit through ``Rscript``: CPU seconds (R's own ``system.time``) and parameters."""
    result = run_rscript("speed.R", X, y, k, nrep, repr(tol), max_iter)
    comps, gates = result.pop("comp"), result.pop("gate")
    result["iter"], result["k"] = int(result["iter"]), int(result["k"])
    result["params"] = {
        "intercept": comps[:, 0], "coef": comps[:, 1:-1], "sigma": comps[:, -1],
        "gate_intercept": gates[:, 0], "gate_coef": gates[:, 1:],
    }
    result["mean_loglik"] = result["loglik"] / len(y)
    return result


def skmoe_model(*, tol=TOL, max_iter=MAX_ITER, n_init=N_RESTARTS):
    """The estimator of the comparison (flexmix's model and stopping rule, skmoe's defaults otherwise)."""
    return MixtureOfExpertsRegressor(
        N_EXPERTS, gate_alpha=0.0, tol=tol, max_iter=max_iter, n_init=n_init, random_state=0
    )


def skmoe_params(model):
    gate = model.gate_
    return {
        "intercept": np.array([float(e.intercept_) for e in model.experts_]),
        "coef": np.vstack([e.coef_ for e in model.experts_]),
        "sigma": np.sqrt(model.noise_variance_),
        "gate_intercept": np.asarray(gate.intercept_, dtype=float),
        "gate_coef": np.asarray(gate.coef_, dtype=float),
    }


def skmoe_fit(X, y, *, repeat=3, **params):
    """Best-of-``repeat`` CPU seconds of ``fit`` and the fitted model's parameters."""
    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return skmoe_model(**params).fit(X, y)

    cpu, wall, model = cpu_and_wall(fit, repeat)
    return {"cpu": cpu, "wall": wall, "model": model, "params": skmoe_params(model),
            "mean_loglik": model.log_likelihood_, "iter": int(model.n_iter_)}


def held_out(params, X, y):
    return mixture_log_likelihood(
        X, y, params["gate_coef"], params["gate_intercept"], params["coef"], params["intercept"],
        params["sigma"],
    )
