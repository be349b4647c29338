"""The linear gate's M-step on Dask data: L-BFGS on the client, loss and gradient summed over blocks.

The dask-glm pattern: SciPy's L-BFGS-B runs on the client on the
``(n_experts, n_features + 1)`` parameters; each evaluation sends them to the
workers once (one delayed object in the graph) and every row block returns
its part of the loss and of the gradient, added on the client in row order.
The objective is the one of :class:`~skmoe.gates._softmax.SoftmaxObjective`
without hidden layer, term by term (``tests/test_dask.py`` compares them): the
weighted log-sum-exp of the logits per block, the targets' part from their
weighted moments (gathered once per M-step with the experts' statistics), the
chain rule through the folded standardisation and the L2 penalty on the
client.

:class:`BlockwiseLinearGate` is a :class:`~skmoe.gates.LinearGate` whose
``_minimise`` hook (the optimiser, the documented extension point of the
softmax gates) is this blockwise L-BFGS; everything else (warm start,
penalty, removal of experts, the fitted attributes) is the gate's own. The
fitted estimator holds a plain ``LinearGate`` (:func:`as_plain_gate`).
"""

import copy

import numpy as np
from scipy.optimize import minimize

from .._base import _select_columns
from ..gates._linear import LinearGate
from ..gates._network import pack, unpack
from ._blocks import reduce_blocks

# Rows per inner block of a task: the (n_experts, block) logits stay in cache
# (the in-memory objective's choice for narrow designs).
_BLOCK = 16384


def gate_weight(sw, n_rows, total, dtype):
    """The gate's per-row weights of a block: sample weights normalised to sum to one over all rows."""
    weight = np.full(n_rows, 1.0 / total) if sw is None else sw / total
    return weight.astype(dtype, copy=False)


def gate_moments_block(X, R, sw, total):
    """Weighted moments of the gate's targets over a block: ``(w R) @ X`` and ``(w R).sum(1)``."""
    weighted_resp = R * gate_weight(sw, X.shape[0], total, X.dtype)
    moment = np.matmul(weighted_resp, X).astype(np.float64)
    return moment, weighted_resp.sum(axis=1, dtype=np.float64)


def _objective_block(X, y, sw, E, W, b, total, columns):
    """Loss part ``sum_i w_i logsumexp_i`` and the raw gradients of one row block."""
    X = _select_columns(X, columns)
    n_experts = W.shape[0]
    loss = 0.0
    grad_W = np.zeros(W.shape)
    grad_b = np.zeros(n_experts)
    weight_all = gate_weight(sw, X.shape[0], total, X.dtype)
    for lo in range(0, X.shape[0], _BLOCK):
        hi = min(lo + _BLOCK, X.shape[0])
        rows = X[lo:hi]
        Z = np.matmul(W, rows.T)
        Z += b[:, None]
        weight = weight_all[lo:hi]
        shift = Z.max(axis=0)
        Z -= shift
        with np.errstate(under="ignore"):
            np.exp(Z, out=Z)
        norm = Z.sum(axis=0)
        log_norm = np.log(norm, dtype=np.float64)
        log_norm += shift
        loss += float(np.dot(log_norm, weight))
        np.divide(weight, norm, out=norm)
        Z *= norm  # w_i * p_ki
        Z -= E[:n_experts, lo:hi] * weight  # w_i * (p_ki - r_ki), per sample
        grad_W += np.matmul(Z, rows)
        grad_b += Z.sum(axis=1, dtype=np.float64)
    return loss, grad_W, grad_b


def _objective_and_extra_block(X, y, sw, E, W, b, total, columns, extra, extra_params):
    """:func:`_objective_block` and another statistic of the same block, in one task."""
    return (_objective_block(X, y, sw, E, W, b, total, columns),
            extra(X, y, sw, E, *extra_params))


class BlockwiseObjective:
    """Penalised cross-entropy of the linear gate and its gradient, as a sum over row blocks.

    Parameters
    ----------
    data : RowData
        Training data.
    columns : ndarray of int or None
        The gate's columns of ``X`` (None: all).
    E : dask.array.Array of shape (n_experts + 1, n_samples)
        Responsibilities (first rows) of the M-step.
    moment, total : ndarray
        The targets' weighted moments ``(w R) @ X`` and ``(w R).sum(1)``.
    weight_total : float
        Sum of the sample weights (the gate's weights are normalised by it).
    mean, scale : ndarray of shape (n_features,)
        Weighted mean and standard deviation of ``X``.
    alpha : float
        L2 penalty.
    shapes : list of tuple
        ``[(n_experts, n_features)]``.
    extra : tuple (callable, tuple) or None, default=None
        A block function ``f(X, y, sw, E, *params)`` and its parameters,
        computed in the tasks of the first evaluation (the first pass of the
        gate's M-step also serves another statistic of the M-step); its
        per-block results are left in ``extra_parts``.
    """

    def __init__(self, data, columns, E, moment, total, weight_total, mean, scale, alpha, shapes,
                 extra=None):
        self.data = data
        self.columns = columns
        self.extra = extra
        self.extra_parts = None
        self.E = E
        self.resp_moment = moment
        self.resp_total = total
        self.weight_total = weight_total
        self.mean = mean
        self.scale = scale
        self.alpha = alpha
        self.shapes = shapes
        self.best_loss = np.inf
        self.best_theta = None
        self.n_evaluations = 0

    def __call__(self, theta):
        """Loss and gradient at ``theta`` (standardised parameters, packed)."""
        coefs, intercepts = unpack(theta, self.shapes)
        raw_W0 = coefs[0] / self.scale
        raw_b0 = intercepts[0] - raw_W0 @ self.mean
        dtype = self.data.X.dtype
        args = (raw_W0.astype(dtype, copy=False), raw_b0.astype(dtype, copy=False),
                self.weight_total, self.columns)
        if self.extra is not None and self.extra_parts is None:
            both = reduce_blocks(_objective_and_extra_block, self.data, [self.E], *args, *self.extra)
            parts = [part[0] for part in both]
            self.extra_parts = [part[1] for part in both]
        else:
            parts = reduce_blocks(_objective_block, self.data, [self.E], *args)
        self.n_evaluations += 1
        loss = sum(part[0] for part in parts)
        grad_W, grad_b = parts[0][1], parts[0][2]
        for part in parts[1:]:  # in row order
            grad_W = grad_W + part[1]
            grad_b = grad_b + part[2]
        loss = loss - float(np.vdot(raw_W0, self.resp_moment) + raw_b0 @ self.resp_total)
        # Chain rule through the folded standardisation of the first layer.
        grad_W = (grad_W - np.outer(grad_b, self.mean)) / self.scale
        W = coefs[0]
        loss += 0.5 * self.alpha * float(np.vdot(W, W))
        grad_W += self.alpha * W
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_theta = theta.copy()
        return loss, pack([grad_W], [grad_b])


class _Rows:
    """Stands for ``X`` in :meth:`LinearGate.fit_prepared`: its shape, and the data."""

    def __init__(self, data, columns):
        self.data = data
        self.columns = columns
        n_features = data.n_features if columns is None else len(columns)
        self.shape = (data.n_samples, n_features)
        self.dtype = data.X.dtype


class _Targets:
    """Stands for ``resp_T`` in :meth:`LinearGate.fit_prepared`.

    Its shape, the responsibilities as a dask array and their weighted
    moments; ``resp_T @ weight`` (the prior of a cold start) is the
    weighted total gathered with the moments.
    """

    def __init__(self, E, moment, total, weight_total, extra):
        self.E = E
        self.moment = moment
        self.total = total
        self.weight_total = weight_total
        self.extra = extra
        self.extra_parts = None
        self.shape = (moment.shape[0], E.shape[1])

    def __matmul__(self, weight):
        return self.total


class BlockwiseLinearGate(LinearGate):
    """:class:`~skmoe.gates.LinearGate` whose L-BFGS sums its objective over Dask row blocks.

    Used during a Dask fit only; :func:`as_plain_gate` turns it back into a
    ``LinearGate`` with the same fitted attributes.
    """

    def fit_blocks(self, data, columns, E, moment, total, weight_total, context, extra=None):
        """M-step of the gate on the responsibilities ``E`` (first rows), warm-starting.

        Parameters
        ----------
        data : RowData
            Training data.
        columns : ndarray of int or None
            The gate's columns of ``X`` (None: all).
        E : dask.array.Array of shape (n_experts + 1, n_samples)
            Responsibilities (first ``n_experts`` rows).
        moment, total : ndarray
            Weighted moments of the responsibilities (:func:`gate_moments_block`).
        weight_total : float
            Sum of the sample weights.
        context : SoftmaxContext
            Weighted mean and scale of ``X`` (its ``weight`` is not used).
        extra : tuple (callable, tuple) or None, default=None
            A block statistic computed in the tasks of the first evaluation
            (see :class:`BlockwiseObjective`).

        Returns
        -------
        extra_parts : list or None
            The per-block results of ``extra`` (None if it was not computed).
        """
        targets = _Targets(E, moment, total, weight_total, extra)
        self.fit_prepared(_Rows(data, columns), targets, context)
        return targets.extra_parts

    def _minimise(self, X, resp_T, context, shapes, coefs, intercepts):
        objective = BlockwiseObjective(
            X.data, X.columns, resp_T.E, resp_T.moment, resp_T.total, resp_T.weight_total,
            context.mean, context.scale, self.alpha, shapes, resp_T.extra,
        )
        result = minimize(
            objective,
            pack(coefs, intercepts),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter, "gtol": self.tol, "ftol": 1e-12},
        )
        resp_T.extra_parts = objective.extra_parts
        theta, loss = result.x, float(result.fun)
        if objective.best_theta is not None and objective.best_loss < loss:
            theta, loss = objective.best_theta, float(objective.best_loss)
        return (*unpack(theta, shapes), loss, int(result.nit))


def as_blockwise_gate(gate):
    """A :class:`BlockwiseLinearGate` copy of a (fitted or not) ``LinearGate``."""
    new = BlockwiseLinearGate.__new__(BlockwiseLinearGate)
    new.__dict__.update(copy.deepcopy(gate.__dict__))
    return new


def as_plain_gate(gate):
    """The ``LinearGate`` with the fitted attributes of a :class:`BlockwiseLinearGate`."""
    new = LinearGate.__new__(LinearGate)
    new.__dict__.update(gate.__dict__)
    return new
