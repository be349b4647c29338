"""Feed-forward (MLP) softmax gate in NumPy/SciPy, fitted to soft targets with L-BFGS.

The maths lives in module-level helpers and :class:`_MLPObjective` so that the
PyTorch gate (:mod:`skmoe.gates._torch`) shares the initialisation, the
parameter layout and the standardisation, and tests can check the gradient
without an estimator.

Layout: like :class:`~skmoe.gates.LinearGate`, weights are stored
``(n_out, n_in)`` (the layout of ``torch.nn.Linear``) and activations are
computed transposed, ``(n_units, n_samples)`` C-contiguous, so the output
log-probabilities come out as the core's ``(n_experts, n_samples)`` layout.
"""

from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ..utils._compat import Interval, StrOptions
from ._base import BaseGate, log_softmax_columns, validate_resp
from ._linear import weighted_standardisation

ACTIVATIONS = ("tanh", "relu", "logistic")


def check_hidden_layer_sizes(hidden_layer_sizes):
    """Return ``hidden_layer_sizes`` as a tuple of positive ints.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int
        Width of each hidden layer; ``()`` means no hidden layer.

    Returns
    -------
    sizes : tuple of int
        The validated widths.

    Raises
    ------
    ValueError
        If a width is not a positive integer.
    """
    if isinstance(hidden_layer_sizes, Integral):
        hidden_layer_sizes = (hidden_layer_sizes,)
    sizes = tuple(hidden_layer_sizes)
    if not all(isinstance(s, Integral) and s > 0 for s in sizes):
        raise ValueError(
            "hidden_layer_sizes must be a sequence of positive integers; "
            f"got {hidden_layer_sizes!r}."
        )
    return tuple(int(s) for s in sizes)


def layer_shapes(n_features, hidden_layer_sizes, n_experts):
    """Shapes ``(n_out, n_in)`` of the weight matrices, input layer first.

    Parameters
    ----------
    n_features : int
        Number of inputs.
    hidden_layer_sizes : tuple of int
        Hidden widths.
    n_experts : int
        Number of outputs.

    Returns
    -------
    shapes : list of tuple of int
        One ``(n_out, n_in)`` pair per layer.
    """
    sizes = [n_features, *hidden_layer_sizes, n_experts]
    return [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 1)]


def count_parameters(shapes):
    """Free parameters of a softmax network with the given weight shapes.

    Weights and biases of every layer, less the softmax redundancy: adding
    the same vector to every row of the last layer (weights and bias) leaves
    the output unchanged, which removes ``n_in + 1`` parameters.

    Parameters
    ----------
    shapes : list of tuple of int
        ``(n_out, n_in)`` per layer.

    Returns
    -------
    n_parameters : int
        Number of free parameters.
    """
    total = sum(n_out * (n_in + 1) for n_out, n_in in shapes)
    return int(total - (shapes[-1][1] + 1))


def glorot_bound(shape, activation):
    """Half-width of the Glorot (Xavier) uniform initialisation.

    Parameters
    ----------
    shape : tuple of int
        ``(n_out, n_in)``.
    activation : str
        Activation of the layer; ``"logistic"`` uses the smaller bound of
        Glorot & Bengio (2010) for sigmoid units.

    Returns
    -------
    bound : float
        Weights are drawn from ``U(-bound, bound)``.
    """
    factor = 2.0 if activation == "logistic" else 6.0
    return float(np.sqrt(factor / (shape[0] + shape[1])))


def initial_parameters(shapes, activation, rng, prior):
    """Glorot-uniform weights and biases, output biases at the log prior.

    The parameters are in standardised units (the first layer acts on
    standardised features). A network without hidden layer is convex in its
    parameters and starts from zero weights, as :class:`LinearGate` does.

    Parameters
    ----------
    shapes : list of tuple of int
        ``(n_out, n_in)`` per layer.
    activation : str
        Hidden activation.
    rng : numpy.random.RandomState
        Random generator.
    prior : ndarray of shape (n_experts,)
        Weighted mean of the targets; the output biases start at its log.

    Returns
    -------
    coefs, intercepts : list of ndarray
        Weights ``(n_out, n_in)`` and biases ``(n_out,)`` per layer.
    """
    coefs, intercepts = [], []
    for shape in shapes:
        bound = glorot_bound(shape, activation)
        coefs.append(rng.uniform(-bound, bound, size=shape))
        intercepts.append(rng.uniform(-bound, bound, size=shape[0]))
    if len(shapes) == 1:
        coefs[0][:] = 0.0
    intercepts[-1] = np.log(np.maximum(prior, 1e-12))
    return coefs, intercepts


def standardise_first_layer(coefs, intercepts, mean, scale):
    """Express raw-unit parameters in standardised units (copies).

    ``W_raw x + b_raw = W_std (x - mean) / scale + b_std``.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Parameters in the units of ``X``.
    mean, scale : ndarray of shape (n_features,)
        Weighted mean and standard deviation of the features.

    Returns
    -------
    coefs, intercepts : list of ndarray
        Parameters in standardised units.
    """
    coefs = [np.array(c, dtype=np.float64) for c in coefs]
    intercepts = [np.array(b, dtype=np.float64) for b in intercepts]
    intercepts[0] = intercepts[0] + coefs[0] @ mean
    coefs[0] = coefs[0] * scale
    return coefs, intercepts


def unstandardise_first_layer(coefs, intercepts, mean, scale):
    """Express standardised parameters in the units of ``X`` (copies).

    Inverse of :func:`standardise_first_layer`.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Parameters in standardised units.
    mean, scale : ndarray of shape (n_features,)
        Weighted mean and standard deviation of the features.

    Returns
    -------
    coefs, intercepts : list of ndarray
        Parameters in the units of ``X``.
    """
    coefs = [np.array(c, dtype=np.float64) for c in coefs]
    intercepts = [np.array(b, dtype=np.float64) for b in intercepts]
    coefs[0] = coefs[0] / scale
    intercepts[0] = intercepts[0] - coefs[0] @ mean
    return coefs, intercepts


def pack(coefs, intercepts):
    """Flatten parameters into one vector: all weights, then all biases.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Weights and biases per layer.

    Returns
    -------
    theta : ndarray of shape (n_params,)
        Flat float64 parameter vector.
    """
    return np.concatenate([c.ravel() for c in coefs] + [b.ravel() for b in intercepts])


def unpack(theta, shapes):
    """Views of ``theta`` as weights and biases; inverse of :func:`pack`.

    Parameters
    ----------
    theta : ndarray of shape (n_params,)
        Flat parameter vector.
    shapes : list of tuple of int
        ``(n_out, n_in)`` per layer.

    Returns
    -------
    coefs, intercepts : list of ndarray
        Views into ``theta``.
    """
    coefs, intercepts, start = [], [], 0
    for n_out, n_in in shapes:
        coefs.append(theta[start : start + n_out * n_in].reshape(n_out, n_in))
        start += n_out * n_in
    for n_out, _ in shapes:
        intercepts.append(theta[start : start + n_out])
        start += n_out
    return coefs, intercepts


def _activate(Z, activation):
    """Apply the activation in place."""
    if activation == "tanh":
        np.tanh(Z, out=Z)
    elif activation == "relu":
        np.maximum(Z, 0, out=Z)
    else:
        expit(Z, out=Z)
    return Z


def _multiply_derivative(delta, A, activation):
    """``delta *= f'(z)``, written in terms of the activation ``A = f(z)``."""
    if activation == "tanh":
        delta *= 1 - A * A
    elif activation == "relu":
        delta *= A > 0
    else:
        delta *= A * (1 - A)
    return delta


def forward_logits_T(X, coefs, intercepts, activation):
    """Output logits ``(n_experts, n_samples)`` of the network on raw ``X``.

    Matrix products run in ``X.dtype`` (float32 input stays float32).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Inputs, float32 or float64.
    coefs, intercepts : list of ndarray
        Parameters in the units of ``X``.
    activation : str
        Hidden activation.

    Returns
    -------
    logits_T : ndarray of shape (n_experts, n_samples)
        C-contiguous logits of dtype ``X.dtype``.
    """
    dtype = X.dtype
    A = None
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        W = np.asarray(W).astype(dtype, copy=False)
        Z = np.dot(W, X.T) if layer == 0 else np.dot(W, A)
        Z += np.asarray(b).astype(dtype, copy=False)[:, None]
        if layer < len(coefs) - 1:
            A = _activate(Z, activation)
    return Z


class MLPGate(BaseGate):
    """Feed-forward softmax gate, ``g(x) = softmax(f(x))``, fitted to soft targets.

    ``f`` is a fully connected network with ``hidden_layer_sizes`` hidden
    layers and the given activation. The gate minimises the same objective as
    :class:`~skmoe.gates.LinearGate`, the weighted mean cross-entropy between
    the targets and the gate plus ``alpha / 2`` times the sum of squared
    weights (biases are not penalised), with SciPy's L-BFGS-B and a
    backpropagated gradient computed in the same pass as the loss. The
    features are standardised internally (weighted mean and standard
    deviation) so the fit does not depend on the units of ``X``. Successive
    calls to :meth:`fit` with the same shapes warm-start from the current
    weights, which keeps the gate M-step of EM cheap.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(16,)
        Width of each hidden layer. ``()`` gives the linear softmax gate.
    activation : {"tanh", "relu", "logistic"}, default="tanh"
        Activation of the hidden units.
    alpha : float, default=1e-4
        L2 penalty on the weights (first layer in standardised units).
    max_iter : int, default=200
        Maximum number of L-BFGS iterations per call to :meth:`fit`.
    tol : float, default=1e-7
        Gradient tolerance (infinity norm) of L-BFGS.
    random_state : int, RandomState instance or None, default=None
        Seeds the Glorot initialisation of a cold start.

    Attributes
    ----------
    coefs_ : list of ndarray
        Weights of each layer, shape ``(n_out, n_in)``, input layer first, in
        the units of ``X``.
    intercepts_ : list of ndarray
        Biases of each layer, shape ``(n_out,)``, in the units of ``X``.
    n_features_in_ : int
        Number of input features.
    n_experts_ : int
        Number of experts (outputs).
    n_parameters_ : int
        Number of weights and biases less the softmax redundancy of the last
        layer (``n_in + 1``); equals ``(n_experts - 1) * (n_features + 1)``
        without hidden layer.
    n_iter_ : int
        L-BFGS iterations of the last call to :meth:`fit`.
    loss_ : float
        Penalised objective at the solution of the last call to :meth:`fit`.

    See Also
    --------
    LinearGate : Softmax gate without hidden layer.
    TorchGate : The same model family trained with PyTorch.

    Notes
    -----
    The standardisation is folded into the first layer: the optimiser works
    on standardised weights ``W_std`` and the first-layer product is formed
    with the raw ``X`` through ``W_std / scale``, so no standardised copy of
    ``X`` is made. With float32 input whose features have a mean much larger
    than their spread, centre ``X`` first to avoid cancellation.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.gates import MLPGate
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 2))
    >>> xor = (X[:, 0] * X[:, 1] > 0).astype(int)
    >>> resp = np.eye(2)[xor]
    >>> gate = MLPGate(hidden_layer_sizes=(8,), random_state=0).fit(X, resp)
    >>> bool((gate.predict(X) == xor).mean() > 0.95)
    True
    """

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(16,),
        activation="tanh",
        alpha=1e-4,
        max_iter=200,
        tol=1e-7,
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

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
        self : MLPGate
            The fitted gate.

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe.gates import MLPGate
        >>> X = np.linspace(-1, 1, 8).reshape(-1, 1)
        >>> resp = np.c_[X[:, 0] < 0, X[:, 0] >= 0].astype(float)
        >>> gate = MLPGate(hidden_layer_sizes=(4,), random_state=0).fit(X, resp)
        >>> gate.predict(X)
        array([0, 0, 0, 0, 1, 1, 1, 1])
        """
        self._validate_params()
        hidden = check_hidden_layer_sizes(self.hidden_layer_sizes)
        X = check_array(X, dtype=[np.float64, np.float32])
        n_samples, n_features = X.shape
        resp_T = validate_resp(resp, n_samples)
        weight = _normalised_weight(sample_weight, n_samples)
        n_experts = resp_T.shape[0]
        mean, scale = weighted_standardisation(X, weight)
        shapes = layer_shapes(n_features, hidden, n_experts)

        if self._can_warm_start(shapes):
            coefs, intercepts = standardise_first_layer(
                self.coefs_, self.intercepts_, mean, scale
            )
        else:
            rng = check_random_state(self.random_state)
            coefs, intercepts = initial_parameters(
                shapes, self.activation, rng, resp_T @ weight
            )
        objective = _MLPObjective(
            X, resp_T, weight, mean, scale, self.alpha, shapes, self.activation
        )
        result = minimize(
            objective,
            pack(coefs, intercepts),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-12},
        )
        theta, loss = result.x, float(result.fun)
        # L-BFGS-B may stop on a line-search failure; keep the best point it evaluated.
        if objective.best_theta is not None and objective.best_loss < loss:
            theta, loss = objective.best_theta, objective.best_loss
        coefs, intercepts = unstandardise_first_layer(*unpack(theta, shapes), mean, scale)
        intercepts[-1] -= intercepts[-1].mean()  # softmax is shift-invariant
        self.coefs_ = coefs
        self.intercepts_ = intercepts
        self.n_features_in_ = n_features
        self.n_experts_ = n_experts
        self.n_parameters_ = count_parameters(shapes)
        self.n_iter_ = int(result.nit)
        self.loss_ = loss
        return self

    def _can_warm_start(self, shapes):
        """Whether the fitted weights have the requested shapes."""
        return hasattr(self, "coefs_") and [c.shape for c in self.coefs_] == shapes

    def predict_log_proba(self, X):
        """Log gate probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_experts)
            Log probability of each expert (a transposed view of a
            C-contiguous ``(n_experts, n_samples)`` array), of the dtype of
            ``X`` (float32 or float64).

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe.gates import MLPGate
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> resp = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
        >>> gate = MLPGate(hidden_layer_sizes=(3,), random_state=0).fit(X, resp)
        >>> np.exp(gate.predict_log_proba(X)).sum(axis=1)
        array([1., 1., 1., 1.])
        """
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32])
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
        Z = forward_logits_T(X, self.coefs_, self.intercepts_, self.activation)
        return log_softmax_columns(Z).T


def _normalised_weight(sample_weight, n_samples):
    """Sample weights as float64 summing to one (uniform when None)."""
    if sample_weight is None:
        return np.full(n_samples, 1.0 / n_samples)
    weight = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if weight.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight has {weight.shape[0]} entries; expected {n_samples}."
        )
    if not np.all(np.isfinite(weight)) or np.any(weight < 0) or weight.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero.")
    return weight / weight.sum()


class _MLPObjective:
    """Penalised weighted cross-entropy of an MLP gate and its gradient, one pass.

    ``theta`` holds the standardised parameters packed by :func:`pack`. The
    standardisation is folded into the first layer (raw ``X`` times
    ``W_std / scale``), so ``X`` is never copied. Forward activations are kept
    in preallocated ``(n_units, n_samples)`` buffers of ``X.dtype`` and reused
    by the backward pass.
    """

    def __init__(self, X, resp_T, weight, mean, scale, alpha, shapes, activation):
        self.X = X
        self.resp_T = resp_T
        self.weight = weight
        self.weight_dtype = weight.astype(X.dtype, copy=False)
        self.mean = mean
        self.scale = scale
        self.alpha = alpha
        self.shapes = shapes
        self.activation = activation
        n_samples = X.shape[0]
        self.buffers = [np.empty((n_out, n_samples), dtype=X.dtype) for n_out, _ in shapes]
        self.best_loss = np.inf
        self.best_theta = None

    def __call__(self, theta):
        X, dtype, act = self.X, self.X.dtype, self.activation
        coefs, intercepts = unpack(theta, self.shapes)
        W0 = coefs[0] / self.scale
        raw_coefs = [W0, *coefs[1:]]
        raw_intercepts = [intercepts[0] - W0 @ self.mean, *intercepts[1:]]
        n_layers = len(self.shapes)

        # Forward: A_l = f(W_l A_{l-1} + b_l), transposed layout.
        A = self.buffers
        for layer in range(n_layers):
            W = raw_coefs[layer].astype(dtype, copy=False)
            source = X.T if layer == 0 else A[layer - 1]
            np.dot(W, source, out=A[layer])
            A[layer] += raw_intercepts[layer].astype(dtype, copy=False)[:, None]
            if layer < n_layers - 1:
                _activate(A[layer], act)
        Z = A[-1]
        log_softmax_columns(Z)  # over experts, in place
        loss = -float(np.einsum("ki,ki,i->", self.resp_T, Z, self.weight, optimize=True))
        np.exp(Z, out=Z)
        Z -= self.resp_T
        Z *= self.weight_dtype  # delta of the output layer: w * (P - R)

        # Backward.
        grad_coefs = [None] * n_layers
        grad_intercepts = [None] * n_layers
        delta = Z
        for layer in range(n_layers - 1, -1, -1):
            if layer == 0:
                grad_W = np.dot(delta, X)
            else:
                grad_W = np.dot(delta, A[layer - 1].T)
            grad_coefs[layer] = grad_W.astype(np.float64, copy=False)
            grad_intercepts[layer] = delta.sum(axis=1, dtype=np.float64)
            if layer > 0:
                W = raw_coefs[layer].astype(dtype, copy=False)
                delta = _multiply_derivative(np.dot(W.T, delta), A[layer - 1], act)
        # Chain rule through the folded standardisation of the first layer.
        grad_coefs[0] = (grad_coefs[0] - np.outer(grad_intercepts[0], self.mean)) / self.scale

        for W, grad_W in zip(coefs, grad_coefs):
            loss += 0.5 * self.alpha * float(np.vdot(W, W))
            grad_W += self.alpha * W
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_theta = theta.copy()
        return loss, pack(grad_coefs, grad_intercepts)
