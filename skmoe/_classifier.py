"""Mixture-of-experts classifier: experts give class probabilities."""

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from . import _em
from ._base import _BaseMixtureOfExperts
from ._docstrings import fill_doc
from ._experts import aligned_proba
from .utils._compat import _fit_context

# Probabilities are floored here before the log: an expert that gives a
# class probability 0 must not turn the responsibilities into NaN.
_PROBA_FLOOR = np.finfo(np.float64).tiny


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
        others.
    %(gate)s
    %(gate_alpha)s
    %(init)s
    %(pooling)s
    %(top_k)s
    %(max_iter)s
    %(tol)s
    %(n_init)s
    %(backend)s
    %(device)s
    %(n_jobs)s
    %(random_state)s
    %(verbose)s
    %(warm_start)s

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    experts_ : list of estimators
        The fitted experts (fitted on labels encoded as ``0..n_classes-1``).
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

    _is_regression = False

    def __init__(
        self,
        n_experts=4,
        *,
        expert=None,
        gate="linear",
        gate_alpha=1e-4,
        init="kmeans",
        pooling="weighted",
        top_k=None,
        max_iter=100,
        tol=1e-4,
        n_init=1,
        backend="numpy",
        device=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        super().__init__(
            n_experts=n_experts,
            expert=expert,
            gate=gate,
            gate_alpha=gate_alpha,
            init=init,
            pooling=pooling,
            top_k=top_k,
            max_iter=max_iter,
            tol=tol,
            n_init=n_init,
            backend=backend,
            device=device,
            n_jobs=n_jobs,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
        )

    def _default_expert(self):
        return LogisticRegression()

    def _prepare_target(self, y, sample_weight):
        check_classification_targets(y)
        y = column_or_1d(y, warn=True)
        encoder = LabelEncoder().fit(y)
        if encoder.classes_.shape[0] < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes with "
                f"positive sample_weight; got only one class: {encoder.classes_[0]!r}."
            )
        if getattr(self, "warm_start", False) and hasattr(self, "classes_"):
            if not np.array_equal(encoder.classes_, self.classes_):
                raise ValueError(
                    "warm_start=True needs the same classes as the previous fit: "
                    f"{self.classes_.tolist()} then {encoder.classes_.tolist()}."
                )
        self.classes_ = encoder.classes_
        return encoder.transform(y)

    def _expert_outputs(self, experts, X, y):
        n_classes = self.classes_.shape[0]
        out = np.empty((len(experts), X.shape[0]))
        rows = np.arange(X.shape[0])
        for k, e in enumerate(experts):
            out[k] = aligned_proba(e, X, n_classes)[rows, y]
        with np.errstate(divide="ignore"):
            np.log(np.maximum(out, _PROBA_FLOOR), out=out)
        return out

    def _log_lik_T(self, state, y):
        return state.outputs_T

    def _log_prob_T(self, X, y):
        y = column_or_1d(np.asarray(y))
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}.")
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not seen in fit: {unknown.tolist()}.")
        y_enc = np.searchsorted(self.classes_, y)
        return self._expert_outputs(self.experts_, X, y_enc)

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

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            ``sum_k w_k(x) p_k(c | x)`` with the pooling weights ``w`` (gate,
            top-k gate, or the argmax expert); rows sum to one.
        """
        X = self._validate_predict_X(X)
        with np.errstate(under="ignore"):
            weights_T = np.exp(self._pooling_log_weights_T(X))
        n_classes = self.classes_.shape[0]
        proba = np.zeros((X.shape[0], n_classes))
        for k, e in enumerate(self.experts_):
            proba += weights_T[k][:, None] * aligned_proba(e, X, n_classes)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log class probabilities.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Most probable class under the pooled probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels.
        """
        proba = self.predict_proba(X)  # checks fitted state first
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.target_tags.multi_output = False
        return tags
