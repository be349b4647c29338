"""Mixture-of-experts classifier: experts give class probabilities."""

import numpy as np
from sklearn.base import ClassifierMixin

from ._base import _BaseMixtureOfExperts, _is_dask
from ._docstrings import fill_doc
from ._experts import aligned_proba
from .likelihoods import CategoricalLikelihood
from .utils._array_api import float_dtype
from .utils._compat import _fit_context


@fill_doc
class MixtureOfExpertsClassifier(ClassifierMixin, _BaseMixtureOfExperts):
    """Mixture-of-experts classifier trained by expectation-maximisation.

    The input space is divided among ``n_experts`` probabilistic classifiers;
    a softmax gating network learns which expert to trust where. The class
    probabilities are ``p(c | x) = sum_k g_k(x) p_k(c | x)``, fitted by EM:
    the E-step computes each expert's responsibility for each sample from the
    probability it gives the observed class, the M-step refits each expert
    with the responsibilities as sample weights and the gate to the
    responsibilities. A mixture of linear classifiers draws non-linear
    decision boundaries.

    Read more in the :ref:`User Guide <user_guide>`.

    Parameters
    ----------
    %(n_experts)s
    expert : estimator or list of estimators, default=None
        Classifier(s) used as experts: one estimator (cloned for every
        expert) or a list of ``n_experts``. Each must accept ``sample_weight``
        in ``fit`` and have ``predict_proba``. ``None`` means
        ``LogisticRegression()``. Experts are fitted on integer-encoded
        labels; one that saw only some classes gives probability 0 to the
        others. A list of ``(name, estimator)`` pairs names the experts,
        whose parameters are then reached as ``<name>__<param>``.
    %(gate_to_warm_start)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    experts_ : list of estimators
        The fitted experts (fitted on labels encoded as ``0..n_classes-1``).
    likelihood_ : CategoricalLikelihood
        The fitted likelihood (holds ``classes_``).
    %(fitted_attributes)s

    See Also
    --------
    MixtureOfExpertsRegressor : The same model for regression.

    Notes
    -----
    With penalised experts (the default ``LogisticRegression`` has ``C=1``)
    the expert M-step maximises a penalised weighted likelihood, so EM is
    generalised and the best iterate is kept.

    Examples
    --------
    >>> from skmoe import MixtureOfExpertsClassifier
    >>> from skmoe.datasets import make_xor_blobs
    >>> X, y = make_xor_blobs(n_samples=400, random_state=0)
    >>> clf = MixtureOfExpertsClassifier(n_experts=4, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.95
    True
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    def _make_likelihood(self):
        return CategoricalLikelihood()

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None):
        """Fit the mixture of experts by EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; multiplied into the responsibilities. A
            weight of 2 is the same as repeating the row; rows with weight 0
            are ignored.

        Returns
        -------
        self : MixtureOfExpertsClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight)

    def predict_proba(self, X):
        """Pooled class probabilities.

        %(X_parameters)s

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            ``sum_k w_k(x) p_k(c | x)`` with the pooling weights ``w`` (gate,
            top-k gate, or the argmax expert); rows sum to one.
        """
        if _is_dask(X):
            from ._dask import predict_dask

            return predict_dask(self, "predict_proba", X)
        X = self._validate_predict_X(X)
        with np.errstate(under="ignore"):
            weights_T = np.exp(self._pooling_log_weights_T(X))
        n_classes = self.classes_.shape[0]
        proba = np.zeros((X.shape[0], n_classes), dtype=float_dtype(X))
        X_expert = self._expert_X(X)
        for k, e in enumerate(self.experts_):
            proba += weights_T[k][:, None] * aligned_proba(e, X_expert, n_classes)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict_experts_proba(self, X):
        """Every expert's own class probabilities.

        %(X_parameters)s

        Returns
        -------
        proba : ndarray of shape (n_samples, n_experts, n_classes)
            ``proba[:, k]`` is ``experts_[k]``'s ``predict_proba`` in the
            order of ``classes_`` (0 for classes the expert never saw).
        """
        X = self._validate_predict_X(X)
        n_classes = self.classes_.shape[0]
        X_expert = self._expert_X(X)
        return np.stack([aligned_proba(e, X_expert, n_classes) for e in self.experts_], axis=1)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        %(X_parameters)s

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log class probabilities.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Most probable class under the pooled probabilities.

        %(X_parameters)s

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels.
        """
        if _is_dask(X):
            from ._dask import predict_dask

            return predict_dask(self, "predict", X)
        proba = self.predict_proba(X)  # checks fitted state first
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.target_tags.multi_output = False
        return tags
