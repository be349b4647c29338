"""Gamma responses: experts predict the mean, a shape per expert."""

import numpy as np
from scipy.special import gammainc, gammaln, polygamma, psi
from sklearn.linear_model import GammaRegressor

from ._base import _ScalarParameterLikelihood
from ._checks import _PositiveMeanLikelihood, store_in

# Range of the shapes: the upper bound keeps the likelihood bounded when an
# expert interpolates its samples (coefficient of variation 1e-3, as the
# Gaussian variance floor of 1e-6 times var(y) does), the lower bound keeps
# the density computable.
_SHAPE_MIN = 1e-3
_SHAPE_MAX = 1e6
_NEWTON_ITER = 50


def gamma_shape_mle(deviance):
    """Shape ``nu`` solving ``log(nu) - digamma(nu) = deviance`` by Newton on ``log(nu)``.

    ``deviance`` is the weighted mean of ``y/mu - log(y/mu) - 1`` (half the
    mean unit Gamma deviance): the weighted log-likelihood's stationarity
    condition in the shape, for fixed means. ``log(nu) - digamma(nu)`` is
    decreasing and convex in ``log(nu)``; Newton starts from the
    Choi-Wette approximation and converges in a few steps.

    Parameters
    ----------
    deviance : ndarray of shape (n_experts,)
        Non-negative mean half deviances.

    Returns
    -------
    shape : ndarray of shape (n_experts,)
        Maximum-likelihood shapes, clipped to ``[1e-3, 1e6]``.
    """
    d = np.maximum(np.asarray(deviance, dtype=np.float64), 1e-300)
    nu = (3.0 - d + np.sqrt((d - 3.0) ** 2 + 24.0 * d)) / (12.0 * d)
    log_nu = np.log(np.clip(nu, _SHAPE_MIN, _SHAPE_MAX))
    for _ in range(_NEWTON_ITER):
        nu = np.exp(log_nu)
        g = log_nu - psi(nu) - d
        slope = 1.0 - nu * polygamma(1, nu)  # < 0
        step = g / slope
        log_nu = np.clip(log_nu - step, np.log(_SHAPE_MIN), np.log(_SHAPE_MAX))
        if np.all(np.abs(step) < 1e-12):
            break
    return np.exp(log_nu)


class GammaLikelihood(_PositiveMeanLikelihood, _ScalarParameterLikelihood):
    """``y | x, expert k  ~  Gamma(mean mu_k(x), shape nu_k)``: positive responses.

    The density is ``nu^nu y^(nu-1) exp(-nu y / mu) / (Gamma(nu) mu^nu)``:
    mean ``mu``, variance ``mu^2 / nu`` (a constant coefficient of variation
    ``1 / sqrt(nu_k)`` per expert). Each expert predicts the mean with a
    weighted fit (``GammaRegressor``, the default, maximises the weighted
    Gamma likelihood in the mean whatever the shape); the shapes are then
    the weighted maximum-likelihood estimates, by Newton's method on
    ``log(nu) - digamma(nu) = mean(y/mu - log(y/mu) - 1)``, kept in
    ``[1e-3, 1e6]`` so that an expert that interpolates its samples cannot
    make the likelihood unbounded.

    Read more in the :ref:`User Guide <likelihoods>`.

    Attributes
    ----------
    positive_only : bool
        True: the target is positive (scikit-learn's estimator checks then
        draw positive targets).

    See Also
    --------
    PoissonLikelihood : Counts.
    GaussianLikelihood : Gaussian noise with a variance per expert.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.likelihoods import GammaLikelihood
    >>> rng = np.random.RandomState(1)
    >>> y = rng.gamma(shape=4.0, scale=0.5, size=20000)  # mean 2, shape 4
    >>> lik = GammaLikelihood()
    >>> y = lik.prepare_target(y, np.ones_like(y))
    >>> mean_T = np.full((1, y.size), 2.0)
    >>> lik.m_step(y, mean_T, np.ones((1, y.size)), np.ones_like(y), None).round(1)
    array([4.])
    """

    name = "gamma"
    _params_attribute = "gamma_shape_"

    def default_expert(self):
        # ``GammaRegressor(alpha=0, solver="newton-cholesky")``: unpenalised, log link.
        return GammaRegressor(alpha=0.0, solver="newton-cholesky")

    def init_params(self, n_experts):
        # Unit shapes (exponential distributions).
        return np.ones(n_experts)

    def log_likelihood(self, outputs_T, y, params, out=None):
        nu = np.asarray(params, dtype=np.float64)[:, None]
        ratio = y / outputs_T
        return store_in(nu * (np.log(nu) + np.log(ratio) - ratio) - np.log(y) - gammaln(nu), out)

    def m_step(self, y, outputs_T, resp_T, sample_weight, params):
        # Weighted maximum-likelihood shapes for the new means.
        ratio = y / outputs_T
        unit = ratio - np.log(ratio) - 1.0
        weight = resp_T * sample_weight
        total = weight.sum(axis=1)
        deviance = np.einsum("ki,ki->k", weight, unit) / np.where(total > 0, total, 1.0)
        shape = gamma_shape_mle(deviance)
        if params is not None:
            shape = np.where(total > 0, shape, params)
        return shape

    def mean_variance(self, outputs_T, params):
        # Return the means and the variances ``mu^2 / nu``.
        return outputs_T, outputs_T**2 / np.asarray(params)[:, None]

    def cdf(self, y, outputs_T, params):
        nu = np.asarray(params)[:, None]
        return gammainc(nu, nu * np.maximum(y, 0.0) / outputs_T)

    def sample(self, outputs_T, params, rng):
        nu = np.broadcast_to(np.asarray(params)[:, None], outputs_T.shape)
        return rng.gamma(nu, outputs_T / nu)

