"""Warnings of skmoe."""

from sklearn.exceptions import ConvergenceWarning

__all__ = ["DegenerateExpertWarning"]


class DegenerateExpertWarning(ConvergenceWarning):
    """An expert of the returned fit lost its samples or became degenerate.

    Raised once per fit, about the model returned (not about discarded
    restarts): which experts were re-seeded or removed, and why. An expert is
    *starved* when its share of the weighted responsibility falls below
    0.1 %, and *degenerate* when its effective sample size is below what its
    likelihood needs for its parameters (for Gaussian experts twice the
    coefficients, intercept and variance: fewer samples let it interpolate
    them and drive its variance to the floor, which inflates the likelihood
    and misleads BIC). A subclass of
    :class:`~sklearn.exceptions.ConvergenceWarning`, so existing filters keep
    working.

    See Also
    --------
    sklearn.exceptions.ConvergenceWarning : Its parent class.

    Examples
    --------
    >>> import warnings
    >>> from skmoe.exceptions import DegenerateExpertWarning
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DegenerateExpertWarning)
    """
