"""skmoe: mixture-of-experts estimators for scikit-learn.

A :class:`MixtureOfExpertsRegressor` or :class:`MixtureOfExpertsClassifier`
partitions the input space, fits a plug-in scikit-learn estimator as the
expert of each region, learns a softmax gating network that says which expert
to trust where, and trains both together by EM.
"""

from ._classifier import MixtureOfExpertsClassifier
from ._regressor import MixtureOfExpertsRegressor

__version__ = "0.1.0"

__all__ = ["MixtureOfExpertsClassifier", "MixtureOfExpertsRegressor", "__version__"]
