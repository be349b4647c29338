"""The one place that imports private scikit-learn names.

scikit-learn's parameter-validation machinery (``_fit_context`` and the
constraint classes) and ``_check_sample_weight`` are private, as is ``_BaseComposition`` (the
``(name, estimator)`` parameter plumbing of ``VotingRegressor``), but stable since 1.2 and used by every
third-party estimator that wants scikit-learn's uniform
``InvalidParameterError``. Peers broke when such names moved, so they are
imported here only; if a future release moves them, this file is the single
place to adapt.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    Hidden,
    Interval,
    StrOptions,
)
from sklearn.utils.metaestimators import _BaseComposition

try:  # scikit-learn >= 1.7
    from sklearn.utils._repr_html.estimator import _VisualBlock
except ImportError:  # scikit-learn 1.6
    from sklearn.utils._estimator_html_repr import _VisualBlock
from sklearn.utils.validation import _check_sample_weight

__all__ = [
    "HasMethods",
    "Hidden",
    "Interval",
    "StrOptions",
    "_BaseComposition",
    "_VisualBlock",
    "_check_sample_weight",
    "_fit_context",
]
