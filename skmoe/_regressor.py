"""Mixture-of-experts regressor: experts of the mean under a likelihood, and its predictive distribution."""

import warnings

import numpy as np
from sklearn.base import RegressorMixin, clone
from sklearn.utils import check_random_state

from . import _predictive
from ._base import _BaseMixtureOfExperts, _is_dask
from ._docstrings import fill_doc
from ._solvers import predict_experts
from .likelihoods import (
    GammaLikelihood,
    GaussianLikelihood,
    PoissonLikelihood,
    StudentTLikelihood,
)
from .utils._compat import HasMethods, StrOptions, _fit_context

# The likelihood parameter's names and the likelihoods they stand for.
LIKELIHOODS = {
    "gaussian": GaussianLikelihood,
    "poisson": PoissonLikelihood,
    "gamma": GammaLikelihood,
    "student_t": StudentTLikelihood,
}


@fill_doc
class MixtureOfExpertsRegressor(RegressorMixin, _BaseMixtureOfExperts):
    """Mixture-of-experts regressor trained by expectation-maximisation.

    The input space is divided among ``n_experts`` regression experts; a
    softmax gating network learns which expert to trust where. The conditional
    density of the target is the mixture
    ``p(y | x) = sum_k g_k(x) p_k(y | f_k(x))``, with ``p_k`` Gaussian
    (``N(y | f_k(x), sigma_k^2)``, the default), Poisson, Gamma or Student-t
    (``likelihood``), fitted by EM: the E-step computes each expert's
    responsibility for each sample (in log space), the M-step refits each
    expert with the responsibilities as sample weights, the likelihood's own
    parameters (noise variances) from weighted residuals, and the gate to the
    responsibilities. Predictions pool the experts by the gate-weighted sum or
    by the single most trusted expert; :meth:`predict_quantiles`,
    :meth:`predict_interval` and :meth:`sample_y` describe the whole
    predictive distribution.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    %(n_experts)s
    expert : estimator or list of estimators, default=None
        Regressor(s) used as experts: one estimator (cloned for every expert)
        or a list of ``n_experts`` estimators (heterogeneous experts). Each must
        accept ``sample_weight`` in ``fit``. ``None`` means
        ``LinearRegression()``. ``LinearRegression`` and ``Ridge`` experts take
        a batched fast path (all experts' weighted normal equations in one pass
        over the data). A list of ``(name, estimator)`` pairs names the
        experts, whose parameters are then reached as ``<name>__<param>``
        (as :class:`~sklearn.ensemble.VotingRegressor`'s ``estimators``).
    likelihood : {"gaussian", "poisson", "gamma", "student_t"} or BaseLikelihood, \
            default="gaussian"
        Density of ``y`` under one expert, whose prediction is its mean
        (location): ``"gaussian"``, Gaussian noise with a variance per expert
        (:class:`~skmoe.likelihoods.GaussianLikelihood`); ``"poisson"``,
        counts ``y >= 0`` (:class:`~skmoe.likelihoods.PoissonLikelihood`,
        default expert ``PoissonRegressor(alpha=0)``); ``"gamma"``, positive
        ``y`` with a shape per expert
        (:class:`~skmoe.likelihoods.GammaLikelihood`, default expert
        ``GammaRegressor(alpha=0)``); ``"student_t"``, robust experts with a
        scale and degrees of freedom per expert, fitted by ECM
        (:class:`~skmoe.likelihoods.StudentTLikelihood`). Experts of the
        Poisson and Gamma likelihoods must predict positive means (a log
        link). A :class:`~skmoe.likelihoods.BaseLikelihood` object plugs in
        another one (see "Extending skmoe" in the user guide). See
        :ref:`likelihoods`.

        .. versionadded:: 0.2
           ``"poisson"``, ``"gamma"`` and ``"student_t"``.
    %(gate_to_warm_start)s

    Attributes
    ----------
    experts_ : list of estimators
        The fitted experts.
    noise_variance_ : ndarray of shape (`n_experts_`,)
        Noise variance of each expert (floored at ``1e-6`` times the variance
        of ``y``); only with the Gaussian likelihood.
    gamma_shape_ : ndarray of shape (`n_experts_`,)
        Shape of each expert's Gamma distribution; only with
        ``likelihood="gamma"``.
    noise_scale_ : ndarray of shape (`n_experts_`,)
        Scale ``sigma_k`` of each expert's Student-t; only with
        ``likelihood="student_t"``.
    df_ : ndarray of shape (`n_experts_`,)
        Degrees of freedom ``nu_k`` of each expert's Student-t; only with
        ``likelihood="student_t"``.
    likelihood_ : BaseLikelihood
        The fitted likelihood; its ``params_`` are the likelihood's
        parameters (the noise variances, shapes, or scales and degrees of
        freedom; None for Poisson).
    %(fitted_attributes)s

    See Also
    --------
    MixtureOfExpertsClassifier : The same model for classification.
    sklearn.mixture.GaussianMixture : Unsupervised mixture fitted by EM.

    Notes
    -----
    With ``LinearRegression`` experts the expert M-step is exact and the
    gate M-step (warm-started) raises the gate's objective, so the
    log-likelihood does not decrease. Other experts (trees, boosting) make EM
    generalised: their weighted fit need not maximise the weighted likelihood,
    so the best iterate is kept.

    References
    ----------
    .. [1] R. A. Jacobs, M. I. Jordan, S. J. Nowlan and G. E. Hinton,
       "Adaptive mixtures of local experts", Neural Computation 3(1), 1991.
    .. [2] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation 6(2), 1994.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-3, 3, size=(300, 1))
    >>> y = np.where(X[:, 0] < 0, -2 * X[:, 0], 3 * X[:, 0]) + 0.1 * rng.randn(300)
    >>> moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> round(moe.score(X, y), 2)
    1.0
    >>> mean, std = moe.predict([[-1.0], [1.0]], return_std=True)
    >>> np.round(mean, 1)
    array([2., 3.])
    """

    _parameter_constraints = {
        **_BaseMixtureOfExperts._parameter_constraints,
        "likelihood": [
            StrOptions(set(LIKELIHOODS)),
            HasMethods(["expert_outputs", "log_likelihood", "default_expert"]),
        ],
    }

    def __init__(
        self,
        n_experts=4,
        *,
        expert=None,
        likelihood="gaussian",
        gate="linear",
        gate_alpha="auto",
        init="kmeans",
        pooling="weighted",
        top_k=None,
        gate_features=None,
        expert_features=None,
        min_prior=None,
        algorithm="em",
        routing="token_choice",
        capacity_factor=None,
        balance=None,
        gate_noise=0.0,
        max_iter=100,
        tol=1e-4,
        n_init=1,
        backend="numpy",
        device=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        super().__init__(
            n_experts=n_experts,
            expert=expert,
            gate=gate,
            gate_alpha=gate_alpha,
            init=init,
            pooling=pooling,
            top_k=top_k,
            gate_features=gate_features,
            expert_features=expert_features,
            min_prior=min_prior,
            algorithm=algorithm,
            routing=routing,
            capacity_factor=capacity_factor,
            balance=balance,
            gate_noise=gate_noise,
            max_iter=max_iter,
            tol=tol,
            n_init=n_init,
            backend=backend,
            device=device,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
        )
        self.likelihood = likelihood

    def _make_likelihood(self):
        if isinstance(self.likelihood, str):
            return LIKELIHOODS[self.likelihood]()
        return clone(self.likelihood)

    def _validate_fit_data(self, X, y, likelihood):
        y_arr = np.asarray(y) if not hasattr(y, "dtype") else y
        kind = getattr(getattr(y_arr, "dtype", None), "kind", None)
        if kind in ("U", "S") or (
            kind == "O" and any(isinstance(v, (str, bytes)) for v in np.ravel(np.asarray(y_arr))[:100])
        ):
            raise ValueError(
                f"{type(self).__name__} needs a numeric target y; got values of dtype "
                f"{y_arr.dtype}. For class labels use MixtureOfExpertsClassifier."
            )
        return super()._validate_fit_data(X, y, likelihood)

    # Experts and gates are user objects validated by their own fit.
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Fit the mixture of experts by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Numeric targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; multiplied into the responsibilities. A
            weight of 2 is the same as repeating the row; rows with weight 0
            are ignored.

        Returns
        -------
        self : MixtureOfExpertsRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight)

    def predict(self, X, return_std=False):
        """Pooled prediction, optionally with the predictive standard deviation.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        return_std : bool, default=False
            Also return the standard deviation of the predictive distribution:
            of the mixture (``pooling="weighted"``, law of total variance) or
            of the chosen expert (``pooling="argmax"``), with each expert's
            variance from the likelihood (``sigma_k^2``; ``mu`` for Poisson;
            ``mu^2 / nu_k`` for Gamma; ``sigma_k^2 nu_k / (nu_k - 2)`` for
            Student-t). A Student-t expert with ``nu_k <= 2`` has no finite
            variance: the standard deviation is ``inf`` wherever it has
            weight, with a warning; :meth:`predict_interval` then describes
            the spread.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Gate-weighted mean of the experts, or the chosen expert's prediction.
        y_std : ndarray of shape (n_samples,)
            Predictive standard deviation; only with ``return_std=True``.
        """
        if _is_dask(X):
            from ._dask import predict_dask

            return predict_dask(self, "predict", X, return_std=return_std)
        weights_T, outputs_T = self._predictive_mixture(X)
        mean_T, variance = self.likelihood_.mean_variance(outputs_T, self.likelihood_.params_)
        mean, std = _predictive.mixture_mean_std(weights_T, mean_T, variance)
        if return_std:
            infinite = ~np.isfinite(std)
            if np.any(infinite):
                warnings.warn(
                    f"The predictive distribution has no finite variance at "
                    f"{int(infinite.sum())} of {std.size} samples, where an expert without "
                    "one has weight (a Student-t with df_ <= 2): their y_std is inf. "
                    "predict_interval and predict_quantiles describe the spread.",
                    UserWarning,
                    stacklevel=2,
                )
            return mean, std
        return mean

    def _predictive_mixture(self, X):
        """Pooling weights and expert outputs ``(n_experts, n_samples)`` of the predictive mixture."""
        X = self._validate_predict_X(X)
        outputs_T = self._expert_outputs(X, None)
        with np.errstate(under="ignore"):
            weights_T = np.exp(self._pooling_log_weights_T(X))
        return weights_T, outputs_T

    def predict_quantiles(self, X, alpha=None):
        """Predict quantiles of the predictive distribution.

        The predictive distribution is the mixture
        ``F(y | x) = sum_k g_k(x) F_k(y | x)`` under the same pooling as
        :meth:`predict` (the chosen expert alone with ``pooling="argmax"``).
        Its quantiles are found by bracketing and bisection on ``F``,
        vectorised over the samples; for Poisson experts by an integer
        search, so they are integers.

        .. versionadded:: 0.2

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        alpha : float or array-like of shape (n_alpha,), default=None
            Quantile levels in the open interval (0, 1); None means
            ``[0.05, 0.95]`` (as skpro's ``predict_quantiles``).

        Returns
        -------
        quantiles : ndarray of shape (n_samples, n_alpha)
            Column ``j`` is the ``alpha[j]`` quantile, the smallest ``q``
            with ``F(q | x) >= alpha[j]``.
        """
        alpha = _predictive.check_probabilities([0.05, 0.95] if alpha is None else alpha, "alpha")
        weights_T, outputs_T = self._predictive_mixture(X)
        return _predictive.mixture_quantiles(
            weights_T, outputs_T, self.likelihood_, self.likelihood_.params_, alpha
        )

    def predict_interval(self, X, coverage=0.9):
        """Central prediction intervals of the predictive distribution.

        The interval of coverage ``c`` runs from the ``(1 - c) / 2`` to the
        ``(1 + c) / 2`` quantile of :meth:`predict_quantiles`.

        .. versionadded:: 0.2

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        coverage : float or array-like of shape (n_coverage,), default=0.9
            Nominal coverages in the open interval (0, 1).

        Returns
        -------
        intervals : ndarray of shape (n_samples, 2 * n_coverage)
            Lower and upper ends, coverage by coverage: columns ``2 * j`` and
            ``2 * j + 1`` are the interval of ``coverage[j]`` (the column
            order of skpro's ``predict_interval``).
        """
        _, levels = _predictive.interval_levels(coverage)
        weights_T, outputs_T = self._predictive_mixture(X)
        return _predictive.mixture_quantiles(
            weights_T, outputs_T, self.likelihood_, self.likelihood_.params_, levels
        )

    def sample_y(self, X, n_samples=1, random_state=None):
        """Draw targets from the predictive distribution.

        Each draw picks an expert from the pooling weights (the gate, or the
        chosen expert with ``pooling="argmax"``), then ``y`` from that
        expert's distribution (Gaussian, Poisson, Gamma or Student-t).

        .. versionadded:: 0.2

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
            Inputs.
        n_samples : int, default=1
            Number of draws per input.
        random_state : int, RandomState instance or None, default=None
            Seed of the draws. Pass an int for reproducible output.

        Returns
        -------
        y_samples : ndarray of shape (n_samples_X, n_samples)
            Draws, one column per draw (as
            :meth:`sklearn.gaussian_process.GaussianProcessRegressor.sample_y`).
        """
        n_draws = _predictive.check_n_draws(n_samples)
        rng = check_random_state(random_state)
        weights_T, outputs_T = self._predictive_mixture(X)
        return _predictive.mixture_sample(
            weights_T, outputs_T, self.likelihood_, self.likelihood_.params_, n_draws, rng
        )

    def predict_experts(self, X):
        """Every expert's own prediction.

        %(X_parameters)s

        Returns
        -------
        predictions : ndarray of shape (n_samples, n_experts)
            Column ``k`` is ``experts_[k].predict(X)``.
        """
        X = self._validate_predict_X(X)
        return predict_experts(self.experts_, self._expert_X(X)).T

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        # Poisson and Gamma experts need y >= 0 and y > 0.
        likelihood = self.likelihood
        if isinstance(likelihood, str):
            likelihood = LIKELIHOODS.get(likelihood)
        tags.target_tags.positive_only = bool(getattr(likelihood, "positive_only", False))
        return tags
