"""List the public estimators of skmoe, as :func:`sklearn.utils.all_estimators` does."""


def all_estimators():
    """Return the public estimators of skmoe.

    The counterpart of :func:`sklearn.utils.discovery.all_estimators` for
    this package, e.g. to run scikit-learn's estimator checks on every skmoe
    estimator. Gates are not listed: they are building blocks of the
    estimators, not estimators of a task.

    Returns
    -------
    estimators : list of (str, type)
        ``(name, class)`` pairs, sorted by name.

    See Also
    --------
    sklearn.utils.discovery.all_estimators : The same for scikit-learn.

    Examples
    --------
    >>> from skmoe.utils import all_estimators
    >>> [name for name, _ in all_estimators()]
    ['MixtureOfExpertsClassifier', 'MixtureOfExpertsRegressor']
    """
    from .. import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor

    found = [
        ("MixtureOfExpertsClassifier", MixtureOfExpertsClassifier),
        ("MixtureOfExpertsRegressor", MixtureOfExpertsRegressor),
    ]
    return sorted(found)
