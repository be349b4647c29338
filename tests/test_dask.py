"""The estimators on Dask collections: blockwise EM on a real cluster, lazy predictions.

The tests of what a cluster changes (agreement with NumPy, lazy
predictions, what reaches the client) run against one
``distributed.LocalCluster`` (processes, 2 workers of 1 thread); the other
paths of the blockwise EM, which do not depend on the scheduler, run on
Dask's synchronous scheduler, whose round trips cost nothing. All use small
data cut into row chunks of unequal sizes, and are skipped cleanly when dask
or distributed is not installed.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

CHUNKS = (230, 410, 160, 300)  # unequal row chunks
N = sum(CHUNKS)
RTOL = 1e-6


def test_skmoe_does_not_import_dask():
    """Neither importing skmoe nor fitting NumPy data imports dask."""
    code = (
        "import sys, numpy as np\n"
        "from skmoe import MixtureOfExpertsRegressor\n"
        "X = np.random.RandomState(0).normal(size=(60, 2)); y = X[:, 0]\n"
        "MixtureOfExpertsRegressor(n_experts=2, max_iter=3, random_state=0).fit(X, y).predict(X)\n"
        "assert not any(m == 'dask' or m.startswith('dask.') for m in sys.modules), 'dask imported'\n"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=120)


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        memory_limit="1GiB",
    ) as cluster, distributed.Client(cluster) as client:
        client.run(lambda: __import__("skmoe._dask._fit"))  # the workers' imports, once
        yield client


@pytest.fixture
def local():
    """Dask's synchronous scheduler for the test (even while the cluster's client exists)."""
    dask = pytest.importorskip("dask")
    pytest.importorskip("dask.array")
    with dask.config.set(scheduler="synchronous"):
        yield


def _data(seed=0, n_features=3):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(N, n_features))
    y = np.where(X[:, 0] < 0, 2.0 * X[:, 1], 1.0 - X[:, 2]) + 0.1 * rng.normal(size=N)
    return X, y, rng


def _dask(*arrays):
    import dask.array as da

    return [da.from_array(a, chunks=(CHUNKS,) + a.shape[1:]) for a in arrays]


def _fitted_attributes(est):
    return sorted(k for k in vars(est) if k.endswith("_") or k == "_templates")


def _assert_same_fit(a, b, rtol=RTOL):
    """Two fitted mixtures agree: attributes, experts, gate, variances, bookkeeping."""
    assert _fitted_attributes(a) == _fitted_attributes(b)
    assert a.n_experts_ == b.n_experts_
    assert a.n_iter_ == b.n_iter_
    assert a.converged_ == b.converged_
    np.testing.assert_array_equal(a._expert_ids_, b._expert_ids_)
    assert a._fit_n_experts_ == b._fit_n_experts_
    assert [type(t) for t in a._templates] == [type(t) for t in b._templates]
    assert type(a.gate_) is type(b.gate_)
    for ea, eb in zip(a.experts_, b.experts_):
        assert type(ea) is type(eb)
        # Coefficients to rtol 1e-6 of the largest (a coefficient near zero has no relative scale).
        assert_allclose(ea.coef_, eb.coef_, rtol=rtol, atol=rtol * np.abs(eb.coef_).max())
        assert_allclose(ea.intercept_, eb.intercept_, rtol=rtol, atol=rtol)
    assert_allclose(a.gate_.coef_, b.gate_.coef_, rtol=1e-5, atol=1e-5 * np.abs(b.gate_.coef_).max())
    assert_allclose(a.gate_.intercept_, b.gate_.intercept_, rtol=1e-5, atol=1e-5)
    assert_allclose(a.noise_variance_, b.noise_variance_, rtol=rtol)
    assert_allclose(a.expert_share_, b.expert_share_, rtol=rtol, atol=1e-9)
    assert_allclose(a.expert_load_, b.expert_load_, rtol=rtol)
    assert_allclose(a.log_likelihood_, b.log_likelihood_, rtol=1e-9)
    assert_allclose(a.log_likelihood_curve_, b.log_likelihood_curve_, rtol=1e-9)
    assert_allclose(a.objective_curve_, b.objective_curve_, rtol=1e-9)
    assert a.n_features_in_ == b.n_features_in_


def test_matches_numpy_from_same_responsibilities(client):
    """Fitted on a dask array == fitted on the NumPy array from the same initial responsibilities."""
    _check_matches_numpy(cache=None, max_iter=4)


@pytest.mark.parametrize("cache", [0, 4])
def test_matches_numpy_recomputing_responsibilities(local, cache):
    """The same when every pass recomputes the responsibilities (no cache), or some blocks' (a small one)."""
    _check_matches_numpy(cache=cache, max_iter=6)


def _check_matches_numpy(cache, max_iter):
    import dask

    X, y, rng = _data()
    sample_weight = rng.uniform(0.5, 2.0, size=N)
    init = rng.dirichlet(np.ones(3), size=N)
    params = {"n_experts": 3, "init": init, "max_iter": max_iter, "random_state": 0}
    Xd, yd, wd = _dask(X, y, sample_weight)
    with dask.config.set({"skmoe.responsibility_cache": cache}), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = MixtureOfExpertsRegressor(**params).fit(Xd, yd, sample_weight=wd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = MixtureOfExpertsRegressor(**params).fit(X, y, sample_weight=sample_weight)
    _assert_same_fit(fitted, reference)
    # An ordinary fitted estimator: it predicts NumPy data.
    assert_allclose(fitted.predict(X), reference.predict(X), rtol=1e-6, atol=1e-6)


def test_matches_numpy_ridge_features_and_kmeans(local):
    """Ridge experts (the non-monotone path), expert/gate feature subsets, init='kmeans' on all rows."""
    X, y, _ = _data(1, n_features=4)
    params = {"n_experts": 2, "expert": Ridge(alpha=3.0), "gate_features": [0, 1],
              "expert_features": [1, 2, 3], "max_iter": 8, "random_state": 0}
    Xd, yd = _dask(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = MixtureOfExpertsRegressor(**params).fit(Xd, yd)
        reference = MixtureOfExpertsRegressor(**params).fit(X, y)
    # With fewer rows than its sample, the k-means initialisation is the in-memory one.
    _assert_same_fit(fitted, reference)


def test_reseeding_matches_numpy(local):
    """Starved experts are re-seeded from a blockwise threshold, as in memory from a sort."""
    X, y, _ = _data(2)
    labels = (X[:, 0] > 0).astype(int)  # expert 2 gets no row: filled, starved, re-seeded
    params = {"n_experts": 3, "init": labels, "max_iter": 8, "random_state": 0}
    Xd, yd = _dask(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = MixtureOfExpertsRegressor(**params).fit(Xd, yd)
    assert any("re-seeded" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = MixtureOfExpertsRegressor(**params).fit(X, y)
    _assert_same_fit(fitted, reference)


def test_removal_then_reseeding_matches_numpy(local):
    """An expert removed and another starved at the same step: the other is re-seeded at once, as in memory."""
    import dask.array as da

    rng = np.random.RandomState(0)
    n = 54
    X = rng.normal(size=(n, 3))
    y = np.where(X[:, 0] < 0, 2.0 * X[:, 1], 1.0 - X[:, 2]) + 0.1 * rng.normal(size=n)
    # Expert 0 starts on 3 rows: degenerate, and removed at once, since even a
    # re-seeded slice (n / 6 = 9 rows) is below the 10 its 4 parameters need.
    # Expert 1 starts on none (starved); without an intercept it needs 8, so
    # it is re-seeded, in the step that removes expert 0.
    labels = np.full(n, 2)
    labels[:3] = 0
    experts = [LinearRegression(), LinearRegression(fit_intercept=False), LinearRegression()]
    params = {"n_experts": 3, "expert": experts, "init": labels, "max_iter": 6, "random_state": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference = MixtureOfExpertsRegressor(**params).fit(X, y)
    message = " ".join(str(w.message) for w in caught)
    assert "re-seeded expert(s) 1" in message and "removed expert(s) 0" in message
    chunks = (17, 22, 15)
    Xd, yd = da.from_array(X, chunks=(chunks, 3)), da.from_array(y, chunks=(chunks,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = MixtureOfExpertsRegressor(**params).fit(Xd, yd)
    _assert_same_fit(fitted, reference)


def test_min_prior_prunes_like_numpy(local):
    """min_prior removes the same experts, with the same events, as in memory."""
    X, y, _ = _data(11)
    params = {"n_experts": 5, "min_prior": 0.15, "max_iter": 8, "random_state": 0}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference = MixtureOfExpertsRegressor(**params).fit(X, y)
    assert reference.n_experts_ < 5 and "pruned" in " ".join(str(w.message) for w in caught)
    Xd, yd = _dask(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = MixtureOfExpertsRegressor(**params).fit(Xd, yd)
    _assert_same_fit(fitted, reference)
    with pytest.raises(ValueError, match="min_prior=0.9 would remove every expert"):
        MixtureOfExpertsRegressor(**{**params, "min_prior": 0.9}).fit(Xd, yd)


def test_cache_spares_the_e_step_within_its_budget(local, monkeypatch):
    """With room in the cache, the E-step runs once per block and iteration; the cache stays in budget and is released."""
    import dask

    from skmoe._dask import _resp, _steps

    X, y, _ = _data(11)
    Xd, yd = _dask(X, y)
    calls, cached = [], []
    original_e_step, original_store = _steps.e_step_block, _resp._store

    def counting_e_step(X, y, sw, model):
        calls.append(X.shape[0])
        return original_e_step(X, y, sw, model)

    def recording_store(key, value, nbytes, budget):
        original_store(key, value, nbytes, budget)
        cached.append((_resp.cached_bytes(key[0]), budget))

    monkeypatch.setattr(_steps, "e_step_block", counting_e_step)
    monkeypatch.setattr(_resp, "_store", recording_store)
    counts = {}
    for chunks in (100.0, 4.0, 0.0):  # room for every block, for some, none
        calls.clear()
        with dask.config.set({"skmoe.responsibility_cache": chunks}), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = MixtureOfExpertsRegressor(n_experts=2, max_iter=3, tol=0.0, random_state=0)
            est.fit(Xd, yd)
        counts[chunks] = len(calls)
        assert _resp.cached_bytes() == 0  # released at the end of the fit
    n_e_steps = 1 + est.n_iter_  # the initialisation's, then one per iteration
    assert counts[100.0] == len(CHUNKS) * n_e_steps
    # Without room, every evaluation of the gate's objective recomputes the E-step.
    assert counts[100.0] < counts[4.0] < counts[0.0]
    assert cached and all(used <= budget for used, budget in cached)
    with dask.config.set({"skmoe.responsibility_cache": -1}), pytest.raises(
        ValueError, match="skmoe.responsibility_cache"
    ):
        MixtureOfExpertsRegressor(n_experts=2).fit(Xd, yd)


def test_dask_ml_kmeans_initialisation(local):
    """dask_ml's KMeans (k-means|| on every row) gives the first responsibilities, blockwise."""
    cluster = pytest.importorskip("dask_ml.cluster")
    from skmoe._dask._data import as_row_data, summarise
    from skmoe._dask._init import initial_responsibilities
    from skmoe._dask._resp import FitSpec, reduce_resp

    X, y, _ = _data(12)
    X[: N // 2] += 6.0  # two separated clusters
    Xd, yd = _dask(X, y)
    data = as_row_data(Xd, yd, None)
    summary = summarise(data)
    spec = FitSpec.new(0, None, summary.x_mean, summary.x_scale, summary.sum_w)
    recipe = initial_responsibilities(cluster.KMeans(n_clusters=2, random_state=0), data, summary,
                                      2, np.random.RandomState(0), spec)
    parts = reduce_resp(lambda block: block.responsibilities(), data, recipe, spec)
    resp = np.concatenate([part[:2] for part in parts], axis=1)
    labels = resp.argmax(axis=0)
    assert_allclose(resp.sum(axis=0), 1.0)
    assert len(set(labels[: N // 2])) == 1 and len(set(labels[N // 2 :])) == 1
    assert labels[0] != labels[-1]
    # Through the estimator: the clusterer itself (it has fit and predict, no
    # fit_predict), and its labels_, a dask array, as init.
    kmeans = cluster.KMeans(n_clusters=2, random_state=0).fit(Xd)
    for init in (cluster.KMeans(n_clusters=2, random_state=0), kmeans.labels_):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = MixtureOfExpertsRegressor(n_experts=2, init=init, max_iter=3,
                                            random_state=0).fit(Xd, yd)
        assert est.n_experts_ == 2 and np.isfinite(est.log_likelihood_)


def test_warm_start_continues_like_numpy(local):
    X, y, rng = _data(3)
    init = rng.dirichlet(np.ones(2), size=N)
    Xd, yd = _dask(X, y)
    models = []
    for Xf, yf in ((Xd, yd), (X, y)):
        est = MixtureOfExpertsRegressor(n_experts=2, init=init, max_iter=4, warm_start=True,
                                        random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(Xf, yf)
            est.fit(Xf, yf)
        models.append(est)
    _assert_same_fit(*models)


def test_predictions_are_lazy_and_match(client):
    import dask.array as da

    X, y, _ = _data(4)
    Xd, yd = _dask(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MixtureOfExpertsRegressor(n_experts=2, max_iter=5, random_state=0).fit(X, y)
    pred = est.predict(Xd)
    assert isinstance(pred, da.Array) and pred.chunks == (CHUNKS,)
    assert_allclose(pred.compute(), est.predict(X))
    mean, std = est.predict(Xd, return_std=True)
    assert isinstance(std, da.Array) and std.chunks == (CHUNKS,)
    ref_mean, ref_std = est.predict(X, return_std=True)
    assert_allclose(mean.compute(), ref_mean)
    assert_allclose(std.compute(), ref_std)
    gate = est.predict_gate(Xd)
    assert gate.chunks == (CHUNKS, (2,))
    assert_allclose(gate.compute(), est.predict_gate(X))
    log_prob = est.log_prob(Xd, yd)
    assert isinstance(log_prob, da.Array)
    assert_allclose(log_prob.compute(), est.log_prob(X, y))
    assert_allclose(est.bic(Xd, yd), est.bic(X, y))


def test_classifier_predict_proba_is_lazy(client):
    import dask.array as da

    X, y, _ = _data(5)
    labels = (y > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MixtureOfExpertsClassifier(n_experts=2, max_iter=3, random_state=0).fit(X, labels)
    (Xd,) = _dask(X)
    proba = est.predict_proba(Xd)
    assert isinstance(proba, da.Array) and proba.chunks == (CHUNKS, (2,))
    assert_allclose(proba.compute(), est.predict_proba(X))


def test_no_full_size_array_on_the_client(client, monkeypatch):
    """The client receives only per-block statistics and bounded samples, and ships only small recipes."""
    from skmoe._dask import _blocks, _init, _steps

    # Samples of 40 rows (for the initialisation and the re-seeding thresholds),
    # so that a full-size array would stand out in this small data.
    monkeypatch.setattr(_init, "INIT_SAMPLE_ROWS", 40)
    monkeypatch.setattr(_steps, "THRESHOLD_SAMPLE_ROWS", 40)

    X, y, _ = _data(6)
    Xd, yd = _dask(X, y)
    received, sent = [], []
    original_gather, original_run_tasks = _blocks.gather, _blocks.run_tasks

    def recording_gather(tasks):
        results = original_gather(tasks)
        received.append(_nbytes(results))
        return results

    def recording_run_tasks(func, blocks, params, per_block=None):
        sent.append(_nbytes(params))
        return original_run_tasks(func, blocks, params, per_block)

    monkeypatch.setattr(_blocks, "gather", recording_gather)
    for module in ("_blocks", "_resp"):
        monkeypatch.setattr(f"skmoe._dask.{module}.run_tasks", recording_run_tasks)
    labels = (X[:, 0] > 0).astype(int)  # expert 2 starts empty: the re-seeding pass runs too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MixtureOfExpertsRegressor(n_experts=3, max_iter=2, random_state=0, init=labels).fit(Xd, yd)
    assert received and sent
    # Chunk-size assertion: no array the client received has as many rows as a chunk.
    assert max(largest for _, largest in received) < min(CHUNKS)
    # In all, per gather, at most a few kB: the Gram matrices and moments of each block.
    assert max(total for total, _ in received) < X.nbytes / 2
    # What a pass ships with its tasks (parameters, recipes) is small too; the
    # labels of the initialisation are a dask array, read by the tasks.
    assert max(largest for _, largest in sent) < min(CHUNKS)


def _nbytes(obj):
    """Total bytes and the largest dimension of the arrays in a (nested) result."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes, max(obj.shape, default=1)
    values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else None
    if values is None:
        return 8, 1
    sizes = [_nbytes(v) for v in values]
    return sum(s[0] for s in sizes), max((s[1] for s in sizes), default=0)


def test_dask_dataframe_input(local):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y, _ = _data(7)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    X_df = dd.from_pandas(frame, npartitions=3)
    y_s = dd.from_pandas(pd.Series(y, name="y"), npartitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MixtureOfExpertsRegressor(n_experts=2, max_iter=4, random_state=0).fit(X_df, y_s)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b", "c"])
    assert_allclose(est.predict(X_df).compute(), est.predict(frame))
    with pytest.raises(ValueError, match="feature names"):
        est.predict(dd.from_pandas(frame.rename(columns={"a": "z"}), npartitions=2))


@pytest.mark.parametrize(
    "init", ["kmeans", "random", "gmm", "tree", KMeans(2, n_init=1, random_state=0), "labels"]
)
def test_initialisations(local, init, monkeypatch):
    """Every init works blockwise; with a sample smaller than the data, extended from the sample."""
    from skmoe._dask import _init

    monkeypatch.setattr(_init, "INIT_SAMPLE_ROWS", 300)
    X, y, _ = _data(8)
    Xd, yd = _dask(X, y)
    if isinstance(init, str) and init == "labels":
        (init,) = _dask((X[:, 0] > 0).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MixtureOfExpertsRegressor(n_experts=2, init=init, max_iter=3, random_state=0)
        est.fit(Xd, yd)
    assert est.n_experts_ == 2 and np.isfinite(est.log_likelihood_)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MixtureOfExpertsRegressor(expert=DecisionTreeRegressor()), "DecisionTreeRegressor"),
        (lambda: MixtureOfExpertsRegressor(expert=Ridge(solver="sag")), "Ridge"),
        (lambda: MixtureOfExpertsRegressor(gate="mlp"), "gate='mlp'"),
        (lambda: MixtureOfExpertsRegressor(top_k=1), "top_k=1"),
        (lambda: MixtureOfExpertsRegressor(algorithm="cem"), "algorithm='cem'"),
        (lambda: MixtureOfExpertsRegressor(likelihood="poisson"), "likelihood='poisson'"),
        (lambda: MixtureOfExpertsClassifier(), "MixtureOfExpertsClassifier"),
    ],
)
def test_unsupported_combinations_are_refused(make, match):
    """A clear error, before any work, naming what is supported and the joblib alternative."""
    pytest.importorskip("dask.array")
    X, y, _ = _data(9)
    Xd, yd = _dask(X, (y > 0).astype(int))
    est = make().set_params(n_experts=2)
    with pytest.raises(ValueError, match=match) as info:
        est.fit(Xd, yd)
    message = str(info.value)
    assert "LinearRegression or Ridge" in message
    assert "n_jobs" in message and "dask" in message


def test_invalid_values_are_refused(local):
    X, y, _ = _data(10)
    X[5, 1] = np.nan
    Xd, yd = _dask(X, y)
    with pytest.raises(ValueError, match="NaN"):
        MixtureOfExpertsRegressor(n_experts=2).fit(Xd, yd)
