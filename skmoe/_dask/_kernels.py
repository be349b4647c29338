"""Block functions of the blockwise EM: what the tasks compute on their row block.

Two kinds: the steps of a :class:`~skmoe._dask._resp.Recipe`
(``func(X, y, sw, E_or_inputs, *params) -> E``, the responsibilities of a
block then its per-row log-likelihood), and the statistics of a pass
(``func(block, *params)``, a small result gathered to the client).

The E-step and the noise variances write the experts' outputs into one
buffer reused from piece to piece of the block: a Dask worker's allocator
hands large blocks back to the system as soon as they are freed
(``distributed`` sets ``MALLOC_TRIM_THRESHOLD_``), so each fresh
``(n_experts, rows)`` array would pay its page faults again (measured in
``benchmarks/README.md``, "Dask").
"""

import numpy as np

from .. import _em
from .._fit_state import _MIN_SHARE, _select_columns
from .._gram import gram_chunk
from .._solvers import predict_linear_experts
from ..gates._protocol import GateAdapter
from ._blocks import row_pieces

# Rows per piece of the E-step and the variances: (rows,) temporaries of
# 64 kB stay below the allocator's 128 kB mmap threshold.
BUFFER_ROWS = 8192


class _IntoBuffer:
    """The batched linear solver's ``predict_T``, written into a reused buffer."""

    def __init__(self, out):
        self.out = out

    def predict_T(self, experts, X):
        out = self.out if X.dtype == self.out.dtype else None
        return predict_linear_experts(experts, X, out=out).astype(np.float64, copy=False)


def _expert_outputs(likelihood, experts, X, y, columns, buffer, lo, hi):
    """``likelihood.expert_outputs`` on rows ``lo:hi`` into ``buffer`` (the likelihood's checks included)."""
    out = buffer[: len(experts) * (hi - lo)].reshape(len(experts), hi - lo)
    return likelihood.expert_outputs(
        experts, _select_columns(X[lo:hi], columns), y[lo:hi], _IntoBuffer(out)
    )


def _buffer(X, n_experts):
    return np.empty(n_experts * min(X.shape[0], BUFFER_ROWS), dtype=X.dtype)


# ----------------------------------------------------------------------
# Recipe steps


def _log_gate_T(gate, X, out, scratch):
    """The linear gate's log-probabilities of rows ``X`` written into ``out``.

    The operations of ``LinearGate.log_proba_T`` (its logits in the dtype
    of ``X``, then the log-softmax of each column), with the buffers of the
    caller instead of two new ``(n_experts, rows)`` arrays.
    """
    np.matmul(gate.coef_.astype(X.dtype, copy=False), X.T, out=out)
    out += gate.intercept_.astype(X.dtype, copy=False)[:, None]
    out -= out.max(axis=0)
    with np.errstate(under="ignore"):
        np.exp(out, out=scratch)
    out -= np.log(scratch.sum(axis=0))
    return out


def e_step_block(X, y, sw, model):
    """Responsibilities (first rows) and per-row log-likelihood (last row) of a block.

    ``model`` is ``(experts, params, gate, likelihood, (gate_columns,
    expert_columns))``: the in-memory E-step (log-likelihood of each
    expert, log gate probabilities, :func:`~skmoe._em.responsibilities`)
    piece by piece.
    """
    experts, params, gate, likelihood, (gate_columns, expert_columns) = model
    n_experts = len(experts)
    E = np.empty((n_experts + 1, X.shape[0]))
    outputs, logits, scratch = (_buffer(X, n_experts) for _ in range(3))
    for lo, hi in row_pieces(X.shape[0], BUFFER_ROWS):
        size = n_experts * (hi - lo)
        outputs_T = _expert_outputs(likelihood, experts, X, y, expert_columns, outputs, lo, hi)
        log_lik_T = likelihood.log_likelihood(outputs_T, y[lo:hi], params, out=outputs_T)
        log_gate_T = _log_gate_T(
            gate, _select_columns(X[lo:hi], gate_columns),
            logits[:size].reshape(n_experts, -1), scratch[:size].reshape(n_experts, -1),
        )
        _, log_prob = _em.responsibilities(log_gate_T, log_lik_T, out=E[:n_experts, lo:hi])
        E[n_experts, lo:hi] = log_prob
    return E


def reseed_block(X, y, sw, E, bad, thresholds):
    """Hand each starved expert the rows of its slice of the log-likelihood."""
    out = E.copy()
    n_experts = E.shape[0] - 1
    log_prob = E[-1]
    for j, k in enumerate(bad):
        lo, hi = thresholds[j], thresholds[j + 1]
        rows = (log_prob >= lo) & (log_prob < hi) if hi > lo else log_prob == lo
        out[:n_experts, rows] = 0.0
        out[k, rows] = 1.0
    return out


def keep_block(X, y, sw, E, keep, gate, gate_columns):
    """Responsibilities of the kept experts, renormalised; a row they all left takes its gate row."""
    resp = E[keep]
    orphans = resp.sum(axis=0) <= 0
    if np.any(orphans):
        with np.errstate(under="ignore"):
            resp[:, orphans] = np.exp(
                GateAdapter(gate).log_proba_T(_select_columns(X, gate_columns)[orphans])
            )
    resp /= resp.sum(axis=0)
    out = np.empty((keep.size + 1, E.shape[1]))
    out[:-1] = resp
    out[-1] = E[-1]
    return out


def starve_block(X, y, sw, E, empty):
    """Give the experts ``empty`` a tiny uniform share, below the starvation threshold."""
    out = E.copy()
    resp = out[:-1]
    resp[empty] = 0.1 * _MIN_SHARE
    resp /= resp.sum(axis=0)
    return out


def mix_block(X, y, sw, E, other, params):
    """Half of ``E`` and half of another initialisation (the symmetry break of the initialisation)."""
    return 0.5 * E + 0.5 * other(X, y, sw, *params)


# ----------------------------------------------------------------------
# Statistics of a pass


def statistics_block(block, expert_columns, x_offset, y_offset, kernel, gram_rows, estimate, build):
    """What the M-step needs of a block's responsibilities, in one pass.

    Returns the weighted Gram matrices (:func:`~skmoe._gram.gram_chunk`,
    the kernel of the in-memory fast path), each expert's weight with a
    positive responsibility (its load), its weighted responsibility (its
    share) and the weighted sum of the log-likelihood. When the cache has
    room for ``estimate(block)`` bytes more, also ``build(block)`` (the
    gate's objective, cached for the M-step's passes) from the block's
    responsibilities at once; otherwise the block goes piece by piece.
    """
    X, y, sw = block.X, block.y, block.sw
    n_experts = block.n_experts
    whole = build is not None and block.cached() is None and block.has_room(estimate(block))
    gram, load, share, log_lik = 0.0, np.zeros(n_experts), 0.0, 0.0
    for lo, hi in block.pieces(whole):
        E = block.responsibilities(lo, hi)
        R, log_prob = E[:n_experts], E[n_experts]
        w = None if sw is None else sw[lo:hi]
        if expert_columns is None:  # gram_chunk keeps its own buffers small: one call
            gram = gram + gram_chunk(X[lo:hi], y[lo:hi], R, x_offset, y_offset, w, kernel,
                                     gram_rows, 0, hi - lo)
        else:
            for a, b in row_pieces(hi - lo):
                gram = gram + gram_chunk(_select_columns(X[lo + a : lo + b], expert_columns),
                                         y[lo + a : lo + b], R[:, a:b], x_offset, y_offset,
                                         None if w is None else w[a:b], kernel, gram_rows, 0, b - a)
        for a, b in row_pieces(hi - lo, BUFFER_ROWS):
            positive = R[:, a:b] > 0
            load += (positive.sum(axis=1) if w is None
                     else np.einsum("ki,i->k", positive, w[a:b], dtype=np.float64))
        share = share + (R.sum(axis=1) if w is None else R @ w)
        log_lik += float(log_prob.sum()) if w is None else float(w @ log_prob)
    if whole:
        build(block)
    return gram, load, share, log_lik


def variance_block(block, weighted, lo, hi, experts, likelihood, expert_columns):
    """Weighted squared residuals of the new experts over rows ``lo:hi``, and the weights, per expert.

    ``weighted`` are the gate objective's weighted responsibilities of the
    rows (the responsibilities times the normalised sample weights): the
    ratio of the two sums is the in-memory variance update.
    """
    X, y = block.X[lo:hi], block.y[lo:hi]
    num = np.zeros(len(experts))
    buffer = _buffer(X, len(experts))
    for a, b in row_pieces(hi - lo, BUFFER_ROWS):
        residual = _expert_outputs(likelihood, experts, X, y, expert_columns, buffer, a, b)
        np.subtract(residual, y[a:b], out=residual)
        np.square(residual, out=residual)
        num += np.einsum("ki,ki->k", weighted[:, a:b], residual)
    return num, weighted.sum(axis=1, dtype=np.float64)


def log_prob_sample_block(block, index):
    """The per-row log-likelihood and weights of the block's sampled rows (sorted ``index``)."""
    values = []
    for lo, hi in block.pieces(whole=False):
        rows = index[(index >= lo) & (index < hi)]
        if rows.size:
            values.append(block.responsibilities(lo, hi)[-1][rows - lo])
    log_prob = np.concatenate(values) if values else np.empty(0)
    return log_prob, (np.ones(index.size) if block.sw is None else block.sw[index])


def totals_block(block):
    """Each expert's total responsibility and the largest spread across experts of a row."""
    totals, spread = 0.0, 0.0
    for lo, hi in block.pieces(whole=False):
        resp = block.responsibilities(lo, hi)[:-1]
        totals = totals + resp.sum(axis=1)
        spread = max(spread, float(np.ptp(resp, axis=0).max()) if resp.shape[1] else 0.0)
    return totals, spread


def gate_share_block(X, y, sw, gate, gate_columns):
    """Each expert's weighted sum of gate probabilities over a block (``min_prior``)."""
    with np.errstate(under="ignore"):
        proba = np.exp(GateAdapter(gate).log_proba_T(_select_columns(X, gate_columns)))
    return proba.sum(axis=1) if sw is None else proba @ sw
