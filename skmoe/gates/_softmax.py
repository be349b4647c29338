"""The softmax-network gate: one objective and one base class for the built-in gates.

A linear gate is a softmax network without hidden layer, so
:class:`~skmoe.gates.LinearGate`, :class:`~skmoe.gates.MLPGate` and
:class:`~skmoe.gates.TorchGate` share everything here: the weighted
standardisation of a fit (:meth:`~_BaseSoftmaxGate.prepare`), the warm start
in standardised units, the check of the number of features, the penalty, the
removal of experts and the log-probabilities in the core's layout. They differ
only in the optimiser: SciPy's L-BFGS-B on :class:`SoftmaxObjective` for the
NumPy gates, :class:`torch.optim.LBFGS` with autograd for the PyTorch gate.
"""

import contextlib
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from sklearn.utils.validation import check_array, check_is_fitted

from .._docstrings import GATES_DOC, doc_filler
from .._sparse import as_csr, block_rows, is_sparse, left_matmul, matmul_T, row_block
from .._sparse import weighted_standardisation as sparse_standardisation
from ..utils._threads import RowPool, row_parallel
from ._base import BaseGate, check_keep, log_softmax_columns, validate_resp
from ._lbfgs import LBFGSMemory, minimise_lbfgs
from ._network import (
    activate,
    count_parameters,
    forward_logits_T,
    layer_shapes,
    multiply_derivative,
    normalised_weight,
    pack,
    standardise_first_layer,
    unpack,
    unstandardise_first_layer,
    weighted_standardisation,
)

# Curvature pairs of the hidden-layer networks' L-BFGS, and whether they are
# kept from one M-step of an EM run to the next (benchmarks/README.md,
# "Neural gates: iterations per M-step").
_LBFGS_HISTORY = 10
_KEEP_CURVATURE_PAIRS = True
# Caches of a fit that are not part of the fitted model: never pickled or
# deep-copied (the EM loop deep-copies its best state).
_TRANSIENT = ("_lbfgs_state", "_X_cache", "_torch_state", "_module")


class SoftmaxContext(NamedTuple):
    """The data-dependent constants of a fit, from :meth:`_BaseSoftmaxGate.prepare`."""

    weight: np.ndarray  # (n_samples,) float64, sums to one
    mean: np.ndarray  # (n_features,) weighted mean of X
    scale: np.ndarray  # (n_features,) weighted standard deviation of X (1 if constant)


def prepare_context(X, sample_weight):
    """:class:`SoftmaxContext` of ``X`` and ``sample_weight`` (uniform when None).

    Sparse ``X`` is standardised implicitly: its mean and scale come from
    its non-zeros, and the objective folds them into the first layer.
    """
    weight = normalised_weight(sample_weight, X.shape[0])
    standardise = sparse_standardisation if is_sparse(X) else weighted_standardisation
    return SoftmaxContext(weight, *standardise(X, weight))


class SoftmaxObjective:
    """Penalised weighted cross-entropy of a softmax network and its gradient, one pass.

    ``theta`` packs (:func:`~skmoe.gates._network.pack`) the parameters in
    standardised units; the first layer is applied to the raw ``X`` through
    ``W_std / scale``, so no standardised copy of ``X`` is ever made. The loss
    is ``-sum_i w_i sum_k r_ki log p_ki + alpha / 2 * sum ||W_l||^2``.

    The rows are processed in blocks that stay in cache: per block, the
    forward products, a log-sum-exp over the outputs, and the backward
    products, so ``X`` is read from memory once per evaluation, and the
    ``(n_units, block)`` buffers are reused by every evaluation, with the
    reductions along their contiguous axis. Sparse ``X`` (CSR) is read in
    blocks that are views of it, its products with the weights and the
    errors are sparse-dense products, and it is never standardised or
    densified: the mean goes into the bias. The chunks of rows of the
    :class:`~skmoe.utils._threads.RowPool` run in parallel threads, their
    partial sums combined in chunk order.

    One formula for every network: the columns of ``R`` sum to one, so the
    loss is ``sum_i w_i (logsumexp_k z_ki - sum_k r_ki z_ki)`` plus the
    penalty, and its gradient with respect to the logits is ``w_i (p_ki -
    r_ki)``, formed per sample. The targets' term ``sum_ki w_i r_ki z_ki`` is
    linear in the parameters of a network without hidden layer, and then
    comes from the weighted moments ``(w * R) @ X`` and ``(w * R).sum(axis=1)``
    computed once per fit; with hidden layers each block sums it.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Inputs, float32 or float64 (products run in this dtype); sparse
        ``X`` in CSR form.
    resp_T : ndarray of shape (n_experts, n_samples)
        Targets, columns summing to one.
    weight, mean, scale : ndarray
        The :class:`SoftmaxContext` of ``X``.
    alpha : float
        L2 penalty on the weights (not the biases).
    shapes : list of tuple of int, default=None
        ``(n_out, n_in)`` per layer; None is the linear gate.
    activation : str, default="tanh"
        Hidden activation.
    pool : RowPool, default=None
        Threads for the chunks of rows; None runs one chunk.
    block : int, default=None
        Rows per block; None picks about 2 MiB of ``X`` per block.
    """

    def __init__(self, X, resp_T, weight, mean, scale, alpha, shapes=None, activation="tanh",
                 pool=None, block=None):
        self.pool = RowPool(1, None) if pool is None else pool
        self.X = X
        self.weight = weight.astype(X.dtype, copy=False)
        self.mean = mean
        self.scale = scale
        self.alpha = alpha
        n_experts, n_features = resp_T.shape[0], X.shape[1]
        self.shapes = [(n_experts, n_features)] if shapes is None else list(shapes)
        self.activation = activation
        self.linear = len(self.shapes) == 1
        n_samples = X.shape[0]
        # About 2 MiB of X per block (measured best at d=50 between 1,024 and
        # the whole chunk; at d=10 at 16,384) for the linear gate; the hidden
        # activations of a block count as more columns.
        width = n_features + sum(n_out for n_out, _ in self.shapes[:-1])
        if block is None:
            block = np.clip(2**18 // max(1, width), 1024, 16384)
            if is_sparse(X):  # rows of a sparse block hold only their non-zeros
                block = block_rows(X, max_rows=16384)
        self.block = int(block)
        # The neural gates' chunks follow the thread rule on the multiply-adds
        # of a row's forward and backward passes (the linear gate's split
        # only on the rows, as it always has).
        n_cols = None if self.linear else 3 * sum(a * b for a, b in self.shapes)
        self.bounds = self.pool.bounds(n_samples, block=self.block, n_cols=n_cols)
        # Per chunk: the (n_out, block) activations of every layer, then the
        # (n_out, block) back-propagated errors of every hidden layer.
        self.buffers = {
            start: [
                np.empty((n_out, min(self.block, stop - start)), dtype=X.dtype)
                for n_out, _ in self.shapes + self.shapes[:-1]
            ]
            for start, stop in self.bounds
        }
        self.weighted_resp = resp_T * self.weight
        if self.linear:
            def moment(start, stop):
                product = left_matmul(self.weighted_resp[:, start:stop], row_block(X, start, stop))
                return product.astype(np.float64)

            parts = self.pool.map(moment, self.bounds)
            self.resp_moment = sum(parts[1:], parts[0])
            self.resp_total = self.weighted_resp.sum(axis=1, dtype=np.float64)
        # Where each layer's weights, then biases, lie in theta (as unpack reads it).
        sizes = [n_out * n_in for n_out, n_in in self.shapes] + [n for n, _ in self.shapes]
        ends = np.cumsum(sizes).tolist()
        slices = list(zip([0, *ends[:-1]], ends))
        n_layers = len(self.shapes)
        self._coef_slices = [(*slices[l], self.shapes[l]) for l in range(n_layers)]
        self._intercept_slices = slices[n_layers:]
        self.best_loss = np.inf
        self.best_theta = None

    def __call__(self, theta):
        """Loss and gradient at ``theta`` (standardised parameters, packed)."""
        coefs = [theta[lo:hi].reshape(shape) for lo, hi, shape in self._coef_slices]
        intercepts = [theta[lo:hi] for lo, hi in self._intercept_slices]
        raw_W0 = coefs[0] / self.scale
        raw_b0 = intercepts[0] - raw_W0 @ self.mean
        raw_coefs, raw_intercepts = [raw_W0, *coefs[1:]], [raw_b0, *intercepts[1:]]
        dtype = self.X.dtype
        Wd = [W.astype(dtype, copy=False) for W in raw_coefs]
        bd = [b.astype(dtype, copy=False)[:, None] for b in raw_intercepts]
        parts = self.pool.map(lambda start, stop: self._chunk(start, stop, Wd, bd), self.bounds)
        loss = sum(part[0] for part in parts)
        _, grad_W, grad_b = parts[0]
        for part in parts[1:]:  # in chunk order
            for layer in range(len(grad_W)):
                grad_W[layer] = grad_W[layer] + part[1][layer]
                grad_b[layer] = grad_b[layer] + part[2][layer]
        if self.linear:
            # loss = sum_i w_i logsumexp_i - sum_k (Wr_k . A_k + br_k * rtot_k)
            loss = loss - float(np.vdot(raw_W0, self.resp_moment) + raw_b0 @ self.resp_total)
        # Chain rule through the folded standardisation of the first layer.
        grad_W[0] = (grad_W[0] - np.outer(grad_b[0], self.mean)) / self.scale
        for W, grad in zip(coefs, grad_W):
            loss += 0.5 * self.alpha * float(np.vdot(W, W))
            grad += self.alpha * W
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_theta = theta.copy()
        return loss, pack(grad_W, grad_b)

    def _chunk(self, start, stop, Wd, bd):
        """Loss part and raw gradients over the rows ``start:stop``.

        The loss part is ``sum_i w_i logsumexp_i`` without hidden layer (the
        targets' part comes from their moments), the cross-entropy with.
        """
        X, act = self.X, self.activation
        n_layers = len(self.shapes)
        buffers = self.buffers[start]
        loss = 0.0
        grad_W = [np.zeros(shape) for shape in self.shapes]
        grad_b = [np.zeros(shape[0]) for shape in self.shapes]
        for lo in range(start, stop, self.block):
            hi = min(lo + self.block, stop)
            rows = row_block(X, lo, hi)
            A = buffers if hi - lo == buffers[0].shape[1] else [b[:, : hi - lo] for b in buffers]
            for layer in range(n_layers):
                if layer == 0:
                    matmul_T(Wd[0], rows, out=A[0])
                else:
                    np.matmul(Wd[layer], A[layer - 1], out=A[layer])
                A[layer] += bd[layer]
                if layer < n_layers - 1:
                    activate(A[layer], act)
            Z = A[n_layers - 1]  # logits
            weight = self.weight[lo:hi]
            if not self.linear:
                # The targets' term, sum_k sum_i w_i r_ki z_ki, of this block
                # (without hidden layer it comes from the moments). einsum reads
                # the strided slice in place; np.vdot would copy it first (measured
                # 50x slower at 64 x 3,276), einsum(optimize=True) 75x.
                loss -= float(np.einsum("ki,ki->", self.weighted_resp[:, lo:hi], Z))
            shift = Z.max(axis=0)
            Z -= shift
            with np.errstate(under="ignore"):
                np.exp(Z, out=Z)
            total = Z.sum(axis=0)
            log_norm = np.log(total, dtype=np.float64)
            log_norm += shift  # logsumexp of the logits, per sample
            loss += float(np.dot(log_norm, weight))
            np.divide(weight, total, out=total)
            Z *= total  # w_i * p_ki
            # Subtract the targets per sample, not as moments after the product:
            # near the optimum the moments cancel, which would cost the gradient
            # its accuracy (in float32 visibly so).
            Z -= self.weighted_resp[:, lo:hi]
            delta = Z
            for layer in range(n_layers - 1, -1, -1):
                if layer == 0:
                    grad_W[0] += left_matmul(delta, rows)
                else:
                    grad_W[layer] += np.matmul(delta, A[layer - 1].T)
                grad_b[layer] += delta.sum(axis=1, dtype=np.float64)
                if layer > 0:
                    back = A[n_layers + layer - 1]
                    np.matmul(Wd[layer].T, delta, out=back)
                    delta = multiply_derivative(back, A[layer - 1], act)
        return loss, grad_W, grad_b


class _BestPoint:
    """An objective that remembers the lowest loss it returned and where."""

    def __init__(self, objective):
        self.objective = objective
        self.loss = np.inf
        self.theta = None

    def __call__(self, theta):
        loss, grad = self.objective(theta)
        if loss < self.loss:
            self.loss = float(loss)
            self.theta = np.array(theta, dtype=np.float64)
        return loss, grad


@doc_filler(GATES_DOC)
class _BaseSoftmaxGate(BaseGate):
    """Softmax-network gate: everything but the architecture and the objective's library.

    Subclasses have ``alpha``, ``max_iter`` and ``tol`` parameters (and
    ``activation`` with hidden layers) and may override the hooks
    :meth:`_hidden_layers`, :meth:`_layers`/:meth:`_set_layers` (where the
    fitted parameters live), :meth:`_initial_parameters` (the cold start),
    :meth:`_objective` (:class:`SoftmaxObjective` here), :meth:`_threads`
    and :meth:`_minimise`.

    The optimiser is chosen by the network, not by the library that
    evaluates the objective, so that the NumPy and PyTorch gates take the
    same path: without hidden layer (a convex problem) SciPy's L-BFGS-B, as
    the linear gate always has; with hidden layers
    :func:`~skmoe.gates._lbfgs.minimise_lbfgs`, whose curvature pairs are
    kept from one M-step of an EM run to the next (the same ``context``).
    """

    # Whether fit and predict take sparse X (CSR): the network without hidden
    # layer, whose forward pass is one sparse-dense product.
    _sparse_input = False

    # ------------------------------------------------------------------
    # Hooks

    def _hidden_layers(self):
        """Widths of the hidden layers; ``()`` for the linear gate."""
        return ()

    def _activation_name(self):
        return getattr(self, "activation", "tanh")

    def _layers(self):
        """Fitted ``(coefs, intercepts)`` lists in the units of ``X``, or None."""
        if not hasattr(self, "coefs_"):
            return None
        return self.coefs_, self.intercepts_

    def _set_layers(self, coefs, intercepts):
        self.coefs_ = coefs
        self.intercepts_ = intercepts

    def _initial_parameters(self, shapes, prior):
        """Cold-start parameters in standardised units."""
        raise NotImplementedError

    def _objective(self, X, resp_T, context, shapes, pool):
        """``theta -> (loss, grad)`` of this fit: :class:`SoftmaxObjective`."""
        return SoftmaxObjective(
            X, resp_T, *context, self.alpha, shapes, self._activation_name(), pool
        )

    def _threads(self, n_rows, pool):
        """Context of the optimiser's threads (the row pool's region suffices here)."""
        return contextlib.nullcontext()

    def _curvature_memory(self, context, n_params):
        """The L-BFGS pairs of the previous fit of the same run, or a new memory.

        Pairs are kept while the gate is fitted with the same ``context``
        object (the EM loop passes its :meth:`prepare` to every M-step) and
        the same number of parameters; :meth:`fit` prepares a new context
        each call, so a public fit starts with an empty memory.
        """
        state = self.__dict__.get("_lbfgs_state")
        if (
            _KEEP_CURVATURE_PAIRS and state is not None and state[0] is context
            and state[1] == n_params
        ):
            return state[2]
        memory = LBFGSMemory(_LBFGS_HISTORY)
        self._lbfgs_state = (context, n_params, memory)
        return memory

    def _minimise(self, X, resp_T, context, shapes, coefs, intercepts):
        """Minimise the objective from ``(coefs, intercepts)`` (standardised units).

        Returns the standardised parameters, the loss and the iteration count.
        """
        # The optimiser's own tiny BLAS calls run single-threaded; the objective's
        # passes over the rows are split over the pool's threads (utils/_threads.py).
        with row_parallel() as pool, self._threads(X.shape[0], pool):
            objective = _BestPoint(self._objective(X, resp_T, context, shapes, pool))
            theta = pack(coefs, intercepts)
            if len(shapes) == 1:
                result = minimize(
                    objective,
                    theta,
                    jac=True,
                    method="L-BFGS-B",
                    options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-12},
                )
                theta, loss, n_iter = result.x, float(result.fun), int(result.nit)
            else:
                theta, loss, n_iter, _ = minimise_lbfgs(
                    objective, theta, max_iter=self.max_iter, gtol=self.tol,
                    memory=self._curvature_memory(context, theta.size),
                )
        # L-BFGS-B may report failure on line-search stalls at the optimum;
        # keep the best point seen.
        if objective.theta is not None and objective.loss < loss:
            theta, loss = objective.theta, objective.loss
        return (*unpack(theta, shapes), loss, n_iter)

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: never touch the live __dict__
        for name in _TRANSIENT:
            state.pop(name, None)
        return state

    def release_run(self):
        """Drop what was kept for the EM run (the L-BFGS pairs, device copies, the objective).

        The EM loop calls it at the end of a fit, so that a fitted model holds
        no per-sample arrays or device memory; a later fit rebuilds them.
        """
        for name in ("_X_cache", "_torch_state", "_lbfgs_state"):
            self.__dict__.pop(name, None)

    def _set_penalty(self, penalty):
        self._penalty = penalty

    def _logits_T(self, X):
        return forward_logits_T(X, *self._layers(), self._activation_name())

    # ------------------------------------------------------------------
    # Protocol

    def prepare(self, X, sample_weight):
        """The data-dependent constants of a fit: weights, feature mean and scale.

        The EM loop calls it once per run and passes its result to
        :meth:`fit_prepared` in every M-step (same ``X``, same weights): two
        passes over ``X`` saved per iteration. It also validates the
        parameters of the gate.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated inputs (float32 or float64).
        sample_weight : array-like of shape (n_samples,) or None
            Per-sample weights; None for uniform weights.

        Returns
        -------
        context : SoftmaxContext
            Named tuple ``(weight, mean, scale)``: the weights normalised to
            sum to one, and the weighted mean and standard deviation of each
            feature (1 for a constant feature).
        """
        self._validate_params()
        return prepare_context(X, sample_weight)

    def fit(self, X, resp, sample_weight=None):
        """Fit the gate to soft targets, warm-starting when already fitted.

        The rows of ``resp`` are normalised to sum to one.

        %(fit_sections)s
        """
        X = self._check_X(X)
        resp_T = validate_resp(resp, X.shape[0])
        return self.fit_prepared(X, resp_T, self.prepare(X, sample_weight))

    def fit_prepared(self, X, resp_T, context):
        """:meth:`fit` in the core's layout, on validated input.

        Warm-starts from the fitted parameters when their shapes match the
        number of features and experts; otherwise starts cold.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated inputs (float32 or float64); not validated again.
        resp_T : ndarray of shape (n_experts, n_samples)
            C-contiguous targets whose columns sum to one (float64, or
            float32 in a fit on float32 ``X``).
        context : SoftmaxContext
            :meth:`prepare` of the same ``X`` and sample weights.

        Returns
        -------
        self : object
            The fitted gate.
        """
        n_features, n_experts = X.shape[1], resp_T.shape[0]
        mean, scale = context.mean, context.scale
        shapes = layer_shapes(n_features, self._hidden_layers(), n_experts)
        layers = self._layers()
        if layers is not None and [c.shape for c in layers[0]] == shapes:
            coefs, intercepts = standardise_first_layer(*layers, mean, scale)
        else:
            coefs, intercepts = self._initial_parameters(shapes, resp_T @ context.weight)
        coefs, intercepts, loss, n_iter = self._minimise(
            X, resp_T, context, shapes, coefs, intercepts
        )
        # The penalty of the solution, and each output's share of it (for remove_experts).
        self._set_penalty(0.5 * self.alpha * sum(float(np.vdot(W, W)) for W in coefs))
        self._output_penalty = 0.5 * self.alpha * np.einsum("ij,ij->i", coefs[-1], coefs[-1])
        coefs, intercepts = unstandardise_first_layer(coefs, intercepts, mean, scale)
        intercepts[-1] -= intercepts[-1].mean()  # softmax is shift-invariant: centred
        self._set_layers(coefs, intercepts)
        self.n_features_in_ = n_features
        self.n_experts_ = n_experts
        self.n_parameters_ = count_parameters(shapes)
        self.n_iter_ = n_iter
        self.loss_ = loss
        return self

    def penalty(self):
        """The L2 penalty term of the last fit.

        ``alpha / 2`` times the sum of the squared weights in standardised
        units, in the units of the mean log-likelihood: the EM objective is
        the weighted mean log-likelihood minus this.

        Returns
        -------
        penalty : float
            The penalty; after :meth:`remove_experts`, that of the kept outputs.
        """
        check_is_fitted(self)
        return float(self._penalty)

    def remove_experts(self, keep):
        """Keep only the outputs ``keep``.

        The gate becomes the softmax over the kept outputs, i.e. its
        probabilities renormalised over them, and later fits warm-start from
        there.

        Parameters
        ----------
        keep : array-like of int
            Indices of the outputs to keep, in their new order.

        Returns
        -------
        self : object
            The gate, with ``n_experts_`` and ``n_parameters_`` updated.
        """
        keep = self._check_keep(keep)
        coefs, intercepts = (list(layer) for layer in self._layers())
        coefs[-1] = coefs[-1][keep]
        intercepts[-1] = intercepts[-1][keep] - intercepts[-1][keep].mean()
        self._set_layers(coefs, intercepts)
        removed = self._output_penalty.sum() - self._output_penalty[keep].sum()
        self._set_penalty(float(self._penalty - removed))
        self._output_penalty = self._output_penalty[keep]
        self.n_experts_ = int(keep.size)
        self.n_parameters_ = count_parameters([c.shape for c in coefs])
        return self

    def _check_keep(self, keep):
        """``keep`` as an array of distinct indices of the fitted outputs, or ValueError."""
        check_is_fitted(self)
        return check_keep(keep, self.n_experts_)

    def log_proba_T(self, X):
        """Log gate probabilities in the core's ``(n_experts, n_samples)`` layout.

        A C-contiguous array of the dtype of ``X`` (float32 or float64).

        %(log_proba_T_sections)s
        """
        return np.ascontiguousarray(self._log_proba_native_T(X))

    def predict_log_proba(self, X):
        """Log gate probabilities, of the dtype of ``X`` (float32 or float64).

        A transposed view of a C-contiguous ``(n_experts, n_samples)`` array.

        %(predict_log_proba_sections)s
        """
        return self._log_proba_native_T(X).T

    def _log_proba_native_T(self, X):
        """Validated ``X`` -> ``(n_experts, n_samples)`` log-probabilities of ``X.dtype``."""
        check_is_fitted(self)
        X = self._check_X(X)
        self._check_n_features_in(X)
        return log_softmax_columns(self._logits_T(X))

    def _check_X(self, X):
        """Validated float32 or float64 ``X``; canonical CSR when the gate takes sparse input."""
        X = check_array(
            X, accept_sparse="csr" if self._sparse_input else False,
            dtype=[np.float64, np.float32], ensure_min_features=0,
        )
        return as_csr(X) if is_sparse(X) else X

    def _check_n_features_in(self, X):
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is "
                f"expecting {self.n_features_in_} features as input."
            )
