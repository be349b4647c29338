"""Per-sample derivatives of one expert's log-density: what the observed information needs.

A likelihood of :mod:`skmoe.likelihoods` gives ``log p_k(y | x)``; the
standard errors of :func:`~skmoe.inference.standard_errors` also need its
first and second derivatives with respect to the expert's mean and to the
likelihood's own parameters of that expert (a noise scale, a shape). A
:class:`LikelihoodDerivatives` supplies them. The built-in ones are found by
the likelihood's ``name`` (``"gaussian"``, ``"poisson"``, ``"gamma"``); any
likelihood can supply its own through a method ``inference_derivatives()``
that returns a :class:`LikelihoodDerivatives`.

The likelihood's own parameters are handled on the log scale (they are
positive: a standard deviation, a shape), which is the parameterisation of
the information matrix; tables report them on their natural scale.
"""

import numpy as np
from scipy.special import digamma, gammaln, polygamma

_LOG_2PI = np.log(2.0 * np.pi)


class LikelihoodDerivatives:
    """Derivatives of ``log p_k(y_i | mu_ki, tau_k)`` for the observed information.

    ``mu`` is the expert's predicted mean (its output) and ``tau`` the
    likelihood's own parameters of the expert on the log scale, ``m`` of
    them per expert (``m = 0`` for a likelihood without parameters, such as
    Poisson). Subclasses set :attr:`extra_names` and implement
    :meth:`internal_parameters` and :meth:`log_density_derivatives`; the
    expert's link (identity for ``LinearRegression``, log for
    ``PoissonRegressor``) is applied by the caller through the chain rule.

    A likelihood plugs its own in by defining ``inference_derivatives()``
    returning an instance; :func:`derivatives_for` looks for that method
    before the built-in ones.

    Attributes
    ----------
    extra_names : tuple of str
        Names of the likelihood's own parameters of one expert, on their
        natural scale (``("sigma",)`` for the Gaussian); the internal
        parameters are their logarithms.

    See Also
    --------
    standard_errors : Uses these derivatives.
    skmoe.likelihoods.BaseLikelihood : The likelihood protocol.

    Examples
    --------
    The Gaussian derivatives with respect to the mean at ``y = mu + 1`` and
    ``sigma = 1``:

    >>> import numpy as np
    >>> from skmoe.inference import LikelihoodDerivatives
    >>> from skmoe.inference._derivatives import GaussianDerivatives
    >>> d = GaussianDerivatives()
    >>> tau = d.internal_parameters(np.array([1.0]), 1)
    >>> log_f, d_mu, d2_mu, *_ = d.log_density_derivatives(
    ...     np.array([1.0]), np.array([[0.0]]), tau)
    >>> float(d_mu[0, 0]), float(d2_mu[0, 0])
    (1.0, -1.0)
    >>> isinstance(d, LikelihoodDerivatives)
    True
    """

    extra_names = ()

    def internal_parameters(self, params, n_experts):
        """The likelihood's parameters as the log-scale array ``tau``.

        Parameters
        ----------
        params : object or None
            The fitted likelihood's ``params_``.
        n_experts : int
            Number of experts.

        Returns
        -------
        tau : ndarray of shape (n_experts, m)
            Log-scale parameters, ``m = len(extra_names)``.
        """
        return np.zeros((n_experts, 0))

    def log_density_derivatives(self, y, mu_T, tau):
        """Log-density and its derivatives in ``mu`` and ``tau``, per expert and sample.

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            The observed targets.
        mu_T : ndarray of shape (n_experts, n_samples)
            Predicted means.
        tau : ndarray of shape (n_experts, m)
            Log-scale parameters.

        Returns
        -------
        log_f : ndarray of shape (n_experts, n_samples)
            ``log p_k(y_i)``.
        d_mu, d2_mu : ndarray of shape (n_experts, n_samples)
            First and second derivatives in ``mu``.
        d_tau : ndarray of shape (n_experts, n_samples, m)
            First derivatives in ``tau``.
        d2_mu_tau : ndarray of shape (n_experts, n_samples, m)
            Mixed derivatives.
        d2_tau : ndarray of shape (n_experts, n_samples, m, m)
            Second derivatives in ``tau``.
        """
        raise NotImplementedError

    def params_from_internal(self, tau):
        """The likelihood's ``params_`` for log-scale parameters (inverse of :meth:`internal_parameters`).

        Parameters
        ----------
        tau : ndarray of shape (n_experts, m)
            Log-scale parameters.

        Returns
        -------
        params : object or None
            Parameters in the likelihood's layout.
        """
        return


def _empty(n_experts, n_samples):
    return (
        np.zeros((n_experts, n_samples, 0)),
        np.zeros((n_experts, n_samples, 0)),
        np.zeros((n_experts, n_samples, 0, 0)),
    )


class GaussianDerivatives(LikelihoodDerivatives):
    """Gaussian noise, ``tau = log sigma`` (``params_`` are variances ``sigma^2``)."""

    extra_names = ("sigma",)

    def internal_parameters(self, params, n_experts):
        variance = np.asarray(params, dtype=np.float64).reshape(n_experts)
        return 0.5 * np.log(variance)[:, None]

    def params_from_internal(self, tau):
        return np.exp(2.0 * tau[:, 0])

    def log_density_derivatives(self, y, mu_T, tau):
        inv_var = np.exp(-2.0 * tau[:, 0])[:, None]
        resid = y - mu_T
        scaled = resid * inv_var  # (y - mu) / sigma^2
        sq = resid * scaled  # (y - mu)^2 / sigma^2
        log_f = -0.5 * _LOG_2PI - tau[:, :1] - 0.5 * sq
        d2_mu = np.broadcast_to(-inv_var, mu_T.shape)
        d_tau = (sq - 1.0)[..., None]
        d2_mu_tau = (-2.0 * scaled)[..., None]
        d2_tau = (-2.0 * sq)[..., None, None]
        return log_f, scaled, d2_mu, d_tau, d2_mu_tau, d2_tau


class PoissonDerivatives(LikelihoodDerivatives):
    """Poisson counts with mean ``mu``; no parameters of its own."""

    def log_density_derivatives(self, y, mu_T, tau):
        log_f = y * np.log(mu_T) - mu_T - gammaln(y + 1.0)
        d_mu = y / mu_T - 1.0
        d2_mu = -y / mu_T**2
        return (log_f, d_mu, np.broadcast_to(d2_mu, mu_T.shape), *_empty(*mu_T.shape))


class GammaDerivatives(LikelihoodDerivatives):
    """Gamma with mean ``mu`` and shape ``nu``, ``tau = log nu`` (``params_`` are the shapes)."""

    extra_names = ("shape",)

    def internal_parameters(self, params, n_experts):
        shape = np.asarray(params, dtype=np.float64)
        if shape.shape != (n_experts,):
            raise ValueError(
                "The Gamma derivatives expect the likelihood's params_ to be the shapes, "
                f"an array of shape ({n_experts},); got {np.shape(params)}. Give the "
                "likelihood an inference_derivatives() method for its own layout."
            )
        return np.log(shape)[:, None]

    def params_from_internal(self, tau):
        return np.exp(tau[:, 0])

    def log_density_derivatives(self, y, mu_T, tau):
        nu = np.exp(tau[:, 0])[:, None]
        ratio = y / mu_T
        log_f = nu * np.log(nu) - nu * np.log(mu_T) + (nu - 1.0) * np.log(y) - nu * ratio - gammaln(nu)
        d_mu = nu * (ratio - 1.0) / mu_T
        d2_mu = nu * (1.0 - 2.0 * ratio) / mu_T**2
        d_nu = np.log(nu) + 1.0 - np.log(mu_T) + np.log(y) - ratio - digamma(nu)
        d_tau = nu * d_nu
        d2_tau = d_tau + nu**2 * (1.0 / nu - polygamma(1, nu))
        return log_f, d_mu, d2_mu, d_tau[..., None], d_mu[..., None], d2_tau[..., None, None]


class StudentTDerivatives(LikelihoodDerivatives):
    """Student-t with location ``mu``, ``tau = (log sigma, log nu)`` (``params_`` are ``sigma^2, nu``).

    With the degrees of freedom fixed (``df`` of the likelihood), only
    ``log sigma``.
    """

    def __init__(self, fixed_df=None):
        self.fixed_df = fixed_df
        self.extra_names = ("sigma",) if fixed_df is not None else ("sigma", "df")

    def internal_parameters(self, params, n_experts):
        params = np.asarray(params, dtype=np.float64).reshape(n_experts, 2)
        tau = np.log(params) * np.array([0.5, 1.0])
        return tau[:, :1] if self.fixed_df is not None else tau

    def params_from_internal(self, tau):
        df = np.full(tau.shape[0], float(self.fixed_df)) if self.fixed_df is not None else np.exp(tau[:, 1])
        return np.column_stack([np.exp(2.0 * tau[:, 0]), df])

    def log_density_derivatives(self, y, mu_T, tau):
        s2 = np.exp(2.0 * tau[:, 0])[:, None]
        nu = np.full_like(s2, float(self.fixed_df)) if self.fixed_df is not None else np.exp(tau[:, 1])[:, None]
        d = y - mu_T
        d2 = d * d
        D = nu * s2 + d2
        log_f = (
            gammaln(0.5 * (nu + 1.0)) - gammaln(0.5 * nu) - 0.5 * np.log(np.pi * nu) - tau[:, :1]
            - 0.5 * (nu + 1.0) * (np.log(D) - np.log(nu * s2))
        )
        d_mu = (nu + 1.0) * d / D
        d2_mu = (nu + 1.0) * (d2 - nu * s2) / D**2
        d_sig = -1.0 + (nu + 1.0) * d2 / D
        d2_sig = -2.0 * (nu + 1.0) * d2 * nu * s2 / D**2
        d2_mu_sig = -2.0 * (nu + 1.0) * d * nu * s2 / D**2
        if self.fixed_df is not None:
            return log_f, d_mu, d2_mu, d_sig[..., None], d2_mu_sig[..., None], d2_sig[..., None, None]
        # Derivatives in nu, then to tau_2 = log nu.
        d_nu = (
            0.5 * digamma(0.5 * (nu + 1.0)) - 0.5 * digamma(0.5 * nu) - 0.5 / nu
            - 0.5 * (np.log(D) - np.log(nu * s2)) + (nu + 1.0) * d2 / (2.0 * nu * D)
        )
        d2_nu = (
            0.25 * polygamma(1, 0.5 * (nu + 1.0)) - 0.25 * polygamma(1, 0.5 * nu) + 0.5 / nu**2
            - 0.5 * s2 / D + 0.5 / nu - d2 * (D + nu * (nu + 1.0) * s2) / (2.0 * nu**2 * D**2)
        )
        d2_mu_nu = d * (d2 - s2) / D**2
        d2_sig_nu = d2 * (d2 - s2) / D**2
        shape = mu_T.shape
        d_tau = np.stack([d_sig, nu * d_nu], axis=-1)
        d2_mu_tau = np.stack([d2_mu_sig, nu * d2_mu_nu], axis=-1)
        d2_tau = np.empty(shape + (2, 2))
        d2_tau[..., 0, 0] = d2_sig
        d2_tau[..., 0, 1] = d2_tau[..., 1, 0] = nu * d2_sig_nu
        d2_tau[..., 1, 1] = nu * d_nu + nu**2 * d2_nu
        return log_f, d_mu, np.broadcast_to(d2_mu, shape), d_tau, d2_mu_tau, d2_tau


_BUILT_IN = {
    "gaussian": lambda likelihood: GaussianDerivatives(),
    "poisson": lambda likelihood: PoissonDerivatives(),
    "gamma": lambda likelihood: GammaDerivatives(),
    "student_t": lambda likelihood: StudentTDerivatives(getattr(likelihood, "df", None)),
}


def derivatives_for(likelihood):
    """The :class:`LikelihoodDerivatives` of a fitted likelihood.

    The likelihood's own ``inference_derivatives()`` when it has one, else
    the built-in derivatives of its ``name``.

    Parameters
    ----------
    likelihood : BaseLikelihood
        A fitted likelihood.

    Returns
    -------
    derivatives : LikelihoodDerivatives
        Its derivatives.

    Raises
    ------
    TypeError
        If the likelihood has neither.
    """
    own = getattr(likelihood, "inference_derivatives", None)
    if callable(own):
        return own()
    name = getattr(likelihood, "name", "custom")
    if name in _BUILT_IN:
        return _BUILT_IN[name](likelihood)
    raise TypeError(
        f"Standard errors need the derivatives of the {type(likelihood).__name__} "
        f"likelihood (name {name!r}); built in for {sorted(_BUILT_IN)}. Give the "
        "likelihood a method inference_derivatives() returning a "
        "skmoe.inference.LikelihoodDerivatives."
    )


class Link:
    """Inverse link ``mu = h(eta)`` of a linear expert and its first two derivatives."""

    def __init__(self, name):
        self.name = name

    def __call__(self, eta):
        """``(mu, dmu/deta, d2mu/deta2)``."""
        if self.name == "identity":
            one = np.ones_like(eta)
            return eta, one, np.zeros_like(eta)
        mu = np.exp(eta)
        return mu, mu, mu
