"""Likelihood-ratio test between two nested fitted mixtures with the same number of experts."""

import warnings
from dataclasses import dataclass

from scipy.stats import chi2
from sklearn.utils.validation import check_is_fitted

from ._model import not_ml_reasons, total_log_likelihood


@dataclass(eq=False, repr=False)
class LikelihoodRatioResult:
    """Result of :func:`likelihood_ratio_test`.

    The statistic, its chi-squared reference and the two log-likelihoods it
    compares.

    Parameters
    ----------
    statistic : float
        ``2 * (log L_full - log L_restricted)``.
    df : int
        Degrees of freedom: the difference of the parameter counts.
    p_value : float
        Upper tail of the chi-squared distribution with ``df`` degrees of
        freedom at ``statistic``.
    log_likelihood_restricted, log_likelihood_full : float
        Total (weighted) log-likelihoods of the two fits.

    Attributes
    ----------
    statistic, df, p_value, log_likelihood_restricted, log_likelihood_full
        As given.

    See Also
    --------
    likelihood_ratio_test : Computes it.
    BootstrapResult : The test between different numbers of experts, where
        the chi-squared reference does not hold.

    Examples
    --------
    >>> from skmoe.inference import LikelihoodRatioResult
    >>> LikelihoodRatioResult(3.84, 1, 0.05, -100.0, -98.08)
    LikelihoodRatioResult(statistic=3.84, df=1, p_value=0.05)
    """

    statistic: float
    df: int
    p_value: float
    log_likelihood_restricted: float
    log_likelihood_full: float

    def __repr__(self):
        return (
            f"LikelihoodRatioResult(statistic={self.statistic:.4g}, df={self.df}, "
            f"p_value={self.p_value:.4g})"
        )


def likelihood_ratio_test(restricted, full, X, y, *, sample_weight=None):
    """Likelihood-ratio test of a restricted fitted mixture against a fuller one.

    The two models must be nested (the restricted one a special case of the
    full one: fewer gate or expert features, say) and have the same number
    of experts. ``X`` is passed to both; with a DataFrame, each model gets
    the columns it was fitted on (by name). The statistic ``2 * (log L_full - log L_restricted)`` is
    referred to the chi-squared distribution with as many degrees of freedom
    as the full model has extra parameters (the parameter counts of
    :meth:`bic`). Nesting is the caller's responsibility.

    Between different numbers of experts the chi-squared reference is
    invalid (the restricted model lies on the boundary of the full one,
    where a mixing proportion is zero and some parameters are not
    identified): that comparison is refused, and
    :func:`bootstrap_n_experts` is the test to use.

    Read more in the :ref:`User Guide <inference>`.

    Parameters
    ----------
    restricted : estimator
        The fitted restricted model.
    full : estimator
        The fitted full model, with the same ``n_experts_``.
    X : array-like of shape (n_samples, n_features)
        The training inputs of both.
    y : array-like of shape (n_samples,)
        The training targets.
    sample_weight : array-like of shape (n_samples,), default=None
        Frequency weights.

    Returns
    -------
    result : LikelihoodRatioResult
        Statistic, degrees of freedom and p-value.

    Raises
    ------
    ValueError
        If the numbers of experts differ, or the full model has no more
        parameters than the restricted one.

    Warns
    -----
    UserWarning
        If either fit is penalised (the statistic is then not a
        likelihood ratio of maximum-likelihood fits), or the restricted fit
        has the higher likelihood (the full fit is not at its maximum; the
        statistic is set to 0).

    See Also
    --------
    bootstrap_n_experts : Test the number of experts.
    standard_errors : Wald tests of single parameters.

    Examples
    --------
    Does the gate need the second feature?

    >>> import numpy as np
    >>> import pandas as pd
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.inference import likelihood_ratio_test
    >>> rng = np.random.RandomState(0)
    >>> X = pd.DataFrame(rng.uniform(-3, 3, (300, 2)), columns=["a", "b"])
    >>> y = np.where(X["a"] < 0, -2 * X["a"], 3 * X["a"]) + 0.5 * rng.randn(300)
    >>> moe = MixtureOfExpertsRegressor(2, gate_alpha=0, random_state=0)
    >>> full = moe.fit(X, y)
    >>> restricted = MixtureOfExpertsRegressor(2, gate_alpha=0, random_state=0).fit(X[["a"]], y)
    >>> result = likelihood_ratio_test(restricted, full, X, y)
    >>> result.df, bool(result.p_value > 0.01)
    (3, True)
    """
    check_is_fitted(restricted)
    check_is_fitted(full)
    if restricted.n_experts_ != full.n_experts_:
        raise ValueError(
            f"The models have {restricted.n_experts_} and {full.n_experts_} experts: the "
            "chi-squared reference of the likelihood-ratio test is invalid between different "
            "numbers of experts (the smaller model is on the boundary of the larger one). "
            "Use skmoe.inference.bootstrap_n_experts, a parametric bootstrap of that test."
        )
    df = int(full._n_parameters() - restricted._n_parameters())
    if df <= 0:
        raise ValueError(
            f"The full model has {full._n_parameters()} parameters and the restricted one "
            f"{restricted._n_parameters()}: the full model must have more (are the "
            "arguments swapped?)."
        )
    reasons = [
        f"{label}: {reason}"
        for label, model in (("restricted", restricted), ("full", full))
        for reason in not_ml_reasons(model, getattr(model.gate_, "alpha", 0.0))
    ]
    if reasons:
        warnings.warn(
            f"Not maximum-likelihood fits ({'; '.join(reasons)}): the chi-squared reference "
            "assumes maximum-likelihood fits (gate_alpha=0).",
            UserWarning,
        )
    ll_restricted = total_log_likelihood(restricted, _columns_of(restricted, X), y, sample_weight)
    ll_full = total_log_likelihood(full, _columns_of(full, X), y, sample_weight)
    statistic = 2.0 * (ll_full - ll_restricted)
    if statistic < 0:
        warnings.warn(
            f"The restricted model has the higher log-likelihood ({ll_restricted:.6g} > "
            f"{ll_full:.6g}): the full fit is not at its maximum (try n_init or a start "
            "from the restricted fit). The statistic is set to 0.",
            UserWarning,
        )
        statistic = 0.0
    return LikelihoodRatioResult(
        float(statistic), df, float(chi2.sf(statistic, df)), ll_restricted, ll_full
    )


def _columns_of(model, X):
    """``X`` as the model saw it: a DataFrame's columns by the model's feature names."""
    names = getattr(model, "feature_names_in_", None)
    if names is not None and hasattr(X, "columns"):
        return X[list(names)]
    return X
