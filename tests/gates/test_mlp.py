"""Tests of the NumPy MLP gate, :class:`skmoe.gates.MLPGate`."""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

from skmoe.gates import LinearGate, MLPGate
from skmoe.gates._network import weighted_standardisation
from skmoe.utils._threads import row_parallel


def _xor_problem(n=1000, seed=0):
    """Two experts, one for the quadrants where x0 * x1 > 0: not linearly separable."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, size=(n, 2))
    labels = (X[:, 0] * X[:, 1] > 0).astype(int)
    return X, np.eye(2)[labels], labels


def test_solves_xor_gating_that_linear_gate_cannot():
    X, resp, labels = _xor_problem()
    gate = MLPGate(random_state=0).fit(X, resp)
    assert (gate.predict(X) == labels).mean() >= 0.95
    assert (LinearGate().fit(X, resp).predict(X) == labels).mean() < 0.7
    X_test, _, labels_test = _xor_problem(seed=1)
    assert (gate.predict(X_test) == labels_test).mean() >= 0.95


def test_no_hidden_layer_is_the_linear_gate():
    X, resp, _ = _xor_problem(n=300)
    resp = 0.8 * resp + 0.1
    mlp = MLPGate(hidden_layer_sizes=(), alpha=1e-4).fit(X, resp)
    linear = LinearGate(alpha=1e-4).fit(X, resp)
    assert_allclose(mlp.predict_proba(X), linear.predict_proba(X), rtol=1e-6)
    assert mlp.n_parameters_ == linear.n_parameters_


def test_n_parameters():
    X, resp, _ = _xor_problem(n=50)
    gate = MLPGate(hidden_layer_sizes=(16, 4), max_iter=5).fit(X, resp)
    # (16 x 2 + 16) + (4 x 16 + 4) + (2 x 4 + 2), less the softmax redundancy 4 + 1.
    assert gate.n_parameters_ == 48 + 68 + 10 - 5
    assert [c.shape for c in gate.coefs_] == [(16, 2), (4, 16), (2, 4)]
    assert [b.shape for b in gate.intercepts_] == [(16,), (4,), (2,)]


def test_warm_start():
    X, resp, _ = _xor_problem(n=400)
    resp = 0.9 * resp + 0.05
    gate = MLPGate(alpha=1e-2, max_iter=2000, random_state=0).fit(X, resp)
    cold_iter = gate.n_iter_
    assert cold_iter < 2000  # converged
    assert gate.fit(X, resp).n_iter_ <= 3
    resp2 = 0.97 * resp + 0.03 * np.random.RandomState(1).dirichlet([1, 1], len(X))
    assert gate.fit(X, resp2).n_iter_ < cold_iter
    # A new architecture cannot warm-start: it is initialised afresh.
    gate.set_params(hidden_layer_sizes=(3,)).fit(X, resp2)
    assert [c.shape for c in gate.coefs_] == [(3, 2), (2, 3)]


def test_reproducible_with_random_state():
    X, resp, _ = _xor_problem(n=200)
    a = MLPGate(max_iter=20, random_state=0).fit(X, resp)
    b = MLPGate(max_iter=20, random_state=0).fit(X, resp)
    c = MLPGate(max_iter=20, random_state=1).fit(X, resp)
    for wa, wb in zip(a.coefs_, b.coefs_):
        assert_array_equal(wa, wb)
    assert not np.allclose(a.coefs_[0], c.coefs_[0])


def test_pickle_round_trip():
    X, resp, _ = _xor_problem(n=200)
    gate = MLPGate(max_iter=30, random_state=0).fit(X, resp)
    restored = pickle.loads(pickle.dumps(gate))
    assert_array_equal(restored.predict_log_proba(X), gate.predict_log_proba(X))
    restored.fit(X, resp)  # warm start from the restored weights


@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic"])
def test_float32_input_stays_float32(activation):
    X, resp, labels = _xor_problem(n=500)
    X32 = X.astype(np.float32)
    gate = MLPGate(activation=activation, random_state=0).fit(X32, resp)
    log_proba = gate.predict_log_proba(X32)
    assert log_proba.dtype == np.float32
    assert log_proba.T.flags.c_contiguous
    assert np.all(np.isfinite(log_proba))
    assert (gate.predict(X32) == labels).mean() > 0.9


def test_sample_weight_two_equals_duplicated_row():
    X, resp, _ = _xor_problem(n=60)
    resp = 0.8 * resp + 0.1
    sample_weight = np.ones(len(X))
    sample_weight[3] = 2.0
    params = {"hidden_layer_sizes": (3,), "alpha": 1e-2, "max_iter": 50, "random_state": 0}
    weighted = MLPGate(**params).fit(X, resp, sample_weight=sample_weight)
    index = np.r_[np.arange(len(X)), 3]
    duplicated = MLPGate(**params).fit(X[index], resp[index])
    assert_allclose(weighted.predict_proba(X), duplicated.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"activation": "softsign"}, "activation"),
        ({"hidden_layer_sizes": (4, 0)}, "hidden_layer_sizes"),
        ({"alpha": -1.0}, "alpha"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_invalid_parameters(params, match):
    X, resp, _ = _xor_problem(n=20)
    with pytest.raises(ValueError, match=match):
        MLPGate(**params).fit(X, resp)


def test_wrong_number_of_features_at_predict():
    X, resp, _ = _xor_problem(n=20)
    gate = MLPGate(max_iter=5, random_state=0).fit(X, resp)
    with pytest.raises(ValueError, match="X has 5 features, but MLPGate is expecting 2"):
        gate.predict_log_proba(np.ones((3, 5)))


def test_penalty_covers_every_layer():
    X, resp, _ = _xor_problem(n=300)
    X = X * [10.0, 0.1] + 5.0
    gate = MLPGate(hidden_layer_sizes=(4, 3), alpha=0.05, max_iter=50, random_state=0)
    gate.fit(X, resp)
    _, scale = weighted_standardisation(X, np.full(len(X), 1 / len(X)))
    squares = np.sum((gate.coefs_[0] * scale) ** 2) + sum(np.sum(W**2) for W in gate.coefs_[1:])
    assert_allclose(gate.penalty(), 0.5 * 0.05 * squares, rtol=1e-10)
    cross_entropy = -np.mean(np.sum(resp * gate.predict_log_proba(X), axis=1))
    assert_allclose(gate.loss_, cross_entropy + gate.penalty(), rtol=1e-10)


def test_row_threads_split_the_rows_of_predict():
    X, resp, _ = _xor_problem(n=9000)
    gate = MLPGate(hidden_layer_sizes=(5,), max_iter=10, random_state=0).fit(X, resp)
    assert MLPGate.splits_rows
    expected = gate.predict_log_proba(X)
    with threadpool_limits(limits=2, user_api="blas"), row_parallel() as pool:
        assert pool.n_threads == 2
        got = gate.predict_log_proba(X)
    assert got.T.flags.c_contiguous
    assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------
# Generalised EM: a bounded, warm-started budget per M-step


def check_em_objective_rises(backend):
    """With linear experts the EM objective never falls (also run for the torch backend)."""
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.datasets import make_gated_regression
    from skmoe.gates._protocol import _NEURAL_GATE_ITER_PER_M_STEP

    X, y = make_gated_regression(600, n_features=3, n_experts=3, return_labels=False,
                                 random_state=1)
    moe = MixtureOfExpertsRegressor(
        n_experts=3, gate="mlp", backend=backend, device="cpu", max_iter=40, random_state=0
    ).fit(X, y)
    assert moe.gate_.max_iter == _NEURAL_GATE_ITER_PER_M_STEP
    curve = moe.objective_curve_
    assert len(curve) > 10
    # The experts' step is exact and the gate's lowers its loss.
    assert np.all(np.diff(curve) >= -1e-12 * np.abs(curve[1:]))


def test_em_objective_rises_with_the_bounded_gate_budget():
    check_em_objective_rises("numpy")


def test_curvature_pairs_are_kept_within_one_run_only():
    X, resp, _ = _xor_problem(n=300)
    resp = 0.9 * resp + 0.05
    gate = MLPGate(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    context = gate.prepare(X, None)
    resp_T = np.ascontiguousarray(resp.T)
    gate.fit_prepared(X, resp_T, context)
    memory = gate._lbfgs_state[2]
    assert 0 < len(memory) <= 5
    gate.fit_prepared(X, resp_T, context)  # the next M-step of the same run
    assert gate._lbfgs_state[2] is memory
    gate.fit(X, resp)  # a new context: a new memory
    assert gate._lbfgs_state[2] is not memory
    restored = pickle.loads(pickle.dumps(gate))
    assert "_lbfgs_state" not in restored.__dict__ and "_lbfgs_state" in gate.__dict__


def test_bounded_fits_continue_where_they_stopped():
    # Five fits of 4 iterations on the same targets, the pairs kept: the
    # loss falls at every fit, towards the loss of one long fit.
    X, resp, _ = _xor_problem(n=300)
    gate = MLPGate(hidden_layer_sizes=(6,), alpha=1e-3, max_iter=4, random_state=0)
    context, resp_T = gate.prepare(X, None), np.ascontiguousarray(resp.T)
    losses = [gate.fit_prepared(X, resp_T, context).loss_ for _ in range(5)]
    assert all(b < a for a, b in zip(losses, losses[1:]))
    long_fit = MLPGate(hidden_layer_sizes=(6,), alpha=1e-3, max_iter=20, random_state=0)
    assert losses[-1] <= 1.05 * long_fit.fit(X, resp).loss_


# ----------------------------------------------------------------------
# The MLP gates' L-BFGS (skmoe/gates/_lbfgs.py)


def _two_loop(pairs, grad):
    """``-H grad`` by the textbook two-loop recursion (Nocedal & Wright, Algorithm 7.4)."""
    q = -grad
    alphas = []
    for s, y in reversed(pairs):
        alpha = (s @ q) / (s @ y)
        alphas.append(alpha)
        q = q - alpha * y
    s, y = pairs[-1]
    q = q * (s @ y) / (y @ y)
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        q = q + (alpha - (y @ q) / (s @ y)) * s
    return q


def test_lbfgs_direction_is_the_two_loop_recursion():
    # The memory's matrix form of the recursion, as pairs come and the
    # oldest go, against the recursion written out.
    from skmoe.gates._lbfgs import LBFGSMemory

    rng = np.random.RandomState(0)
    n = 30
    A = rng.randn(n, n)
    H = A @ A.T + np.eye(n)  # positive definite: every pair has positive curvature
    memory, pairs = LBFGSMemory(size=4), []
    for _ in range(7):
        s = rng.randn(n)
        assert memory.add(s, H @ s)
        pairs = [*pairs, (s, H @ s)][-4:]
        grad = rng.randn(n)
        expected = _two_loop(pairs, grad)
        assert_allclose(memory.direction(grad), expected, rtol=1e-10,
                        atol=1e-12 * np.abs(expected).max())
    assert len(memory) == 4
    memory.clear()
    assert_allclose(memory.direction(grad), -grad)
