"""Checks shared by the regression likelihoods (experts, targets, predicted means), and the
base of the log-link likelihoods that make them."""

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import column_or_1d

from .._device import to_numpy
from ..utils._array_api import get_namespace
from ._base import BaseLikelihood


def check_regressor_expert(estimator, name, *, experts=None):
    """Refuse a classifier as the expert of a regression likelihood.

    Parameters
    ----------
    estimator : estimator
        Candidate expert.
    name : str
        The likelihood's name, for the message.
    experts : str, default=None
        Who the experts are, for the message; by default
        ``"the experts of likelihood=<name>"``.

    Raises
    ------
    TypeError
        If ``estimator`` is a classifier.
    """
    if experts is None:
        experts = f"the experts of likelihood={name!r}"
    if is_classifier(estimator):
        raise TypeError(
            f"expert={estimator!r} is a classifier, but {experts} are regressors that predict the mean of y (fit(X, y, "
            "sample_weight) and predict(X) -> values). For class labels use "
            "MixtureOfExpertsClassifier."
        )


def check_target(y, name, *, lower, strict, what):
    """A float64 1-d target, finite and above ``lower``, or a ValueError naming the likelihood.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Target.
    name : str
        The likelihood's name.
    lower : float or None
        Smallest allowed value; None for no bound.
    strict : bool
        Whether ``lower`` itself is excluded.
    what : str
        What the target must be, for the message.

    Returns
    -------
    y : ndarray of shape (n_samples,)
        The target as float64.
    """
    y = column_or_1d(np.asarray(y, dtype=np.float64), warn=True)
    if not np.all(np.isfinite(y)):
        raise ValueError(f"likelihood={name!r} needs a finite target y; got NaN or infinite values.")
    if lower is not None and y.size:
        bad = y <= lower if strict else y < lower
        if np.any(bad):
            sign = ">" if strict else ">="
            raise ValueError(
                f"likelihood={name!r} needs {what} (y {sign} {lower:g}); got "
                f"{int(bad.sum())} value(s) outside, the smallest {y.min():g}."
            )
    return y


def target_variance_floor(y, sample_weight, relative_floor):
    """Absolute variance floor: ``relative_floor`` times the weighted variance of ``y``.

    An absolute one, relative to the target's magnitude, for a constant target.
    """
    mean = np.average(y, weights=sample_weight)
    var = np.average((y - mean) ** 2, weights=sample_weight)
    return max(relative_floor * var, 1e-12 * max(1.0, mean * mean))


def check_finite_outputs(mean_T, hint=""):
    """``mean_T``, or a ValueError naming the experts whose predictions are not finite (``hint`` appended)."""
    xp, _ = get_namespace(mean_T)
    finite = xp.isfinite(mean_T)
    if not bool(xp.all(finite)):  # one flag from a device
        bad = np.flatnonzero(~to_numpy(xp.all(finite, axis=1))).tolist()
        raise ValueError(f"Expert(s) {bad} predicted NaN or infinite values{hint}.")
    return mean_T


def store_in(values, out):
    """``values``, copied into the buffer ``out`` when one is given (``log_likelihood``'s ``out``)."""
    if out is None:
        return values
    out[...] = values
    return out


def check_positive_means(mean_T, name):
    """Refuse predicted means that leave the support ``mu > 0`` of a log-link family.

    Parameters
    ----------
    mean_T : ndarray of shape (n_experts, n_samples)
        The experts' predictions.
    name : str
        The likelihood's name.

    Returns
    -------
    mean_T : ndarray of shape (n_experts, n_samples)
        The same array.

    Raises
    ------
    ValueError
        Naming the experts whose predictions are not finite and positive and
        suggesting an expert with a log link.
    """
    bad_rows = ~np.all(np.isfinite(mean_T) & (mean_T > 0), axis=1)
    if np.any(bad_rows):
        bad = np.flatnonzero(bad_rows).tolist()
        lowest = float(np.nanmin(np.where(np.isfinite(mean_T), mean_T, np.nan)[bad_rows]))
        raise ValueError(
            f"Expert(s) {bad} predicted means outside the support of likelihood={name!r}, "
            f"which needs mu > 0 (smallest prediction {lowest:g}). Use experts with a log "
            "link, whose predictions are always positive: PoissonRegressor / GammaRegressor "
            "(the default), TweedieRegressor(link='log') or "
            "HistGradientBoostingRegressor(loss='poisson' or 'gamma')."
        )
    return mean_T


class _PositiveMeanLikelihood(BaseLikelihood):
    """Base of the log-link likelihoods: regressor experts predict a mean ``mu > 0``.

    The target is finite and ``> 0`` (``_strict_target``) or ``>= 0``;
    ``_target_description`` says so in the messages.
    """

    positive_only = True
    _strict_target = True
    _target_description = "a positive target"

    def check_expert(self, estimator):
        check_regressor_expert(estimator, self.name)

    def prepare_target(self, y, sample_weight):
        return self.transform_target(y)

    def transform_target(self, y):
        return check_target(
            y, self.name, lower=0.0, strict=self._strict_target, what=self._target_description
        )

    def expert_outputs(self, experts, X, y, solver):
        return check_positive_means(solver.predict_T(experts, X), self.name)
