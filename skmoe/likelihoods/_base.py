"""The likelihood protocol of the EM engine."""

from abc import ABCMeta, abstractmethod

import numpy as np
from sklearn.base import BaseEstimator

from .._docstrings import LIKELIHOODS_DOC, doc_filler


@doc_filler(LIKELIHOODS_DOC)
class BaseLikelihood(BaseEstimator, metaclass=ABCMeta):
    """Base class of the likelihoods: ``p_k(y | x)``, the density of one expert.

    The EM driver clones the likelihood once per fit and calls, in order:
    :meth:`check_expert` on every expert before any work,
    :meth:`prepare_target` once, :meth:`init_params` per restart, then per
    iteration :meth:`expert_outputs` and :meth:`m_step` after the experts'
    M-step and :meth:`log_likelihood` in the E-step. Arrays are in the
    engine's core layout, ``(n_experts, n_samples)``. ``params`` is whatever
    the likelihood keeps per expert (an array of noise variances, or None);
    the driver only passes it around and subsets it with :meth:`subset`.

    Subclasses must implement :meth:`default_expert`, :meth:`expert_outputs`
    and :meth:`log_likelihood`; the other methods have defaults for a
    likelihood without parameters of its own.

    Attributes
    ----------
    name : str
        The likelihood's name in the engine's combination table; user-written
        likelihoods are ``"custom"``.
    numeric_target : bool
        Whether ``y`` is a continuous quantity (then the k-means and random
        initialisations also see the standardised target).
    drop_zero_weight_rows : bool
        Whether an expert may be fitted on its positive-weight rows only
        (exactly equivalent for weighted fits). Classifiers keep every row so
        that every expert sees every class.
    least_squares : bool
        Whether a weighted least-squares fit of the experts is this
        likelihood's exact expert M-step (Gaussian noise; Student-t's ECM
        step with its latent weights): solvers that solve the weighted
        normal equations may then claim exactness.
    discrete : bool
        Whether ``y`` takes integer values (quantiles are then searched
        over the integers); False when absent.
    positive_only : bool
        Whether ``y`` must be positive (scikit-learn's ``positive_only``
        target tag); False when absent.

    See Also
    --------
    GaussianLikelihood : Gaussian noise with a variance per expert.
    CategoricalLikelihood : Class probabilities of classifier experts.

    Examples
    --------
    Laplace noise with a scale per expert (its M-step is the weighted mean
    absolute residual; the experts' least-squares fit makes EM generalised):

    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.likelihoods import BaseLikelihood
    >>> class LaplaceLikelihood(BaseLikelihood):
    ...     def default_expert(self):
    ...         return LinearRegression()
    ...     def expert_outputs(self, experts, X, y, solver):
    ...         return solver.predict_T(experts, X)
    ...     def init_params(self, n_experts):
    ...         return np.ones(n_experts)
    ...     def log_likelihood(self, outputs_T, y, params, out=None):
    ...         b = params[:, None]
    ...         return -np.abs(y - outputs_T) / b - np.log(2 * b)
    ...     def m_step(self, y, outputs_T, resp_T, sample_weight, params):
    ...         w = resp_T * sample_weight
    ...         scale = (w * np.abs(y - outputs_T)).sum(axis=1) / w.sum(axis=1)
    ...         return np.maximum(scale, 1e-8)
    ...     def n_parameters(self, params):
    ...         return len(params)
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, (300, 1))
    >>> y = np.where(X[:, 0] < 0, -3 * X[:, 0], 2 * X[:, 0]) + rng.laplace(0, 0.1, 300)
    >>> moe = MixtureOfExpertsRegressor(2, likelihood=LaplaceLikelihood(), random_state=0)
    >>> moe.fit(X, y).likelihood_.params_.round(1)
    array([0.1, 0.1])
    """

    name = "custom"
    numeric_target = True
    drop_zero_weight_rows = True
    least_squares = False

    @abstractmethod
    def default_expert(self):
        """The expert used when ``expert=None``.

        Returns
        -------
        expert : estimator
            An unfitted estimator.
        """

    def check_expert(self, estimator):
        """Refuse an expert of the wrong kind, before any work.

        Parameters
        ----------
        estimator : estimator
            A candidate expert (unfitted).

        Raises
        ------
        TypeError
            If the expert cannot serve this likelihood.
        """

    def prepare_target(self, y, sample_weight):
        """Validate ``y`` for fitting and learn the target's constants.

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            Training target (zero-weight rows already removed).
        sample_weight : ndarray of shape (n_samples,)
            Positive weights.

        Returns
        -------
        y_fit : ndarray of shape (n_samples,)
            The target as the experts are fitted on it.
        """
        return y

    def transform_target(self, y):
        """Validate and encode a target at prediction time (:meth:`log_prob`).

        Parameters
        ----------
        y : array-like of shape (n_samples,)
            Target.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The target as :meth:`log_likelihood` expects it.
        """
        return y

    def check_warm_start(self, previous):
        """Refuse to continue a fit whose target is incompatible with this one.

        Parameters
        ----------
        previous : BaseLikelihood
            The fitted likelihood of the previous fit.
        """

    @abstractmethod
    def expert_outputs(self, experts, X, y, solver):
        """What :meth:`log_likelihood` needs from the fitted experts.

        Parameters
        ----------
        experts : list of fitted estimators
            The experts.
        X : ndarray of shape (n_samples, n_features)
            Inputs.
        y : ndarray of shape (n_samples,)
            Target as returned by :meth:`prepare_target` or
            :meth:`transform_target`.
        solver : object
            The expert solver; ``solver.predict_T(experts, X)`` gives the
            experts' predictions in the core layout.

        Returns
        -------
        outputs_T : ndarray of shape (n_experts, n_samples)
            For example each expert's predicted mean.
        """

    def init_params(self, n_experts):
        """Starting values of the likelihood's own parameters.

        Parameters
        ----------
        n_experts : int
            Number of experts.

        Returns
        -------
        params : object or None
            Parameters per expert.
        """
        return None

    @abstractmethod
    def log_likelihood(self, outputs_T, y, params, out=None):
        """``log p_k(y_i | x_i)`` for every expert and sample.

        Used by the E-step and by :meth:`log_prob` alike.

        Parameters
        ----------
        %(outputs_y_params)s
        out : ndarray of shape (n_experts, n_samples), default=None
            Buffer for the result; may be ``outputs_T`` itself.

        Returns
        -------
        log_lik_T : ndarray of shape (n_experts, n_samples)
            Log-likelihoods, finite.
        """

    def expert_weights(self, outputs_T, y, params):
        """Extra per-sample weights of the experts' M-step, beyond the responsibilities.

        Parameters
        ----------
        %(outputs_y_params)s

        Returns
        -------
        weights_T : ndarray of shape (n_experts, n_samples) or None
            None means 1 (plain EM); a robust likelihood fitted by ECM
            returns its latent scale weights here.
        """
        return None

    def m_step(self, y, outputs_T, resp_T, sample_weight, params):
        """M-step of the likelihood's own parameters, after the experts'.

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            Target.
        outputs_T : ndarray of shape (n_experts, n_samples)
            From :meth:`expert_outputs` of the new experts.
        resp_T : ndarray of shape (n_experts, n_samples)
            The M-step's weights (responsibilities).
        sample_weight : ndarray of shape (n_samples,)
            User weights.
        params : object or None
            Current parameters.

        Returns
        -------
        params : object or None
            Updated parameters.
        """
        return params

    def mean_variance(self, outputs_T, params):
        """Predictive mean and variance of each expert.

        Parameters
        ----------
        %(outputs_params)s

        Returns
        -------
        mean_T : ndarray of shape (n_experts, n_samples)
            Means.
        variance : ndarray of shape (n_experts,) or (n_experts, n_samples)
            Variances.
        """
        raise NotImplementedError(f"{type(self).__name__} has no predictive moments.")

    def cdf(self, y, outputs_T, params):
        """``P_k(Y <= y_i | x_i)`` for every expert and sample.

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            Values.
        %(outputs_params)s

        Returns
        -------
        cdf_T : ndarray of shape (n_experts, n_samples)
            Distribution functions.
        """
        raise NotImplementedError(f"{type(self).__name__} has no distribution function.")

    def sample(self, outputs_T, params, rng):
        """One draw of ``y`` from every expert for every sample.

        Parameters
        ----------
        %(outputs_params)s
        rng : numpy.random.RandomState
            Random generator.

        Returns
        -------
        draws_T : ndarray of shape (n_experts, n_samples)
            Draws.
        """
        raise NotImplementedError(f"{type(self).__name__} has no sampler.")

    def n_parameters(self, params):
        """Free parameters of the likelihood beyond the experts' own (for BIC).

        Parameters
        ----------
        %(params)s

        Returns
        -------
        n_parameters : int
            Count.
        """
        return 0

    def subset(self, params, keep):
        """The parameters of the experts ``keep`` (when experts are removed).

        Parameters
        ----------
        params : object or None
            Parameters per expert.
        keep : ndarray of int
            Indices of the experts kept.

        Returns
        -------
        params : object or None
            The kept experts' parameters.
        """
        return None if params is None else params[keep]

    def min_effective_samples(self, n_expert_parameters):
        """Effective sample size below which an expert is degenerate.

        Parameters
        ----------
        n_expert_parameters : int
            The expert's own parameter count (coefficients and intercept).

        Returns
        -------
        threshold : float
            0 when degeneracy cannot inflate this likelihood.
        """
        return 0.0

    def fitted_attributes(self, params):
        """Fitted attributes the estimator exposes for these parameters.

        Parameters
        ----------
        params : object or None
            The final parameters.

        Returns
        -------
        attributes : dict
            Name (ending in ``_``) to value, e.g. ``noise_variance_``.
        """
        return {}


class _ScalarParameterLikelihood(BaseLikelihood):
    """Base of the likelihoods with one positive scalar per expert: Gaussian variance, Gamma shape.

    ``params`` is an array of shape (n_experts,), exposed as the fitted
    attribute named by ``_params_attribute``.
    """

    _params_attribute = None

    def n_parameters(self, params):
        return int(np.size(params))

    def min_effective_samples(self, n_expert_parameters):
        # Twice the expert's parameters plus its own scalar: below it an expert
        # can interpolate its samples and drive its dispersion to zero (the
        # unbounded likelihood of mixtures of regressions).
        return 2.0 * (n_expert_parameters + 1)

    def fitted_attributes(self, params):
        return {self._params_attribute: np.asarray(params, dtype=np.float64)}
