"""Poisson counts: experts predict the rate, no parameters of the likelihood's own."""

import numpy as np
from scipy.special import gammaincc, gammaln, xlogy
from sklearn.linear_model import PoissonRegressor

from ._base import BaseLikelihood
from ._checks import check_positive_means, check_regressor_expert, check_target


class PoissonLikelihood(BaseLikelihood):
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
    numeric_target = True
    drop_zero_weight_rows = True
    least_squares = False
    positive_only = True
    discrete = True

    def default_expert(self):
        """``PoissonRegressor(alpha=0, solver="newton-cholesky")``: unpenalised, log link.

        Returns
        -------
        expert : PoissonRegressor
            Unfitted.
        """
        return PoissonRegressor(alpha=0.0, solver="newton-cholesky")

    def check_expert(self, estimator):
        """Refuse classifiers: a Poisson expert predicts a rate.

        Parameters
        ----------
        estimator : estimator
            Candidate expert.
        """
        check_regressor_expert(estimator, self.name)

    def prepare_target(self, y, sample_weight):
        """Float64 target, refused unless finite and ``>= 0``.

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            Counts or rates.
        sample_weight : ndarray of shape (n_samples,)
            Positive weights (unused).

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The target as float64.
        """
        return self.transform_target(y)

    def transform_target(self, y):
        """Float64 1-d target, refused unless finite and ``>= 0``.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Counts or rates.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The target as float64.
        """
        return check_target(y, self.name, lower=0.0, strict=False, what="non-negative counts or rates")

    def expert_outputs(self, experts, X, y, solver):
        """The experts' predicted rates, refused unless positive.

        Parameters
        ----------
        experts : list of fitted regressors
            Experts.
        X : ndarray of shape (n_samples, n_features)
            Inputs.
        y : ndarray of shape (n_samples,)
            Target (unused).
        solver : object
            Expert solver (``predict_T``).

        Returns
        -------
        mean_T : ndarray of shape (n_experts, n_samples)
            Predicted rates.
        """
        return check_positive_means(solver.predict_T(experts, X), self.name)

    def log_likelihood(self, outputs_T, y, params, out=None):
        """Poisson log-probabilities ``y log mu - mu - log Gamma(y + 1)``.

        Parameters
        ----------
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted rates.
        y : ndarray of shape (n_samples,)
            Target.
        params : None
            Unused.
        out : ndarray of shape (n_experts, n_samples), default=None
            Buffer; may be ``outputs_T``.

        Returns
        -------
        log_lik_T : ndarray of shape (n_experts, n_samples)
            Log-probabilities.
        """
        log_lik = xlogy(y, outputs_T) - outputs_T - gammaln(y + 1.0)
        if out is None:
            return log_lik
        out[...] = log_lik
        return out

    def mean_variance(self, outputs_T, params):
        """The rate is both the mean and the variance.

        Parameters
        ----------
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted rates.
        params : None
            Unused.

        Returns
        -------
        mean_T : ndarray of shape (n_experts, n_samples)
            Means.
        variance_T : ndarray of shape (n_experts, n_samples)
            Variances.
        """
        return outputs_T, outputs_T

    def cdf(self, y, outputs_T, params):
        """Poisson distribution functions ``P(Y <= floor(y))``.

        Parameters
        ----------
        y : ndarray of shape (n_samples,) or (n_experts, n_samples)
            Values.
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted rates.
        params : None
            Unused.

        Returns
        -------
        cdf_T : ndarray of shape (n_experts, n_samples)
            Distribution functions (0 below 0).
        """
        k = np.floor(y)
        with np.errstate(invalid="ignore"):
            cdf = gammaincc(np.maximum(k, 0.0) + 1.0, outputs_T)
        return np.where(k < 0, 0.0, cdf)

    def sample(self, outputs_T, params, rng):
        """Poisson draws.

        Parameters
        ----------
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted rates.
        params : None
            Unused.
        rng : numpy.random.RandomState
            Random generator.

        Returns
        -------
        draws_T : ndarray of shape (n_experts, n_samples)
            Counts, as float64.
        """
        return rng.poisson(outputs_T).astype(np.float64)
