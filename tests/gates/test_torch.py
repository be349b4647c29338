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
from tests.gates.test_mlp import check_em_objective_rises

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
    params = {"hidden_layer_sizes": (4,), "max_iter": 10, "device": "cpu", "random_state": 0}
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
    X, resp, _ = _xor_problem(n=300)
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


# ----------------------------------------------------------------------
# The same path as the NumPy gates


@pytest.mark.parametrize(
    "hidden, activation",
    [((), "tanh"), ((5,), "tanh"), ((5,), "relu"), ((5,), "logistic"), ((4, 3), "tanh")],
)
def test_objective_is_the_numpy_objective(torch, hidden, activation):
    # The written-out backward pass of the PyTorch gate, in blocks and two
    # chunks of row threads, against the NumPy objective in one block.
    from threadpoolctl import threadpool_limits

    from skmoe.gates import MLPGate
    from skmoe.gates._network import initial_parameters
    from skmoe.gates._softmax import prepare_context
    from skmoe.utils._threads import row_parallel

    rng = np.random.RandomState(0)
    X = rng.randn(20000, 3) * [1.0, 10.0, 0.1] + [5.0, -3.0, 2.0]
    resp_T = rng.dirichlet(np.ones(4), len(X)).T.copy()
    context = prepare_context(X, rng.uniform(0.5, 2.0, len(X)))
    shapes = layer_shapes(3, hidden, 4)
    theta = pack(*initial_parameters(shapes, activation, rng, resp_T @ context.weight))
    theta += 0.3 * rng.randn(theta.size)
    numpy_gate = MLPGate(hidden, activation=activation, alpha=0.1)
    loss, grad = SoftmaxObjective(
        X, resp_T, *context, 0.1, shapes, activation, block=len(X)
    )(theta)
    torch_gate = TorchGate(hidden, activation=activation, alpha=0.1, device="cpu")
    with threadpool_limits(limits=2), row_parallel() as pool:
        objective = torch_gate._objective(X, resp_T, context, shapes, pool)
        assert objective.block < len(X)
        torch_loss, torch_grad = objective(theta)
    assert numpy_gate.alpha == torch_gate.alpha
    # Two float64 implementations of the same sums, in other orders.
    tol = 1e3 * np.finfo(np.float64).eps
    assert abs(torch_loss - loss) <= tol * max(1.0, abs(loss))
    assert_allclose(torch_grad, grad, atol=tol * np.abs(grad).max())


@pytest.mark.parametrize("gate", ["mlp", "linear"])
def test_torch_backend_reproduces_numpy_backend(torch, gate):
    # The same start, optimiser and budget per M-step: whole fits agree to
    # rounding (before, 51 was the largest prediction difference here).
    from sklearn.datasets import load_diabetes

    from skmoe import MixtureOfExpertsRegressor

    X, y = load_diabetes(return_X_y=True)
    # Rounding differences grow along EM, and on this fit by about 3x per
    # iteration once the MLP gate's slow phase begins (measured: objective
    # 4e-11 and predictions 3e-8 relative at iteration 25, 1e-8 and 4e-6 at
    # 30, 1e-4 from iteration 40 of 64, as between two BLAS libraries): 25
    # iterations show the two backends' agreement.
    fits = {
        backend: MixtureOfExpertsRegressor(
            n_experts=3, gate=gate, backend=backend, device="cpu", random_state=0,
            max_iter=25,
        ).fit(X, y)
        for backend in ("numpy", "torch")
    }
    numpy_fit, torch_fit = fits["numpy"], fits["torch"]
    assert type(torch_fit.gate_) is TorchGate
    assert torch_fit.n_iter_ == numpy_fit.n_iter_
    assert_allclose(torch_fit.objective_curve_, numpy_fit.objective_curve_, rtol=1e-6)
    assert_allclose(torch_fit.predict(X), numpy_fit.predict(X), rtol=1e-6)


def test_em_objective_rises_with_the_bounded_gate_budget(torch):
    check_em_objective_rises("torch")


@pytest.mark.parametrize("hidden", [(), (5,)])
def test_problem_kept_within_one_run_gives_the_fit_of_a_new_one(torch, hidden):
    # The objective of an EM run is built once, then given each M-step's
    # targets: the same fits as an objective built anew for every M-step.
    X, resp, sample_weight = _soft_problem(n=500)
    targets = [resp, 0.5 * resp + 0.5 * np.roll(resp, 1, axis=1)]
    params = {"hidden_layer_sizes": hidden, "max_iter": 5, "device": "cpu", "random_state": 0}
    kept, fresh = TorchGate(**params), TorchGate(**params)
    context = kept.prepare(X, sample_weight)
    problem = None
    for target in targets:
        resp_T = np.ascontiguousarray(target.T)
        kept.fit_prepared(X, resp_T, context)
        fresh.__dict__.pop("_torch_state", None)
        fresh.fit_prepared(X, resp_T, context)
        assert problem is None or kept._torch_state.problem is problem
        problem = kept._torch_state.problem
        assert problem.weighted_resp_T is None  # released after the M-step
        for a, b in zip(kept.coefs_ + kept.intercepts_, fresh.coefs_ + fresh.intercepts_):
            assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    kept.fit(X, resp, sample_weight)  # a new run (a new context): a new problem
    assert kept._torch_state.problem is not problem
    assert "_torch_state" not in pickle.loads(pickle.dumps(kept)).__dict__


def test_row_threads_run_pytorch_on_one_thread(torch):
    # OpenMP's and MKL's thread counts are per thread: each row thread sets
    # its own, else its PyTorch kernels spin on every core.
    import threading

    from threadpoolctl import threadpool_info, threadpool_limits

    from skmoe.gates._network import initial_parameters
    from skmoe.gates._softmax import prepare_context
    from skmoe.utils._threads import row_parallel

    rng = np.random.RandomState(0)
    X = rng.randn(20000, 3)
    resp_T = rng.dirichlet(np.ones(3), len(X)).T.copy()
    context = prepare_context(X, None)
    shapes = layer_shapes(3, (16,), 3)  # enough multiply-adds for two row threads
    gate = TorchGate((16,), device="cpu")
    seen = []  # (thread, PyTorch's OpenMP threads there) per chunk of rows
    with threadpool_limits(limits=2), row_parallel() as pool:
        problem = gate._objective(X, resp_T, context, shapes, pool)
        rows = problem.network.rows

        def spy(*args):
            openmp = [info["num_threads"] for info in threadpool_info()
                      if info["user_api"] == "openmp" and "torch" in info["filepath"]]
            seen.append((threading.get_ident(), max(openmp, default=torch.get_num_threads())))
            return rows(*args)

        problem.network.rows = spy
        problem(pack(*initial_parameters(shapes, "tanh", rng, resp_T @ context.weight)))
    assert len(seen) == len(pool.bounds(len(X), n_cols=problem.n_cols)) == 2
    assert threading.get_ident() not in {thread for thread, _ in seen}
    assert {n_threads for _, n_threads in seen} == {1}


# ----------------------------------------------------------------------
# Mini-batches


def test_minibatch_training_is_reproducible_and_keeps_the_best_iterate(torch):
    X, resp, labels = _xor_problem(n=600)
    params = {"hidden_layer_sizes": (8,), "batch_size": 64, "learning_rate": 0.05,
              "epochs_per_step": 3, "device": "cpu", "random_state": 0}
    a = TorchGate(**params).fit(X, resp)
    b = TorchGate(**params).fit(X, resp)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(wa, wb)
    assert a.n_iter_ == 3 * 10  # 3 epochs of ceil(600 / 64) steps: a fixed budget
    other = TorchGate(**{**params, "random_state": 1}).fit(X, resp)
    assert not np.allclose(other.coefs_[0], a.coefs_[0])
    losses = [a.loss_]
    for _ in range(8):
        a.fit(X, resp)  # warm starts: never above the loss it started from
        assert a.loss_ <= losses[-1]
        losses.append(a.loss_)
    assert losses[-1] < losses[0]
    assert (a.predict(X) == labels).mean() > 0.9
    # Too large a step makes Adam diverge: the fit keeps its start.
    start = a.loss_
    a.set_params(learning_rate=1e3).fit(X, resp)
    assert a.loss_ <= start


def test_minibatch_em_fit_is_reproducible_and_monotone(torch):
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.datasets import make_gated_regression

    X, y = make_gated_regression(500, n_features=3, n_experts=2, return_labels=False,
                                 random_state=0)
    gate = TorchGate((8,), batch_size=100, learning_rate=0.02, device="cpu")
    fits = [MixtureOfExpertsRegressor(n_experts=2, gate=gate, max_iter=15,
                                      random_state=0).fit(X, y) for _ in range(2)]
    assert_array_equal(fits[0].objective_curve_, fits[1].objective_curve_)
    curve = fits[0].objective_curve_
    assert np.all(np.diff(curve) >= -1e-12 * np.abs(curve[1:]))
    assert "_torch_state" not in pickle.loads(pickle.dumps(fits[0].gate_)).__dict__


def test_adam_moments_carry_over_within_one_run(torch):
    X, resp, _ = _xor_problem(n=300)
    gate = TorchGate((4,), batch_size=100, device="cpu", random_state=0)
    context, resp_T = gate.prepare(X, None), np.ascontiguousarray(resp.T)
    for n_fits in (1, 2, 3):
        gate.fit_prepared(X, resp_T, context)
        assert gate._torch_state.adam["state"][0]["step"] == 3 * n_fits
    gate.fit(X, resp)  # a new run: Adam starts again
    assert gate._torch_state.adam["state"][0]["step"] == 3


# ----------------------------------------------------------------------
# A network of one's own


def _network(torch, n_features=2, n_outputs=2, width=8):
    return torch.nn.Sequential(
        torch.nn.Linear(n_features, width), torch.nn.Tanh(), torch.nn.Linear(width, n_outputs)
    )


def test_custom_module(torch):
    X, resp, labels = _xor_problem(n=400)
    torch.manual_seed(0)
    module = _network(torch)
    before = {name: value.clone() for name, value in module.state_dict().items()}
    gate = TorchGate(module=module, alpha=1e-3, max_iter=300, device="cpu").fit(X, resp)
    assert (gate.predict(X) == labels).mean() >= 0.95
    # The user's module is copied, never trained.
    for name, value in module.state_dict().items():
        assert torch.equal(value, before[name])
    assert set(gate.module_state_) == set(before)
    assert all(isinstance(v, np.ndarray) for v in gate.module_state_.values())
    assert gate.n_parameters_ == sum(p.numel() for p in module.parameters())
    # The penalty covers the weight matrices, not the biases.
    squares = sum(np.sum(v**2) for v in gate.module_state_.values() if v.ndim >= 2)
    assert_allclose(gate.penalty(), 0.5 * 1e-3 * squares, rtol=1e-10)
    cross_entropy = -np.mean(np.sum(resp * gate.predict_log_proba(X), axis=1))
    assert_allclose(gate.loss_, cross_entropy + gate.penalty(), rtol=1e-8)
    # Pickled without the live module; rebuilt from module_state_.
    restored = pickle.loads(pickle.dumps(gate))
    assert "_module" not in restored.__dict__
    assert_allclose(restored.predict_proba(X), gate.predict_proba(X), rtol=1e-12)
    # A warm start continues from the fitted network.
    loss = gate.loss_
    assert gate.fit(X, resp).loss_ <= loss


def test_custom_module_factory_is_seeded_and_checked(torch):
    X, resp, _ = _xor_problem(n=200)

    def factory(n_features, n_experts):
        return _network(torch, n_features, n_experts, width=4)

    a = TorchGate(module=factory, max_iter=3, device="cpu", random_state=0).fit(X, resp)
    b = TorchGate(module=factory, max_iter=3, device="cpu", random_state=0).fit(X, resp)
    for name, value in a.module_state_.items():
        assert_array_equal(value, b.module_state_[name])
    with pytest.raises(ValueError, match=r"logits of shape \(n_samples, 2\)"):
        TorchGate(module=_network(torch, n_outputs=3), device="cpu").fit(X, resp)
    with pytest.raises(TypeError, match="neither a torch.nn.Module nor a factory"):
        TorchGate(module=lambda n_features, n_experts: None, device="cpu").fit(X, resp)


def test_custom_module_remove_experts_and_em(torch):
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.datasets import make_gated_regression

    X, y = make_gated_regression(300, n_features=2, n_experts=3, return_labels=False,
                                 random_state=0)
    gate = TorchGate(module=lambda d, k: _network(torch, d, k, width=6), device="cpu")
    moe = MixtureOfExpertsRegressor(n_experts=3, gate=gate, max_iter=10, random_state=0)
    moe.fit(X, y)
    assert np.all(np.diff(moe.objective_curve_) >= -1e-12 * np.abs(moe.objective_curve_[1:]))
    assert moe.gate_.n_experts_ == len(moe.experts_)
    # Removing outputs selects them: the softmax over the kept ones.
    resp = np.random.RandomState(0).dirichlet(np.ones(3), len(X))
    fitted = gate.__sklearn_clone__().set_params(random_state=0).fit(X, resp)
    proba = fitted.predict_proba(X)
    fitted.remove_experts([2, 0])
    assert fitted.n_experts_ == 2 and list(fitted.output_index_) == [2, 0]
    kept = proba[:, [2, 0]] / proba[:, [2, 0]].sum(axis=1, keepdims=True)
    assert_allclose(fitted.predict_proba(X), kept, rtol=1e-10)
    fitted.fit(X, kept)  # warm-starts with the selection
    assert fitted.predict_proba(X).shape == (len(X), 2)


def test_custom_module_needs_torch_to_predict(torch, monkeypatch):
    X, resp, _ = _xor_problem(n=100)
    gate = TorchGate(module=_network(torch), max_iter=5, device="cpu").fit(X, resp)
    builtin = TorchGate((4,), max_iter=5, device="cpu", random_state=0).fit(X, resp)
    expected = builtin.predict_proba(X)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"network is a torch.nn.Module of your own"):
        gate.predict_proba(X)
    assert_allclose(builtin.predict_proba(X), expected, rtol=1e-12)  # NumPy


def test_threads_one_torch_thread_and_the_row_pool(torch):
    from threadpoolctl import threadpool_limits

    seen = []

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

        def forward(self, X):
            seen.append(torch.get_num_threads())
            return self.linear(X)

    X, resp, _ = _xor_problem(n=500)
    torch.set_num_threads(2)
    with threadpool_limits(limits=2):
        TorchGate(module=Recording(), max_iter=3, device="cpu").fit(X, resp)
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == 2  # restored


# ----------------------------------------------------------------------
# Pickling without PyTorch


def test_fitted_models_predict_without_torch(torch, tmp_path):
    from skmoe import MixtureOfExpertsRegressor
    from skmoe.datasets import make_gated_regression

    X, y = make_gated_regression(300, n_features=3, n_experts=2, return_labels=False,
                                 random_state=0)
    moe = MixtureOfExpertsRegressor(n_experts=2, gate="mlp", backend="torch", device="cpu",
                                    max_iter=10, random_state=0).fit(X, y)
    gate = TorchGate((4, 3), device="cpu", max_iter=20, random_state=0)
    gate.fit(X, np.c_[y > np.median(y), y <= np.median(y)].astype(float))
    path = tmp_path / "models.pkl"
    path.write_bytes(pickle.dumps((moe, gate, X)))
    np.save(tmp_path / "expected.npy", np.c_[moe.predict(X), gate.predict_proba(X)])
    # ``import torch`` raises ImportError in the subprocess (a finder rather
    # than sys.modules["torch"] = None, which SciPy's array-API helpers read).
    code = f"""
import importlib.abc, pickle, sys


class BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError("torch is blocked")


sys.meta_path.insert(0, BlockTorch())
import numpy as np
moe, gate, X = pickle.loads(open({str(path)!r}, "rb").read())
got = np.c_[moe.predict(X), gate.predict_proba(X)]
np.testing.assert_allclose(got, np.load({str(tmp_path / "expected.npy")!r}), rtol=1e-10)
assert "torch" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
