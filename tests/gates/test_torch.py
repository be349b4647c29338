"""Tests of the PyTorch gate, :class:`skmoe.gates.TorchGate`.

Tests needing PyTorch request the ``torch`` fixture, which skips them when it
is missing; the tests of the error raised without PyTorch always run.
"""

import pickle
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmoe.gates import LinearGate, TorchGate
from skmoe.gates._network import (
    layer_shapes,
    pack,
    standardise_first_layer,
    weighted_standardisation,
)
from skmoe.gates._softmax import SoftmaxObjective
from skmoe.utils._optional import import_torch

# predict_proba of TorchGate(hidden_layer_sizes=()) and LinearGate, both run to
# a gradient tolerance of 1e-7 on the same convex objective (measured: ~2e-6).
AGREEMENT_RTOL = 1e-5


@pytest.fixture
def torch():
    """PyTorch, limited to one thread: these problems are small, and on a shared
    two-core runner its thread pool oversubscribes the CPU (measured 30x slower)."""
    torch = pytest.importorskip("torch")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(n_threads)


def _soft_problem(n=400, n_features=4, n_experts=3, seed=0):
    """Soft targets from a softmax gate on badly scaled, shifted features."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features) * [1.0, 5.0, 0.2, 3.0][:n_features]
    X += [0.0, 10.0, -1.0, 2.0][:n_features]
    W = rng.randn(n_experts, n_features)
    Z = ((X - X.mean(axis=0)) / X.std(axis=0)) @ W.T
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    resp = 0.7 * P + 0.3 * rng.dirichlet(np.ones(n_experts), n)
    sample_weight = rng.uniform(0.5, 1.5, n)
    return X, resp, sample_weight


def _xor_problem(n=1000, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, size=(n, 2))
    labels = (X[:, 0] * X[:, 1] > 0).astype(int)
    return X, np.eye(2)[labels], labels


def test_linear_torch_gate_agrees_with_linear_gate(torch):
    X, resp, sample_weight = _soft_problem()
    numpy_gate = LinearGate().fit(X, resp, sample_weight)
    torch_gate = TorchGate(hidden_layer_sizes=(), device="cpu")
    torch_gate.fit(X, resp, sample_weight)
    assert_allclose(
        torch_gate.predict_proba(X), numpy_gate.predict_proba(X), rtol=AGREEMENT_RTOL
    )
    assert_allclose(torch_gate.loss_, numpy_gate.loss_, rtol=1e-10)
    assert torch_gate.n_parameters_ == numpy_gate.n_parameters_
    log_proba = torch_gate.predict_log_proba(X)
    assert isinstance(log_proba, np.ndarray)
    assert log_proba.T.flags.c_contiguous


def test_mlp_torch_gate_trains_and_has_the_numpy_objective(torch):
    X, resp, labels = _xor_problem()
    gate = TorchGate(hidden_layer_sizes=(16,), max_iter=200, device="cpu", random_state=0)
    gate.fit(X, resp)
    assert (gate.predict(X) == labels).mean() >= 0.95
    assert gate.n_parameters_ == (16 * 2 + 16) + (2 * 16 + 2) - (16 + 1)
    # The loss TorchGate reports is MLPGate's objective at TorchGate's weights.
    weight = np.full(len(X), 1 / len(X))
    mean, scale = weighted_standardisation(X, weight)
    shapes = layer_shapes(2, (16,), 2)
    objective = SoftmaxObjective(
        X, np.ascontiguousarray(resp.T), weight, mean, scale, gate.alpha, shapes, "tanh"
    )
    theta = pack(*standardise_first_layer(gate.coefs_, gate.intercepts_, mean, scale))
    assert_allclose(objective(theta)[0], gate.loss_, rtol=1e-8)


def test_warm_start_and_reproducibility(torch):
    X, resp, _ = _xor_problem(n=300)
    params = dict(hidden_layer_sizes=(4,), max_iter=10, device="cpu", random_state=0)
    a = TorchGate(**params).fit(X, resp)
    b = TorchGate(**params).fit(X, resp)
    for wa, wb in zip(a.coefs_, b.coefs_):
        assert_array_equal(wa, wb)
    loss = a.loss_
    a.fit(X, resp)  # continues from the fitted weights
    assert a.loss_ <= loss


def test_device_tensor_of_x_is_cached(torch):
    X, resp, sample_weight = _soft_problem(n=100)
    gate = TorchGate(device="cpu").fit(X, resp, sample_weight)
    cached = gate._X_cache[2]
    gate.fit(X, resp, sample_weight)
    assert gate._X_cache[2] is cached
    X2 = X.copy()
    gate.fit(X2, resp, sample_weight)
    assert gate._X_cache[2] is not cached
    assert gate._X_cache[1] is X2


def test_pickle_round_trip(torch):
    X, resp, labels = _xor_problem(n=300)
    gate = TorchGate(hidden_layer_sizes=(8,), max_iter=50, device="cpu", random_state=0)
    gate.fit(X, resp)
    assert "_X_cache" in gate.__dict__
    restored = pickle.loads(pickle.dumps(gate))
    assert "_X_cache" not in restored.__dict__
    assert "_X_cache" in gate.__dict__  # pickling does not touch the original
    assert isinstance(restored.coefs_[0], np.ndarray)
    assert_allclose(restored.predict_proba(X), gate.predict_proba(X))
    restored.fit(X, resp)


def test_cuda_unavailable_raises(torch):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    X, resp, _ = _soft_problem(n=20)
    with pytest.raises(ValueError, match="device='cuda'"):
        TorchGate(device="cuda").fit(X, resp)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda(torch, dtype):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    X, resp, sample_weight = _soft_problem()
    X = X.astype(dtype)
    gate = TorchGate(device="cuda").fit(X, resp, sample_weight)
    assert gate.device_.startswith("cuda")
    log_proba = gate.predict_log_proba(X)
    assert isinstance(log_proba, np.ndarray)
    reference = LinearGate().fit(X.astype(np.float64), resp, sample_weight)
    # float32 on the GPU: agreement limited by single precision.
    rtol, atol = (1e-3, 1e-4) if dtype == np.float32 else (AGREEMENT_RTOL, 0)
    proba = np.exp(log_proba.astype(np.float64))
    assert_allclose(proba, reference.predict_proba(X), rtol=rtol, atol=atol)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=rtol)


def test_missing_torch_gives_install_advice(monkeypatch):
    # None in sys.modules makes ``import torch`` raise ImportError.
    monkeypatch.setitem(sys.modules, "torch", None)
    message = r"backend='torch' requires PyTorch; install it with `pip install torch`"
    with pytest.raises(ImportError, match=message):
        import_torch()
    X, resp, _ = _soft_problem(n=20)
    with pytest.raises(ImportError, match=message):
        TorchGate().fit(X, resp)


def test_importing_gates_does_not_import_torch():
    code = "import sys, skmoe.gates; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
