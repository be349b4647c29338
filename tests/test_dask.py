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
from sklearn.linear_model import Ridge
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
    _check_matches_numpy(persist=None, max_iter=4)


def test_matches_numpy_recomputing_responsibilities(local):
    """The same when the responsibilities are recomputed per pass instead of persisted."""
    _check_matches_numpy(persist=False, max_iter=6)


def _check_matches_numpy(persist, max_iter):
    import dask

    X, y, rng = _data()
    sample_weight = rng.uniform(0.5, 2.0, size=N)
    init = rng.dirichlet(np.ones(3), size=N)
    params = {"n_experts": 3, "init": init, "max_iter": max_iter, "random_state": 0}
    Xd, yd, wd = _dask(X, y, sample_weight)
    with dask.config.set({"skmoe.persist_responsibilities": persist}), warnings.catch_warnings():
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
    """The client receives only per-block statistics and bounded samples; row-aligned arrays stay dask arrays."""
    from skmoe._dask import _blocks, _fit, _init

    # Samples of 40 rows (for the initialisation and the re-seeding thresholds),
    # so that a full-size array would stand out in this small data.
    monkeypatch.setattr(_init, "INIT_SAMPLE_ROWS", 40)
    monkeypatch.setattr(_fit, "_THRESHOLD_SAMPLE_ROWS", 40)

    X, y, _ = _data(6)
    Xd, yd = _dask(X, y)
    received, row_arrays = [], []
    original_gather, original_map_rows = _blocks.gather, _blocks.map_rows

    def recording_gather(tasks):
        results = original_gather(tasks)
        received.append(_nbytes(results))
        return results

    def recording_map_rows(*args, **kwargs):
        result = original_map_rows(*args, **kwargs)
        row_arrays.append(result)
        return result

    monkeypatch.setattr(_blocks, "gather", recording_gather)
    for module in ("_fit", "_init", "_gate"):
        monkeypatch.setattr(f"skmoe._dask.{module}.map_rows", recording_map_rows, raising=False)
    labels = (X[:, 0] > 0).astype(int)  # expert 2 starts empty: the re-seeding pass runs too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        MixtureOfExpertsRegressor(n_experts=3, max_iter=2, random_state=0, init=labels).fit(Xd, yd)
    assert received and row_arrays
    # Chunk-size assertion: no array the client received has as many rows as a chunk.
    assert max(largest for _, largest in received) < min(CHUNKS)
    # In all, per gather, at most a few kB: the Gram matrices and moments of each block.
    assert max(total for total, _ in received) < X.nbytes / 2
    for E in row_arrays:
        assert E.chunks[1] == CHUNKS


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
