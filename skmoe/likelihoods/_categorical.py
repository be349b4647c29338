"""Class probabilities of classifier experts: the classifier's likelihood."""

import numpy as np
from sklearn.base import is_regressor
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from .._experts import aligned_proba
from ..utils._array_api import float_dtype
from ._base import BaseLikelihood

# Probabilities are floored at the smallest positive number of their dtype
# before the log: an expert that gives a class probability 0 must not turn
# the responsibilities into NaN.


class CategoricalLikelihood(BaseLikelihood):
    """``p_k(y = c | x)`` is expert k's ``predict_proba``.

    The experts are fitted on labels encoded as ``0..n_classes-1``; an expert
    that saw only some classes gives probability 0 to the others (floored at
    the smallest positive float before the log).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels of the last fit.

    See Also
    --------
    GaussianLikelihood : The regressor's likelihood.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.likelihoods import CategoricalLikelihood
    >>> lik = CategoricalLikelihood()
    >>> lik.prepare_target(np.array(["a", "b", "a"]), np.ones(3))
    array([0, 1, 0])
    >>> lik.classes_
    array(['a', 'b'], dtype='<U1')
    """

    name = "categorical"
    numeric_target = False
    drop_zero_weight_rows = False  # every expert sees every class

    def default_expert(self):
        return LogisticRegression()

    def check_expert(self, estimator):
        # Refuse regressors and classifiers without ``predict_proba``.
        if is_regressor(estimator):
            raise TypeError(
                f"expert={estimator!r} is a regressor, but MixtureOfExpertsClassifier's "
                "experts are classifiers that give class probabilities (fit(X, y, "
                "sample_weight) and predict_proba(X)). For a numeric target use "
                "MixtureOfExpertsRegressor."
            )
        if not hasattr(estimator, "predict_proba"):
            raise TypeError(
                f"expert {type(estimator).__name__} has no predict_proba; a classifier "
                "expert must give class probabilities. Wrap it in "
                "sklearn.calibration.CalibratedClassifierCV (e.g. "
                "CalibratedClassifierCV(SVC(), ensemble=False)) to add them."
            )

    def prepare_target(self, y, sample_weight):
        # Encode the labels; learns ``classes_``.
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        encoder = LabelEncoder().fit(y)
        if encoder.classes_.shape[0] < 2:
            raise ValueError(
                "MixtureOfExpertsClassifier needs samples of at least 2 classes with "
                f"positive sample_weight; got only one class: {encoder.classes_[0]!r}."
            )
        self.classes_ = encoder.classes_
        return encoder.transform(y)

    def check_warm_start(self, previous):
        # Refuse a warm start on other classes.
        if not np.array_equal(self.classes_, previous.classes_):
            raise ValueError(
                "warm_start=True needs the same classes as the previous fit: "
                f"{previous.classes_.tolist()} then {self.classes_.tolist()}."
            )

    def transform_target(self, y):
        y = column_or_1d(np.asarray(y))
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not seen in fit: {unknown.tolist()}.")
        return np.searchsorted(self.classes_, y)

    def expert_outputs(self, experts, X, y, solver):
        # Log-probability each expert gives the observed class.
        n_classes = self.classes_.shape[0]
        out = np.empty((len(experts), X.shape[0]), dtype=float_dtype(X))
        rows = np.arange(X.shape[0])
        for k, e in enumerate(experts):
            out[k] = aligned_proba(e, X, n_classes)[rows, y]
        with np.errstate(divide="ignore"):
            np.log(np.maximum(out, np.finfo(out.dtype).tiny), out=out)
        return out

    def log_likelihood(self, outputs_T, y, params, out=None):
        # The experts' log-probabilities of the observed classes.
        return outputs_T

    def fitted_attributes(self, params):
        return {"classes_": self.classes_}
