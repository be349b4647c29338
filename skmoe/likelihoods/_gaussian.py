"""Gaussian noise with a variance per expert: the regressor's likelihood."""

from numbers import Real

import numpy as np
from scipy.special import ndtr
from sklearn.base import is_classifier
from sklearn.linear_model import LinearRegression
from sklearn.utils.validation import column_or_1d

from .. import _em
from ..utils._compat import Interval
from ._base import BaseLikelihood


class GaussianLikelihood(BaseLikelihood):
    """``y | x, expert k  ~  N(f_k(x), sigma_k^2)``.

    The experts predict the mean; the noise variances are this likelihood's
    parameters, updated in the M-step from the weighted squared residuals and
    floored at ``variance_floor`` times the weighted variance of ``y`` (an
    absolute floor for a constant target), which keeps the likelihood bounded
    when an expert interpolates its samples.

    Parameters
    ----------
    variance_floor : float, default=1e-6
        Smallest noise variance, relative to the variance of the target.

    Attributes
    ----------
    floor_ : float
        The absolute variance floor of the last fit.

    See Also
    --------
    CategoricalLikelihood : The classifier's likelihood.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.likelihoods import GaussianLikelihood
    >>> lik = GaussianLikelihood()
    >>> y = np.array([0.0, 1.0, 2.0])
    >>> _ = lik.prepare_target(y, np.ones(3))
    >>> mean_T = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    >>> lik.log_likelihood(mean_T, y, np.array([1.0, 1.0])).round(3)
    array([[-0.919, -0.919, -0.919],
           [-1.419, -0.919, -1.419]])
    """

    _parameter_constraints = {"variance_floor": [Interval(Real, 0, None, closed="left")]}

    name = "gaussian"
    numeric_target = True
    drop_zero_weight_rows = True
    least_squares = True

    def __init__(self, variance_floor=1e-6):
        self.variance_floor = variance_floor

    def default_expert(self):
        """``LinearRegression()``.

        Returns
        -------
        expert : LinearRegression
            Unfitted.
        """
        return LinearRegression()

    def check_expert(self, estimator):
        """Refuse classifiers: a Gaussian expert predicts a mean.

        Parameters
        ----------
        estimator : estimator
            Candidate expert.

        Raises
        ------
        TypeError
            If ``estimator`` is a classifier.
        """
        if is_classifier(estimator):
            raise TypeError(
                f"expert={estimator!r} is a classifier, but MixtureOfExpertsRegressor's "
                "experts are regressors that predict the mean of y (fit(X, y, "
                "sample_weight) and predict(X) -> values). For class labels use "
                "MixtureOfExpertsClassifier."
            )

    def prepare_target(self, y, sample_weight):
        """Float64 target; learns the absolute variance floor ``floor_``.

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            Numeric target.
        sample_weight : ndarray of shape (n_samples,)
            Positive weights.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The target as float64.
        """
        y = column_or_1d(y, warn=True).astype(np.float64, copy=False)
        mean = np.average(y, weights=sample_weight)
        var = np.average((y - mean) ** 2, weights=sample_weight)
        # Floor relative to the target's spread; an absolute one for a constant target.
        self.floor_ = max(self.variance_floor * var, 1e-12 * max(1.0, mean * mean))
        return y

    def transform_target(self, y):
        """Float64 1-d target.

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Target.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The target as float64.
        """
        return column_or_1d(np.asarray(y, dtype=np.float64))

    def expert_outputs(self, experts, X, y, solver):
        """The experts' predictions.

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
            Predicted means.
        """
        mean_T = solver.predict_T(experts, X)
        if not np.all(np.isfinite(mean_T)):
            bad = np.flatnonzero(~np.all(np.isfinite(mean_T), axis=1)).tolist()
            raise ValueError(
                f"Expert(s) {bad} predicted NaN or infinite values; check the experts' "
                "parameters (e.g. a stronger regularisation) or scale X."
            )
        return mean_T

    def init_params(self, n_experts):
        """Unit variances.

        Parameters
        ----------
        n_experts : int
            Number of experts.

        Returns
        -------
        variance : ndarray of shape (n_experts,)
            Ones.
        """
        return np.ones(n_experts)

    def log_likelihood(self, outputs_T, y, params, out=None):
        """Gaussian log-densities.

        Parameters
        ----------
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted means.
        y : ndarray of shape (n_samples,)
            Target.
        params : ndarray of shape (n_experts,)
            Noise variances.
        out : ndarray of shape (n_experts, n_samples), default=None
            Buffer; may be ``outputs_T``.

        Returns
        -------
        log_lik_T : ndarray of shape (n_experts, n_samples)
            ``log N(y_i | mu_ki, sigma_k^2)``.
        """
        return _em.gaussian_log_density(y, outputs_T, params, out=out)

    def m_step(self, y, outputs_T, resp_T, sample_weight, params):
        """Weighted mean squared residuals, floored.

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            Target.
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted means of the new experts.
        resp_T : ndarray of shape (n_experts, n_samples)
            Responsibilities.
        sample_weight : ndarray of shape (n_samples,)
            User weights.
        params : ndarray of shape (n_experts,)
            Current variances (unused).

        Returns
        -------
        variance : ndarray of shape (n_experts,)
            New variances.
        """
        return _em.weighted_variance_update(y, outputs_T, resp_T, sample_weight, self.floor_)

    def mean_variance(self, outputs_T, params):
        """Return the means and the noise variances.

        Parameters
        ----------
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted means.
        params : ndarray of shape (n_experts,)
            Noise variances.

        Returns
        -------
        mean_T : ndarray of shape (n_experts, n_samples)
            Means.
        variance : ndarray of shape (n_experts,)
            Variances.
        """
        return outputs_T, np.asarray(params, dtype=np.float64)

    def cdf(self, y, outputs_T, params):
        """Gaussian distribution functions.

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            Values.
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted means.
        params : ndarray of shape (n_experts,)
            Noise variances.

        Returns
        -------
        cdf_T : ndarray of shape (n_experts, n_samples)
            ``Phi((y_i - mu_ki) / sigma_k)``.
        """
        return ndtr((y - outputs_T) / np.sqrt(params)[:, None])

    def sample(self, outputs_T, params, rng):
        """Gaussian draws.

        Parameters
        ----------
        outputs_T : ndarray of shape (n_experts, n_samples)
            Predicted means.
        params : ndarray of shape (n_experts,)
            Noise variances.
        rng : numpy.random.RandomState
            Random generator.

        Returns
        -------
        draws_T : ndarray of shape (n_experts, n_samples)
            Draws.
        """
        return outputs_T + np.sqrt(params)[:, None] * rng.standard_normal(outputs_T.shape)

    def n_parameters(self, params):
        """One variance per expert.

        Parameters
        ----------
        params : ndarray of shape (n_experts,)
            Variances.

        Returns
        -------
        n_parameters : int
            ``n_experts``.
        """
        return int(np.size(params))

    def min_effective_samples(self, n_expert_parameters):
        """Twice the expert's parameters plus its variance.

        Below it an expert can interpolate its samples and drive its variance
        to the floor: the unbounded likelihood of mixtures of regressions.

        Parameters
        ----------
        n_expert_parameters : int
            Coefficients and intercept of the expert.

        Returns
        -------
        threshold : float
            ``2 * (n_expert_parameters + 1)``.
        """
        return 2.0 * (n_expert_parameters + 1)

    def fitted_attributes(self, params):
        """``noise_variance_``.

        Parameters
        ----------
        params : ndarray of shape (n_experts,)
            Variances.

        Returns
        -------
        attributes : dict
            ``{"noise_variance_": params}``.
        """
        return {"noise_variance_": np.asarray(params, dtype=np.float64)}
