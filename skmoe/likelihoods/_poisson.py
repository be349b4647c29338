"""Poisson counts: experts predict the rate, no parameters of the likelihood's own."""

import numpy as np
from scipy.special import gammaincc, gammaln, xlogy
from sklearn.linear_model import PoissonRegressor

from ._checks import _PositiveMeanLikelihood, store_in


class PoissonLikelihood(_PositiveMeanLikelihood):
    """``y | x, expert k  ~  Poisson(mu_k(x))``: counts.

    Each expert predicts the mean (rate) ``mu_k(x) > 0``; an expert with a
    log link keeps it positive (``PoissonRegressor``, the default, or
    ``HistGradientBoostingRegressor(loss="poisson")``). The experts' weighted
    fits are the whole M-step: the Poisson family has no dispersion to
    estimate. Non-integer ``y >= 0`` is accepted (rates, with the exposure as
    ``sample_weight``); the density then uses ``log Gamma(y + 1)`` in place of
    ``log y!``. Predictive quantiles are integers.

    Read more in the :ref:`User Guide <likelihoods>`.

    Attributes
    ----------
    discrete : bool
        True: the predictive distribution lives on the integers (quantiles
        are found by an integer search).
    positive_only : bool
        True: the target is non-negative (scikit-learn's estimator checks
        then draw non-negative targets).

    See Also
    --------
    GammaLikelihood : Positive continuous responses.
    GaussianLikelihood : Gaussian noise with a variance per expert.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.likelihoods import PoissonLikelihood
    >>> lik = PoissonLikelihood()
    >>> y = lik.prepare_target(np.array([0.0, 1.0, 3.0]), np.ones(3))
    >>> rate_T = np.array([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]])
    >>> lik.log_likelihood(rate_T, y, None).round(3)
    array([[-1.   , -1.   , -2.792],
           [-3.   , -1.901, -1.496]])
    """

    name = "poisson"
    _strict_target = False
    _target_description = "non-negative counts or rates"
    discrete = True

    def default_expert(self):
        # ``PoissonRegressor(alpha=0, solver="newton-cholesky")``: unpenalised, log link.
        return PoissonRegressor(alpha=0.0, solver="newton-cholesky")

    def log_likelihood(self, outputs_T, y, params, out=None):
        # Poisson log-probabilities ``y log mu - mu - log Gamma(y + 1)``.
        return store_in(xlogy(y, outputs_T) - outputs_T - gammaln(y + 1.0), out)

    def mean_variance(self, outputs_T, params):
        # The rate is both the mean and the variance.
        return outputs_T, outputs_T

    def cdf(self, y, outputs_T, params):
        # Poisson distribution functions ``P(Y <= floor(y))``.
        k = np.floor(y)
        with np.errstate(invalid="ignore"):
            cdf = gammaincc(np.maximum(k, 0.0) + 1.0, outputs_T)
        return np.where(k < 0, 0.0, cdf)

    def sample(self, outputs_T, params, rng):
        return rng.poisson(outputs_T).astype(np.float64)
