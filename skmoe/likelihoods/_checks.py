"""Checks shared by the regression likelihoods: experts, targets and predicted means."""

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import column_or_1d


def check_regressor_expert(estimator, name):
    """Refuse a classifier as the expert of a regression likelihood.

    Parameters
    ----------
    estimator : estimator
        Candidate expert.
    name : str
        The likelihood's name, for the message.

    Raises
    ------
    TypeError
        If ``estimator`` is a classifier.
    """
    if is_classifier(estimator):
        raise TypeError(
            f"expert={estimator!r} is a classifier, but the experts of "
            f"likelihood={name!r} are regressors that predict the mean of y (fit(X, y, "
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
