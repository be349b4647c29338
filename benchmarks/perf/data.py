"""The EM benchmark's data: one draw per configuration ``(n, d, k)``.

``X`` (float64, C-contiguous) and ``y`` come from
:func:`skmoe.datasets.make_gated_regression` (``random_state=0``). The
responsibilities ``resp`` are the probabilities of the true gate of that data
(``return_params=True``): structured like the responsibilities EM produces,
so the gate and LogisticRegression fits face a real classification problem.
``weights_T = resp.T`` as a C-contiguous ``(k, n)`` array.
"""

import numpy as np
from scipy.special import softmax

from skmoe.datasets import make_gated_regression

PERTURBATION = 0.1


def make_data(n, d, k, seed=0):
    """``X`` (C-contiguous float64), ``y`` and the true gate's probabilities ``(n, k)``."""
    X, y, params = make_gated_regression(
        n_samples=n, n_features=d, n_experts=k, return_labels=False, return_params=True,
        random_state=seed,
    )
    logits = params["gate_sharpness"] * (X @ params["gate_coef"].T + params["gate_intercept"])
    resp = softmax(logits, axis=1)
    return (np.ascontiguousarray(X, dtype=np.float64), np.ascontiguousarray(y, dtype=np.float64),
            resp)


def perturb(resp, rng, scale=PERTURBATION):
    """``resp * exp(scale * N(0, 1))``, rows renormalised."""
    moved = resp * np.exp(scale * rng.standard_normal(resp.shape))
    moved /= moved.sum(axis=1, keepdims=True)
    return moved


class Case:
    """One configuration: its data, what was measured on it, and the time spent."""

    def __init__(self, n, d, k, repeat, seed=0):
        self.n, self.d, self.k, self.repeat = n, d, k, repeat
        self.X, self.y, self.resp = make_data(n, d, k, seed)
        rng = np.random.default_rng(seed)
        self.resp2 = perturb(self.resp, rng)
        self.weights_T = np.ascontiguousarray(self.resp.T)
        self.labels = self.resp.argmax(axis=1)
        self.results = {"n": n, "d": d, "k": k, "repeat": repeat}
        self.spent = {}  # measurement -> wall seconds, untimed parts included
        self.skipped = {}  # measurement -> predicted seconds

    def release(self):
        """Drop the arrays; keep results and timings."""
        self.X = self.y = self.resp = self.resp2 = self.weights_T = self.labels = None
