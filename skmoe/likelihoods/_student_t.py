"""Student-t noise: robust experts fitted by ECM (Peel & McLachlan 2000)."""

from numbers import Real

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import gammaln, stdtr
from sklearn.linear_model import LinearRegression

from ..utils._compat import Interval
from ._base import BaseLikelihood
from ._checks import (
    check_finite_outputs,
    check_regressor_expert,
    check_target,
    store_in,
    target_variance_floor,
)

# Range of the estimated degrees of freedom: below 0.5 the tails are heavier
# than any data need, above 1000 the t is a Gaussian to four digits.
_DF_MIN = 0.5
_DF_MAX = 1000.0


def _t_log_density(y, mean_T, scale2, df):
    """``log t_df(y | mean, scale^2)`` for each expert; ``scale2`` and ``df`` of shape (n_experts, 1)."""
    z2 = (y - mean_T) ** 2 / scale2
    return (
        gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * np.log(np.pi * df * scale2)
        - 0.5 * (df + 1.0) * np.log1p(z2 / df)
    )


def _weighted_t_log_likelihood(log_df, z2, weight, log_scale2):
    """``-sum_i w_i log t_df(z_i)`` at ``df = exp(log_df)``, for one expert (to minimise)."""
    df = np.exp(log_df)
    per_sample = -0.5 * (df + 1.0) * np.log1p(z2 / df)
    const = gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * np.log(np.pi * df) - 0.5 * log_scale2
    return -(float(np.dot(weight, per_sample)) + const * float(weight.sum()))


class StudentTLikelihood(BaseLikelihood):
    """``y | x, expert k  ~  t_{nu_k}(f_k(x), sigma_k^2)``: experts robust to outliers.

    The Student-t is a Gaussian scale mixture: ``y = f_k(x) + e / sqrt(u)``
    with ``e ~ N(0, sigma_k^2)`` and ``u ~ Gamma(nu_k / 2, rate nu_k / 2)``.
    With ``u`` as a second latent variable, EM becomes the ECM algorithm of
    Peel & McLachlan (2000): the E-step gives, besides the
    responsibilities ``r_ik``, the expected scales

    ``u_ik = (nu_k + 1) / (nu_k + d_ik^2)``, ``d_ik = (y_i - f_k(x_i)) / sigma_k``

    (:meth:`expert_weights`), so samples far from an expert weigh little;
    the experts are refitted with weights ``r_ik u_ik`` (for
    ``LinearRegression`` experts, the exact conditional maximisation);
    then ``sigma_k^2 = sum_i r_ik u_ik (y_i - f_k(x_i))^2 / sum_i r_ik``
    with ``u`` recomputed at the new experts, floored like the Gaussian
    variances, and ``nu_k`` maximises the expert's weighted t
    log-likelihood, in ``[0.5, 1000]`` (the ECME variant of Liu & Rubin,
    1994). Each step raises the expected complete-data log-likelihood, so
    with exact experts EM's objective cannot decrease.

    Read more in the :ref:`User Guide <likelihoods>`.

    Parameters
    ----------
    df : float or None, default=None
        Degrees of freedom ``nu``, the same for every expert; ``None``
        estimates one per expert.
    variance_floor : float, default=1e-6
        Smallest ``sigma_k^2``, relative to the variance of the target.

    Attributes
    ----------
    floor_ : float
        The absolute floor of ``sigma_k^2`` of the last fit.

    See Also
    --------
    GaussianLikelihood : The limit ``nu -> infinity``.

    Notes
    -----
    The variance of a t distribution is ``sigma^2 nu / (nu - 2)``, finite
    only for ``nu > 2``: with an expert of ``nu_k <= 2``,
    ``predict(return_std=True)`` returns an infinite standard deviation
    wherever that expert has weight (and warns); the quantiles of
    ``predict_quantiles`` and ``predict_interval`` always exist.

    References
    ----------
    .. [1] D. Peel and G. J. McLachlan, "Robust mixture modelling using the t
       distribution", Statistics and Computing 10, 2000.
    .. [2] F. Chamroukhi, "Robust mixture of experts modeling using the t
       distribution", Neural Networks 79, 2016.
    .. [3] C. Liu and D. B. Rubin, "The ECME algorithm: a simple extension
       of EM and ECM with faster monotone convergence", Biometrika 81(4), 1994.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.likelihoods import StudentTLikelihood
    >>> lik = StudentTLikelihood()
    >>> y = lik.prepare_target(np.array([0.0, 1.0, 10.0]), np.ones(3))
    >>> params = np.array([[1.0, 4.0]])  # sigma^2 and nu of one expert
    >>> lik.expert_weights(np.zeros((1, 3)), y, params).round(3)
    array([[1.25 , 1.   , 0.048]])
    """

    _parameter_constraints = {
        "df": [Interval(Real, 0, None, closed="neither"), None],
        "variance_floor": [Interval(Real, 0, None, closed="left")],
    }

    name = "student_t"
    least_squares = True  # its ECM step: weighted least squares with weights r * u

    def __init__(self, df=None, variance_floor=1e-6):
        self.df = df
        self.variance_floor = variance_floor

    def default_expert(self):
        return LinearRegression()

    def check_expert(self, estimator):
        # Refuse classifiers: a Student-t expert predicts a location.
        check_regressor_expert(estimator, self.name)

    def prepare_target(self, y, sample_weight):
        # Float64 finite target; learns the absolute floor ``floor_`` of ``sigma^2``.
        self._validate_params()
        y = self.transform_target(y)
        self.floor_ = target_variance_floor(y, sample_weight, self.variance_floor)
        return y

    def transform_target(self, y):
        return check_target(y, self.name, lower=None, strict=False, what="a finite target")

    def expert_outputs(self, experts, X, y, solver):
        return check_finite_outputs(solver.predict_T(experts, X))

    def init_params(self, n_experts):
        # None: the first M-step is a Gaussian one (every ``u_ik = 1``).
        return None

    @staticmethod
    def _split(params):
        params = np.asarray(params, dtype=np.float64)
        return params[:, 0:1], params[:, 1:2]

    def log_likelihood(self, outputs_T, y, params, out=None):
        scale2, df = self._split(params)
        return store_in(_t_log_density(y, outputs_T, scale2, df), out)

    def expert_weights(self, outputs_T, y, params):
        # The E-step's expected latent scales u_ik of the class docstring; none
        # before the first M-step has set sigma_k^2 and nu_k.
        if params is None:
            return None
        scale2, df = self._split(params)
        return (df + 1.0) / (df + (y - outputs_T) ** 2 / scale2)

    def m_step(self, y, outputs_T, resp_T, sample_weight, params):
        # ``sigma_k^2`` from the ``u``-weighted residuals, then ``nu_k`` (ECME).
        n_experts = outputs_T.shape[0]
        residual2 = (y - outputs_T) ** 2
        weight = resp_T * sample_weight
        total = weight.sum(axis=1)
        safe = np.where(total > 0, total, 1.0)
        if params is None:
            u = np.ones_like(residual2)
            df_old = np.full(n_experts, np.inf if self.df is None else float(self.df))
        else:
            scale2_old, df_col = self._split(params)
            u = (df_col + 1.0) / (df_col + residual2 / scale2_old)
            df_old = df_col[:, 0]
        scale2 = np.einsum("ki,ki,ki->k", weight, u, residual2) / safe
        scale2 = np.maximum(np.where(total > 0, scale2, self.floor_), self.floor_)
        if self.df is not None:
            df = np.full(n_experts, float(self.df))
        else:
            df = np.empty(n_experts)
            for k in range(n_experts):
                if total[k] <= 0:
                    df[k] = df_old[k] if np.isfinite(df_old[k]) else _DF_MAX
                    continue
                z2 = residual2[k] / scale2[k]
                result = minimize_scalar(
                    _weighted_t_log_likelihood,
                    bounds=(np.log(_DF_MIN), np.log(_DF_MAX)),
                    args=(z2, weight[k], np.log(scale2[k])),
                    method="bounded",
                    options={"xatol": 1e-6},
                )
                df[k] = float(np.exp(result.x))
        return np.column_stack([scale2, df])

    def mean_variance(self, outputs_T, params):
        # Return the locations and the variances ``sigma^2 nu / (nu - 2)`` (inf for ``nu <= 2``).
        scale2, df = (col[:, 0] for col in self._split(params))
        with np.errstate(divide="ignore", invalid="ignore"):
            variance = np.where(df > 2.0, scale2 * df / (df - 2.0), np.inf)
        return outputs_T, variance

    def cdf(self, y, outputs_T, params):
        scale2, df = self._split(params)
        return stdtr(df, (y - outputs_T) / np.sqrt(scale2))

    def sample(self, outputs_T, params, rng):
        scale2, df = self._split(params)
        t = rng.standard_t(np.broadcast_to(df, outputs_T.shape))
        return outputs_T + np.sqrt(scale2) * t

    def n_parameters(self, params):
        # ``sigma_k`` per expert, and ``nu_k`` when estimated.
        n_experts = np.shape(params)[0]
        return int(n_experts if self.df is not None else 2 * n_experts)

    def subset(self, params, keep):
        return None if params is None else np.asarray(params)[keep]

    def min_effective_samples(self, n_expert_parameters):
        # Twice the expert's parameters plus its scale (and degrees of freedom).
        return 2.0 * (n_expert_parameters + 1 + (self.df is None))

    def fitted_attributes(self, params):
        scale2, df = self._split(params)
        return {"noise_scale_": np.sqrt(scale2[:, 0]), "df_": df[:, 0].copy()}
