"""Synthetic data sets with a known mixture-of-experts structure."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import logsumexp
from sklearn.utils import check_random_state

from .._docstrings import DATASETS_DOC, doc_filler

# Size of the reference sample used to balance the gate regions, and the
# number of balancing sweeps; both fixed so that a ``random_state`` always
# gives the same data set.
_N_REFERENCE = 2000
_N_BALANCE_SWEEPS = 100
_N_GATE_CANDIDATES = 20

_fill_doc = doc_filler(DATASETS_DOC)


def _check_int(value, name, min_val):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(
            f"{name} must be an integer >= {min_val}, got {value!r} "
            f"of type {type(value).__name__}."
        )
    if value < min_val:
        raise ValueError(f"{name} must be an integer >= {min_val}, got {value!r}.")
    return int(value)


def _check_real(value, name, *, positive):
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(
            f"{name} must be a finite number {bound}, got {value!r} "
            f"of type {type(value).__name__}."
        )
    value = float(value)
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return value


def _check_noise(noise, n_experts):
    """Return ``noise`` as a validated array of shape (n_experts,)."""
    if np.ndim(noise) == 0:
        if isinstance(noise, np.ndarray):
            noise = noise.item()
        return np.full(n_experts, _check_real(noise, "noise", positive=False))
    try:
        noise_std = np.asarray(noise, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"noise must be a number or an array of {n_experts} numbers (one "
            f"per expert), got {noise!r}."
        ) from exc
    if noise_std.shape != (n_experts,):
        raise ValueError(
            f"noise must be a number or an array of shape (n_experts,) = "
            f"({n_experts},), got an array of shape {noise_std.shape}."
        )
    if not np.all(np.isfinite(noise_std)) or np.any(noise_std < 0):
        raise ValueError(
            f"noise must contain finite values >= 0, got {noise_std.tolist()}."
        )
    return noise_std


def _gate_log_proba(X, gate_coef, gate_intercept, gate_sharpness):
    logits = gate_sharpness * (X @ gate_coef.T + gate_intercept)
    return logits - logsumexp(logits, axis=1, keepdims=True)


def _draw_gate_directions(rng, n_experts, n_features):
    """Well-separated gate directions, centred, with mean row norm one.

    Adding the same vector to every row leaves the softmax unchanged, so only
    the differences between rows matter: the rows are centred, and of a few
    random draws the one whose closest pair of rows is farthest apart is kept,
    so that no two regions share (almost) the same boundary normal.
    """
    if n_experts == 1:
        return np.zeros((1, n_features))
    best, best_gap = None, -np.inf
    for _ in range(_N_GATE_CANDIDATES):
        V = rng.standard_normal((n_experts, n_features))
        V -= V.mean(axis=0)
        V /= np.linalg.norm(V, axis=1).mean()
        dist = np.linalg.norm(V[:, None, :] - V[None, :, :], axis=-1)
        gap = dist[np.triu_indices(n_experts, k=1)].min()
        if gap > best_gap:
            best, best_gap = V, gap
    return best


def _balance_gate_intercept(Z, gate_coef, gate_sharpness):
    """Intercepts that give each region the same share of ``Z``.

    Sinkhorn sweeps on the softmax gate: each sweep moves every intercept by
    ``(log(1 / K) - log(share_k)) / gate_sharpness``, which makes the shares
    equal at a fixed point (the shares have the same mean as the gate
    probabilities, from which the labels are drawn).
    """
    n_experts = gate_coef.shape[0]
    intercept = np.zeros(n_experts)
    log_target = -np.log(n_experts)
    for _ in range(_N_BALANCE_SWEEPS):
        log_prob = _gate_log_proba(Z, gate_coef, intercept, gate_sharpness)
        log_share = logsumexp(log_prob, axis=0) - np.log(Z.shape[0])
        intercept += (log_target - log_share) / gate_sharpness
        intercept -= intercept.mean()
        if np.max(np.abs(log_share - log_target)) < 1e-6:
            break
    return intercept


def _check_sizes(n_samples, n_features, n_experts):
    """``n_samples``, ``n_features`` and ``n_experts`` as validated ints >= 1."""
    return (
        _check_int(n_samples, "n_samples", 1),
        _check_int(n_features, "n_features", 1),
        _check_int(n_experts, "n_experts", 1),
    )


def _check_flags(**flags):
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be a bool, got {value!r}.")


def _check_generator_args(n_samples, n_features, n_experts, gate_sharpness, **flags):
    """The arguments every gated generator takes, validated.

    Returns ``(n_samples, n_features, n_experts, gate_sharpness)`` as ints and
    a float > 0; ``flags`` (``return_labels=...``) must be bools.
    """
    sizes = _check_sizes(n_samples, n_features, n_experts)
    gate_sharpness = _check_real(gate_sharpness, "gate_sharpness", positive=True)
    _check_flags(**flags)
    return (*sizes, gate_sharpness)


def _draw_gate(rng, n_features, n_experts, gate_sharpness):
    """The gate's well-separated directions and balancing intercepts."""
    gate_coef = _draw_gate_directions(rng, n_experts, n_features)
    reference = rng.standard_normal((_N_REFERENCE, n_features))
    gate_intercept = _balance_gate_intercept(reference, gate_coef, gate_sharpness)
    return gate_coef, gate_intercept


def _draw_labels(rng, X, gate_coef, gate_intercept, gate_sharpness):
    """Inverse-CDF draw of one expert per row from the gate's probabilities."""
    gate = np.exp(_gate_log_proba(X, gate_coef, gate_intercept, gate_sharpness))
    u = rng.uniform(size=(X.shape[0], 1))
    return np.minimum((u > np.cumsum(gate, axis=1)).sum(axis=1), gate.shape[1] - 1)


def _linear_experts(rng, n_experts, n_features):
    """Coefficients of random sign and magnitude 1 to 3; intercepts in [-3, 3]."""
    sign = rng.choice([-1.0, 1.0], size=(n_experts, n_features))
    expert_coef = sign * rng.uniform(1.0, 3.0, size=(n_experts, n_features))
    expert_intercept = rng.uniform(-3.0, 3.0, size=n_experts)
    return expert_coef, expert_intercept


def _draw_gated_sample(rng, n_samples, n_features, n_experts, gate_sharpness, draw_experts):
    """The model's parameters, then the inputs and labels, in a fixed order of draws.

    ``draw_experts(rng, n_experts, n_features)`` gives the experts'
    ``(coef, intercept)``. Returns ``X``, ``labels``, the linear predictor
    ``expert_coef[label] @ x + expert_intercept[label]`` of each sample, and
    the ``params`` dict of the gate's and experts' parameters.
    """
    gate_coef, gate_intercept = _draw_gate(rng, n_features, n_experts, gate_sharpness)
    expert_coef, expert_intercept = draw_experts(rng, n_experts, n_features)
    X = rng.standard_normal((n_samples, n_features))
    labels = _draw_labels(rng, X, gate_coef, gate_intercept, gate_sharpness)
    linear = np.einsum("ij,ij->i", X, expert_coef[labels]) + expert_intercept[labels]
    params = {
        "gate_coef": gate_coef,
        "gate_intercept": gate_intercept,
        "gate_sharpness": gate_sharpness,
        "expert_coef": expert_coef,
        "expert_intercept": expert_intercept,
    }
    return X, labels, linear, params


def _output(X, y, labels, params, return_labels, return_params):
    out = (X, y, labels) if return_labels else (X, y)
    return (*out, params) if return_params else out


def gated_regression_mean(X, params):
    """True conditional mean of data from :func:`make_gated_regression`.

    ``E[y | x] = sum_k g_k(x) * (expert_coef[k] @ x + expert_intercept[k])``,
    where ``g(x) = softmax(gate_sharpness * (gate_coef @ x + gate_intercept))``
    is the true gate. No estimator can beat it on average, so its score is the
    reference that fitted models are compared with. Its R^2 is below one even
    without noise: near a region boundary the label, and with it the expert
    that made ``y``, is random (less so, the larger ``gate_sharpness``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inputs.
    params : dict
        The ``params`` returned by ``make_gated_regression(...,
        return_params=True)`` (the last item of its tuple).

    Returns
    -------
    mean : ndarray of shape (n_samples,)
        The conditional mean of ``y`` given each row of ``X``.

    See Also
    --------
    make_gated_regression : Generate the data and the ``params`` used here.

    Examples
    --------
    >>> from sklearn.metrics import r2_score
    >>> from skmoe.datasets import gated_regression_mean, make_gated_regression
    >>> X, y, params = make_gated_regression(
    ...     n_samples=2000, return_labels=False, return_params=True, random_state=0)
    >>> round(r2_score(y, gated_regression_mean(X, params)), 2)
    0.95
    """
    X = np.asarray(X, dtype=np.float64)
    gate_coef = np.asarray(params["gate_coef"], dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != gate_coef.shape[1]:
        raise ValueError(
            f"X must be a 2-D array with {gate_coef.shape[1]} features, got "
            f"shape {X.shape}."
        )
    gate = np.exp(
        _gate_log_proba(
            X, gate_coef, params["gate_intercept"], params["gate_sharpness"]
        )
    )
    expert_mean = X @ np.asarray(params["expert_coef"]).T + params["expert_intercept"]
    return np.sum(gate * expert_mean, axis=1)


@_fill_doc
def make_gated_regression(
    n_samples=1000,
    n_features=2,
    n_experts=3,
    *,
    noise=0.1,
    gate_sharpness=5.0,
    return_labels="warn",
    return_params=False,
    random_state=None,
):
    """Generate a regression problem from a mixture of linear experts.

    The data follow the model a mixture of experts fits. The inputs are
    standard normal, ``x ~ N(0, I)``. A softmax gate

    ``g(x) = softmax(gate_sharpness * (gate_coef @ x + gate_intercept))``

    picks the region (expert) of each sample, ``label ~ Categorical(g(x))``,
    and that region's linear expert gives the target,

    ``y = expert_coef[label] @ x + expert_intercept[label]
    + noise_std[label] * eps``, ``eps ~ N(0, 1)``.

    The gate directions are well separated and the intercepts are set so that
    each region holds about ``1 / n_experts`` of the samples; the larger
    ``gate_sharpness``, the closer the regions are to a hard partition of the
    input space. Expert coefficients have random signs and magnitudes between
    1 and 3, so neighbouring experts differ.

    Parameters
    ----------
    %(n_samples)s
    %(n_features)s
    n_experts : int, default=3
        Number of regions, each with its own linear expert.
    noise : float or array-like of shape (n_experts,), default=0.1
        Standard deviation of the Gaussian noise, the same for every expert
        (a float) or one per expert (an array). Must be non-negative.
    %(gate_sharpness)s
    return_labels : bool, default=True
        If True, also return the index of the expert that generated each
        sample, after ``y``.

        .. versionadded:: 0.2

        .. deprecated:: 0.2
           The default changes from True to False in 0.3, so that the
           function returns ``(X, y)`` like scikit-learn's generators (the
           way ``make_blobs`` returns its centres only with
           ``return_centers=True``). Until then, leaving ``return_labels``
           out returns the labels and issues a ``FutureWarning``; pass
           ``return_labels=True`` or ``False`` to silence it.

    %(return_params)s
    %(random_state)s

    Returns
    -------
    %(X)s
    y : ndarray of shape (n_samples,)
        Targets.
    %(labels)s
    params : dict
        Only if ``return_params=True``; the generating model, with keys

        - ``gate_coef``: ndarray of shape (n_experts, n_features),
        - ``gate_intercept``: ndarray of shape (n_experts,),
        - ``gate_sharpness``: float,
        - ``expert_coef``: ndarray of shape (n_experts, n_features),
        - ``expert_intercept``: ndarray of shape (n_experts,),
        - ``noise_std``: ndarray of shape (n_experts,).

        The tuple is, in this order, ``(X, y)``, then ``labels`` if
        ``return_labels=True``, then ``params`` if ``return_params=True``:
        ``(X, y)``, ``(X, y, labels)``, ``(X, y, params)`` or
        ``(X, y, labels, params)``.

    See Also
    --------
    gated_regression_mean : The true conditional mean ``E[y | x]``.
    make_xor_blobs : A classification problem a single linear model cannot
        solve.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.datasets import make_gated_regression
    >>> X, y = make_gated_regression(
    ...     n_samples=500, return_labels=False, random_state=0)
    >>> X.shape, y.shape
    ((500, 2), (500,))
    >>> X, y, labels = make_gated_regression(
    ...     n_samples=500, return_labels=True, random_state=0)
    >>> np.unique(labels).tolist()
    [0, 1, 2]
    >>> X, y, labels, params = make_gated_regression(
    ...     n_experts=2, noise=[0.1, 0.5], return_labels=True, return_params=True,
    ...     random_state=0)
    >>> params["expert_coef"].shape, params["noise_std"].tolist()
    ((2, 2), [0.1, 0.5])
    """
    warn_labels = isinstance(return_labels, str) and return_labels == "warn"
    n_samples, n_features, n_experts, gate_sharpness = _check_generator_args(
        n_samples, n_features, n_experts, gate_sharpness,
        return_labels=True if warn_labels else return_labels, return_params=return_params,
    )
    noise_std = _check_noise(noise, n_experts)
    if warn_labels:
        warnings.warn(
            "make_gated_regression returns (X, y, labels) but will return "
            "(X, y) from version 0.3, like scikit-learn's generators. Pass "
            "return_labels=True to keep the labels or return_labels=False to "
            "get (X, y); either silences this warning.",
            FutureWarning,
            stacklevel=2,
        )
        return_labels = True
    rng = check_random_state(random_state)

    X, labels, linear, params = _draw_gated_sample(
        rng, n_samples, n_features, n_experts, gate_sharpness, _linear_experts
    )
    y = linear + noise_std[labels] * rng.standard_normal(n_samples)
    params["noise_std"] = noise_std
    return _output(X, y, labels, params, return_labels, return_params)


@_fill_doc
def make_xor_blobs(n_samples=400, *, noise=0.3, random_state=None):
    """Generate four Gaussian blobs labelled by the XOR of their signs.

    The blob centres are ``(+1, +1)``, ``(-1, -1)`` (class 0) and
    ``(+1, -1)``, ``(-1, +1)`` (class 1): the class is 1 exactly when the two
    coordinates of the centre have different signs. No single linear
    decision boundary separates the classes, so one logistic regression
    scores about 50%, while a mixture of two linear experts (one per diagonal)
    solves the problem.

    Parameters
    ----------
    n_samples : int, default=400
        Total number of samples, shared as evenly as possible between the four
        blobs.
    noise : float, default=0.3
        Standard deviation of each blob (non-negative).
    %(random_state)s

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        Input samples.
    y : ndarray of shape (n_samples,)
        Class labels, 0 or 1.

    See Also
    --------
    make_gated_regression : Regression data from a mixture of linear experts.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.datasets import make_xor_blobs
    >>> X, y = make_xor_blobs(n_samples=8, noise=0.0, random_state=0)
    >>> X.shape, np.bincount(y).tolist()
    ((8, 2), [4, 4])
    >>> bool(np.all(y == (np.sign(X[:, 0]) != np.sign(X[:, 1]))))
    True
    """
    n_samples = _check_int(n_samples, "n_samples", 1)
    noise = _check_real(noise, "noise", positive=False)
    rng = check_random_state(random_state)

    centres = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
    blob = np.arange(n_samples) % 4
    X = centres[blob] + noise * rng.standard_normal((n_samples, 2))
    y = (blob >= 2).astype(np.int64)
    order = rng.permutation(n_samples)
    return X[order], y[order]
