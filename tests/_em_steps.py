"""Stepping EM one iteration at a time, and the monotonicity check on its objective.

A warm-started estimator with ``max_iter=1`` runs one EM iteration per
``fit``: the objectives of successive fits are the EM curve, each step
checked from outside the driver.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning


def stepped_objectives(moe, X, y, n_steps):
    """The ``objective_`` after each of ``n_steps`` fits of the warm-started ``moe``.

    ``moe`` must have ``warm_start=True`` and ``max_iter=1``: each fit is
    then one EM iteration, which never converges (hence the silenced
    ``ConvergenceWarning``).
    """
    if not (moe.warm_start and moe.max_iter == 1):
        raise ValueError("stepped_objectives needs warm_start=True and max_iter=1.")
    curve = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(n_steps):
            curve.append(moe.fit(X, y).objective_)
    return np.asarray(curve)


def assert_never_decreases(curve, rtol):
    """Every step of ``curve`` rises, up to ``rtol`` of the objective's size."""
    curve = np.asarray(curve)
    steps = np.diff(curve)
    assert np.all(steps >= -rtol * np.abs(curve[1:])), steps.min()
