"""List the public estimators of skmoe, as :func:`sklearn.utils.all_estimators` does."""


def all_estimators():
    """Return the public estimators of skmoe.

    Returns
    -------
    estimators : list of (str, type)
        ``(name, class)`` pairs, sorted by name.

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
