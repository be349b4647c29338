"""Sparse ``X``: the same fits as the dense data, ``X`` never densified, clear refusals."""

import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils import get_tags

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._solvers import fit_linear_experts, linear_offsets
from skmoe._sparse import weighted_standardisation
from skmoe._sparse_gram import sparse_gram_matrices
from skmoe.gates import LinearGate
from skmoe.gates._network import weighted_standardisation as dense_standardisation
from skmoe.inference import standard_errors
from tests._tolerances import tol

FORMATS = [sp.csr_matrix, sp.csc_matrix, sp.csr_array]
# EM with a fixed number of iterations (tol=0): both fits run the same steps,
# so they agree to the rounding that the iterations amplify (far below 1e-6).
RTOL = 1e-6


def _design(n=600, seed=0):
    """One-hot columns (sparse) beside dense columns with offsets, and a target of two regimes."""
    rng = np.random.RandomState(seed)
    levels = rng.randint(0, 6, size=(n, 2))
    X = np.zeros((n, 14))
    X[np.arange(n), levels[:, 0]] = 1.0
    X[np.arange(n), 6 + levels[:, 1]] = 1.0
    X[:, 12:] = rng.standard_normal((n, 2)) + [3.0, -1.0]
    X[rng.uniform(size=n) < 0.4, 13] = 0.0
    effect = rng.standard_normal(12)
    regime = X[:, 12] > 3.0
    y = X[:, :12] @ effect + np.where(regime, 2.0 * X[:, 12], -X[:, 12]) + 0.2 * rng.standard_normal(n)
    return X, y


def _fit(estimator, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **kw)


def _assert_same_fit(sparse, dense, rtol=RTOL):
    assert sparse.n_experts_ == dense.n_experts_
    atol = rtol * max(1.0, max(np.abs(e.coef_).max() for e in dense.experts_))
    for a, b in zip(sparse.experts_, dense.experts_):
        assert_allclose(a.coef_, b.coef_, rtol=rtol, atol=atol)
        assert_allclose(a.intercept_, b.intercept_, rtol=rtol, atol=atol)
    assert_allclose(sparse.log_likelihood_curve_, dense.log_likelihood_curve_, rtol=rtol)
    assert_allclose(sparse.objective_curve_, dense.objective_curve_, rtol=rtol)
    gate_atol = rtol * max(1.0, np.abs(dense.gate_.coef_).max())
    assert_allclose(sparse.gate_.coef_, dense.gate_.coef_, rtol=rtol, atol=gate_atol)
    assert_allclose(sparse.gate_.intercept_, dense.gate_.intercept_, rtol=rtol, atol=gate_atol)
    assert_allclose(sparse.expert_share_, dense.expert_share_, rtol=rtol)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_and_dense_regression_fits_agree(fmt, weighted):
    X, y = _design()
    kw = {"sample_weight": np.random.RandomState(1).randint(0, 3, size=len(y)).astype(float)} if weighted else {}
    params = {"n_experts": 3, "max_iter": 15, "tol": 0.0, "random_state": 0}
    dense = _fit(MixtureOfExpertsRegressor(**params), X, y, **kw)
    sparse = _fit(MixtureOfExpertsRegressor(**params), fmt(X), y, **kw)
    _assert_same_fit(sparse, dense)
    Xs = fmt(X)
    assert_allclose(sparse.predict(Xs), dense.predict(X), rtol=RTOL, atol=RTOL)
    std_s = sparse.predict(Xs, return_std=True)[1]
    std_d = dense.predict(X, return_std=True)[1]
    assert_allclose(std_s, std_d, rtol=RTOL)
    assert_allclose(sparse.predict_quantiles(Xs, [0.1, 0.5, 0.9]),
                    dense.predict_quantiles(X, [0.1, 0.5, 0.9]), rtol=RTOL, atol=RTOL)
    assert_allclose(sparse.predict_gate(Xs), dense.predict_gate(X), atol=RTOL)
    assert_allclose(sparse.log_prob(Xs, y), dense.log_prob(X, y), rtol=RTOL, atol=RTOL)
    assert_allclose(sparse.predict_responsibilities(Xs, y), dense.predict_responsibilities(X, y), atol=RTOL)
    # A model fitted on dense data predicts sparse data, and the other way round.
    assert_allclose(dense.predict(Xs), dense.predict(X), rtol=tol(cond=1e3))
    assert_allclose(sparse.predict(X), sparse.predict(Xs), rtol=tol(cond=1e3))


def test_sparse_and_dense_classification_fits_agree():
    X, y = _design(seed=2)
    labels = np.where(y > np.median(y), "high", "low")
    params = {"n_experts": 2, "max_iter": 8, "tol": 0.0, "random_state": 0,
                  "expert": LogisticRegression(C=10.0, tol=1e-10, max_iter=1000)}
    dense = _fit(MixtureOfExpertsClassifier(**params), X, labels)
    sparse = _fit(MixtureOfExpertsClassifier(**params), sp.csr_matrix(X), labels)
    # LogisticRegression's own L-BFGS on sparse and dense data: equal to its tolerance.
    _assert_same_fit(sparse, dense, rtol=1e-5)
    Xs = sp.csc_matrix(X)
    assert_allclose(sparse.predict_proba(Xs), dense.predict_proba(X), atol=1e-6)
    assert_array_equal(sparse.predict(Xs), dense.predict(X))
    assert_allclose(sparse.log_prob(Xs, labels), dense.log_prob(X, labels), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("Estimator", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier])
def test_pipeline_with_a_sparse_one_hot_encoder(Estimator):
    rng = np.random.RandomState(3)
    n = 500
    frame_cat = rng.choice(["a", "b", "c", "d"], size=(n, 2))
    numeric = rng.standard_normal((n, 1))
    X = np.empty((n, 3), dtype=object)
    X[:, :2], X[:, 2] = frame_cat, numeric[:, 0]
    y = (frame_cat[:, 0] == "a") * 2.0 + np.where(numeric[:, 0] > 0, numeric[:, 0], -2 * numeric[:, 0])
    y = y + 0.1 * rng.standard_normal(n)
    if Estimator is MixtureOfExpertsClassifier:
        y = np.where(y > np.median(y), 1, 0)
        expert = LogisticRegression(C=10.0, tol=1e-10, max_iter=1000)
        rtol = 1e-5
    else:
        expert, rtol = LinearRegression(), RTOL

    def pipeline(sparse_output):
        encoder = ColumnTransformer(
            [("cat", OneHotEncoder(sparse_output=sparse_output), [0, 1])],
            remainder="passthrough", sparse_threshold=1.0 if sparse_output else 0.0,
        )
        model = Estimator(2, expert=expert, max_iter=10, tol=0.0, random_state=0)
        return make_pipeline(encoder, model)

    sparse = _fit(pipeline(True), X, y)
    dense = _fit(pipeline(False), X, y)
    assert sp.issparse(sparse[0].transform(X))
    _assert_same_fit(sparse[-1], dense[-1], rtol=rtol)
    assert_allclose(sparse.predict(X), dense.predict(X), rtol=rtol, atol=rtol)


def test_generic_experts_get_the_sparse_matrix():
    X = _design(seed=4)[0]
    counts = np.random.RandomState(4).poisson(np.exp(0.2 * X[:, 12]))
    seen = []

    class Recording(PoissonRegressor):
        def fit(self, X, y, sample_weight=None):
            seen.append(sp.issparse(X))
            return super().fit(X, y, sample_weight=sample_weight)

    params = {"n_experts": 2, "likelihood": "poisson", "max_iter": 6, "tol": 0.0, "random_state": 0}
    expert = Recording(alpha=1e-3, solver="newton-cholesky", tol=1e-10)
    sparse = _fit(MixtureOfExpertsRegressor(expert=expert, **params), sp.csr_matrix(X), counts)
    assert seen and all(seen)
    dense = _fit(MixtureOfExpertsRegressor(expert=expert, **params), X, counts)
    _assert_same_fit(sparse, dense, rtol=1e-5)


def test_tree_experts_and_tree_init_on_sparse_input():
    X, y = _design(seed=5)
    model = MixtureOfExpertsRegressor(3, expert=DecisionTreeRegressor(max_depth=3), init="tree",
                                      max_iter=5, random_state=0)
    pred = _fit(model, sp.csr_matrix(X), y).predict(sp.csc_matrix(X))
    assert np.all(np.isfinite(pred)) and model.score(sp.csr_matrix(X), y) > 0.5


@pytest.mark.parametrize("params", [
    {"gate_features": [12, 13]},
    {"expert_features": list(range(12)) + [12]},
    {"gate_features": [12, 13], "expert_features": np.arange(13)},
    {"top_k": 1, "n_experts": 3},
    {"algorithm": "cem"},
    {"routing": "expert_choice", "balance": "uniform"},
    {"init": "random"},
    {"init": "tree"},
    {"expert": Ridge(alpha=0.5)},
    {"min_prior": 0.05},
])
def test_options_agree_on_sparse_and_dense_input(params):
    X, y = _design(seed=6)
    params = {"n_experts": 2, "max_iter": 8, "tol": 0.0, "random_state": 0, **params}
    dense = _fit(MixtureOfExpertsRegressor(**params), X, y)
    sparse = _fit(MixtureOfExpertsRegressor(**params), sp.csr_matrix(X), y)
    _assert_same_fit(sparse, dense)
    assert_allclose(sparse.predict(sp.csr_matrix(X)), dense.predict(X), rtol=RTOL, atol=RTOL)


def test_warm_start_continues_a_sparse_fit():
    X, y = _design(seed=7)
    Xs = sp.csr_matrix(X)
    once = _fit(MixtureOfExpertsRegressor(2, max_iter=8, tol=0.0, random_state=0), Xs, y)
    twice = MixtureOfExpertsRegressor(2, max_iter=4, tol=0.0, random_state=0, warm_start=True)
    _fit(twice, Xs, y)
    _fit(twice, Xs, y)
    assert twice.log_likelihood_ >= once.log_likelihood_curve_[4] - tol(cond=1e3)
    dense = MixtureOfExpertsRegressor(2, max_iter=4, tol=0.0, random_state=0, warm_start=True)
    _fit(dense, X, y)
    _fit(dense, X, y)
    _assert_same_fit(twice, dense)


def test_custom_clusterer_init_on_sparse_input():
    X, y = _design(seed=8)
    model = MixtureOfExpertsRegressor(2, init=KMeans(2, n_init=3, random_state=0), max_iter=5,
                                      random_state=0)
    assert _fit(model, sp.csr_matrix(X), y).score(sp.csr_matrix(X), y) > 0.5


class _DenseOnlyRegressor(RegressorMixin, BaseEstimator):
    """A user's expert whose tags do not declare sparse input."""

    def fit(self, X, y, sample_weight=None):
        self.mean_ = float(np.average(y, weights=sample_weight))
        return self

    def predict(self, X):
        return np.full(X.shape[0], self.mean_)


class _DenseOnlyGate(LinearGate):
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


@pytest.mark.parametrize("params, match", [
    ({"expert": _DenseOnlyRegressor()}, r"expert 0 \(_DenseOnlyRegressor\) does not accept sparse X"),
    ({"expert": [LinearRegression(), make_pipeline(_DenseOnlyRegressor())]},
     r"expert 1 \(Pipeline\) does not accept sparse X"),
    ({"gate": _DenseOnlyGate()}, r"gate=_DenseOnlyGate does not accept sparse X"),
    ({"init": "gmm"}, r"init='gmm' fits full-covariance Gaussians, which sparse X"),
])
def test_parts_that_refuse_sparse_input_are_named(params, match):
    X, y = _design(n=100)
    model = MixtureOfExpertsRegressor(2, **params)
    assert not get_tags(model).input_tags.sparse
    with pytest.raises(TypeError, match=match):
        model.fit(sp.csr_matrix(X), y)
    assert not hasattr(model, "experts_")
    _fit(model, X, y)  # dense data: the same parts fit
    if "init" in params:  # the initialisation is done: the fitted model takes sparse data
        assert_allclose(model.predict(sp.csr_matrix(X)), model.predict(X), rtol=tol(cond=1e3))
    else:  # the fitted part still refuses, named
        with pytest.raises(TypeError, match=match):
            model.predict(sp.csr_matrix(X))


@pytest.mark.parametrize("params", [{"gate": "mlp"}, {"backend": "torch"}])
def test_neural_and_torch_gates_refuse_sparse_input_through_the_combination_table(params):
    if params.get("backend") == "torch":
        pytest.importorskip("torch")
    X, y = _design(n=100)
    model = MixtureOfExpertsRegressor(2, **params)
    assert not get_tags(model).input_tags.sparse
    with pytest.raises(TypeError, match=r"input='sparse'.*(densify X|sparse X needs the NumPy linear gate)"):
        model.fit(sp.csr_matrix(X), y)
    # Fitted on dense data, such a model refuses sparse data to predict, naming the gate.
    _fit(model, X, y)
    with pytest.raises(TypeError, match=r"gate=\w+ does not accept sparse X"):
        model.predict(sp.csr_matrix(X))


def test_tags_declare_sparse_input_for_the_default_models():
    assert get_tags(MixtureOfExpertsRegressor()).input_tags.sparse
    assert get_tags(MixtureOfExpertsClassifier()).input_tags.sparse
    assert get_tags(MixtureOfExpertsRegressor(expert=DecisionTreeRegressor())).input_tags.sparse
    assert get_tags(LinearGate()).input_tags.sparse


def test_standard_errors_refuse_sparse_input_clearly():
    X, y = _design(n=300)
    model = _fit(MixtureOfExpertsRegressor(2, random_state=0), sp.csr_matrix(X), y)
    with pytest.raises(TypeError, match="[Ss]parse"):
        standard_errors(model, sp.csr_matrix(X), y)


@pytest.mark.parametrize("dense_share", [0.25, 1.1], ids=["dense-columns-split", "all-sparse"])
def test_sparse_gram_matrices_equal_the_dense_ones(dense_share, monkeypatch):
    # Columns 12 and 13 are non-zero in 100 % and 60 % of the rows: with the
    # default share they take the dense products, with 1.1 the sparse ones.
    monkeypatch.setattr("skmoe._sparse_gram._DENSE_SHARE", dense_share)
    X, y = _design(n=2_000, seed=9)
    rng = np.random.RandomState(0)
    weights_T = rng.dirichlet(np.ones(3), size=len(y)).T.copy()
    weights_T[:, rng.uniform(size=len(y)) < 0.3] = 0.0  # rows without weight
    weights_T[2, : len(y) // 2] = 0.0  # an expert routed half the rows: the routed path
    sample_weight = rng.uniform(0.5, 2.0, size=len(y))
    _, y_offset = linear_offsets(sp.csr_matrix(X), y, weights_T, sample_weight)
    gram = sparse_gram_matrices(sp.csr_matrix(X), y, weights_T, y_offset, sample_weight)
    Z = np.column_stack([X, np.ones(len(y)), y - y_offset])
    expected = np.stack([(Z.T * (w * sample_weight)) @ Z for w in weights_T])
    assert_array_equal(gram, gram.transpose(0, 2, 1))
    assert_allclose(gram, expected, rtol=tol(cond=len(y)), atol=tol(cond=np.abs(expected).max()))
    templates = [LinearRegression(), Ridge(alpha=0.3), LinearRegression(fit_intercept=False)]
    sparse = fit_linear_experts(templates, sp.csr_matrix(X.astype(np.float32)), y, weights_T, sample_weight)
    dense = fit_linear_experts(templates, X.astype(np.float32), y, weights_T, sample_weight)
    for a, b in zip(sparse, dense):
        assert_allclose(a.coef_, b.coef_, rtol=1e-9, atol=1e-9)
        assert_allclose(a.intercept_, b.intercept_, rtol=1e-9, atol=1e-9)


def test_sparse_standardisation_equals_the_dense_one():
    X, _ = _design(n=800, seed=10)
    weight = np.random.RandomState(0).uniform(size=800)
    weight /= weight.sum()
    X[:, 3] = 0.0  # a constant column: scale 1
    mean, scale = weighted_standardisation(sp.csr_matrix(X), weight)
    mean_d, scale_d = dense_standardisation(X, weight)
    assert_allclose(mean, mean_d, atol=tol(cond=10))
    assert_allclose(scale, scale_d, rtol=tol(cond=10))
    assert scale[3] == 1.0


def test_duplicate_entries_are_summed_without_touching_the_callers_matrix():
    X, y = _design(n=300, seed=11)
    coo = sp.csr_matrix(X).tocoo()  # row-major
    # Every entry stored twice, as two halves: the same matrix, not in canonical form.
    raw = sp.csr_matrix(
        (np.repeat(coo.data / 2, 2), np.repeat(coo.col, 2),
         np.r_[0, np.cumsum(2 * np.bincount(coo.row, minlength=X.shape[0]))]), shape=X.shape,
    )
    assert not raw.has_canonical_format
    assert_allclose(raw.toarray(), X)
    before = raw.data.copy()
    params = {"n_experts": 2, "max_iter": 6, "tol": 0.0, "random_state": 0}
    _assert_same_fit(_fit(MixtureOfExpertsRegressor(**params), raw, y),
                     _fit(MixtureOfExpertsRegressor(**params), X, y))
    assert_array_equal(raw.data, before)


def test_sparse_input_is_never_densified():
    # n x p = 40,000 x 1,010 would be 323 MB dense; the sparse matrix is 5 MB.
    rng = np.random.RandomState(12)
    n, n_levels = 40_000, 100
    levels = rng.randint(0, n_levels, size=(n, 10))
    rows = np.repeat(np.arange(n), 10)
    onehot = sp.csr_matrix((np.ones(n * 10), (rows, (levels + n_levels * np.arange(10)).ravel())),
                           shape=(n, 10 * n_levels))
    numeric = rng.standard_normal((n, 10))
    X = sp.hstack([onehot, sp.csr_matrix(numeric)], format="csr")
    y = numeric[:, 0] * (numeric[:, 1] > 0) + 0.1 * rng.standard_normal(n)
    dense_bytes = 8 * n * X.shape[1]
    model = MixtureOfExpertsRegressor(2, expert=Ridge(alpha=1.0), max_iter=2, random_state=0)
    tracemalloc.start()
    try:
        _fit(model, X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The Gram matrices (2 x 1,012^2 doubles, 16 MB) and their solves dominate.
    assert peak < dense_bytes / 4


def test_sparse_gram_matrices_do_not_depend_on_the_thread_count(monkeypatch):
    from skmoe.utils import _threads

    X, y = _design(n=3_000, seed=13)
    weights_T = np.random.RandomState(0).dirichlet(np.ones(5), size=len(y)).T.copy()
    Xs = sp.csr_matrix(X)
    with _threads.row_parallel(n_rows=1):
        one = sparse_gram_matrices(Xs, y, weights_T, 0.5)
    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr("skmoe._sparse.SPARSE_BLOCK_NNZ", 2_000)  # several blocks per expert
    with _threads.row_parallel():
        several = sparse_gram_matrices(Xs, y, weights_T, 0.5)
    assert_allclose(several, one, rtol=tol(cond=len(y)), atol=tol(cond=np.abs(one).max()))
    monkeypatch.setattr("skmoe._sparse.SPARSE_BLOCK_NNZ", 10**9)
    with _threads.row_parallel():
        threaded = sparse_gram_matrices(Xs, y, weights_T, 0.5)
    assert_array_equal(threaded, one)  # the experts' sums run in row order in any thread
