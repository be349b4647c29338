"""The linear gate's M-step on Dask data: L-BFGS on the client, the objective summed over row blocks.

The dask-glm pattern: the gate's own L-BFGS (``LinearGate._minimise``)
runs on the client on the ``(n_experts, n_features + 1)`` parameters; each
evaluation sends them to the workers once (one object in the graph) and
every row block returns its part of the loss and of the gradient, added on
the client in row order.

A block's part is the in-memory objective itself,
:class:`~skmoe.gates._softmax.SoftmaxObjective`, built on the block's rows
and responsibilities without penalty: the weighted log-sum-exp, the targets'
moments and the chain rule through the folded standardisation are all sums
over rows, so the blocks' parts add up to the in-memory objective; the L2
penalty is added once, on the client. Each block's objective (its weighted
responsibilities, moments and buffers) is built once per M-step and kept in
its process's cache (:meth:`~skmoe._dask._resp.Block.cached`), so the
later evaluations cost what they cost in memory.

:class:`BlockwiseLinearGate` is a :class:`~skmoe.gates.LinearGate` whose
``_objective`` hook is this blockwise sum; everything else (the optimiser,
warm start, penalty, removal of experts, the fitted attributes) is the
gate's own. The fitted estimator holds a plain ``LinearGate``
(:func:`as_plain_gate`).
"""

import copy
import itertools

import numpy as np

from .._fit_state import _select_columns
from ..gates._linear import LinearGate
from ..gates._network import pack, unpack
from ..gates._softmax import SoftmaxObjective


def gate_weight(sw, n_rows, total, dtype=np.float64):
    """The gate's per-row weights of a block: sample weights normalised to sum to one over all rows."""
    weight = np.full(n_rows, 1.0 / total) if sw is None else sw / total
    return weight.astype(dtype, copy=False)


def objective_bytes(block):
    """Bytes of a block's objective (an upper bound): weighted responsibilities, weights, buffers, columns."""
    n_rows, n_experts, X = block.n_rows, block.n_experts, block.X
    columns = block.spec.gate_columns
    nbytes = (n_experts + 1) * n_rows * 8 + n_experts * min(n_rows, 16384) * X.itemsize
    return nbytes + (0 if columns is None else n_rows * len(columns) * X.itemsize)


def _objective(block, lo, hi):
    """:class:`SoftmaxObjective` of rows ``lo:hi`` of a block, without penalty."""
    spec = block.spec
    X = _select_columns(block.X[lo:hi], spec.gate_columns)
    E = block.responsibilities(lo, hi)
    weight = gate_weight(None if block.sw is None else block.sw[lo:hi], hi - lo, spec.weight_total)
    return SoftmaxObjective(X, E[:-1], weight, spec.mean, spec.scale, 0.0)


def cache_objective(block):
    """Build the block's objective and keep it in the cache (room checked by the caller)."""
    objective = _objective(block, 0, block.n_rows)
    arrays = [objective.weighted_resp, objective.weight]
    arrays += list(itertools.chain.from_iterable(objective.buffers.values()))
    if block.spec.gate_columns is not None:  # the gate's columns, copied
        arrays.append(objective.X)
    block.cache(objective, sum(a.nbytes for a in arrays))
    return objective


def _gate_block(block, theta, extra):
    """Loss and gradient of one block at ``theta``, and ``extra``'s statistic of the block.

    From the block's cached objective; one is built and cached if there is
    room, else the block is evaluated piece by piece.
    """
    objective = block.cached()
    if objective is None and block.has_room(objective_bytes(block)):
        objective = cache_objective(block)
    if objective is not None:
        pieces = [(objective, 0, block.n_rows)]
    else:
        pieces = ((_objective(block, lo, hi), lo, hi) for lo, hi in block.pieces(whole=False))
    loss, grad, statistic = 0.0, 0.0, None
    for piece, lo, hi in pieces:
        piece_loss, piece_grad = piece(theta)
        loss, grad = loss + piece_loss, grad + piece_grad
        if extra is not None:
            func, params = extra
            value = func(block, piece.weighted_resp, lo, hi, *params)
            statistic = value if statistic is None else [a + b for a, b in zip(statistic, value)]
    return loss, grad, statistic


class BlockwiseObjective:
    """Penalised cross-entropy of the linear gate and its gradient, as a sum over row blocks.

    Parameters
    ----------
    passes : callable
        ``passes(func, *params)`` runs ``func(block, *params)`` on every row
        block of the M-step's responsibilities (:func:`~skmoe._dask._resp.reduce_resp`).
    alpha : float
        L2 penalty.
    shapes : list of tuple
        ``[(n_experts, n_features)]``.
    targets : _Targets
        Carries a block statistic computed in the tasks of the first
        evaluation (the first pass of the gate's M-step also serves the
        noise variances), and receives its per-block results.
    """

    def __init__(self, passes, alpha, shapes, targets):
        self.passes = passes
        self.alpha = alpha
        self.shapes = shapes
        self.targets = targets

    def __call__(self, theta):
        """Loss and gradient at ``theta`` (standardised parameters, packed)."""
        targets = self.targets
        extra = targets.extra if targets.extra_parts is None else None
        parts = self.passes(_gate_block, theta, extra)
        if extra is not None:
            targets.extra_parts = [part[2] for part in parts]
        loss = sum(part[0] for part in parts)
        grad = parts[0][1]
        for part in parts[1:]:  # in row order
            grad = grad + part[1]
        W = unpack(theta, self.shapes)[0][0]
        loss += 0.5 * self.alpha * float(np.vdot(W, W))
        return loss, grad + pack([self.alpha * W], [np.zeros(W.shape[0])])


class _Rows:
    """Stands for ``X`` in :meth:`LinearGate.fit_prepared`: its shape and the passes over it."""

    def __init__(self, passes, shape, dtype):
        self.passes, self.shape, self.dtype = passes, shape, dtype


class _Targets:
    """Stands for ``resp_T`` in :meth:`LinearGate.fit_prepared`.

    Its shape and its weighted totals (the experts' shares): ``resp_T @
    weight``, the prior of a cold start. Also carries the statistic computed
    with the first evaluation (see :class:`BlockwiseObjective`).
    """

    def __init__(self, share, n_samples, extra):
        self.share, self.extra = share, extra
        self.extra_parts = None
        self.shape = (share.shape[0], n_samples)

    def __matmul__(self, weight):
        return self.share


class BlockwiseLinearGate(LinearGate):
    """:class:`~skmoe.gates.LinearGate` whose objective is summed over Dask row blocks.

    Used during a Dask fit only; :func:`as_plain_gate` turns it back into a
    ``LinearGate`` with the same fitted attributes.
    """

    def fit_blocks(self, passes, shape, dtype, share, context, extra=None):
        """M-step of the gate on the responsibilities the passes evaluate, warm-starting.

        Parameters
        ----------
        passes : callable
            ``passes(func, *params)`` over the row blocks (see :class:`BlockwiseObjective`).
        shape : tuple of int
            ``(n_samples, n_gate_features)``.
        dtype : numpy.dtype
            Of ``X``.
        share : ndarray of shape (n_experts,)
            Each expert's weighted share of the responsibilities.
        context : SoftmaxContext
            Weighted mean and scale of the gate's columns (``weight`` unused).
        extra : tuple (callable, tuple) or None, default=None
            ``func(block, objective, *params)``, computed in the tasks of the
            first evaluation.

        Returns
        -------
        extra_parts : list or None
            The per-block results of ``extra`` (None if it was not computed).
        """
        targets = _Targets(share, shape[0], extra)
        self.fit_prepared(_Rows(passes, shape, dtype), targets, context)
        return targets.extra_parts

    def _objective(self, X, resp_T, context, shapes, pool):
        return BlockwiseObjective(X.passes, self.alpha, shapes, resp_T)


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
