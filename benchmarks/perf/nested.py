"""Fits inside joblib workers: ``GridSearchCV(n_jobs=2)`` against ``n_jobs=1``.

Eight candidates (``n_experts`` in 2-5 x ``gate_alpha`` in {0, 1e-4}),
3-fold cross-validation, ``MixtureOfExpertsRegressor(random_state=0)``
otherwise at its defaults, on the flexmix comparison's data at n=20,000. In
joblib's process workers each fit must take its share of the cores
(``skmoe.utils._threads.thread_budget``), so two workers on two cores should
not take more wall time than one worker running every fit in turn.
"""

import time
import warnings

from sklearn.model_selection import GridSearchCV

from skmoe import MixtureOfExpertsRegressor

from .flexmix import make_data

GRID = {"n_experts": [2, 3, 4, 5], "gate_alpha": [0.0, 1e-4]}


def grid_search_wall(n_jobs, n=20_000, cv=3):
    """Wall seconds of one ``GridSearchCV(...).fit`` and the best parameters."""
    X, y, _, _ = make_data(n)
    search = GridSearchCV(MixtureOfExpertsRegressor(random_state=0), GRID, cv=cv, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        search.fit(X, y)
    return time.perf_counter() - start, search.best_params_
