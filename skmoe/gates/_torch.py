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
from ._base import BaseGate, validate_resp
from ._linear import weighted_standardisation
from ._mlp import (
    ACTIVATIONS,
    _normalised_weight,
    check_hidden_layer_sizes,
    count_parameters,
    glorot_bound,
    layer_shapes,
    standardise_first_layer,
    unstandardise_first_layer,
)


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


class TorchGate(BaseGate):
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

    def fit(self, X, resp, sample_weight=None):
        """Fit the gate to soft targets, warm-starting when already fitted.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        resp : array-like of shape (n_samples, n_experts)
            Soft targets (rows are normalised to sum to one).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.

        Returns
        -------
        self : TorchGate
            The fitted gate.

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe.gates import TorchGate
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> resp = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
        >>> TorchGate(device="cpu").fit(X, resp).n_parameters_
        2
        """
        self._validate_params()
        torch = _optional.import_torch()
        device = resolve_device(torch, self.device)
        hidden = check_hidden_layer_sizes(self.hidden_layer_sizes)
        X = check_array(X, dtype=[np.float64, np.float32])
        n_samples, n_features = X.shape
        resp_T = validate_resp(resp, n_samples)
        weight = _normalised_weight(sample_weight, n_samples)
        n_experts = resp_T.shape[0]
        mean, scale = weighted_standardisation(X, weight)
        shapes = layer_shapes(n_features, hidden, n_experts)

        if hasattr(self, "coefs_") and [c.shape for c in self.coefs_] == shapes:
            coefs, intercepts = standardise_first_layer(
                self.coefs_, self.intercepts_, mean, scale
            )
        else:
            coefs, intercepts = self._initial_parameters(
                torch, shapes, resp_T @ weight
            )

        dtype = _torch_dtype(torch, device, X.dtype)

        def to_device(array):
            return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

        Xt = self._device_tensor(torch, X, device, dtype, store=True)
        R = to_device(resp_T)
        w = to_device(weight)
        mean_t, scale_t = to_device(mean), to_device(scale)
        params_W = [to_device(c).clone().requires_grad_(True) for c in coefs]
        params_b = [to_device(b).clone().requires_grad_(True) for b in intercepts]
        alpha, activation = float(self.alpha), self.activation

        def objective():
            # Standardisation folded into the first layer: no standardised copy of X.
            W0 = params_W[0] / scale_t
            b0 = params_b[0] - W0 @ mean_t
            Z = _forward_logits_T(
                torch, Xt, [W0, *params_W[1:]], [b0, *params_b[1:]], activation
            )
            log_p = torch.log_softmax(Z, dim=0)
            loss = -((R * log_p).sum(dim=0) @ w)
            penalty = sum((W * W).sum() for W in params_W)
            return loss + 0.5 * alpha * penalty

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

        coefs = [W.detach().cpu().double().numpy() for W in params_W]
        intercepts = [b.detach().cpu().double().numpy() for b in params_b]
        coefs, intercepts = unstandardise_first_layer(coefs, intercepts, mean, scale)
        intercepts[-1] -= intercepts[-1].mean()  # softmax is shift-invariant
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        self.n_features_in_ = n_features
        self.n_experts_ = n_experts
        self.n_parameters_ = count_parameters(shapes)
        first_param = optimizer.param_groups[0]["params"][0]
        self.n_iter_ = int(optimizer.state[first_param].get("n_iter", 0))
        self.loss_ = loss
        self.device_ = str(device)
        return self

    def _initial_parameters(self, torch, shapes, prior):
        """Glorot-uniform start from a CPU ``torch.Generator`` seeded by ``random_state``."""
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

    def predict_log_proba(self, X):
        """Log gate probabilities, computed on the device, returned as NumPy.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_experts)
            Log probability of each expert (a transposed view of a
            C-contiguous ``(n_experts, n_samples)`` array).

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe.gates import TorchGate
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> resp = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
        >>> gate = TorchGate(device="cpu").fit(X, resp)
        >>> np.exp(gate.predict_log_proba(X)).sum(axis=1)
        array([1., 1., 1., 1.])
        """
        check_is_fitted(self)
        torch = _optional.import_torch()
        device = resolve_device(torch, self.device)
        X = check_array(X, dtype=[np.float64, np.float32])
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        dtype = _torch_dtype(torch, device, X.dtype)
        with torch.no_grad():
            Xt = self._device_tensor(torch, X, device, dtype, store=False)
            coefs = [torch.as_tensor(c, dtype=dtype, device=device) for c in self.coefs_]
            intercepts = [
                torch.as_tensor(b, dtype=dtype, device=device) for b in self.intercepts_
            ]
            Z = _forward_logits_T(torch, Xt, coefs, intercepts, self.activation)
            log_p = torch.log_softmax(Z, dim=0).contiguous()
        return log_p.cpu().numpy().T
