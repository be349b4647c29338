"""Prediction methods shared by the mixture-of-experts estimators.

The gate's probabilities, the chosen expert, conditional log-densities,
posterior responsibilities and information criteria, all computed from the
fitted ``*_`` attributes through the likelihood and gate protocols.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _em
from ._docstrings import fill_doc
from ._experts import n_expert_parameters
from ._fit_state import _is_dask, _select_columns
from ._solvers import GenericSolver
from ._sparse import as_csr, is_sparse, sparse_refusal
from .gates._protocol import GateAdapter


@fill_doc
class _PredictionMixin:
    """Methods every fitted mixture of experts answers (see the estimators' docs)."""

    def _validate_predict_X(self, X):
        """Validated ``X``: float32 or float64, canonical CSR when sparse (if the fitted parts take it)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse="csr", dtype=[np.float64, np.float32])
        if is_sparse(X):
            problem = sparse_refusal(self.experts_, gate=self.gate_)
            if problem is not None:
                raise TypeError(problem)
            X = as_csr(X)
        return X

    def _gate_X(self, X):
        """The gate's columns of validated ``X``."""
        return _select_columns(X, getattr(self, "gate_features_", None))

    def _expert_X(self, X):
        """The experts' columns of validated ``X``."""
        return _select_columns(X, getattr(self, "expert_features_", None))

    def _pooling_log_weights_T(self, X):
        """Log pooling weights ``(n_experts, n_samples)``: gate, top-k, or argmax one-hot."""
        log_gate_T = self._log_gate_T(GateAdapter(self.gate_), self._gate_X(X))
        if self.pooling == "argmax":
            return _em.argmax_log_gate(log_gate_T)
        return log_gate_T

    def _expert_outputs(self, X, y):
        """The fitted likelihood's expert outputs on ``(X, y)``."""
        return self.likelihood_.expert_outputs(self.experts_, self._expert_X(X), y, GenericSolver)

    def predict_gate(self, X):
        """Gate probabilities of each expert.

        With ``top_k`` set, only the ``top_k`` largest probabilities of each
        sample are kept and renormalised, as in training.

        %(X_parameters)s

        Returns
        -------
        gate : ndarray of shape (n_samples, n_experts)
            Probability that each expert is the one to trust; rows sum to one.
        """
        if _is_dask(X):
            from ._dask import predict_dask

            return predict_dask(self, "predict_gate", X)
        X = self._validate_predict_X(X)
        with np.errstate(under="ignore"):
            return np.exp(self._log_gate_T(GateAdapter(self.gate_), self._gate_X(X))).T

    def predict_expert(self, X):
        """Index of the expert the gate trusts most for each sample.

        %(X_parameters)s

        Returns
        -------
        expert : ndarray of shape (n_samples,)
            Index into ``experts_``.
        """
        X = self._validate_predict_X(X)
        return np.argmax(self._log_gate_T(GateAdapter(self.gate_), self._gate_X(X)), axis=0)

    def log_prob(self, X, y):
        """Conditional log-density (log-probability) of ``y`` given ``X``.

        Uses the same pooled gate as :meth:`predict`: the mixture under
        ``pooling="weighted"`` (with ``top_k``), the chosen expert under
        ``pooling="argmax"``.

        %(X_y_parameters)s

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            ``log p(y_i | x_i)``.
        """
        if _is_dask(X, y):
            from ._dask import predict_dask

            return predict_dask(self, "log_prob", X, y)
        X, log_lik_T = self._log_likelihood_T(X, y)
        log_w_T = self._pooling_log_weights_T(X)
        with np.errstate(under="ignore"):
            _, log_prob = _em.e_step(log_w_T, log_lik_T, out=log_lik_T)
        return log_prob

    def _log_likelihood_T(self, X, y):
        """Validated ``X`` and every expert's log-likelihood of ``y``, ``(n_experts, n_samples)``."""
        X = self._validate_predict_X(X)
        y = self.likelihood_.transform_target(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}.")
        outputs_T = self._expert_outputs(X, y)
        return X, self.likelihood_.log_likelihood(outputs_T, y, self.likelihood_.params_, out=outputs_T)

    def predict_responsibilities(self, X, y):
        """Posterior probability of each expert given the input and the target.

        ``p(expert k | x_i, y_i)``, proportional to the gate (with ``top_k``,
        as in training) times the expert's likelihood of ``y_i``: the
        responsibilities of an E-step on ``(X, y)``.

        %(X_y_parameters)s

        Returns
        -------
        resp : ndarray of shape (n_samples, n_experts)
            Rows sum to one.
        """
        X, log_lik_T = self._log_likelihood_T(X, y)
        log_gate_T = self._log_gate_T(GateAdapter(self.gate_), self._gate_X(X))
        with np.errstate(under="ignore"):
            resp_T, _ = _em.responsibilities(log_gate_T, log_lik_T, out=log_lik_T)
        return resp_T.T

    def _n_parameters(self):
        """Free parameters: gate + experts + likelihood parameters (see ``bic``)."""
        check_is_fitted(self)
        n_gate = GateAdapter(self.gate_).n_parameters
        n_experts = sum(n_expert_parameters(e) for e in self.experts_)
        return int(n_gate + n_experts + self.likelihood_.n_parameters(self.likelihood_.params_))

    def bic(self, X, y):
        """Bayesian information criterion of the fit on ``(X, y)``; lower is better.

        ``-2 * sum_i log p(y_i | x_i) + n_parameters * log(n_samples)``.
        The parameter count is the gate's ``n_parameters_`` (``(n_experts - 1)
        * (n_features + 1)`` for the linear gate), plus each expert's
        coefficients and intercept when it exposes ``coef_`` (leaves for
        trees, summed over the members of tree ensembles, 0 for experts with
        neither), plus the likelihood's parameters (the noise variances of
        the regressor). BIC is unreliable when an expert is degenerate (too
        few effective samples for its parameters): such experts are re-seeded
        or removed during the fit, with a
        :class:`~skmoe.exceptions.DegenerateExpertWarning`.

        %(information_criterion)s
        """
        log_prob = self.log_prob(X, y)
        return float(-2.0 * np.sum(log_prob) + self._n_parameters() * np.log(log_prob.shape[0]))

    def aic(self, X, y):
        """Akaike information criterion of the fit on ``(X, y)``; lower is better.

        ``-2 * sum_i log p(y_i | x_i) + 2 * n_parameters``, with the parameter
        count described in :meth:`bic`.

        %(information_criterion)s
        """
        log_prob = self.log_prob(X, y)
        return float(-2.0 * np.sum(log_prob) + 2.0 * self._n_parameters())

