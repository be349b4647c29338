"""A fitted mixture of linear experts as a parametric model: parameters, log-likelihood, derivatives.

:class:`MixtureModel` reads a fitted estimator's experts, gate and likelihood
into one parameter vector ``theta`` and evaluates the observed-data
log-likelihood ``sum_i w_i log sum_k pi_k(x_i) p_k(y_i | x_i)`` with its
analytic gradient and Hessian. The gate is identified by a reference expert:
its parameters are those of every other expert minus the reference's (the
log-odds against it), as flexmix's multinomial concomitant model.

The Hessian is Louis's identity per sample: with ``s_ik`` the gradient of
``log pi_ik + log p_ik`` (the complete-data score of expert ``k``),
``r_ik`` the posterior and ``D_ik`` the Hessian of that complete-data term,
``d2 l_i = sum_k r_ik (D_ik + s_ik s_ik^T) - S_i S_i^T`` with
``S_i = sum_k r_ik s_ik``.
"""

import copy

import numpy as np
from scipy.special import logsumexp
from sklearn.linear_model import (
    ElasticNet,
    GammaRegressor,
    Lasso,
    LinearRegression,
    PoissonRegressor,
    Ridge,
)
from sklearn.utils.validation import check_is_fitted, validate_data

from .._solvers import GenericSolver
from ..gates._protocol import GateAdapter
from ..utils._compat import _check_sample_weight
from ._derivatives import Link, derivatives_for

_MISSING = object()

# Rows per block of the score and Hessian passes, in units of n_experts * n_parameters.
_BLOCK_ENTRIES = 2**21


def select_columns(model, name, n_features):
    """Indices of the columns of ``X`` that the parameter ``name`` selects.

    The fitted ``gate_features_`` / ``expert_features_`` (indices, None for
    every column) when the estimator has them; otherwise the parameter
    itself is resolved (None, indices, names with ``feature_names_in_``, or a
    boolean mask).

    Parameters
    ----------
    model : estimator
        Fitted mixture of experts.
    name : str
        ``"gate_features"`` or ``"expert_features"``.
    n_features : int
        Columns of ``X``.

    Returns
    -------
    columns : ndarray of int
        Selected column indices.
    """
    fitted = getattr(model, name + "_", _MISSING)
    selection = getattr(model, name, None) if fitted is _MISSING else fitted
    if selection is None:
        return np.arange(n_features)
    arr = np.asarray(selection)
    if arr.size == 0:
        return np.arange(0)
    if arr.dtype == bool:
        if arr.shape != (n_features,):
            raise ValueError(f"{name} is a boolean mask of shape {arr.shape}; X has {n_features} columns.")
        return np.flatnonzero(arr)
    if arr.dtype.kind in "USO":
        names = getattr(model, "feature_names_in_", None)
        if names is None:
            raise ValueError(f"{name} names columns but the model was fitted without feature names.")
        lookup = {str(n): i for i, n in enumerate(names)}
        missing = [str(v) for v in arr.ravel() if str(v) not in lookup]
        if missing:
            raise ValueError(f"{name} names unknown column(s) {missing}.")
        return np.array([lookup[str(v)] for v in arr.ravel()])
    cols = arr.astype(int).ravel()
    if np.any((cols < 0) | (cols >= n_features)):
        raise ValueError(f"{name}={selection!r} is out of range for {n_features} columns.")
    return cols


def feature_names(model, n_features):
    """``feature_names_in_`` as strings, or ``x0, x1, ...``."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return [f"x{j}" for j in range(n_features)]
    return [str(n) for n in names]


def _expert_spec(expert, k):
    """``(link, fit_intercept, penalty note)`` of a linear expert, or a TypeError."""
    if isinstance(expert, (PoissonRegressor, GammaRegressor)):
        link = "log"
    elif isinstance(expert, (LinearRegression, Ridge, Lasso, ElasticNet)):
        link = "identity"
    else:
        raise TypeError(
            f"Standard errors need linear experts (LinearRegression, Ridge, PoissonRegressor, "
            f"GammaRegressor); expert {k} is {type(expert).__name__}. For other experts, "
            "use the parametric bootstrap (refit on data simulated from the model)."
        )
    coef = np.asarray(expert.coef_, dtype=np.float64)
    if coef.ndim != 1:
        raise TypeError(f"expert {k} has coef_ of shape {coef.shape}; one output is supported.")
    alpha = float(getattr(expert, "alpha", 0.0) or 0.0)
    note = None
    if alpha > 0 and not isinstance(expert, LinearRegression):
        note = f"expert {k} ({type(expert).__name__}) has a penalty alpha={alpha:g}"
    return Link(link), bool(getattr(expert, "fit_intercept", True)), note


def _gate_layer(gate, n_experts):
    """Weights ``(n_experts, n_gate_features)``, intercepts and penalty of a linear gate."""
    if hasattr(gate, "coef_") and hasattr(gate, "intercept_"):
        W, b = gate.coef_, gate.intercept_
    elif len(getattr(gate, "coefs_", ())) == 1:  # a softmax network without hidden layer
        W, b = gate.coefs_[0], gate.intercepts_[0]
    else:
        raise TypeError(
            f"Standard errors need a linear gate (LinearGate); got {type(gate).__name__}."
        )
    W = np.asarray(W, dtype=np.float64).reshape(n_experts, -1)
    b = np.asarray(b, dtype=np.float64).reshape(n_experts)
    return W, b, float(getattr(gate, "alpha", 0.0) or 0.0)


def total_log_likelihood(model, X, y, sample_weight=None):
    """Weighted total training log-likelihood of the fitted mixture (always gate-weighted).

    Parameters
    ----------
    model : estimator
        Fitted mixture of experts.
    X : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,)
        Targets.
    sample_weight : array-like of shape (n_samples,), default=None
        Frequency weights.

    Returns
    -------
    log_likelihood : float
        ``sum_i w_i log p(y_i | x_i)`` of the mixture (the gate with
        ``top_k``, never argmax pooling).
    """
    weighted = copy.copy(model)
    weighted.pooling = "weighted"
    log_prob = weighted.log_prob(X, y)
    if sample_weight is None:
        return float(np.sum(log_prob))
    return float(np.dot(_check_sample_weight(sample_weight, log_prob), log_prob))


def not_ml_reasons(model, gate_alpha=None, expert_notes=()):
    """Why the fitted parameters are not maximum-likelihood estimates (empty when they are)."""
    reasons = list(expert_notes)
    if gate_alpha:
        reasons.insert(0, f"the gate has a penalty gate_alpha={gate_alpha:g}")
    if getattr(model, "algorithm", "em") != "em":
        reasons.append(f"algorithm={model.algorithm!r} does not maximise the likelihood")
    if getattr(model, "gate_noise", 0.0):
        reasons.append(f"gate_noise={model.gate_noise:g} perturbs the gate in training")
    if getattr(model, "routing", "token_choice") != "token_choice" or getattr(
        model, "capacity_factor", None
    ) is not None:
        reasons.append("the routing (expert_choice or capacity_factor) is not the EM posterior")
    if getattr(model, "balance", None) is not None:
        reasons.append("balance= reweights the experts in training")
    return reasons


class MixtureModel:
    """A fitted mixture of linear experts with a linear gate, as a function of ``theta``.

    Parameters
    ----------
    model : MixtureOfExpertsRegressor
        Fitted, with linear experts and a linear gate.
    X : array-like of shape (n_samples, n_features)
        Inputs (validated against the model).
    y : array-like of shape (n_samples,)
        Targets.
    sample_weight : array-like of shape (n_samples,), default=None
        Frequency weights.
    reference : int, default=0
        Reference expert of the gate.

    Attributes
    ----------
    theta : ndarray of shape (n_parameters,)
        The fitted parameters: per expert its coefficients (intercept first)
        then its log-scale likelihood parameters, then per non-reference
        expert the gate's intercept and weights minus the reference's.
    component, term : list of str
        Per parameter: ``"expert k"`` / ``"gate k"`` and the term's name.
    extra : ndarray of bool
        Whether a parameter is a log-scale likelihood parameter.
    reasons : list of str
        Why the fit is not a maximum-likelihood fit (empty if it is).
    """

    def __init__(self, model, X, y, sample_weight=None, reference=0):
        check_is_fitted(model)
        if getattr(model, "top_k", None) is not None:
            raise ValueError(
                f"top_k={model.top_k} makes the gate non-differentiable in its parameters; "
                "standard errors need top_k=None."
            )
        self.model = model
        X_in, y_in = X, y
        X = validate_data(model, X, reset=False, dtype=np.float64)
        self.likelihood = likelihood = model.likelihood_
        self.y = np.asarray(likelihood.transform_target(y), dtype=np.float64)
        if self.y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {self.y.shape[0]}.")
        self.sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self.n_experts = K = int(model.n_experts_)
        if not 0 <= reference < K:
            raise ValueError(f"reference={reference} is not one of the {K} experts.")
        self.reference = int(reference)
        self.derivatives = derivatives_for(likelihood)
        names = feature_names(model, X.shape[1])
        e_cols = select_columns(model, "expert_features", X.shape[1])
        g_cols = select_columns(model, "gate_features", X.shape[1])
        self.X_expert, self.X_gate = X[:, e_cols], X[:, g_cols]
        self.Z_gate = np.column_stack([np.ones(X.shape[0]), self.X_gate])

        component, term, blocks, theta, extra, notes = [], [], [], [], [], []
        self.links, self.intercepts = [], []
        tau = self.derivatives.internal_parameters(likelihood.params_, K)
        self.n_extra = tau.shape[1]
        for k, expert in enumerate(model.experts_):
            link, fit_intercept, note = _expert_spec(expert, k)
            if note:
                notes.append(note)
            coef = np.asarray(expert.coef_, dtype=np.float64)
            if coef.shape[0] != e_cols.size:
                raise ValueError(
                    f"expert {k} has {coef.shape[0]} coefficients but the expert columns are "
                    f"{e_cols.size}."
                )
            values = ([float(np.ravel(expert.intercept_)[0])] if fit_intercept else []) + list(coef)
            labels = (["(intercept)"] if fit_intercept else []) + [names[j] for j in e_cols]
            start = len(theta)
            theta += values
            blocks.append(slice(start, len(theta)))
            component += [f"expert {k}"] * len(values)
            term += labels
            extra += [False] * len(values)
            self.links.append(link)
            self.intercepts.append(fit_intercept)
            theta += list(tau[k])
            component += [f"expert {k}"] * self.n_extra
            term += list(self.derivatives.extra_names)
            extra += [True] * self.n_extra
        self.beta_blocks = blocks
        self.tau_start = [b.stop for b in blocks]
        W, b, gate_alpha = _gate_layer(model.gate_, K)
        if W.shape[1] != g_cols.size:
            raise ValueError(
                f"the gate has {W.shape[1]} weights per expert but the gate columns are "
                f"{g_cols.size}."
            )
        gamma = np.column_stack([b, W])
        gamma = gamma - gamma[self.reference]
        self.gate_experts = [j for j in range(K) if j != self.reference]
        self.gate_start = len(theta)
        gate_terms = ["(intercept)"] + [names[j] for j in g_cols]
        for j in self.gate_experts:
            theta += list(gamma[j])
            component += [f"gate {j}"] * len(gate_terms)
            term += gate_terms
            extra += [False] * len(gate_terms)
        self.theta = np.asarray(theta, dtype=np.float64)
        self.component, self.term, self.extra = component, term, np.asarray(extra, dtype=bool)
        self.reasons = not_ml_reasons(model, gate_alpha, notes)
        self._check_reproduces(X_in, y_in)

    @property
    def n_parameters(self):
        """Length of ``theta``."""
        return self.theta.size

    def _design(self, k, rows=slice(None)):
        Xe = self.X_expert[rows]
        return np.column_stack([np.ones(Xe.shape[0]), Xe]) if self.intercepts[k] else Xe

    def _unpack(self, theta):
        K, m, dg = self.n_experts, self.n_extra, self.Z_gate.shape[1]
        betas = [theta[b] for b in self.beta_blocks]
        tau = np.array([theta[s : s + m] for s in self.tau_start]).reshape(K, m)
        gamma = np.zeros((K, dg))
        for i, j in enumerate(self.gate_experts):
            gamma[j] = theta[self.gate_start + i * dg : self.gate_start + (i + 1) * dg]
        return betas, tau, gamma

    def _check_reproduces(self, X, y):
        """The parameters read must give the model's own experts' outputs, gate and log-likelihood."""
        outputs_T = self.likelihood.expert_outputs(self.model.experts_, self.X_expert, self.y, GenericSolver)
        betas, _, gamma = self._unpack(self.theta)
        mu_T = np.array([self.links[k](self._design(k) @ betas[k])[0] for k in range(self.n_experts)])
        log_gate_T = GateAdapter(self.model.gate_).log_proba_T(self.X_gate)
        logits_T = gamma @ self.Z_gate.T
        ours = logits_T - logsumexp(logits_T, axis=0)
        if not (np.allclose(mu_T, outputs_T, rtol=1e-6, atol=1e-8 * (1 + np.abs(outputs_T).max()))
                and np.allclose(ours, log_gate_T, rtol=1e-6, atol=1e-8)):
            raise ValueError(
                "The experts' coefficients and the gate's weights do not reproduce the model's "
                "predictions (an expert that transforms its input, or columns selected in a "
                "way this function does not know)."
            )
        total = total_log_likelihood(self.model, X, y, self.sample_weight)
        mine = self.log_likelihood(self.theta)
        if not np.isclose(mine, total, rtol=1e-7, atol=1e-7):
            raise ValueError(
                f"The likelihood's derivatives give log-likelihood {mine:.8g} at the fitted "
                f"parameters, the model {total:.8g}: {type(self.derivatives).__name__} does "
                "not match the likelihood."
            )

    def _forward(self, theta, rows=slice(None)):
        """Per-sample pieces on ``rows``: log-densities and their derivatives, gate, posterior."""
        betas, tau, gamma = self._unpack(theta)
        y = self.y[rows]
        mu, dmu, d2mu = zip(*(self.links[k](self._design(k, rows) @ betas[k]) for k in range(self.n_experts)))
        mu_T, dmu_T, d2mu_T = np.array(mu), np.array(dmu), np.array(d2mu)
        log_f, d_mu, d2_mu, d_tau, d2_mu_tau, d2_tau = self.derivatives.log_density_derivatives(y, mu_T, tau)
        logits_T = gamma @ self.Z_gate[rows].T
        log_pi_T = logits_T - logsumexp(logits_T, axis=0)
        log_joint = log_pi_T + log_f
        log_p = logsumexp(log_joint, axis=0)
        return {
            "log_p": log_p,
            "resp_T": np.exp(log_joint - log_p),
            "pi_T": np.exp(log_pi_T),
            "d_eta": d_mu * dmu_T,
            "d2_eta": d2_mu * dmu_T**2 + d_mu * d2mu_T,
            "d_tau": d_tau,
            "d2_eta_tau": d2_mu_tau * dmu_T[..., None],
            "d2_tau": d2_tau,
        }

    def log_likelihood(self, theta):
        """Weighted total log-likelihood at ``theta``."""
        return float(np.dot(self.sample_weight, self._forward(theta)["log_p"]))

    def _complete_scores(self, p, rows):
        """``s[i, k]``: gradient of ``log pi_ik + log p_ik``, shape (n_rows, n_experts, n_parameters)."""
        K, m = self.n_experts, self.n_extra
        Zg = self.Z_gate[rows]
        s = np.zeros((Zg.shape[0], K, self.n_parameters))
        dg = Zg.shape[1]
        for k in range(K):
            s[:, k, self.beta_blocks[k]] = p["d_eta"][k][:, None] * self._design(k, rows)
            s[:, k, self.tau_start[k] : self.tau_start[k] + m] = p["d_tau"][k]
            for i, j in enumerate(self.gate_experts):
                start = self.gate_start + i * dg
                s[:, k, start : start + dg] = ((j == k) - p["pi_T"][j])[:, None] * Zg
        return s

    def score_hessian(self, theta=None):
        """Gradient and Hessian of the weighted total log-likelihood.

        Parameters
        ----------
        theta : ndarray of shape (n_parameters,), default=None
            Parameters; None is the fitted ones.

        Returns
        -------
        score : ndarray of shape (n_parameters,)
            Gradient.
        hessian : ndarray of shape (n_parameters, n_parameters)
            Hessian (symmetric).
        """
        theta = self.theta if theta is None else theta
        P, K, m = self.n_parameters, self.n_experts, self.n_extra
        n = self.y.shape[0]
        block = max(1, _BLOCK_ENTRIES // (K * P))
        score, H = np.zeros(P), np.zeros((P, P))
        dg = self.Z_gate.shape[1]
        for lo in range(0, n, block):
            rows = slice(lo, min(lo + block, n))
            p = self._forward(theta, rows)
            w = self.sample_weight[rows]
            wr = (p["resp_T"] * w).T  # (n_rows, K)
            s = self._complete_scores(p, rows)
            S = np.einsum("ik,ikp->ip", p["resp_T"].T, s)
            score += w @ S
            H += np.einsum("ik,ikp,ikq->pq", wr, s, s, optimize=True) - (S * w[:, None]).T @ S
            for k in range(K):
                Z = self._design(k, rows)
                bk, tk = self.beta_blocks[k], slice(self.tau_start[k], self.tau_start[k] + m)
                H[bk, bk] += Z.T @ (Z * (wr[:, k] * p["d2_eta"][k])[:, None])
                cross = Z.T @ (p["d2_eta_tau"][k] * wr[:, k][:, None])
                H[bk, tk] += cross
                H[tk, bk] += cross.T
                H[tk, tk] += np.einsum("i,iab->ab", wr[:, k], p["d2_tau"][k])
            Zg = self.Z_gate[rows]
            for a, j in enumerate(self.gate_experts):
                for c, l in enumerate(self.gate_experts):
                    cov = p["pi_T"][j] * ((j == l) - p["pi_T"][l])
                    sa = slice(self.gate_start + a * dg, self.gate_start + (a + 1) * dg)
                    sc = slice(self.gate_start + c * dg, self.gate_start + (c + 1) * dg)
                    H[sa, sc] -= Zg.T @ (Zg * (w * cov)[:, None])
        return score, 0.5 * (H + H.T)
