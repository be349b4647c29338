"""A fit recovers a known model.

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

import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_gated_regression


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
