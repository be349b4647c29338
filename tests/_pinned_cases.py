"""Whole fits pinned across refactors of the EM engine.

``python -m tests._pinned_cases`` (from the repository root) re-records
``tests/data/pinned_fits.json``; ``tests/test_pinned_fits.py`` compares.
Every case runs a fixed number of iterations (``tol=0``), so that the
stopping rule cannot change what is compared; a change of any fit on
purpose re-records the file and says why in the changelog. Re-recorded in
0.2.0 for the changes on purpose listed there (default ``gate_alpha``,
``log_likelihood_curve_`` without the penalty, the stable order of experts,
``Ridge`` experts keeping their best iterate, the MLP gate's bounded
M-step); ``reg_top_k`` re-recorded later in 0.2.0: top-k training no longer masks
the gate before the E-step (each expert is fitted on the samples whose top-k
picked it, the gate on the full posterior).
"""

import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import Lasso, LogisticRegression, Ridge

PATH = Path(__file__).parent / "data" / "pinned_fits.json"


def _regression_data(n=400, seed=0):
    from skmoe.datasets import make_gated_regression

    return make_gated_regression(n, 3, 3, noise=0.3, return_labels=False, random_state=seed)


def _classification_data(n=300, seed=0):
    from skmoe.datasets import make_xor_blobs

    return make_xor_blobs(n_samples=n, random_state=seed)


def _weights(n, seed=1):
    return np.random.RandomState(seed).randint(0, 4, size=n).astype(float)


def cases():
    """``name -> (estimator factory, data factory, fit kwargs)``."""
    from skmoe import MixtureOfExpertsClassifier as C
    from skmoe import MixtureOfExpertsRegressor as R

    common = dict(tol=0.0, random_state=0)
    reg, clf = _regression_data, _classification_data
    return {
        "reg_linear": (lambda: R(3, max_iter=25, n_init=2, **common), reg, False),
        "reg_linear_weighted": (lambda: R(3, max_iter=25, **common), reg, True),
        "reg_ridge_random_init": (
            lambda: R(3, expert=Ridge(alpha=0.5), init="random", max_iter=25, **common), reg, False),
        "reg_top_k": (lambda: R(3, top_k=1, max_iter=15, **common), reg, False),
        # Generic experts: a continuous one (a tree's split can flip between
        # BLAS kernels' last bits and send the fit elsewhere; not a pin).
        "reg_generic_lasso": (
            lambda: R(3, expert=Lasso(alpha=0.01), max_iter=10, **common), reg, False),
        "reg_mlp_gate": (
            lambda: R(2, gate="mlp", max_iter=6, **common), lambda: _regression_data(200), False),
        "clf_logistic": (lambda: C(4, max_iter=15, **common), clf, False),
        "clf_logistic_weighted": (
            lambda: C(4, expert=LogisticRegression(C=10.0), max_iter=15, **common), clf, True),
    }


def summary(model, X):
    """What is pinned of a fitted model: curve, parameters and predictions on ``X``."""
    out = {
        "curve": model.log_likelihood_curve_.tolist(),
        "gate": model.predict_gate(X[:50]).tolist(),
        "share": model.expert_share_.tolist(),
    }
    if hasattr(model, "noise_variance_"):
        out["noise_variance"] = model.noise_variance_.tolist()
        out["predict"] = model.predict(X[:50]).tolist()
    else:
        out["predict_proba"] = model.predict_proba(X[:50]).tolist()
    experts = model.experts_
    if all(hasattr(e, "coef_") for e in experts):
        out["coef"] = [np.ravel(e.coef_).tolist() for e in experts]
        out["intercept"] = [np.ravel(e.intercept_).tolist() for e in experts]
    gate = model.gate_
    if hasattr(gate, "coef_"):
        out["gate_coef"] = gate.coef_.tolist()
        out["gate_intercept"] = gate.intercept_.tolist()
    return out


def fit_case(name):
    make, data, weighted = cases()[name]
    X, y = data()
    kwargs = {"sample_weight": _weights(len(y))} if weighted else {}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make().fit(X, y, **kwargs)
    return model, X


def record():
    pinned = {name: summary(*fit_case(name)) for name in cases()}
    PATH.write_text(json.dumps(pinned, indent=1) + "\n")
    return pinned


if __name__ == "__main__":
    record()
    print(f"recorded {PATH}")
