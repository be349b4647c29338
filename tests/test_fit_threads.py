"""The thread rule (``skmoe.utils._threads``) applied to each part of a whole fit.

Observed from inside: a plug-in expert and a plug-in clusterer record the
BLAS and OpenMP thread counts in force while they run, and the built-in
initialisers are wrapped to do the same. At small n every part runs on one
thread whatever the machine offers; with the rule's threshold lowered the
same parts get the budget; inside joblib workers a fit takes its share of
the cores. Whether the thread changes leave fits identical is pinned by
``tests/test_pinned_fits.py``.
"""

import warnings
from typing import ClassVar

import pytest
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_validate
from threadpoolctl import threadpool_info, threadpool_limits

import skmoe._init as init_module
from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_gated_regression
from skmoe.utils import _threads
from skmoe.utils._threads import active_row_pool, thread_budget, threads_for


def _snapshot():
    """BLAS and OpenMP thread counts in force, the budget, and the active row pool's size."""
    counts = [i["num_threads"] for i in threadpool_info() if i["user_api"] in ("blas", "openmp")]
    pool = active_row_pool()
    return {
        "max_threads": max(counts, default=1),
        "budget": thread_budget(),
        "share": threads_for(10**12),
        "pool": None if pool is None else pool.n_threads,
    }


class ProbeExpert(LinearRegression):
    """A plug-in expert (the generic M-step) recording the threads of each fit."""

    def fit(self, X, y, sample_weight=None):
        self.threads_seen_ = _snapshot()
        return super().fit(X, y, sample_weight=sample_weight)


class ProbeClusterer(KMeans):
    """A plug-in initialiser recording the threads of its fit."""

    seen: ClassVar[list] = []

    def fit_predict(self, X, y=None, sample_weight=None):
        ProbeClusterer.seen.append(_snapshot())
        return super().fit_predict(X, sample_weight=sample_weight)


@pytest.fixture
def record_builtin_init(monkeypatch):
    """Record the threads while every built-in init strategy runs."""
    seen = []
    original = init_module._builtin_responsibilities

    def wrapped(*args, **kwargs):
        seen.append(_snapshot())
        return original(*args, **kwargs)

    monkeypatch.setattr(init_module, "_builtin_responsibilities", wrapped)
    return seen


def _data(n=400):
    return make_gated_regression(n, 3, 2, noise=0.3, return_labels=False, random_state=0)


def _fit(**params):
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MixtureOfExpertsRegressor(2, max_iter=3, n_init=2, random_state=0, **params).fit(X, y)


@pytest.fixture
def two_threads_offered():
    """Offer two threads to every library; the rule must still pick one at small n."""
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime)

    with threadpool_limits(limits=2):
        yield max(1, min(2, _threads._cpu_count()))


@pytest.mark.parametrize("init", ["kmeans", "gmm", "tree", "random"])
def test_small_fit_runs_every_part_on_one_thread(two_threads_offered, record_builtin_init, init):
    model = _fit(expert=ProbeExpert(), init=init)
    assert len(record_builtin_init) == 2  # once per restart
    for seen in record_builtin_init + [e.threads_seen_ for e in model.experts_]:
        assert seen["max_threads"] == 1, seen
    # Restored afterwards: the user's limits are untouched.
    assert max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas") == two_threads_offered


def test_small_fit_runs_a_plug_in_initialiser_on_one_thread(two_threads_offered):
    ProbeClusterer.seen = []
    _fit(init=ProbeClusterer(2, n_init=1, random_state=0))
    assert len(ProbeClusterer.seen) == 2
    assert all(seen["max_threads"] == 1 for seen in ProbeClusterer.seen)


def test_the_built_in_loop_gets_the_rule_too(two_threads_offered, record_builtin_init):
    # Linear experts and gate: the EM loop's region holds BLAS and OpenMP at
    # one thread, and k-means splits its rows only when their size pays.
    _fit()
    assert all(seen["max_threads"] == 1 for seen in record_builtin_init)
    assert all(seen["share"] <= two_threads_offered for seen in record_builtin_init)


def test_parts_get_the_budget_once_their_size_pays(two_threads_offered, monkeypatch, record_builtin_init):
    if two_threads_offered < 2:
        pytest.skip("one CPU: the budget is one thread")
    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)
    model = _fit(expert=ProbeExpert(), init="gmm")
    for seen in record_builtin_init + [e.threads_seen_ for e in model.experts_]:
        assert seen["max_threads"] == 2, seen


@pytest.mark.parametrize("n_jobs", [2])
def test_a_fit_inside_joblib_workers_takes_its_share(n_jobs):
    from joblib import cpu_count

    X, y = _data(300)
    share = max(1, cpu_count() // n_jobs)  # joblib's inner limit in its process workers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = cross_validate(
            MixtureOfExpertsRegressor(2, expert=ProbeExpert(), max_iter=2, random_state=0),
            X, y, cv=2, n_jobs=n_jobs, return_estimator=True,
        )
    for model in result["estimator"]:
        for expert in model.experts_:
            seen = expert.threads_seen_
            assert seen["budget"] <= share and seen["share"] <= share, seen
            assert seen["max_threads"] == 1, seen  # and the small fit's rule on top
