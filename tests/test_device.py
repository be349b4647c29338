"""The EM loop on a PyTorch device (``skmoe._device``): the same fit as the host's, data moved once.

On CPU the device-resident loop (torch tensors through ``array_api_compat``)
must give the host's fit to rounding, move ``X`` to the device once and
bring back only scalars and per-expert numbers per iteration, and keep
float32. The CUDA tests skip without a GPU; everything skips without
PyTorch or ``array_api_compat``.
"""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

import skmoe._base
from skmoe import MixtureOfExpertsRegressor, _device
from skmoe._gram import solve_normal_equations
from skmoe._solvers import solve_linear_experts
from skmoe.gates import TorchGate
from skmoe.gates._protocol import GateAdapter
from tests._tolerances import normal_equations_cond, optimum_tol, tol

torch = pytest.importorskip("torch")
pytest.importorskip("array_api_compat")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def cpu_resident(monkeypatch):
    """The device-resident loop on the CPU device (by default a CPU gate keeps the host loop),
    with one PyTorch thread: small problems on a shared runner (its pool oversubscribes)."""
    monkeypatch.setattr(_device, "CPU_RESIDENT", True)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _data(n=1500, d=3, seed=0, dtype=np.float64):
    """Two linear regimes split by the first feature, features of different scales."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d) * np.linspace(1.0, 3.0, d) + np.linspace(0.0, 2.0, d)
    beta = rng.randn(2, d)
    y = np.where(X[:, 0] > 0, X @ beta[0] + 1.0, X @ beta[1] - 1.0) + 0.1 * rng.randn(n)
    return X.astype(dtype), y


class _Spy:
    """Counts the device solver's M-steps: whether a fit took the device path."""

    def __init__(self, monkeypatch):
        self.m_steps = 0
        fit = _device.DeviceLinearSolver.fit

        def counted(solver, *args, **kwargs):
            self.m_steps += 1
            return fit(solver, *args, **kwargs)

        monkeypatch.setattr(_device.DeviceLinearSolver, "fit", counted)


def _host_fit(monkeypatch, estimator, X, y, **fit_params):
    """The same estimator fitted on the host path (the device context switched off)."""
    with monkeypatch.context() as m:
        m.setattr(skmoe._base, "device_context", lambda ctx, gate: ctx)
        return estimator.fit(X, y, **fit_params)


def _assert_same_fit(a, b, X, rtol, atol=0.0):
    assert a.n_iter_ == b.n_iter_
    assert_allclose(a.log_likelihood_curve_, b.log_likelihood_curve_, rtol=rtol, atol=atol)
    for ea, eb in zip(a.experts_, b.experts_):
        assert type(ea) is type(eb)
        assert_allclose(ea.coef_, eb.coef_, rtol=rtol, atol=atol)
        assert_allclose(ea.intercept_, eb.intercept_, rtol=rtol, atol=atol)
    assert_allclose(a.noise_variance_, b.noise_variance_, rtol=rtol, atol=atol)
    assert_allclose(a.expert_share_, b.expert_share_, rtol=rtol, atol=atol)
    assert_allclose(a.predict(X), b.predict(X), rtol=rtol, atol=atol)


# ----------------------------------------------------------------------
# The device fit is the host fit


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"expert": Ridge(alpha=3.0)},
        {"expert": [LinearRegression(fit_intercept=False), Ridge(alpha=0.0), LinearRegression()]},
        {"gate_features": [0, 1], "expert_features": [1, 2]},
        {"n_init": 2},
    ],
    ids=["linear", "ridge", "mixed_experts", "features", "n_init"],
)
def test_device_fit_equals_host_fit(monkeypatch, params):
    X, y = _data()
    sample_weight = np.random.RandomState(1).uniform(0.5, 2.0, X.shape[0])
    kwargs = {"n_experts": 3, "backend": "torch", "device": "cpu", "random_state": 0, "max_iter": 20, "tol": 1e-8}
    kwargs.update(params)
    host = _host_fit(monkeypatch, MixtureOfExpertsRegressor(**kwargs), X, y, sample_weight=sample_weight)
    spy = _Spy(monkeypatch)
    device = MixtureOfExpertsRegressor(**kwargs).fit(X, y, sample_weight=sample_weight)
    assert spy.m_steps > host.n_iter_  # the device path ran
    # The two paths differ by rounding only; over the iterations the gate's
    # bounded L-BFGS steps carry it along the EM path: the tolerance of an EM
    # fixed point's location.
    _assert_same_fit(device, host, X, rtol=optimum_tol(), atol=optimum_tol() * 1e-3)


def test_device_fit_equals_numpy_backend():
    """The torch backend on the device and the NumPy backend: the same model (the gates agree to their tolerance)."""
    X, y = _data()
    kwargs = {"n_experts": 3, "random_state": 0, "max_iter": 25, "tol": 0}
    numpy = MixtureOfExpertsRegressor(backend="numpy", **kwargs).fit(X, y)
    device = MixtureOfExpertsRegressor(backend="torch", device="cpu", **kwargs).fit(X, y)
    _assert_same_fit(device, numpy, X, rtol=1e-6, atol=1e-8)


def test_mlp_gate_first_iterations_equal_host(monkeypatch):
    """A neural gate's L-BFGS amplifies rounding over many iterations; the first ones agree to rounding."""
    X, y = _data()
    kwargs = {"n_experts": 3, "gate": TorchGate((8,), max_iter=5, device="cpu"), "random_state": 0,
                  "max_iter": 3, "tol": 0}
    host = _host_fit(monkeypatch, MixtureOfExpertsRegressor(**kwargs), X, y)
    device = MixtureOfExpertsRegressor(**kwargs).fit(X, y)
    _assert_same_fit(device, host, X, rtol=1e-9, atol=1e-11)
    for a, b in zip(device.gate_.coefs_, host.gate_.coefs_):
        assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_reseeding_and_pruning_on_the_device(monkeypatch):
    """A starved expert re-seeded (a host round trip) and min_prior pruning: the host's fit."""
    X, y = _data()
    labels = (X[:, 0] > 0).astype(int)  # expert 2 starts with no sample: re-seeded
    kwargs = {"n_experts": 3, "init": labels, "backend": "torch", "device": "cpu", "random_state": 0,
                  "max_iter": 30, "tol": 1e-8}
    with pytest.warns(UserWarning):
        host = _host_fit(monkeypatch, MixtureOfExpertsRegressor(**kwargs), X, y)
    with pytest.warns(UserWarning):
        device = MixtureOfExpertsRegressor(**kwargs).fit(X, y)
    _assert_same_fit(device, host, X, rtol=1e-8, atol=1e-10)

    kwargs = {"n_experts": 6, "min_prior": 0.12, "backend": "torch", "device": "cpu", "random_state": 0,
                  "max_iter": 30, "tol": 1e-8}
    with pytest.warns(UserWarning):
        host = _host_fit(monkeypatch, MixtureOfExpertsRegressor(**kwargs), X, y)
    with pytest.warns(UserWarning):
        device = MixtureOfExpertsRegressor(**kwargs).fit(X, y)
    assert device.n_experts_ == host.n_experts_ < 6
    _assert_same_fit(device, host, X, rtol=1e-8, atol=1e-10)


def test_warm_start_continues_on_the_device(monkeypatch):
    X, y = _data()
    kwargs = {"n_experts": 2, "backend": "torch", "device": "cpu", "random_state": 0, "max_iter": 3,
                  "tol": 0, "warm_start": True}
    host = _host_fit(monkeypatch, MixtureOfExpertsRegressor(**kwargs), X, y)
    host = _host_fit(monkeypatch, host, X, y)
    device = MixtureOfExpertsRegressor(**kwargs).fit(X, y).fit(X, y)
    _assert_same_fit(device, host, X, rtol=1e-9, atol=1e-11)


def test_fitted_model_holds_no_tensor():
    """The fitted parameters are NumPy: the model pickles and predicts like a host fit."""
    X, y = _data()
    model = MixtureOfExpertsRegressor(3, backend="torch", device="cpu", random_state=0).fit(X, y)
    for expert in model.experts_:
        assert type(expert) is LinearRegression
        assert isinstance(expert.coef_, np.ndarray) and expert.coef_.dtype == np.float64
        assert expert.rank_ == X.shape[1] and isinstance(expert.singular_, np.ndarray)
    for name in ("noise_variance_", "expert_share_", "expert_load_", "log_likelihood_curve_"):
        assert isinstance(getattr(model, name), np.ndarray), name
    # The gate released the run's tensors (no device memory held by a fitted model).
    assert not any(isinstance(v, tuple) and any(torch.is_tensor(x) for x in v)
                   for v in vars(model.gate_).values())
    loaded = pickle.loads(pickle.dumps(model))
    assert_allclose(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("hidden", [(), (4,)])
def test_torch_gate_on_tensors_equals_numpy_input(hidden):
    """The gate's device capability: prepare, fit and log-probabilities on tensors, the NumPy input's results."""
    X, _ = _data(n=300)
    rng = np.random.RandomState(0)
    resp_T = np.ascontiguousarray(rng.dirichlet(np.ones(3), X.shape[0]).T)
    sample_weight = rng.uniform(0.5, 2.0, X.shape[0])
    results = []
    for as_array in (np.asarray, torch.as_tensor):
        gate = GateAdapter(TorchGate(hidden, max_iter=20, device="cpu", random_state=0))
        Xa = as_array(X)
        context = gate.prepare(Xa, as_array(sample_weight))
        gate.fit(Xa, as_array(resp_T), None, context)
        log_proba_T = gate.log_proba_T(Xa)
        assert type(log_proba_T) is type(Xa)
        results.append((np.asarray(log_proba_T), gate.penalty(), gate.estimator))
    (numpy_lp, numpy_penalty, _), (tensor_lp, tensor_penalty, fitted) = results
    assert_allclose(tensor_lp, numpy_lp, rtol=1e-9, atol=1e-11)
    assert_allclose(tensor_penalty, numpy_penalty, rtol=1e-9)
    assert fitted.fit_device() == torch.device("cpu")
    fitted.release_run()
    assert "_X_cache" not in vars(fitted) and "_torch_state" not in vars(fitted)


# ----------------------------------------------------------------------
# Transfers


class _Transfers:
    """Records every conversion between the host and torch: device to host and host to device."""

    def __init__(self, monkeypatch):
        self.to_host, self.to_device = [], []
        for name in ("cpu", "numpy", "item", "tolist", "__float__", "__int__", "__array__"):
            self._wrap(monkeypatch, torch.Tensor, name, self.to_host, lambda t, *a, **k: t.numel())
        for name in ("as_tensor", "asarray", "from_numpy", "tensor"):
            self._wrap(monkeypatch, torch, name, self.to_device, lambda a, *r, **k: int(np.size(a)))

    @staticmethod
    def _wrap(monkeypatch, owner, name, log, size):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            log.append(size(*args, **kwargs))
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)


def test_no_host_copy_of_X_per_iteration(monkeypatch):
    """X, y and the weights go to the device once; per iteration only small arrays come back."""
    X, y = _data(n=3000)
    n = X.shape[0]
    counts = {}
    for max_iter in (4, 12):
        with monkeypatch.context() as m:
            transfers = _Transfers(m)
            MixtureOfExpertsRegressor(
                3, gate="mlp", backend="torch", device="cpu", random_state=0, max_iter=max_iter, tol=0
            ).fit(X, y)
        counts[max_iter] = transfers
    few, many = counts[4], counts[12]
    # Arrays with a row per sample: the same number whatever the iterations
    # (moved in once; the responsibilities and log-likelihoods back once at the end).
    big = {k: ([s for s in t.to_host if s >= n], [s for s in t.to_device if s >= n]) for k, t in counts.items()}
    assert big[4] == big[12]
    assert len(big[12][0]) <= 4 and len(big[12][1]) <= 6
    # Per iteration: a bounded number of small transfers (the objective, the
    # shares, flags, and the gate's parameters and gradients for its L-BFGS),
    # none of a size that grows with the rows.
    per_iteration = (len(many.to_host) - len(few.to_host)) / 8
    assert per_iteration <= 80
    for direction in ("to_host", "to_device"):
        sizes = [sorted(s for s in getattr(t, direction) if s >= n // 10) for t in (few, many)]
        assert sizes[0] == sizes[1], direction


# ----------------------------------------------------------------------
# float32


def test_float32_kept_on_the_device(monkeypatch):
    X32, y = _data(dtype=np.float32)
    dtypes = set()
    e_step = skmoe._base._BaseMixtureOfExperts._e_step

    def recorded(self, ctx, state):
        state = e_step(self, ctx, state)
        dtypes.update({ctx.X_expert.dtype, state.resp_T.dtype, state.log_prob.dtype})
        return state

    monkeypatch.setattr(skmoe._base._BaseMixtureOfExperts, "_e_step", recorded)
    kwargs = {"n_experts": 3, "backend": "torch", "device": "cpu", "random_state": 0, "max_iter": 20, "tol": 0}
    model32 = MixtureOfExpertsRegressor(**kwargs).fit(X32, y)
    assert dtypes == {torch.float32}
    assert model32.predict(X32).dtype == np.float32
    model64 = MixtureOfExpertsRegressor(**kwargs).fit(X32.astype(np.float64), y)
    # float32 E-step and float64 sufficient statistics: the float64 fit to float32 rounding.
    scale = np.abs(model64.predict(X32)).max()
    assert_allclose(model32.predict(X32), model64.predict(X32), atol=1e-3 * scale)


# ----------------------------------------------------------------------
# Which configuration takes which path


@pytest.mark.parametrize(
    "params, on_device",
    [
        ({"backend": "torch"}, True),
        ({"backend": "torch", "gate": "mlp"}, True),
        ({"gate": TorchGate((4,), batch_size=500, device="cpu")}, True),
        ({"backend": "numpy"}, False),
        ({"backend": "torch", "top_k": 1}, False),
        ({"backend": "torch", "algorithm": "cem"}, False),
        ({"backend": "torch", "gate_noise": 0.1}, False),
        ({"backend": "torch", "expert": DecisionTreeRegressor(max_depth=2)}, False),
        ({"backend": "torch", "likelihood": "student_t"}, False),
    ],
    ids=["linear", "mlp", "minibatch", "numpy", "top_k", "cem", "noise", "trees", "student_t"],
)
def test_which_path(monkeypatch, params, on_device):
    X, y = _data(n=400)
    spy = _Spy(monkeypatch)
    MixtureOfExpertsRegressor(2, device="cpu", random_state=0, max_iter=3, **params).fit(X, y)
    assert (spy.m_steps > 0) is on_device


def test_cpu_gate_keeps_the_host_loop_by_default(monkeypatch):
    monkeypatch.setattr(_device, "CPU_RESIDENT", False)
    X, y = _data(n=400)
    spy = _Spy(monkeypatch)
    MixtureOfExpertsRegressor(2, backend="torch", device="cpu", random_state=0, max_iter=3).fit(X, y)
    assert spy.m_steps == 0


def test_without_array_api_compat_the_host_loop_warns(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "array_api_compat", None)  # import fails
    X, y = _data(n=400)
    spy = _Spy(monkeypatch)
    model = MixtureOfExpertsRegressor(2, backend="torch", device="cpu", random_state=0, max_iter=3)
    with pytest.warns(UserWarning, match="array_api_compat"):
        model.fit(X, y)
    assert spy.m_steps == 0


# ----------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("device", ["nonsense", "cuda:99"])
def test_device_strings_validated(device):
    if device.startswith("cuda") and not torch.cuda.is_available():
        device = "cuda"
    X, y = _data(n=200)
    with pytest.raises(ValueError, match="device"):
        MixtureOfExpertsRegressor(2, backend="torch", device=device).fit(X, y)


def test_out_of_memory_suggests_mini_batches(monkeypatch):
    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(_device.DeviceLinearSolver, "fit", exhausted)
    X, y = _data(n=200)
    with pytest.raises(MemoryError, match=r"TorchGate\(batch_size=") as info:
        MixtureOfExpertsRegressor(2, backend="torch", device="cpu", random_state=0).fit(X, y)
    assert "200 samples" in str(info.value)


# ----------------------------------------------------------------------
# The batched solves against the host's


def test_batched_solve_equals_host_solve():
    rng = np.random.RandomState(0)
    k, d = 4, 5
    M = rng.randn(k, 30, d)
    A = np.einsum("kni,knj->kij", M, M)
    A[2] = A[1][:, :1] @ A[1][:1, :] / A[1][0, 0]  # rank one: the minimum-norm solution
    b = rng.randn(k, d)
    b[2] = A[2] @ rng.randn(d)
    rcond = np.finfo(np.float64).eps * 30
    got = _device.solve_psd_batch(torch.as_tensor(A), torch.as_tensor(b), rank_deficient_rcond=rcond)
    for j in range(k):
        expected = solve_normal_equations(A[j], b[j], rank_deficient_rcond=rcond)
        cond = np.linalg.cond(A[j]) if j != 2 else 1e4
        assert_allclose(got[j].numpy(), expected, rtol=tol(cond=cond), atol=1e-12)


def test_batched_normal_equations_equal_host_experts():
    X, y = _data(n=300, d=4)
    rng = np.random.RandomState(2)
    weights_T = rng.dirichlet(np.ones(3), X.shape[0]).T.copy()
    templates = [LinearRegression(fit_intercept=False), Ridge(alpha=2.0), LinearRegression()]
    solver = _device.DeviceLinearSolver(type("Host", (), {"name": "batched_linear", "exact": True})())
    Xt, yt, wt = (torch.as_tensor(a) for a in (X, y, weights_T))
    experts = solver.fit(templates, Xt, yt, wt)
    host = solver.to_host(experts)
    cond = normal_equations_cond(X, alpha=0.0)
    for e, h in zip(experts, host):
        assert_allclose(e.coef.numpy(), h.coef_, rtol=tol(cond=cond))
        assert_allclose(float(e.intercept), h.intercept_, rtol=tol(cond=cond), atol=1e-12)
    for h, t, w in zip(host, templates, weights_T):
        reference = type(t)(**t.get_params()).fit(X, y, sample_weight=w)
        assert_allclose(h.coef_, reference.coef_, rtol=tol(cond=cond))
    assert_allclose(solver.predict_T(experts, Xt).numpy(), np.stack([h.predict(X) for h in host]),
                    rtol=tol(cond=cond), atol=1e-12)
    # solve_linear_experts on the same statistics is the host conversion itself.
    assert all(type(h) is type(t) for h, t in zip(host, templates))
    assert solve_linear_experts is _device.solve_linear_experts


# ----------------------------------------------------------------------
# CUDA


@cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_fit_equals_cpu_fit(dtype):
    X, y = _data(n=5000, dtype=dtype)
    kwargs = {"n_experts": 3, "backend": "torch", "random_state": 0, "max_iter": 20, "tol": 0}
    cpu = MixtureOfExpertsRegressor(device="cpu", **kwargs).fit(X, y)
    gpu = MixtureOfExpertsRegressor(device="cuda", **kwargs).fit(X, y)
    assert gpu.predict(X).dtype == dtype
    rtol = 1e-7 if dtype == np.float64 else 1e-3
    assert_allclose(gpu.predict(X), cpu.predict(X), rtol=rtol, atol=rtol * np.abs(y).max())
    assert_allclose(gpu.log_likelihood_, cpu.log_likelihood_, rtol=rtol)
