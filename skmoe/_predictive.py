"""Predictive distributions of a mixture of experts: moments, quantiles, draws.

Pure functions on the core layout: ``weights_T`` are the pooling weights
``(n_experts, n_samples)`` (the gate, its top-k or the argmax one-hot;
columns sum to one), ``outputs_T`` the likelihood's expert outputs, and
``likelihood`` a fitted :class:`~skmoe.likelihoods.BaseLikelihood` with its
``params``. The predictive distribution of ``y`` at ``x_i`` is the mixture
``F_i(y) = sum_k w_ki F_k(y | x_i)``.

Quantiles solve ``F_i(q) = alpha`` by bracketing and bisection, vectorised
over the samples (each iteration one evaluation of every expert's
distribution function at one point per sample; no loop over rows): the
bracket starts at the range of the experts' means widened by the mixture's
standard deviation and doubles its width until it holds the quantile. A
likelihood on the integers (``discrete = True``, e.g. Poisson) gets an
integer search, which returns the smallest integer ``q`` with
``F_i(q) >= alpha``.
"""

from numbers import Integral

import numpy as np

from . import _em
from .utils._array_api import float_dtype

# Doublings of the bracket's half-width, and bisection steps: 2^-100 of the
# bracket is below float64 resolution for any bracket that doubling reached.
_MAX_EXPAND = 200
_MAX_BISECT = 200


def check_probabilities(values, name):
    """A 1-d float array of values in the open interval (0, 1).

    Parameters
    ----------
    values : float or array-like of float
        Probabilities.
    name : str
        Parameter name, for the message.

    Returns
    -------
    values : ndarray of shape (n_values,)
        The probabilities.
    """
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64)) if _is_numeric(values) else None
    if arr is None or arr.ndim != 1 or arr.size == 0 or not np.all((arr > 0) & (arr < 1)):
        raise ValueError(
            f"{name} must be a float or a non-empty 1-d array of floats in the open "
            f"interval (0, 1); got {values!r}."
        )
    return arr


def _is_numeric(values):
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        return False
    return arr.dtype.kind in "fiu" and not isinstance(values, (bool, np.bool_))


def mixture_mean_std(weights_T, mean_T, variance):
    """Mean and standard deviation of the mixture, infinite where a weighted expert's variance is.

    Parameters
    ----------
    weights_T : ndarray of shape (n_experts, n_samples)
        Pooling weights.
    mean_T : ndarray of shape (n_experts, n_samples)
        The experts' means.
    variance : ndarray of shape (n_experts,) or (n_experts, n_samples)
        The experts' variances; ``inf`` for an expert without a finite one
        (a Student-t with ``nu <= 2``).

    Returns
    -------
    mean : ndarray of shape (n_samples,)
        Mixture means.
    std : ndarray of shape (n_samples,)
        Mixture standard deviations (law of total variance); ``inf`` where an
        expert of infinite variance has positive weight.
    """
    variance = np.asarray(variance, dtype=np.float64)
    finite = np.isfinite(variance)
    if np.all(finite):
        return _em.mixture_mean_std(weights_T, mean_T, variance)
    mean, std = _em.mixture_mean_std(weights_T, mean_T, np.where(finite, variance, 0.0))
    infinite_T = np.broadcast_to(~finite if variance.ndim == 2 else ~finite[:, None], weights_T.shape)
    std[np.any(infinite_T & (weights_T > 0), axis=0)] = np.inf
    return mean, std


def mixture_cdf(y, weights_T, outputs_T, likelihood, params):
    """The mixture's distribution function ``F_i(y_i)``.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        One value per sample.
    weights_T, outputs_T, likelihood, params
        The mixture (see the module docstring); uses ``likelihood.cdf``.

    Returns
    -------
    cdf : ndarray of shape (n_samples,)
        ``sum_k w_ki F_k(y_i | x_i)``, clipped to [0, 1].
    """
    cdf_T = likelihood.cdf(y, outputs_T, params)
    return np.clip(np.einsum("ki,ki->i", weights_T, cdf_T), 0.0, 1.0)


def _start(weights_T, outputs_T, likelihood, params):
    """Bracket ends (the weighted experts' smallest and largest mean) and a step per sample."""
    mean_T, variance = likelihood.mean_variance(outputs_T, params)
    active = weights_T > 0
    lo = np.where(active, mean_T, np.inf).min(axis=0)
    hi = np.where(active, mean_T, -np.inf).max(axis=0)
    _, std = mixture_mean_std(weights_T, mean_T, variance)
    fallback = 1.0 + np.abs(0.5 * (lo + hi))
    step = np.where(np.isfinite(std) & (std > 0), std, fallback)
    return lo, hi, step


def mixture_quantiles(weights_T, outputs_T, likelihood, params, alpha):
    """Quantiles of the predictive mixture at the levels ``alpha``.

    Parameters
    ----------
    weights_T, outputs_T, likelihood, params
        The mixture (see the module docstring); uses ``likelihood.cdf`` and
        ``mean_variance``, and ``discrete`` when it lives on the integers.
    alpha : ndarray of shape (n_alpha,)
        Levels in (0, 1).

    Returns
    -------
    quantiles : ndarray of shape (n_samples, n_alpha)
        ``inf {q : F_i(q) >= alpha_j}``; integers for a discrete likelihood;
        float32 when the weights and outputs are.
    """
    n_samples = outputs_T.shape[1]
    # Searched in float64; returned in the dtype of the mixture (float32 kept).
    quantiles = np.empty((n_samples, alpha.size), dtype=float_dtype(weights_T, outputs_T))
    if n_samples == 0:
        return quantiles
    discrete = bool(getattr(likelihood, "discrete", False))
    lo0, hi0, step0 = _start(weights_T, outputs_T, likelihood, params)

    def cdf(y):
        return mixture_cdf(y, weights_T, outputs_T, likelihood, params)

    for j, level in enumerate(alpha):
        if discrete:
            quantiles[:, j] = _integer_quantile(cdf, level, hi0, step0)
        else:
            quantiles[:, j] = _continuous_quantile(cdf, level, lo0, hi0, step0)
    return quantiles


def _continuous_quantile(cdf, level, lo, hi, step):
    """Bisection on a bracket ``F(lo) < level <= F(hi)``, found by doubling steps."""
    lo = lo - step
    hi = hi + step
    # Stop at float64 resolution, or at 1e-14 of the scale for a quantile near 0.
    absolute = 1e-14 * step
    step = step.copy()
    for _ in range(_MAX_EXPAND):
        low_bad = cdf(lo) >= level
        high_bad = cdf(hi) < level
        if not (np.any(low_bad) or np.any(high_bad)):
            break
        lo = np.where(low_bad, lo - step, lo)
        hi = np.where(high_bad, hi + step, hi)
        step = step * 2.0
    for _ in range(_MAX_BISECT):
        width = hi - lo
        if np.all(width <= 4 * np.finfo(np.float64).eps * np.maximum(np.abs(lo), np.abs(hi)) + absolute):
            break
        mid = lo + 0.5 * width
        above = cdf(mid) >= level
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return hi


def _integer_quantile(cdf, level, hi, step):
    """Smallest integer ``q`` with ``F(q) >= level`` by integer bisection on ``(lo, hi]``."""
    lo = np.full(hi.shape, -1.0)  # F(-1) = 0 < level
    hi = np.ceil(np.maximum(hi + step, 0.0))
    for _ in range(_MAX_EXPAND):
        high_bad = cdf(hi) < level
        if not np.any(high_bad):
            break
        hi = np.where(high_bad, 2.0 * hi + 1.0, hi)
    while np.any(hi - lo > 1):
        mid = np.floor(0.5 * (lo + hi))
        above = cdf(mid) >= level
        move = hi - lo > 1
        hi = np.where(move & above, mid, hi)
        lo = np.where(move & ~above, mid, lo)
    return hi


def mixture_sample(weights_T, outputs_T, likelihood, params, n_draws, rng):
    """Draws from the predictive mixture: an expert from the weights, then ``y`` from it.

    Parameters
    ----------
    weights_T, outputs_T, likelihood, params
        The mixture (see the module docstring); uses ``likelihood.sample``.
    n_draws : int
        Draws per sample.
    rng : numpy.random.RandomState
        Random generator.

    Returns
    -------
    draws : ndarray of shape (n_samples, n_draws)
        Column ``j`` is one draw of ``y`` for every sample; float32 when the
        weights and outputs are.
    """
    n_experts, n_samples = outputs_T.shape
    cumulative = np.cumsum(weights_T, axis=0)
    cumulative /= cumulative[-1]
    columns = np.arange(n_samples)
    draws = np.empty((n_samples, n_draws), dtype=float_dtype(weights_T, outputs_T))
    for j in range(n_draws):
        expert_draws_T = likelihood.sample(outputs_T, params, rng)
        u = rng.uniform(size=n_samples)
        chosen = np.minimum((u > cumulative).sum(axis=0), n_experts - 1)
        draws[:, j] = expert_draws_T[chosen, columns]
    return draws


def check_n_draws(n_draws):
    """``n_samples`` of ``sample_y``: an int >= 1.

    Parameters
    ----------
    n_draws : int
        Draws per sample.

    Returns
    -------
    n_draws : int
        The value.
    """
    if isinstance(n_draws, (bool, np.bool_)) or not isinstance(n_draws, Integral) or n_draws < 1:
        raise ValueError(f"n_samples must be an int >= 1; got {n_draws!r}.")
    return int(n_draws)


def interval_levels(coverage):
    """Lower and upper quantile levels of central intervals.

    Parameters
    ----------
    coverage : float or array-like of shape (n_coverage,)
        Nominal coverages in (0, 1).

    Returns
    -------
    coverage : ndarray of shape (n_coverage,)
        The coverages.
    levels : ndarray of shape (2 * n_coverage,)
        ``(1 - c) / 2`` and ``(1 + c) / 2`` for each coverage ``c``, interleaved.
    """
    coverage = check_probabilities(coverage, "coverage")
    levels = np.column_stack([(1.0 - coverage) / 2.0, (1.0 + coverage) / 2.0]).ravel()
    return coverage, levels


__all__ = [
    "check_n_draws",
    "check_probabilities",
    "interval_levels",
    "mixture_cdf",
    "mixture_mean_std",
    "mixture_quantiles",
    "mixture_sample",
]
