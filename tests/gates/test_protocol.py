"""Tests of the gate protocol: adapter, factory, capabilities of the built-in gates."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.validation import check_is_fitted

from skmoe.gates import BaseGate, LinearGate, MLPGate, TorchGate, check_gate
from skmoe.gates._network import count_parameters, weighted_standardisation
from skmoe.gates._protocol import (
    _GATE_ITER_PER_M_STEP,
    _NEURAL_GATE_ITER_PER_M_STEP,
    GateAdapter,
    make_gate,
)
from skmoe.gates._softmax import SoftmaxContext


class _ConstantGate(BaseEstimator):
    """A minimal user gate: the weighted mean of the targets, everywhere.

    Only ``fit``, ``predict_log_proba`` and ``get_params``: no ``prepare``,
    ``penalty``, ``remove_experts`` or ``n_parameters_``.
    """

    def __init__(self, floor=1e-12):
        self.floor = floor

    def fit(self, X, resp, sample_weight=None):
        resp = np.asarray(resp)
        assert resp.shape == (len(X), resp.shape[1])  # the public layout
        prior = np.average(resp, axis=0, weights=sample_weight)
        self.log_prior_ = np.log(np.maximum(prior, self.floor))
        return self

    def predict_log_proba(self, X):
        return np.tile(self.log_prior_, (len(X), 1))


def _problem(n=300, n_features=3, n_experts=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features) * [1.0, 10.0, 0.1][:n_features] + 2.0
    W = rng.randn(n_experts, n_features)
    Z = ((X - X.mean(axis=0)) / X.std(axis=0)) @ W.T
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    resp = 0.8 * P + 0.2 * rng.dirichlet(np.ones(n_experts), n)
    return X, resp, rng.uniform(0.5, 2.0, n)


def _gates():
    gates = [
        LinearGate(alpha=1e-2),
        MLPGate(hidden_layer_sizes=(4,), alpha=1e-2, max_iter=50, random_state=0),
        MLPGate(hidden_layer_sizes=(), alpha=1e-2),
    ]
    try:
        import torch  # noqa: F401
    except ImportError:
        return gates
    return gates + [
        TorchGate(alpha=1e-2, device="cpu"),
        TorchGate(hidden_layer_sizes=(4,), alpha=1e-2, max_iter=50, device="cpu", random_state=0),
    ]


GATES = _gates()
GATE_IDS = [f"{type(g).__name__}{g.get_params().get('hidden_layer_sizes', '')}" for g in GATES]


@pytest.fixture
def torch_one_thread():
    """PyTorch on one thread when present: small problems on a shared 2-core runner."""
    try:
        import torch
    except ImportError:
        yield
        return
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


# ----------------------------------------------------------------------
# The adapter on a minimal user gate


def test_adapter_on_a_minimal_gate():
    X, resp, sample_weight = _problem()
    resp_T = np.ascontiguousarray(resp.T)
    gate = GateAdapter(_ConstantGate())
    assert gate.prepare(X, sample_weight) is None
    assert gate.fit(X, resp_T, sample_weight, None) is gate
    log_proba_T = gate.log_proba_T(X)
    assert log_proba_T.shape == resp_T.shape
    assert log_proba_T.dtype == np.float64 and log_proba_T.flags.c_contiguous
    expected = np.log(np.average(resp, axis=0, weights=sample_weight))
    assert_allclose(log_proba_T[:, 0], expected)
    assert gate.penalty() == 0.0
    assert gate.n_parameters == 0
    assert gate.splits_rows is False


def test_adapter_drops_the_fitted_state_of_a_gate_that_cannot_remove_experts():
    X, resp, _ = _problem()
    user_gate = _ConstantGate(floor=1e-9)
    gate = GateAdapter(user_gate).fit(X, np.ascontiguousarray(resp.T), None, None)
    assert gate.remove_experts([0, 2]) is False
    assert gate.estimator is not user_gate
    assert gate.estimator.get_params() == {"floor": 1e-9}
    with pytest.raises(NotFittedError):
        check_is_fitted(gate.estimator)
    # The next fit starts cold with the new number of experts.
    kept = np.ascontiguousarray(resp[:, [0, 2]].T / resp[:, [0, 2]].sum(axis=1))
    assert gate.fit(X, kept, None, None).log_proba_T(X).shape == (2, len(X))


def test_adapter_reads_optional_capabilities_by_presence():
    class CountedGate(_ConstantGate):
        n_parameters_ = 7
        splits_rows = True
        penalty = "l2"  # a hyperparameter of that name is not a capability

    gate = GateAdapter(CountedGate())
    assert gate.n_parameters == 7 and gate.splits_rows is True
    assert gate.penalty() == 0.0


# ----------------------------------------------------------------------
# The adapter on the built-in gates


@pytest.mark.parametrize("template", GATES, ids=GATE_IDS)
def test_adapter_on_builtin_gates_is_the_public_fit(template, torch_one_thread):
    X, resp, sample_weight = _problem()
    public = template.__sklearn_clone__().fit(X, resp, sample_weight)
    gate = GateAdapter(template.__sklearn_clone__())
    context = gate.prepare(X, sample_weight)
    assert isinstance(context, SoftmaxContext)
    gate.fit(X, np.ascontiguousarray(resp.T), sample_weight, context)
    assert_allclose(gate.log_proba_T(X), public.predict_log_proba(X).T, rtol=1e-12, atol=1e-12)
    assert gate.penalty() == public.penalty() > 0
    assert gate.n_parameters == public.n_parameters_
    assert gate.splits_rows is type(template).splits_rows
    log_proba_T = gate.log_proba_T(X.astype(np.float32))
    assert log_proba_T.dtype == np.float32 and log_proba_T.flags.c_contiguous  # float32 kept


def test_splits_rows():
    assert BaseGate.splits_rows is False
    assert LinearGate.splits_rows and MLPGate.splits_rows
    assert TorchGate.splits_rows  # PyTorch threads, not BLAS's: the loop may hold BLAS to one


@pytest.mark.parametrize("template", GATES, ids=GATE_IDS)
def test_penalty_and_loss(template, torch_one_thread):
    X, resp, sample_weight = _problem()
    gate = template.__sklearn_clone__().fit(X, resp, sample_weight)
    weight = sample_weight / sample_weight.sum()
    _, scale = weighted_standardisation(X, weight)
    coefs = [gate.coef_] if hasattr(gate, "coef_") else gate.coefs_
    squares = np.sum((coefs[0] * scale) ** 2) + sum(np.sum(W**2) for W in coefs[1:])
    assert_allclose(gate.penalty(), 0.5 * gate.alpha * squares, rtol=1e-10)
    cross_entropy = -np.sum(weight[:, None] * resp * gate.predict_log_proba(X))
    assert_allclose(gate.loss_, cross_entropy + gate.penalty(), rtol=1e-10)


@pytest.mark.parametrize("template", GATES, ids=GATE_IDS)
def test_remove_experts(template, torch_one_thread):
    X, resp, sample_weight = _problem(n_experts=4)
    gate = template.__sklearn_clone__().fit(X, resp, sample_weight)
    proba, penalty = gate.predict_proba(X), gate.penalty()
    keep = [3, 0, 1]
    adapter = GateAdapter(gate)
    assert adapter.remove_experts(keep) is True
    assert adapter.estimator is gate
    # The softmax over the kept outputs: the probabilities renormalised.
    kept = proba[:, keep] / proba[:, keep].sum(axis=1, keepdims=True)
    assert_allclose(gate.predict_proba(X), kept, rtol=1e-10, atol=1e-14)
    assert gate.n_experts_ == 3
    coefs = [gate.coef_] if hasattr(gate, "coef_") else gate.coefs_
    assert gate.n_parameters_ == count_parameters([c.shape for c in coefs])
    assert adapter.n_parameters == gate.n_parameters_
    # The removed output's share of the penalty is gone.
    _, scale = weighted_standardisation(X, sample_weight / sample_weight.sum())
    last = coefs[-1] * scale if len(coefs) == 1 else coefs[-1]
    removed_share = penalty - gate.penalty()
    assert 0 < removed_share < penalty
    if len(coefs) == 1:
        assert_allclose(gate.penalty(), 0.5 * gate.alpha * np.sum(last**2), rtol=1e-10)
    # The next fit warm-starts from there: without penalty, targets equal to
    # the gate's own probabilities are already optimal.
    gate.set_params(alpha=0.0).fit(X, kept, sample_weight)
    assert gate.n_iter_ <= 1
    assert_allclose(gate.predict_proba(X), kept, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("keep", [[], [0, 0], [3], [-1], [[0, 1]], [0.0, 1.0]])
def test_remove_experts_checks_keep(keep):
    X, resp, _ = _problem()
    gate = LinearGate(max_iter=5).fit(X, resp)
    with pytest.raises(ValueError, match="keep must be distinct indices of the 3 experts"):
        gate.remove_experts(keep)


# ----------------------------------------------------------------------
# make_gate


SEED = int(np.random.RandomState(0).randint(np.iinfo(np.int32).max))


@pytest.mark.parametrize(
    "gate, backend, expected",
    [
        ("linear", "numpy", LinearGate(alpha=0.01, max_iter=_GATE_ITER_PER_M_STEP)),
        ("mlp", "numpy", MLPGate(alpha=0.01, max_iter=_NEURAL_GATE_ITER_PER_M_STEP,
                                 random_state=SEED)),
        # The same budget (and, linear, tolerance) as the NumPy gate.
        ("linear", "torch", TorchGate((), alpha=0.01, max_iter=_GATE_ITER_PER_M_STEP,
                                      tol=LinearGate().tol, device="cpu", random_state=SEED)),
        ("mlp", "torch", TorchGate((16,), alpha=0.01, max_iter=_NEURAL_GATE_ITER_PER_M_STEP,
                                   device="cpu", random_state=SEED)),
    ],
)
def test_make_gate_builds_the_builtin_gates(gate, backend, expected):
    rng = np.random.RandomState(0)
    made = make_gate(gate, backend=backend, alpha=0.01, device="cpu", random_state=rng)
    assert isinstance(made, GateAdapter)
    assert type(made.estimator) is type(expected)
    assert made.estimator.get_params() == expected.get_params()
    # One draw from the fit's RandomState, whatever the gate.
    assert rng.randint(10**6) == np.random.RandomState(0).randint(10**6, size=2)[1]
    # An int is the seed itself.
    made = make_gate(gate, backend=backend, alpha=0.01, device="cpu", random_state=SEED)
    assert made.estimator.get_params() == expected.get_params()


def test_make_gate_clones_a_gate_object_and_seeds_it():
    template = MLPGate(hidden_layer_sizes=(3,), random_state=None)
    made = make_gate(template, backend="numpy", alpha=0.5, device=None, random_state=42)
    assert made.estimator is not template and template.random_state is None
    assert made.estimator.get_params() == {**template.get_params(), "random_state": 42}
    # Without a random_state parameter: a plain clone.
    options = dict(backend="numpy", alpha=0.5, device=None, random_state=0)
    made = make_gate(_ConstantGate(floor=0.1), **options)
    assert made.estimator.get_params() == {"floor": 0.1}
    # An object is used whatever the backend.
    assert make_gate(LinearGate(), **{**options, "backend": "torch"}).splits_rows


@pytest.mark.parametrize(
    "gate, backend, error, match",
    [
        ("quadratic", "numpy", ValueError, "gate must be 'linear', 'mlp'"),
        ("linear", "jax", ValueError, "backend must be 'numpy' or 'torch'"),
        (LogisticRegression(), "numpy", TypeError, "not a gate"),
        (object(), "numpy", TypeError, "does not follow the gate protocol"),
    ],
)
def test_make_gate_errors(gate, backend, error, match):
    with pytest.raises(error, match=match):
        make_gate(gate, backend=backend, alpha=1e-4, device=None, random_state=0)


# ----------------------------------------------------------------------
# check_gate


@pytest.mark.parametrize(
    "estimator, kind", [(LogisticRegression(), "classifier"), (Ridge(), "regressor")]
)
def test_check_gate_refuses_classifiers_and_regressors(estimator, kind):
    estimator.predict_log_proba = lambda X: X  # Ridge: give it the protocol's methods
    with pytest.raises(TypeError) as info:
        check_gate(estimator)
    message = str(info.value)
    assert f"gate={estimator!r} is a scikit-learn {kind}, not a gate" in message
    assert "soft targets resp of shape (n_samples, n_experts)" in message
    assert "gate='linear'" in message and "BaseGate" in message


def test_check_gate_accepts_gates():
    check_gate(LinearGate())
    check_gate(_ConstantGate())

    class ClassifierLikeGate(LogisticRegression, BaseGate):
        """A BaseGate subclass is a gate, whatever else it is."""

    check_gate(ClassifierLikeGate())


def test_estimator_refuses_a_classifier_as_gate():
    from skmoe import MixtureOfExpertsRegressor

    X, resp, _ = _problem(n=50)
    with pytest.raises(TypeError, match="is a scikit-learn classifier, not a gate"):
        MixtureOfExpertsRegressor(n_experts=2, gate=LogisticRegression()).fit(X, resp[:, 0])


def test_removal_then_adapter_log_proba_layout():
    X, resp, _ = _problem()
    gate = GateAdapter(LinearGate(max_iter=5))
    gate.fit(X, np.ascontiguousarray(resp.T), None, gate.prepare(X, None))
    assert gate.remove_experts(np.array([2, 1]))
    log_proba_T = gate.log_proba_T(X)
    assert log_proba_T.shape == (2, len(X)) and log_proba_T.flags.c_contiguous
    assert_allclose(np.exp(log_proba_T).sum(axis=0), 1.0)


def test_adapter_honours_a_subclass_overriding_log_proba_T():
    # LinearGate's log_proba_prepared_T (no re-validation) stands for its own
    # log_proba_T only: a subclass that overrides log_proba_T is called.
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.gates import LinearGate

    calls = []

    class TemperedGate(LinearGate):
        def log_proba_T(self, X):
            calls.append(len(X))
            z = super().log_proba_T(X) / 2.0
            return z - np.logaddexp.reduce(z, axis=0)

    rng = np.random.RandomState(0)
    X = rng.randn(300, 2)
    y = np.where(X[:, 0] > 0, X[:, 1], -X[:, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moe = MixtureOfExpertsRegressor(2, gate=TemperedGate(), max_iter=5, random_state=0).fit(X, y)
    assert calls  # the E-steps used the override
    adapter = GateAdapter(moe.gate_).log_proba_T(X[:5])
    np.testing.assert_allclose(adapter, moe.gate_.log_proba_T(X[:5]))
    plain = LinearGate().fit(X, np.c_[X[:, 0] > 0, X[:, 0] <= 0].astype(float))
    np.testing.assert_array_equal(GateAdapter(plain).log_proba_T(X), plain.log_proba_T(X))
