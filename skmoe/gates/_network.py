"""Pure array helpers of the softmax-network gates: layout, start, standardisation, forward.

A softmax gate is ``softmax(f(x))`` with ``f`` a fully connected network; the
linear gate is the network without hidden layer. Weights are stored
``(n_out, n_in)`` (the layout of ``torch.nn.Linear``) and activations are
computed transposed, ``(n_units, n_samples)`` C-contiguous, so the output
log-probabilities come out in the core's ``(n_experts, n_samples)`` layout.
The optimisers work in standardised units: the first layer acts on
``(x - mean) / scale``, folded into its weights so that no standardised copy
of ``X`` is made. No function here holds state, so the NumPy objective
(:mod:`skmoe.gates._softmax`), the PyTorch gate and the tests share them.
"""

from numbers import Integral

import numpy as np
from scipy.special import expit

from ..utils._threads import MIN_ROWS_PER_THREAD, active_row_pool, matmul_rows_T

ACTIVATIONS = ("tanh", "relu", "logistic")


def weighted_standardisation(X, weight):
    """Weighted mean and scale of each feature (scale 1 for constant features).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    weight : ndarray of shape (n_samples,)
        Non-negative weights summing to one.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,)
        Weighted mean and standard deviation.
    """
    mean = np.asarray(weight @ X, dtype=np.float64)
    # Centre before squaring (E[x^2] - E[x]^2 cancels for offset features), in
    # small row blocks through one reused buffer: no copy of X, few page faults.
    var = np.zeros(X.shape[1], dtype=np.float64)
    block = max(1, 2**15 // max(1, X.shape[1]))
    buffer = np.empty((min(block, X.shape[0]), X.shape[1]))
    for start in range(0, X.shape[0], block):
        rows = X[start : start + block]
        centred = buffer[: rows.shape[0]]
        np.subtract(rows, mean, out=centred)
        np.square(centred, out=centred)
        var += weight[start : start + block] @ centred
    scale = np.sqrt(var)
    scale[scale <= 1e-12 * (np.abs(mean) + 1.0)] = 1.0
    return mean, scale


def normalised_weight(sample_weight, n_samples):
    """Sample weights as float64 summing to one (uniform when None).

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,) or None
        Non-negative weights, not all zero.
    n_samples : int
        Expected length.

    Returns
    -------
    weight : ndarray of shape (n_samples,)
        The weights divided by their sum.
    """
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


def zero_start(shapes, prior):
    """Start of a network without hidden layer: zero weights, biases at the log prior.

    The objective is then convex, and this start is the best constant gate.

    Parameters
    ----------
    shapes : list of tuple of int
        One ``(n_experts, n_features)`` shape.
    prior : ndarray of shape (n_experts,)
        Weighted mean of the targets.

    Returns
    -------
    coefs, intercepts : list of ndarray
        Weights and biases in standardised units.
    """
    return [np.zeros(shapes[0])], [np.log(np.maximum(prior, 1e-12))]


def initial_parameters(shapes, activation, rng, prior):
    """Glorot-uniform weights and biases, output biases at the log prior.

    The parameters are in standardised units (the first layer acts on
    standardised features). A network without hidden layer is convex in its
    parameters and starts from zero weights, as :func:`zero_start` does.

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


def activate(Z, activation):
    """Apply the activation in place; return ``Z``."""
    if activation == "tanh":
        np.tanh(Z, out=Z)
    elif activation == "relu":
        np.maximum(Z, 0, out=Z)
    else:
        expit(Z, out=Z)
    return Z


def multiply_derivative(delta, A, activation):
    """``delta *= f'(z)``, written in terms of the activation ``A = f(z)``; return ``delta``."""
    if activation == "tanh":
        delta *= 1 - A * A
    elif activation == "relu":
        delta *= A > 0
    else:
        delta *= A * (1 - A)
    return delta


def _forward(X, coefs, intercepts, activation):
    """Logits of the rows of ``X`` with one product per layer."""
    dtype = X.dtype
    A = None
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        W = np.asarray(W).astype(dtype, copy=False)
        Z = np.dot(W, X.T) if layer == 0 else np.dot(W, A)
        Z += np.asarray(b).astype(dtype, copy=False)[:, None]
        if layer < len(coefs) - 1:
            A = activate(Z, activation)
    return Z


def forward_logits_T(X, coefs, intercepts, activation):
    """Output logits ``(n_experts, n_samples)`` of the network on raw ``X``.

    Matrix products run in ``X.dtype`` (float32 input stays float32). Inside
    a :func:`~skmoe.utils._threads.row_parallel` region the rows are split
    over its :class:`~skmoe.utils._threads.RowPool`, each thread writing its
    own columns of the result.

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
    if len(coefs) == 1:
        Z = matmul_rows_T(np.asarray(coefs[0]).astype(dtype, copy=False), X)
        Z += np.asarray(intercepts[0]).astype(dtype, copy=False)[:, None]
        return Z
    pool = active_row_pool()
    if pool is None or pool.n_threads == 1 or X.shape[0] < 2 * MIN_ROWS_PER_THREAD:
        return _forward(X, coefs, intercepts, activation)
    out = np.empty((coefs[-1].shape[0], X.shape[0]), dtype=dtype)

    def part(start, stop):
        out[:, start:stop] = _forward(X[start:stop], coefs, intercepts, activation)

    pool.map(part, pool.bounds(X.shape[0]))
    return out
