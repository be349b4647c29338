"""Softmax (multinomial logistic) gate fitted to soft targets with L-BFGS."""

from numbers import Integral, Real

import numpy as np
from scipy.optimize import minimize
from sklearn.utils.validation import check_array, check_is_fitted

from ..utils._compat import Interval
from ..utils._threads import RowPool, matmul_rows_T, row_parallel
from ._base import BaseGate, log_softmax_columns, validate_resp


def weighted_standardisation(X, weight):
    """Weighted mean and scale of each feature (scale 1 for constant features).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    weight : ndarray of shape (n_samples,)
        Non-negative weights summing to one.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,)
        Weighted mean and standard deviation.
    """
    mean = np.asarray(weight @ X, dtype=np.float64)
    # Centre before squaring (E[x^2] - E[x]^2 cancels for offset features), in
    # small row blocks through one reused buffer: no copy of X, few page faults.
    var = np.zeros(X.shape[1], dtype=np.float64)
    block = max(1, 2**15 // max(1, X.shape[1]))
    buffer = np.empty((min(block, X.shape[0]), X.shape[1]))
    for start in range(0, X.shape[0], block):
        rows = X[start : start + block]
        centred = buffer[: rows.shape[0]]
        np.subtract(rows, mean, out=centred)
        np.square(centred, out=centred)
        var += weight[start : start + block] @ centred
    scale = np.sqrt(var)
    scale[scale <= 1e-12 * (np.abs(mean) + 1.0)] = 1.0
    return mean, scale


class LinearGate(BaseGate):
    """Softmax gate: ``g(x) = softmax(W x + b)``, fitted to soft targets.

    Minimises the weighted mean cross-entropy between the targets and the gate
    plus ``alpha / 2 * ||W||^2`` with SciPy's L-BFGS and an analytic gradient.
    The features are standardised internally (weighted mean and standard
    deviation), so the penalty, and hence the fit, does not depend on the
    units of ``X``; the intercept is not penalised. Successive calls to
    :meth:`fit` warm-start from the current solution, which is what makes the
    gate M-step of EM cost only a few function evaluations.

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
        The L2 penalty term of ``loss_``; the EM loop subtracts it from the
        log-likelihood so that its objective is the one EM maximises.

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

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, alpha=1e-4, max_iter=100, tol=1e-9):
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, resp, sample_weight=None):
        """Fit the gate to soft targets, warm-starting when already fitted.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        resp : array-like of shape (n_samples, n_experts)
            Soft targets (rows are normalised to sum to one).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.

        Returns
        -------
        self : LinearGate
            The fitted gate.
        """
        self._validate_params()
        X = check_array(X, dtype=[np.float64, np.float32])
        resp_T = validate_resp(resp, X.shape[0])
        return self._fit_prepared(X, resp_T, *self._prepare(X, sample_weight))

    @staticmethod
    def _prepare(X, sample_weight):
        """The data-dependent constants of a fit: normalised weights, feature mean and scale.

        The EM loop computes them once per run and passes them to
        :meth:`_fit_prepared` in every M-step (same ``X``, same weights): two
        passes over ``X`` saved per EM iteration.
        """
        n_samples = X.shape[0]
        if sample_weight is None:
            weight = np.full(n_samples, 1.0 / n_samples)
        else:
            weight = np.asarray(sample_weight, dtype=np.float64)
            weight = weight / weight.sum()
        mean, scale = weighted_standardisation(X, weight)
        return weight, mean, scale

    def _fit_prepared(self, X, resp_T, weight, mean, scale):
        """:meth:`fit` on validated input.

        ``X`` is a validated float array, ``resp_T`` a C-contiguous float64
        ``(n_experts, n_samples)`` array whose columns sum to one, and
        ``weight, mean, scale`` come from :meth:`_prepare` on the same ``X``
        and sample weights.
        """
        n_features = X.shape[1]
        n_experts = resp_T.shape[0]
        warm = (
            hasattr(self, "coef_")
            and self.coef_.shape == (n_experts, n_features)
        )
        if warm:
            # Express the current raw parameters in the new standardisation.
            Ws = self.coef_ * scale
            b = self.intercept_ + self.coef_ @ mean
        else:
            Ws = np.zeros((n_experts, n_features))
            b = np.log(np.maximum(resp_T @ weight, 1e-12))
        theta0 = np.concatenate([Ws.ravel(), b])

        # L-BFGS-B's own tiny BLAS calls run single-threaded; the objective's
        # passes over the rows are split over the pool's threads (utils/_threads.py).
        with row_parallel() as pool:
            objective = _SoftmaxObjective(X, resp_T, weight, mean, scale, self.alpha, pool)
            result = minimize(
                objective,
                theta0,
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-12},
            )
        theta = result.x
        # L-BFGS-B may report failure on line-search stalls at the optimum; keep the best point seen.
        if objective.best_theta is not None and objective.best_loss < result.fun:
            theta = objective.best_theta
        Ws = theta[: n_experts * n_features].reshape(n_experts, n_features)
        b = theta[n_experts * n_features :]
        self.coef_ = Ws / scale
        self.intercept_ = b - self.coef_ @ mean
        self.intercept_ -= self.intercept_.mean()  # softmax is shift-invariant; centre for readability
        self.n_features_in_ = n_features
        self.n_experts_ = n_experts
        self.n_parameters_ = (n_experts - 1) * (n_features + 1)
        self.n_iter_ = int(result.nit)
        self.loss_ = float(min(result.fun, objective.best_loss))
        self.penalty_ = 0.5 * self.alpha * float(np.vdot(Ws, Ws))
        return self

    def decision_function_T(self, X):
        """Gate logits in the core's ``(n_experts, n_samples)`` layout.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        logits_T : ndarray of shape (n_experts, n_samples)
            C-contiguous logits.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32])
        Z = matmul_rows_T(self.coef_.astype(X.dtype, copy=False), X)  # (n_experts, n_samples), C-contiguous
        Z += self.intercept_.astype(X.dtype, copy=False)[:, None]
        return Z

    def predict_log_proba(self, X):
        """Log gate probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_experts)
            Log probability of each expert (a transposed view of a
            C-contiguous ``(n_experts, n_samples)`` array).
        """
        return log_softmax_columns(self.decision_function_T(X)).T


class _SoftmaxObjective:
    """Penalised weighted cross-entropy and its gradient, sharing one pass.

    The parameters are the standardised weights ``Ws`` and intercepts ``b``;
    the logits are formed with the raw ``X`` through ``Ws / scale`` so no
    standardised copy of ``X`` is ever made.

    The targets enter the loss only through their weighted moments
    ``A = (w * R) @ X`` and ``(w * R).sum(axis=1)``, computed once per fit
    (rows of ``R`` sum to one, so ``sum_k r_ki log p_ki = sum_k r_ki z_ki -
    logsumexp_k z_ki``). An evaluation is then, per block of rows while the
    block is in cache, one product for the logits, a log-sum-exp and one
    product for the gradient: ``X`` is read from memory once per evaluation,
    and the ``(n_experts, block)`` buffers are reused by every evaluation,
    with the reductions along their contiguous axis. The chunks of rows of
    the :class:`~skmoe.utils._threads.RowPool` run in parallel threads.
    """

    def __init__(self, X, resp_T, weight, mean, scale, alpha, pool=None):
        self.pool = RowPool(1, None) if pool is None else pool
        self.X = X
        self.weight = weight.astype(X.dtype, copy=False)
        self.mean = mean
        self.scale = scale
        self.alpha = alpha
        self.n_experts, self.n_features = resp_T.shape[0], X.shape[1]
        self.weighted_resp = resp_T * self.weight
        n_samples = X.shape[0]
        # About 2 MiB of X per block (measured best at d=50 between 1,024 and
        # the whole chunk; at d=10 at 16,384).
        self.block = int(np.clip(2**18 // max(1, self.n_features), 1024, 16384))
        self.bounds = self.pool.bounds(n_samples, block=self.block)
        self.buffers = {
            start: np.empty((self.n_experts, min(self.block, stop - start)), dtype=X.dtype)
            for start, stop in self.bounds
        }
        parts = self.pool.map(
            lambda start, stop: np.matmul(self.weighted_resp[:, start:stop], X[start:stop]).astype(np.float64),
            self.bounds,
        )
        self.resp_moment = sum(parts[1:], parts[0])
        self.resp_total = self.weighted_resp.sum(axis=1, dtype=np.float64)
        self.best_loss = np.inf
        self.best_theta = None

    def __call__(self, theta):
        K, d = self.n_experts, self.n_features
        Ws = theta[: K * d].reshape(K, d)
        b = theta[K * d :]
        Wr = Ws / self.scale
        br = b - Wr @ self.mean
        dtype = self.X.dtype
        Wd, bd = Wr.astype(dtype, copy=False), br.astype(dtype, copy=False)[:, None]
        parts = self.pool.map(lambda start, stop: self._chunk(start, stop, Wd, bd), self.bounds)
        log_norm_sum = sum(part[0] for part in parts)
        grad_Wr = sum((part[1] for part in parts[1:]), parts[0][1])
        grad_br = sum((part[2] for part in parts[1:]), parts[0][2])
        # loss = sum_i w_i logsumexp_i - sum_k (Wr_k . A_k + br_k * rtot_k)
        loss = log_norm_sum - float(np.vdot(Wr, self.resp_moment) + br @ self.resp_total)
        grad_Ws = (grad_Wr - np.outer(grad_br, self.mean)) / self.scale
        loss += 0.5 * self.alpha * float(np.vdot(Ws, Ws))
        grad_Ws += self.alpha * Ws
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_theta = theta.copy()
        return loss, np.concatenate([grad_Ws.ravel(), grad_br])

    def _chunk(self, start, stop, Wd, bd):
        """``sum_i w_i logsumexp_i`` and the raw gradient over rows ``start:stop``."""
        X = self.X
        buffer = self.buffers[start]
        log_norm_sum = 0.0
        grad_Wr = np.zeros((self.n_experts, self.n_features))
        grad_br = np.zeros(self.n_experts)
        for lo in range(start, stop, self.block):
            hi = min(lo + self.block, stop)
            rows = X[lo:hi]
            Z = buffer[:, : hi - lo]
            np.matmul(Wd, rows.T, out=Z)
            Z += bd  # logits
            shift = Z.max(axis=0)
            Z -= shift
            with np.errstate(under="ignore"):
                np.exp(Z, out=Z)
            total = Z.sum(axis=0)
            log_norm = np.log(total, dtype=np.float64)
            log_norm += shift  # logsumexp of the logits, per sample
            weight = self.weight[lo:hi]
            log_norm_sum += float(np.dot(log_norm, weight))
            np.divide(weight, total, out=total)
            Z *= total  # w_i * p_ki
            # Subtract the targets per sample, not as moments after the product:
            # near the optimum the moments cancel, which would cost the gradient
            # its accuracy (in float32 visibly so).
            Z -= self.weighted_resp[:, lo:hi]
            grad_Wr += np.matmul(Z, rows)
            grad_br += Z.sum(axis=1, dtype=np.float64)
        return log_norm_sum, grad_Wr, grad_br
