"""The EM loop on a PyTorch device: the data moved there once per fit, every step on device arrays.

:func:`device_context` decides, once per fit, whether the whole EM loop can
run on the device of the gate, and if so returns a fit context whose arrays
(``X_gate``, ``X_expert``, ``y``, the sample weights) are tensors there and
whose expert solver is :class:`DeviceLinearSolver`. The EM driver
(:mod:`skmoe._driver`) then runs unchanged on these arrays: the E-step
through the array-namespace functions of :mod:`skmoe._em`, the experts'
weighted normal equations through those of :mod:`skmoe._solvers` and
:mod:`skmoe._gram`, solved here in one batch, the gate through its own
device capability (``fit_device``, :class:`~skmoe.gates.TorchGate`).

What comes to the host per EM iteration: the objective (a scalar, for the
stopping rule), the experts' responsibility shares (``n_experts`` numbers,
for the starved-expert rule), a few flags (finite predictions, a
successful Cholesky factorisation) and the gate's flat parameters and
gradient at each evaluation of its L-BFGS (the optimiser runs on the host;
its size is that of the gate's parameters, not of the data). Nothing of the
size of ``X`` or of the responsibilities crosses, except on two rare
events: re-seeding a starved expert sorts the per-sample log-likelihood on
the host, and a removed expert's orphaned samples are gathered there. At the
end :func:`result_to_host` turns the fitted parameters into NumPy (ordinary
``LinearRegression`` / ``Ridge`` experts, the gate's NumPy weights), so the
model pickles and predicts without PyTorch.

Which fits take this path is :func:`device_context`'s rule; see "The EM loop on
the device" in ``docs/scaling.rst``.
"""

import contextlib
import copy
import math
import warnings

import numpy as np
from sklearn.linear_model import Ridge

from ._gram import weighted_gram_matrices
from ._solvers import linear_offsets, solve_linear_experts
from .utils._array_api import get_namespace

_OUT_OF_MEMORY_ADVICE = (
    "the device {device} ran out of memory in the EM loop on {n_samples} samples x "
    "{n_features} features with {n_experts} experts (the loop keeps X, a few "
    "(n_experts, n_samples) arrays and the gate's activations there). Train the gate in "
    "mini-batches (gate=TorchGate(batch_size=...), which bounds the gate's memory), "
    "pass float32 X, use fewer experts, or fit on the CPU (device='cpu') or blockwise "
    "with Dask arrays."
)


# ----------------------------------------------------------------------
# Arrays between the namespaces


def to_numpy(a):
    """``a`` as NumPy: a tensor is copied to the host; NumPy arrays and scalars pass through."""
    if a is None or isinstance(a, (np.ndarray, np.generic, float, int)):
        return a
    if hasattr(a, "detach"):  # a torch tensor, on any device
        return a.detach().cpu().numpy()
    return np.asarray(a)


def asarray_like(a, like):
    """``a`` (NumPy) in the namespace, device and floating dtype of ``like``; ``a`` itself for NumPy ``like``."""
    xp, is_numpy = get_namespace(like)
    if is_numpy:
        return a
    return xp.asarray(np.asarray(a), dtype=like.dtype, device=like.device)


def take_rows(a, index):
    """``a[index]`` (experts of the core layout) as a new C-contiguous array of ``a``'s namespace and device."""
    xp, is_numpy = get_namespace(a)
    if is_numpy:
        return np.ascontiguousarray(a[index])
    return xp.take(a, xp.asarray(np.asarray(index), device=a.device), axis=0)


def copy_array(a):
    """A copy of ``a`` in its own namespace and device (``a.copy()`` where arrays have it: NumPy, Dask)."""
    if callable(getattr(a, "copy", None)):
        return a.copy()
    xp, _ = get_namespace(a)
    return xp.asarray(a, copy=True)


# ----------------------------------------------------------------------
# Which fits run on the device


# Whether a gate on the CPU also takes the device-resident loop. Off: on the
# CPU there is nothing to move, and the host loop's NumPy kernels (row-threaded
# Gram passes) measured as fast or faster (benchmarks/README.md, "The EM loop on
# the device"). The tests and benchmarks/device.py turn it on to run the
# device code on the CPU.
CPU_RESIDENT = False


def device_context(ctx, gate):
    """The fit's context with its arrays on the gate's device, or ``ctx`` itself for the host loop.

    The whole loop runs on the gate's device when the gate fits on a device
    (the ``fit_device`` capability: the built-in gates of
    ``backend="torch"`` and a :class:`~skmoe.gates.TorchGate` object) that
    is an accelerator (or the CPU with :data:`CPU_RESIDENT`), ``X`` is
    dense, the likelihood is Gaussian with the batched linear solver
    (``LinearRegression`` / ``Ridge`` experts) and the routing is plain soft
    EM (no ``top_k``, ``balance``, ``capacity_factor`` or ``gate_noise``;
    ``algorithm="em"``). Every other fit runs on the host.

    ``X_gate``, ``X_expert``, ``y`` and the sample weights are moved once,
    in the floating dtype of the fit (float32 for float32 ``X``, kept end to
    end; float64 otherwise); ``X`` itself only when the gate or the experts
    use all its columns (else None: the initial partition reads
    ``ctx.host.X``). ``ctx.host`` is the NumPy context.

    Parameters
    ----------
    ctx : _FitContext
        The fit's context, with NumPy arrays.
    gate : GateAdapter
        A gate of the fit (unfitted).

    Returns
    -------
    ctx : _FitContext
        A device context, or ``ctx``.

    Raises
    ------
    ValueError
        From the gate, for a device that is not available.
    """
    fit_device = getattr(gate.estimator, "fit_device", None)
    router = ctx.router
    if (
        not callable(fit_device)
        or hasattr(ctx.X, "tocsr")
        or getattr(ctx.likelihood, "name", None) != "gaussian"
        or ctx.solver.name != "batched_linear"
        or router.name != "soft"
        or not router.exact
    ):
        return ctx
    device = fit_device()
    if device.type == "cpu" and not CPU_RESIDENT:
        return ctx
    try:
        import array_api_compat  # noqa: F401  (the namespace of torch tensors)
    except ImportError:
        warnings.warn(
            f"The EM loop stays on the host, its arrays crossing to {device} every iteration: "
            "running it on the device needs the array_api_compat package "
            '(pip install array-api-compat, or pip install "skmoe[torch]").',
            UserWarning,
        )
        return ctx
    import torch

    dtype = torch.float32 if ctx.dtype == np.float32 else torch.float64
    with out_of_memory_advice(device, ctx.X.shape, 1):
        moved = {}

        def move(a):
            if id(a) not in moved:
                moved[id(a)] = torch.as_tensor(a, dtype=dtype, device=device)
            return moved[id(a)]

        dev = copy.copy(ctx)
        dev.host = ctx
        dev.X_expert = move(ctx.X_expert)
        dev.X_gate = move(ctx.X_gate)
        dev.X = moved.get(id(ctx.X))
        dev.y = move(ctx.y)
        dev.sample_weight = move(ctx.sample_weight)
        dev.sw = None if ctx.sw is None else dev.sample_weight
    dev.solver = DeviceLinearSolver(ctx.solver)
    dev.device = device
    return dev


@contextlib.contextmanager
def out_of_memory_advice(device, shape, n_experts):
    """Turn a PyTorch out-of-memory error into a MemoryError that suggests mini-batch training."""
    try:
        yield
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
        raise MemoryError(
            _OUT_OF_MEMORY_ADVICE.format(
                device=str(device), n_samples=shape[0],
                n_features=shape[1] if len(shape) > 1 else 1, n_experts=n_experts,
            )
        ) from exc


def _host(ctx):
    """The NumPy context of ``ctx`` (``ctx`` itself on the host)."""
    return getattr(ctx, "host", ctx)


def host_context(ctx):
    """The NumPy context of ``ctx``, for what follows the EM runs (ordering the experts)."""
    return _host(ctx)


def fit_guard(ctx, n_experts):
    """The context of one EM run of ``ctx``: :func:`out_of_memory_advice` on a device, else nothing."""
    if _host(ctx) is ctx:
        return contextlib.nullcontext()
    return out_of_memory_advice(ctx.device, ctx.host.X.shape, n_experts)


def result_to_host(ctx, result):
    """An EM run's result with NumPy parameters, its device caches released; ``result`` itself on the host.

    The experts become ordinary fitted ``LinearRegression`` / ``Ridge``
    objects (solved on the host from their last weighted Gram matrices: the
    same coefficients to rounding, with ``rank_`` and ``singular_``), the
    likelihood's parameters, the responsibilities and the per-sample
    log-likelihood NumPy arrays; the gate drops the tensors of the run.
    """
    if _host(ctx) is ctx:
        return result
    state = copy.copy(result.state)
    state.experts = ctx.solver.to_host(state.experts)
    state.params = np.asarray(to_numpy(state.params), dtype=np.float64)
    state.resp_T = to_numpy(state.resp_T)
    state.log_prob = to_numpy(state.log_prob)
    state.load = to_numpy(state.load)
    state.outputs_T = state.extra_T = None
    release = getattr(state.gate.estimator, "release_run", None)
    if callable(release):
        release()
    return result._replace(state=state)


# ----------------------------------------------------------------------
# The experts' M-step on the device


class DeviceLinearExpert:
    """One linear expert fitted on the device: its coefficients and its M-step's Gram matrix.

    ``coef`` (n_features,) and ``intercept`` (0-d) are float64 tensors;
    ``gram``, ``x_offset`` and ``y_offset`` are the statistics it was solved
    from, which :meth:`DeviceLinearSolver.to_host` solves again on the host.
    """

    __slots__ = ("coef", "gram", "intercept", "n_samples", "template", "x_offset", "y_offset")

    def __init__(self, template, coef, intercept, gram, x_offset, y_offset, n_samples):
        self.template, self.coef, self.intercept = template, coef, intercept
        self.gram, self.x_offset, self.y_offset, self.n_samples = gram, x_offset, y_offset, n_samples


class DeviceLinearSolver:
    """The batched linear solver on device arrays: Gram matrices, batched solves and predictions there.

    Follows the solver protocol of :mod:`skmoe._solvers` (``fit``,
    ``predict_T``, ``n_parameters_per_expert``, ``exact``, ``splits_rows``)
    for the solver ``host`` it replaces, whose name and exactness it keeps.
    The weighted Gram matrices are accumulated in float64 (as on the host,
    whatever the dtype of ``X``) and all experts' normal equations solved in
    one batched Cholesky factorisation (the minimum-norm eigen-solution for
    singular systems, as on the host).
    """

    splits_rows = False

    def __init__(self, host):
        self.host = host
        self.name = host.name
        self.exact = host.exact

    def n_parameters_per_expert(self, templates, n_features):
        """As the host solver."""
        return self.host.n_parameters_per_expert(templates, n_features)

    def fit(self, templates, X, y, weights_T, sample_weight=None):
        """Fitted :class:`DeviceLinearExpert` objects, from the weighted normal equations on the device."""
        xp, _ = get_namespace(X)
        x_offset, y_offset = linear_offsets(X, y, weights_T, sample_weight)
        # Centres in float64: the Gram pass then forms float64 products.
        x_offset = xp.astype(x_offset, xp.float64)
        y_offset = xp.astype(y_offset, xp.float64)
        gram = weighted_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight)
        coef, intercept = solve_gram_batch(templates, gram, x_offset, y_offset, X.shape[0])
        return [
            DeviceLinearExpert(t, coef[k, ...], intercept[k], gram[k, ...], x_offset, y_offset, X.shape[0])
            for k, t in enumerate(templates)
        ]

    @staticmethod
    def predict_T(experts, X):
        """Predictions ``(n_experts, n_samples)`` on the device, in the dtype of ``X``.

        Also takes fitted host experts (``coef_``, ``intercept_``): a warm
        start continues on the device.
        """
        xp, _ = get_namespace(X)
        if all(isinstance(e, DeviceLinearExpert) for e in experts):
            coef = xp.stack([e.coef for e in experts])
            intercept = xp.stack([e.intercept for e in experts])
        else:
            coef = asarray_like(np.vstack([np.ravel(e.coef_) for e in experts]), X)
            intercept = asarray_like(np.array([float(np.ravel(e.intercept_)[0]) for e in experts]), X)
        coef = xp.astype(coef, X.dtype)
        return coef @ xp.permute_dims(X, (1, 0)) + xp.astype(intercept, X.dtype)[:, None]

    @staticmethod
    def to_host(experts):
        """Ordinary fitted ``LinearRegression`` / ``Ridge`` experts, solved from the experts' last Gram matrices."""
        if not experts or not isinstance(experts[0], DeviceLinearExpert):
            return experts
        xp, _ = get_namespace(experts[0].gram)
        gram = to_numpy(xp.stack([e.gram for e in experts]))
        first = experts[0]
        return solve_linear_experts(
            [e.template for e in experts], gram, to_numpy(first.x_offset),
            float(to_numpy(first.y_offset)), first.n_samples,
        )


def solve_gram_batch(templates, gram, x_offset, y_offset, n_samples):
    """Coefficients and intercepts of every expert from its weighted Gram matrix, in one batch.

    The batched form of :func:`skmoe._solvers.solve_linear_experts` for any
    array namespace: the centred normal equations of each expert (undoing
    the global centring for ``fit_intercept=False``, adding a ridge
    ``alpha``), solved in float64 by :func:`solve_psd_batch`.

    Parameters
    ----------
    templates : list of LinearRegression or Ridge
        Unfitted experts.
    gram : array of shape (n_experts, n_features + 2, n_features + 2)
        Gram matrices of ``[X - x_offset, 1, y - y_offset]``, float64.
    x_offset : array of shape (n_features,)
        Centre of ``X`` in the Gram pass.
    y_offset : array of shape ()
        Centre of ``y``.
    n_samples : int
        Number of rows (sets the rank tolerance).

    Returns
    -------
    coef : array of shape (n_experts, n_features)
        Coefficients, float64.
    intercept : array of shape (n_experts,)
        Intercepts (0 for ``fit_intercept=False``), float64.
    """
    xp, _ = get_namespace(gram)
    device = gram.device
    d = gram.shape[1] - 2
    sw = gram[:, d, d]
    gx, gy = gram[:, :d, d], gram[:, d, d + 1]
    mx, my = gx / sw[:, None], gy / sw
    A = gram[:, :d, :d] - sw[:, None, None] * (mx[:, :, None] * mx[:, None, :])
    b = gram[:, :d, d + 1] - sw[:, None] * mx * my[:, None]
    with_intercept = [bool(t.fit_intercept) for t in templates]
    if not all(with_intercept):
        # Sums over the raw [X, y]: the global centring undone.
        xo = x_offset
        A_raw = (gram[:, :d, :d] + gx[:, :, None] * xo[None, None, :] + xo[None, :, None] * gx[:, None, :]
                 + sw[:, None, None] * (xo[:, None] * xo[None, :])[None, ...])
        b_raw = gram[:, :d, d + 1] + xo[None, :] * gy[:, None] + y_offset * gx + sw[:, None] * xo[None, :] * y_offset
        mask = xp.asarray(with_intercept, device=device)
        A = xp.where(mask[:, None, None], A, A_raw)
        b = xp.where(mask[:, None], b, b_raw)
    A = 0.5 * (A + xp.permute_dims(A, (0, 2, 1)))
    alpha = [float(t.alpha) if type(t) is Ridge else 0.0 for t in templates]
    if any(alpha):
        eye = xp.eye(d, dtype=A.dtype, device=device)
        A = A + xp.asarray(alpha, dtype=A.dtype, device=device)[:, None, None] * eye
    coef = solve_psd_batch(A, b, rank_deficient_rcond=np.finfo(np.float64).eps * max(n_samples, d))
    intercept = my + y_offset - xp.sum((mx + x_offset) * coef, axis=1)
    if not all(with_intercept):
        intercept = xp.where(mask, intercept, xp.zeros_like(intercept))
    return coef, intercept


def solve_psd_batch(A, b, *, rank_deficient_rcond):
    """Solve ``A_k beta_k = b_k`` for a batch of symmetric PSD matrices: Cholesky, else minimum-norm.

    The batched form of :func:`skmoe._gram.solve_normal_equations` for any
    array namespace: a system whose Cholesky factor is numerically singular
    (smallest diagonal below ``sqrt(rcond)`` times the largest) or fails
    takes the minimum-norm eigen-solution, eigenvalues below ``rcond``
    times the largest counted as zero (as ``lstsq``).

    Parameters
    ----------
    A : array of shape (n_systems, d, d)
        Symmetric positive semi-definite matrices.
    b : array of shape (n_systems, d)
        Right-hand sides.
    rank_deficient_rcond : float
        Relative eigenvalue threshold.

    Returns
    -------
    beta : array of shape (n_systems, d)
        Solutions.
    """
    xp, _ = get_namespace(A, b)
    try:
        factor = xp.linalg.cholesky(A)
    except Exception as exc:  # a batch with a system that is not positive definite
        if "LinAlgError" not in type(exc).__name__:
            raise
        factor = None
    if factor is not None:
        diag = xp.linalg.diagonal(factor)
        beta = xp.linalg.solve(A, b[..., None])[..., 0]
        ok = (xp.min(diag, axis=1) > math.sqrt(rank_deficient_rcond) * xp.max(diag, axis=1)) & xp.all(
            xp.isfinite(beta), axis=1
        )
        if bool(xp.all(ok)):
            return beta
    # Minimum-norm solutions (rare: singular systems), for the whole batch.
    evals, evecs = xp.linalg.eigh(A)
    top = xp.clip(xp.max(evals, axis=1), min=0.0)
    keep = evals > rank_deficient_rcond * top[:, None]
    inv = xp.where(keep, 1.0 / xp.where(keep, evals, xp.ones_like(evals)), xp.zeros_like(evals))
    projected = (xp.permute_dims(evecs, (0, 2, 1)) @ b[..., None])[..., 0]
    minimum_norm = (evecs @ (inv * projected)[..., None])[..., 0]
    if factor is None:
        return minimum_norm
    return xp.where(ok[:, None], beta, minimum_norm)
