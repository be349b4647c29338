"""Gaussian noise with a variance per expert: the regressor's likelihood."""

from numbers import Real

import numpy as np
from scipy.special import ndtr
from sklearn.linear_model import LinearRegression
from sklearn.utils.validation import column_or_1d

from .. import _em
from ..utils._compat import Interval
from ._base import _ScalarParameterLikelihood
from ._checks import check_finite_outputs, check_regressor_expert, target_variance_floor


class GaussianLikelihood(_ScalarParameterLikelihood):
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
    _params_attribute = "noise_variance_"
    least_squares = True

    def __init__(self, variance_floor=1e-6):
        self.variance_floor = variance_floor

    def default_expert(self):
        return LinearRegression()

    def check_expert(self, estimator):
        # Refuse classifiers: a Gaussian expert predicts a mean.
        check_regressor_expert(estimator, self.name, experts="MixtureOfExpertsRegressor's experts")

    def prepare_target(self, y, sample_weight):
        # Float64 target; learns the absolute variance floor ``floor_``.
        y = column_or_1d(y, warn=True).astype(np.float64, copy=False)
        self.floor_ = target_variance_floor(y, sample_weight, self.variance_floor)
        return y

    def transform_target(self, y):
        return column_or_1d(np.asarray(y, dtype=np.float64))

    def expert_outputs(self, experts, X, y, solver):
        return check_finite_outputs(
            solver.predict_T(experts, X),
            "; check the experts' parameters (e.g. a stronger regularisation) or scale X",
        )

    def init_params(self, n_experts):
        return np.ones(n_experts)

    def log_likelihood(self, outputs_T, y, params, out=None):
        return _em.gaussian_log_density(y, outputs_T, params, out=out)

    def m_step(self, y, outputs_T, resp_T, sample_weight, params):
        # Weighted mean squared residuals, floored.
        return _em.weighted_variance_update(y, outputs_T, resp_T, sample_weight, self.floor_)

    def mean_variance(self, outputs_T, params):
        return outputs_T, np.asarray(params, dtype=np.float64)

    def cdf(self, y, outputs_T, params):
        return ndtr((y - outputs_T) / np.sqrt(params)[:, None])

    def sample(self, outputs_T, params, rng):
        return outputs_T + np.sqrt(params)[:, None] * rng.standard_normal(outputs_T.shape)
