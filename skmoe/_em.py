"""Pure array functions of the EM algorithm for mixtures of experts.

Everything here works on the core layout: per-expert quantities are
``(n_experts, n_samples)`` C-contiguous arrays, so reductions over experts
run along the long, contiguous axis. The estimators transpose at the API
boundary. No function here holds state.

Every function takes its array namespace from its arguments
(:func:`~skmoe.utils._array_api.get_namespace`): NumPy arrays use NumPy's
in-place fast paths, other array-API arrays (torch through
``array_api_compat``) the same formulas without ``out=`` buffers.
"""

import math

import numpy as np
from scipy.special import logsumexp

from .utils._array_api import get_namespace

_LOG_2PI = math.log(2.0 * math.pi)


def _logsumexp_columns(xp, a):
    """``log sum_k exp(a_ki)`` over axis 0, stable, for any namespace (no in-place)."""
    shift = xp.max(a, axis=0)
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
    return xp.log(xp.sum(xp.exp(a - shift), axis=0)) + shift


def gaussian_log_density(y, mean_T, variance, out=None):
    """Per-expert Gaussian log-density ``log N(y_i | mean_ki, variance_k)``.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Targets.
    mean_T : ndarray of shape (n_experts, n_samples)
        Each expert's prediction.
    variance : ndarray of shape (n_experts,)
        Each expert's noise variance (positive).
    out : ndarray of shape (n_experts, n_samples), default=None
        Buffer for the result; may be ``mean_T`` itself.

    Returns
    -------
    log_density : ndarray of shape (n_experts, n_samples)
        Log-densities.
    """
    xp, is_numpy = get_namespace(y, mean_T, variance)
    if not is_numpy:
        residual = mean_T - y
        return (-0.5 / variance)[:, None] * residual * residual - 0.5 * (
            _LOG_2PI + xp.log(variance)
        )[:, None]
    out = np.subtract(mean_T, y, out=out)
    np.square(out, out=out)
    inv = (-0.5 / variance).astype(out.dtype, copy=False)
    out *= inv[:, None]
    out += (-0.5 * (_LOG_2PI + np.log(variance))).astype(out.dtype, copy=False)[:, None]
    return out


def e_step(log_gate_T, log_lik_T, out=None):
    """Log-responsibilities and per-sample log-likelihood, in log space.

    ``log r_ki = log g_k(x_i) + log p_k(y_i | x_i) - log sum_j (...)``.

    Parameters
    ----------
    log_gate_T : ndarray of shape (n_experts, n_samples)
        Log gate probabilities.
    log_lik_T : ndarray of shape (n_experts, n_samples)
        Log-likelihood of each sample under each expert.
    out : ndarray of shape (n_experts, n_samples), default=None
        Buffer for the log-responsibilities; may alias either input.

    Returns
    -------
    log_resp_T : ndarray of shape (n_experts, n_samples)
        Log-responsibilities; ``exp`` of each column sums to one.
    log_prob : ndarray of shape (n_samples,)
        ``log p(y_i | x_i)`` under the mixture.
    """
    xp, is_numpy = get_namespace(log_gate_T, log_lik_T)
    if not is_numpy:
        joint = log_gate_T + log_lik_T
        log_prob = _logsumexp_columns(xp, joint)
        return joint - log_prob, log_prob
    joint = np.add(log_gate_T, log_lik_T, out=out)
    with np.errstate(under="ignore"):
        log_prob = logsumexp(joint, axis=0)
    joint -= log_prob
    return joint, log_prob


def responsibilities(log_gate_T, log_lik_T, out=None):
    """Fused E-step: responsibilities (not their logs) and per-sample log-likelihood.

    The same result as ``exp`` of :func:`e_step`'s log-responsibilities, with a
    single ``exp`` pass and no ``(n_experts, n_samples)`` temporary: the joint
    log-probabilities are shifted by their column maximum, exponentiated in
    place and normalised.

    Parameters
    ----------
    log_gate_T : ndarray of shape (n_experts, n_samples)
        Log gate probabilities.
    log_lik_T : ndarray of shape (n_experts, n_samples)
        Log-likelihood of each sample under each expert.
    out : ndarray of shape (n_experts, n_samples), default=None
        Buffer for the responsibilities; may alias either input.

    Returns
    -------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities; each column sums to one.
    log_prob : ndarray of shape (n_samples,)
        ``log p(y_i | x_i)`` under the mixture.
    """
    xp, is_numpy = get_namespace(log_gate_T, log_lik_T)
    if not is_numpy:
        joint = log_gate_T + log_lik_T
        shift = xp.max(joint, axis=0)
        shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))
        joint = xp.exp(joint - shift)
        total = xp.sum(joint, axis=0)
        return joint / total, xp.log(total) + shift
    joint = np.add(log_gate_T, log_lik_T, out=out)
    shift = joint.max(axis=0)
    # A column of -inf everywhere cannot happen (log-likelihoods are floored),
    # but guard it so that it gives uniform responsibilities, not NaN.
    shift[~np.isfinite(shift)] = 0.0
    joint -= shift
    with np.errstate(under="ignore"):
        np.exp(joint, out=joint)
    total = joint.sum(axis=0)
    joint /= total
    log_prob = np.log(total)
    log_prob += shift
    return joint, log_prob


def mean_log_likelihood(log_prob, sample_weight=None):
    """Weighted mean of per-sample log-likelihoods.

    Parameters
    ----------
    log_prob : ndarray of shape (n_samples,)
        Per-sample log-likelihood.
    sample_weight : ndarray of shape (n_samples,), default=None
        Weights.

    Returns
    -------
    value : float
        ``sum_i w_i log_prob_i / sum_i w_i``.
    """
    xp, is_numpy = get_namespace(log_prob, sample_weight)
    if sample_weight is None:
        return float(xp.mean(log_prob))
    if is_numpy:
        return float(np.dot(sample_weight, log_prob) / np.sum(sample_weight))
    return float(xp.sum(sample_weight * log_prob) / xp.sum(sample_weight))


def weighted_variance_update(y, mean_T, resp_T, sample_weight, floor):
    """M-step of the noise variances, floored: ``sum r w (y - mu)^2 / sum r w``.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Targets.
    mean_T : ndarray of shape (n_experts, n_samples)
        Each expert's (new) prediction.
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities (of the E-step that preceded this M-step).
    sample_weight : ndarray of shape (n_samples,)
        User weights.
    floor : float
        Smallest variance allowed; keeps the likelihood bounded when an
        expert interpolates its samples.

    Returns
    -------
    variance : ndarray of shape (n_experts,)
        Floored variances.
    """
    xp, is_numpy = get_namespace(y, mean_T, resp_T, sample_weight)
    if not is_numpy:
        residual = mean_T - y
        rw = resp_T * sample_weight
        total = xp.sum(rw, axis=1)
        safe = xp.where(total > 0, total, xp.ones_like(total))
        variance = xp.where(total > 0, xp.sum(rw * residual * residual, axis=1) / safe, floor)
        return xp.clip(variance, min=floor)
    n_experts = mean_T.shape[0]
    variance = np.empty(n_experts)
    for k in range(n_experts):  # one row at a time: no (n_experts, n_samples) temporary
        residual = mean_T[k] - y
        rw = resp_T[k] * sample_weight
        total = rw.sum(dtype=np.float64)
        variance[k] = np.dot(rw, residual * residual) / total if total > 0 else floor
    return np.maximum(variance, floor)


def top_k_log_gate(log_gate_T, top_k):
    """Keep the ``top_k`` largest gate outputs per sample, renormalised.

    Parameters
    ----------
    log_gate_T : ndarray of shape (n_experts, n_samples)
        Log gate probabilities.
    top_k : int or None
        Number of experts kept per sample; None keeps all.

    Returns
    -------
    masked : ndarray of shape (n_experts, n_samples)
        Log gate probabilities with ``-inf`` outside the top ``top_k``, each
        column renormalised to log-sum-exp 0.
    """
    n_experts = log_gate_T.shape[0]
    if top_k is None or top_k >= n_experts:
        return log_gate_T
    xp, is_numpy = get_namespace(log_gate_T)
    if not is_numpy:
        # The top_k-th largest value per column; ties at the boundary break to the lowest index.
        rank = xp.argsort(xp.argsort(-log_gate_T, axis=0, stable=True), axis=0, stable=True)
        masked = xp.where(rank < top_k, log_gate_T, xp.full_like(log_gate_T, -math.inf))
        return masked - _logsumexp_columns(xp, masked)
    # The top_k largest of each column, ties to the lowest index (as training picks).
    keep = np.argsort(-log_gate_T, axis=0, kind="stable")[:top_k]
    masked = np.full_like(log_gate_T, -np.inf)
    np.put_along_axis(masked, keep, np.take_along_axis(log_gate_T, keep, axis=0), axis=0)
    with np.errstate(under="ignore"):
        masked -= logsumexp(masked, axis=0)
    return masked


def argmax_log_gate(log_gate_T):
    """One-hot gate on the most probable expert (ties: lowest index), in log space.

    Parameters
    ----------
    log_gate_T : ndarray of shape (n_experts, n_samples)
        Log gate probabilities.

    Returns
    -------
    masked : ndarray of shape (n_experts, n_samples)
        0 at the argmax expert, ``-inf`` elsewhere.
    """
    xp, is_numpy = get_namespace(log_gate_T)
    if not is_numpy:
        best = xp.argmax(log_gate_T, axis=0)
        experts = xp.arange(log_gate_T.shape[0])[:, None]
        zero = xp.zeros_like(log_gate_T)
        return xp.where(experts == best, zero, xp.full_like(log_gate_T, -math.inf))
    best = np.argmax(log_gate_T, axis=0)
    masked = np.full(log_gate_T.shape, -np.inf, dtype=log_gate_T.dtype)
    masked[best, np.arange(log_gate_T.shape[1])] = 0.0
    return masked


def mixture_mean_std(gate_T, mean_T, variance):
    """Mean and standard deviation of a Gaussian mixture per sample.

    Parameters
    ----------
    gate_T : ndarray of shape (n_experts, n_samples)
        Mixing weights (columns sum to one).
    mean_T : ndarray of shape (n_experts, n_samples)
        Component means.
    variance : ndarray of shape (n_experts,) or (n_experts, n_samples)
        Component variances (per expert, or per expert and sample).

    Returns
    -------
    mean, std : ndarray of shape (n_samples,)
        ``E[y|x]`` and ``sqrt(Var[y|x])`` by the law of total variance, of
        the dtype of the weights and means (float32 kept; the variance is
        summed in the variances' dtype).
    """
    xp, is_numpy = get_namespace(gate_T, mean_T, variance)
    if not is_numpy:
        mean = xp.sum(gate_T * mean_T, axis=0)
        spread = mean_T - mean
        var_T = variance[:, None] if variance.ndim == 1 else variance
        return mean, xp.sqrt(xp.sum(gate_T * (var_T + spread * spread), axis=0))
    mean = np.einsum("ki,ki->i", gate_T, mean_T)
    # Law of total variance written as sum_k g_k (s_k^2 + (mu_k - mean)^2):
    # no E[y^2] - E[y]^2 cancellation.
    var = variance @ gate_T if variance.ndim == 1 else np.einsum("ki,ki->i", gate_T, variance)
    for k in range(mean_T.shape[0]):
        spread = mean_T[k] - mean
        var += gate_T[k] * spread * spread
    return mean, np.sqrt(var).astype(mean.dtype, copy=False)


def positive_share(weights_T, sample_weight):
    """Share of the total weight of the samples each expert has a positive weight on.

    Parameters
    ----------
    weights_T : ndarray of shape (n_experts, n_samples)
        The M-step's weights.
    sample_weight : ndarray of shape (n_samples,)
        Weights.

    Returns
    -------
    load : ndarray of shape (n_experts,)
        ``sum_i w_i [weights_ki > 0] / sum_i w_i``.
    """
    xp, is_numpy = get_namespace(weights_T, sample_weight)
    if is_numpy:
        return (weights_T > 0) @ sample_weight / sample_weight.sum()
    return (xp.astype(weights_T > 0, sample_weight.dtype) @ sample_weight) / xp.sum(sample_weight)


def responsibility_share(resp_T, sample_weight):
    """Weighted mean responsibility of each expert.

    Parameters
    ----------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities.
    sample_weight : ndarray of shape (n_samples,)
        Weights.

    Returns
    -------
    share : ndarray of shape (n_experts,)
        Fractions summing to one.
    """
    xp, _ = get_namespace(resp_T, sample_weight)
    return (resp_T @ sample_weight) / xp.sum(sample_weight)
