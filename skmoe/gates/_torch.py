"""Softmax / MLP gate trained with PyTorch (full-batch L-BFGS, CPU or GPU).

PyTorch is imported inside the functions that need it, through
:func:`skmoe.utils._optional.import_torch`, so this module (and
``import skmoe``) works without it. Fitted parameters are stored as NumPy
arrays; the only tensors an instance holds are in a cache of the last input
array moved to the device, which is not pickled.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ..utils import _optional
from ..utils._compat import Interval, StrOptions
from ._network import ACTIVATIONS, check_hidden_layer_sizes, glorot_bound
from ._softmax import _BaseSoftmaxGate


def resolve_device(torch, device):
    """The :class:`torch.device` to use for ``device``.

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    device : str or None
        ``None`` picks ``"cuda"`` when available, else ``"cpu"``.

    Returns
    -------
    device : torch.device
        The resolved device.

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or names a CUDA device that is not
        available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a valid PyTorch device.") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available to "
                "PyTorch; use device='cpu' or device=None."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are available."
            )
    return resolved


def _torch_dtype(torch, device, X_dtype):
    """float64 on CPU; on an accelerator, float32 when ``X`` is float32."""
    if device.type != "cpu" and X_dtype == np.float32:
        return torch.float32
    return torch.float64


def _forward_logits_T(torch, X, coefs, intercepts, activation):
    """Logits ``(n_experts, n_samples)`` of the network on ``X`` ``(n_samples, n_features)``."""
    act = {"tanh": torch.tanh, "relu": torch.relu, "logistic": torch.sigmoid}[activation]
    A = X.T
    last = len(coefs) - 1
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        A = torch.addmm(b[:, None], W, A)
        if layer < last:
            A = act(A)
    return A


def torch_objective(torch, X, resp_T, weight, mean, scale, alpha, coefs, intercepts, activation):
    """The objective of :class:`~skmoe.gates._softmax.SoftmaxObjective`, in PyTorch.

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    X : torch.Tensor of shape (n_samples, n_features)
        Raw inputs.
    resp_T : torch.Tensor of shape (n_experts, n_samples)
        Targets, columns summing to one.
    weight, mean, scale : torch.Tensor
        The :class:`~skmoe.gates._softmax.SoftmaxContext` of ``X``.
    alpha : float
        L2 penalty on the weights.
    coefs, intercepts : list of torch.Tensor
        Parameters in standardised units (autograd leaves).
    activation : str
        Hidden activation.

    Returns
    -------
    loss : torch.Tensor
        Scalar penalised weighted cross-entropy.
    """
    # Standardisation folded into the first layer: no standardised copy of X.
    W0 = coefs[0] / scale
    b0 = intercepts[0] - W0 @ mean
    Z = _forward_logits_T(torch, X, [W0, *coefs[1:]], [b0, *intercepts[1:]], activation)
    log_p = torch.log_softmax(Z, dim=0)
    loss = -((resp_T * log_p).sum(dim=0) @ weight)
    penalty = sum((W * W).sum() for W in coefs)
    return loss + 0.5 * alpha * penalty


class TorchGate(_BaseSoftmaxGate):
    """Softmax or MLP gate trained with PyTorch, on CPU or GPU.

    The same model family and objective as :class:`~skmoe.gates.MLPGate`:
    weighted mean cross-entropy between the soft targets and
    ``softmax(f(x))`` plus ``alpha / 2`` times the sum of squared weights
    (first layer in standardised units, biases not penalised), with the
    features standardised internally by their weighted mean and standard
    deviation. With ``hidden_layer_sizes=()`` it is the linear softmax gate
    and agrees with :class:`~skmoe.gates.LinearGate`. It is trained
    full-batch with :class:`torch.optim.LBFGS` and a strong-Wolfe line
    search, in float64 on CPU (float32 on an accelerator when ``X`` is
    float32). Successive calls to :meth:`fit` with the same shapes
    warm-start from the current weights.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=()
        Width of each hidden layer; ``()`` is the linear softmax gate.
    activation : {"tanh", "relu", "logistic"}, default="tanh"
        Activation of the hidden units.
    alpha : float, default=1e-4
        L2 penalty on the weights (first layer in standardised units).
    max_iter : int, default=100
        Maximum number of L-BFGS iterations per call to :meth:`fit`.
    tol : float, default=1e-7
        Gradient tolerance (infinity norm) of L-BFGS.
    device : str or None, default=None
        PyTorch device, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``. ``None``
        uses ``"cuda"`` when available, else ``"cpu"``. Asking for CUDA when
        it is not available raises ``ValueError`` at fit.
    random_state : int, RandomState instance or None, default=None
        Seeds, through a :class:`torch.Generator`, the Glorot initialisation
        of a cold start (drawn on CPU, so it does not depend on the device).

    Attributes
    ----------
    coefs_ : list of ndarray
        Weights of each layer, shape ``(n_out, n_in)``, input layer first, in
        the units of ``X`` (float64 NumPy arrays).
    intercepts_ : list of ndarray
        Biases of each layer, shape ``(n_out,)``, in the units of ``X``.
    n_features_in_ : int
        Number of input features.
    n_experts_ : int
        Number of experts (outputs).
    n_parameters_ : int
        Number of weights and biases less the softmax redundancy of the last
        layer; ``(n_experts - 1) * (n_features + 1)`` without hidden layer.
    n_iter_ : int
        L-BFGS iterations of the last call to :meth:`fit`.
    loss_ : float
        Penalised objective at the solution of the last call to :meth:`fit`.
    device_ : str
        Device the last fit ran on.

    See Also
    --------
    LinearGate : NumPy softmax gate.
    MLPGate : NumPy MLP gate.

    Notes
    -----
    The EM loop fits the gate once per iteration on the same ``X``. To avoid
    moving ``X`` to the device every time, the gate caches the device tensor
    of the last array it saw, keyed on ``id(X)``, its shape, dtype and data
    pointer (``X.__array_interface__['data'][0]``), and keeps a reference to
    that array so its ``id`` cannot be reused while cached. Modifying ``X``
    in place between calls is therefore not noticed: pass a new array
    instead. The cache is the only state holding tensors; it is dropped when
    the gate is pickled or cloned. :meth:`predict_log_proba` reads the cache
    but does not fill it.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.gates import TorchGate
    >>> X = np.linspace(-1, 1, 6).reshape(-1, 1)
    >>> resp = np.c_[X[:, 0] < 0, X[:, 0] >= 0].astype(float)
    >>> gate = TorchGate(device="cpu").fit(X, resp)
    >>> gate.predict(X)
    array([0, 0, 0, 1, 1, 1])
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "device": [str, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(),
        activation="tanh",
        alpha=1e-4,
        max_iter=100,
        tol=1e-7,
        device=None,
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.device = device
        self.random_state = random_state

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never touch the live __dict__
        state.pop("_X_cache", None)
        return state

    def _device_tensor(self, torch, X, device, dtype, store):
        """``X`` on ``device``; the cached tensor when ``X`` is the array last cached."""
        key = (
            id(X),
            X.shape,
            X.dtype.str,
            X.__array_interface__["data"][0],
            str(device),
            dtype,
        )
        cache = self.__dict__.get("_X_cache")
        if cache is not None and cache[0] == key and cache[1] is X:
            return cache[2]
        tensor = torch.as_tensor(X, dtype=dtype, device=device)
        if store:
            self._X_cache = (key, X, tensor)
        return tensor

    def _hidden_layers(self):
        return check_hidden_layer_sizes(self.hidden_layer_sizes)

    def _minimise(self, X, resp_T, context, shapes, coefs, intercepts):
        """Full-batch :class:`torch.optim.LBFGS` with a strong-Wolfe line search."""
        torch = _optional.import_torch()
        device = resolve_device(torch, self.device)
        dtype = _torch_dtype(torch, device, X.dtype)

        def to_device(array):
            return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

        Xt = self._device_tensor(torch, X, device, dtype, store=True)
        R, w = to_device(resp_T), to_device(context.weight)
        mean, scale = to_device(context.mean), to_device(context.scale)
        params_W = [to_device(c).clone().requires_grad_(True) for c in coefs]
        params_b = [to_device(b).clone().requires_grad_(True) for b in intercepts]
        alpha, activation = float(self.alpha), self.activation

        def objective():
            return torch_objective(
                torch, Xt, R, w, mean, scale, alpha, params_W, params_b, activation
            )

        optimizer = torch.optim.LBFGS(
            params_W + params_b,
            lr=1.0,
            max_iter=self.max_iter,
            max_eval=2 * self.max_iter + 20,
            tolerance_grad=self.tol,
            # Stop on the gradient (tol), not on a stalled loss, down to rounding.
            tolerance_change=10 * torch.finfo(dtype).eps,
            history_size=10,
            line_search_fn="strong_wolfe",
        )

        def closure():
            optimizer.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            loss = float(objective())
        first_param = optimizer.param_groups[0]["params"][0]
        n_iter = int(optimizer.state[first_param].get("n_iter", 0))
        self.device_ = str(device)
        coefs = [W.detach().cpu().double().numpy() for W in params_W]
        intercepts = [b.detach().cpu().double().numpy() for b in params_b]
        return coefs, intercepts, loss, n_iter

    def _initial_parameters(self, shapes, prior):
        """Glorot-uniform start from a CPU ``torch.Generator`` seeded by ``random_state``."""
        torch = _optional.import_torch()
        rng = check_random_state(self.random_state)
        generator = torch.Generator(device="cpu")
        generator.manual_seed(int(rng.randint(np.iinfo(np.int32).max)))
        coefs, intercepts = [], []
        for shape in shapes:
            bound = glorot_bound(shape, self.activation)
            for out, size in ((coefs, shape), (intercepts, shape[:1])):
                u = torch.rand(size, generator=generator, dtype=torch.float64)
                out.append(((2 * u - 1) * bound).numpy())
        if len(shapes) == 1:  # convex: start from zero weights, as LinearGate does
            coefs[0][:] = 0.0
        intercepts[-1] = np.log(np.maximum(prior, 1e-12))
        return coefs, intercepts

    def _log_proba_native_T(self, X):
        """Log-probabilities computed on the device, returned as a NumPy array."""
        check_is_fitted(self)
        torch = _optional.import_torch()
        device = resolve_device(torch, self.device)
        X = check_array(X, dtype=[np.float64, np.float32])
        self._check_n_features_in(X)
        dtype = _torch_dtype(torch, device, X.dtype)
        with torch.no_grad():
            Xt = self._device_tensor(torch, X, device, dtype, store=False)
            coefs = [torch.as_tensor(c, dtype=dtype, device=device) for c in self.coefs_]
            intercepts = [
                torch.as_tensor(b, dtype=dtype, device=device) for b in self.intercepts_
            ]
            Z = _forward_logits_T(torch, Xt, coefs, intercepts, self.activation)
            log_p = torch.log_softmax(Z, dim=0).contiguous()
        return log_p.cpu().numpy()
