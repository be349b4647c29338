"""Softmax (multinomial logistic) gate fitted to soft targets with L-BFGS."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..utils._compat import Interval
from ._base import log_softmax_columns
from ._network import weighted_standardisation, zero_start
from ._softmax import _BaseSoftmaxGate

# weighted_standardisation is imported from here by skmoe/_init.py.
__all__ = ["LinearGate", "weighted_standardisation"]


class LinearGate(_BaseSoftmaxGate):
    """Softmax gate: ``g(x) = softmax(W x + b)``, fitted to soft targets.

    Minimises the weighted mean cross-entropy between the targets and the gate
    plus ``alpha / 2 * ||W||^2`` with SciPy's L-BFGS and an analytic gradient.
    The features are standardised internally (weighted mean and standard
    deviation), so the penalty, and hence the fit, does not depend on the
    units of ``X``; the intercept is not penalised. Successive calls to
    :meth:`fit` warm-start from the current solution, which is what makes the
    gate M-step of EM cost only a few function evaluations. The passes over
    the rows run on the row threads of the EM loop (``splits_rows``).

    Sparse ``X`` (CSR, CSC or any SciPy sparse format, converted to CSR) is
    never densified: the standardisation is implicit (the columns' weighted
    mean and scale come from their non-zeros, the scale divides the weights
    and the mean is folded into the bias), and the passes are sparse-dense
    products.

    Parameters
    ----------
    alpha : float, default=1e-4
        L2 penalty on the (standardised) weights.
    max_iter : int, default=100
        Maximum number of L-BFGS iterations per call to :meth:`fit`.
    tol : float, default=1e-9
        Gradient tolerance (infinity norm) of L-BFGS. Tight on purpose: warm
        starts make the extra iterations cheap, and a loose gate makes fits
        depend on rounding (e.g. a weight of 2 versus a repeated row).

    Attributes
    ----------
    coef_ : ndarray of shape (n_experts, n_features)
        Weights in the units of ``X``.
    intercept_ : ndarray of shape (n_experts,)
        Intercepts in the units of ``X``.
    n_features_in_ : int
        Number of input features.
    n_experts_ : int
        Number of experts (outputs).
    n_parameters_ : int
        Free parameters, ``(n_experts - 1) * (n_features + 1)``: softmax is
        invariant to adding the same vector to every row.
    n_iter_ : int
        L-BFGS iterations of the last call to :meth:`fit`.
    loss_ : float
        Final value of the objective (cross-entropy plus penalty).
    penalty_ : float
        The L2 penalty term of ``loss_``, as :meth:`penalty` returns it; the
        EM loop subtracts it from the log-likelihood so that its objective is
        the one EM maximises.

    See Also
    --------
    MLPGate : Feed-forward softmax gate; ``hidden_layer_sizes=()`` gives this model.
    TorchGate : The same model trained with PyTorch, on CPU or GPU.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.gates import LinearGate
    >>> X = np.linspace(-1, 1, 6).reshape(-1, 1)
    >>> resp = np.c_[X[:, 0] < 0, X[:, 0] >= 0].astype(float)
    >>> gate = LinearGate().fit(X, resp)
    >>> gate.predict(X)
    array([0, 0, 0, 1, 1, 1])
    """

    splits_rows = True
    _sparse_input = True

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, alpha=1e-4, max_iter=100, tol=1e-9):
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def _layers(self):
        if not hasattr(self, "coef_"):
            return None
        return [self.coef_], [self.intercept_]

    def _set_layers(self, coefs, intercepts):
        self.coef_ = coefs[0]
        self.intercept_ = intercepts[0]

    def _initial_parameters(self, shapes, prior):
        return zero_start(shapes, prior)

    def _set_penalty(self, penalty):
        self._penalty = penalty
        self.penalty_ = penalty

    def log_proba_prepared_T(self, X):
        """:meth:`log_proba_T` of validated input (the EM loop's ``X``, as :meth:`fit_prepared`).

        Parameters
        ----------
        X : ndarray or CSR matrix of shape (n_samples, n_features)
            Inputs validated by the caller, with the fitted number of features.

        Returns
        -------
        log_proba_T : ndarray of shape (n_experts, n_samples)
            C-contiguous log-probabilities of the dtype of ``X``.
        """
        return np.ascontiguousarray(log_softmax_columns(self._logits_T(X)))

    def decision_function_T(self, X):
        """Gate logits in the core's ``(n_experts, n_samples)`` layout.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        logits_T : ndarray of shape (n_experts, n_samples)
            C-contiguous logits of the dtype of ``X`` (float32 or float64).
        """
        check_is_fitted(self)
        X = self._check_X(X)
        self._check_n_features_in(X)
        return self._logits_T(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
