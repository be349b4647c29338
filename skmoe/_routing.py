"""Pure array functions of the routers (:mod:`skmoe._routers`): rows by content.

This module holds the content keys, keyed draws and tie-breaking ranks;
capacity limits and expert choice are in :mod:`skmoe._routing_capacity`,
balanced responsibilities in :mod:`skmoe._routing_balance`.

Everything works on the core layout, ``(n_experts, n_samples)``, and on
*sample-weighted shares*: a row of weight 2 must be routed as two copies of
the row would be, wherever they stand in ``X``. So nothing here depends on a
row's position:

* random draws (stochastic EM, noisy gating) are functions of the row's
  *content* (:func:`content_keys`: a hash of what the model computed for the
  row) and of a seed drawn from the fit's ``random_state``, so that copies of
  a row get the same draw, as the row of weight 2 does;
* ordering samples (capacity, expert choice) breaks ties by content, never
  by index;
* an expert's capacity is filled with fractional rows: the row at the
  boundary is split, the part that fits stays and the rest moves on, exactly
  as its copies would be split between the two sides.
"""

import numpy as np
from scipy.special import ndtri

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(x):
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _MIX1
        x = x ^ (x >> np.uint64(27))
        x = x * _MIX2
        return x ^ (x >> np.uint64(31))


def content_keys(*arrays):
    """A 64-bit hash per sample of what the model computed for it.

    Each array is rounded to float32 before hashing, so that copies of a row
    whose float64 values differ in the last bits (another summation order)
    almost always get the same key.

    Parameters
    ----------
    *arrays : ndarray of shape (n_samples,) or (m, n_samples), or None
        Per-sample quantities (responsibilities, log-likelihoods, gate
        log-probabilities); None is skipped.

    Returns
    -------
    keys : ndarray of shape (n_samples,), dtype uint64
        Equal for equal columns.
    """
    keys = None
    for array in arrays:
        if array is None:
            continue
        rows = np.atleast_2d(np.asarray(array, dtype=np.float64))
        if keys is None:
            keys = np.full(rows.shape[1], _GOLDEN, dtype=np.uint64)
        for row in rows:
            # + 0.0 turns -0.0 into 0.0: equal values, equal bits.
            bits = (row.astype(np.float32) + np.float32(0.0)).view(np.uint32).astype(np.uint64)
            keys = _mix(keys ^ bits)
    return keys


def keyed_uniforms(keys, seed, n_streams=1):
    """Uniform numbers in (0, 1), a function of the keys and the seed only.

    Parameters
    ----------
    keys : ndarray of shape (n_samples,), dtype uint64
        From :func:`content_keys`.
    seed : int
        Drawn from the fit's random state, once per use.
    n_streams : int, default=1
        Independent numbers per sample.

    Returns
    -------
    u : ndarray of shape (n_streams, n_samples)
        Uniform in the open interval (0, 1).
    """
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed) * _GOLDEN + np.arange(1, n_streams + 1, dtype=np.uint64) * _MIX2)
        bits = _mix(keys[None, :] ^ base[:, None])
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def keyed_normals(keys, seed, n_streams=1):
    """Standard normal numbers, a function of the keys and the seed only.

    Parameters
    ----------
    keys, seed, n_streams
        As :func:`keyed_uniforms`.

    Returns
    -------
    z : ndarray of shape (n_streams, n_samples)
        Standard normal draws (inverse CDF of :func:`keyed_uniforms`).
    """
    return ndtri(keyed_uniforms(keys, seed, n_streams))


def tie_break_rank(log_prob, keys):
    """Rank of each sample for breaking ties: best explained first, then by key.

    Parameters
    ----------
    log_prob : ndarray of shape (n_samples,) or None
        Per-sample log-likelihood of the mixture (None: keys only).
    keys : ndarray of shape (n_samples,), dtype uint64
        Content keys.

    Returns
    -------
    rank : ndarray of shape (n_samples,), dtype intp
        0 for the sample that wins every tie.
    """
    if log_prob is None:
        order = np.argsort(keys, kind="stable")
    else:
        order = np.lexsort((keys, -np.asarray(log_prob)))
    rank = np.empty(order.size, dtype=np.intp)
    rank[order] = np.arange(order.size)
    return rank


def one_hot(index, n_experts):
    """``(n_experts, n_samples)`` float64 indicator of ``index``.

    Parameters
    ----------
    index : ndarray of shape (n_samples,)
        Expert of each sample.
    n_experts : int
        Number of experts.

    Returns
    -------
    onehot_T : ndarray of shape (n_experts, n_samples)
        1 at ``(index[i], i)``, 0 elsewhere.
    """
    onehot = np.zeros((n_experts, index.size))
    onehot[index, np.arange(index.size)] = 1.0
    return onehot


def draw_experts(resp_T, uniforms):
    """One expert per sample, drawn from its responsibilities.

    Parameters
    ----------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities (columns sum to one).
    uniforms : ndarray of shape (n_samples,)
        Uniform numbers in (0, 1).

    Returns
    -------
    index : ndarray of shape (n_samples,)
        The expert drawn for each sample (one with positive responsibility).
    """
    cumulative = np.cumsum(resp_T, axis=0)
    threshold = uniforms * cumulative[-1]
    index = np.sum(cumulative < threshold, axis=0)
    return np.minimum(index, resp_T.shape[0] - 1)




def sample_rank(resp_T, log_prob, keys=None):
    """:func:`tie_break_rank` of the samples from what the model computed for them.

    Parameters
    ----------
    resp_T : ndarray of shape (n_experts, n_samples)
        Responsibilities.
    log_prob : ndarray of shape (n_samples,) or None
        Per-sample log-likelihood of the mixture.
    keys : ndarray of shape (n_samples,), default=None
        Content keys already computed (:func:`content_keys` of ``resp_T``
        and ``log_prob``).

    Returns
    -------
    rank : ndarray of shape (n_samples,), dtype intp
        0 for the sample that wins every tie.
    """
    keys = content_keys(resp_T, log_prob) if keys is None else keys
    return tie_break_rank(log_prob, keys)


def copy_groups(keys):
    """One group per distinct content: copies of a row share their group.

    Parameters
    ----------
    keys : ndarray of shape (n_samples,), dtype uint64
        From :func:`content_keys`.

    Returns
    -------
    groups : ndarray of shape (n_samples,) or None
        Group index of each sample; None when every sample is its own group.
    """
    unique, groups = np.unique(keys, return_inverse=True)
    return None if unique.size == keys.size else groups


def top_k_indices(log_gate_T, top_k):
    """The ``top_k`` largest entries of each column, largest first, ties to the lowest index.

    One pass of ``argmax`` per kept entry: cheaper than a partition or a
    sort along the strided expert axis for the few experts a sample keeps.

    Parameters
    ----------
    log_gate_T : ndarray of shape (n_experts, n_samples)
        Log gate probabilities (``-inf`` allowed).
    top_k : int
        Entries per column, at most ``n_experts``.

    Returns
    -------
    index : ndarray of shape (top_k, n_samples), dtype intp
        Distinct experts of each sample.
    """
    n_samples = log_gate_T.shape[1]
    if top_k == 1:
        return np.argmax(log_gate_T, axis=0)[None, :]
    # -inf (an expert with no gate mass) becomes the lowest finite value, so
    # that a kept entry (set to -inf) never wins again.
    work = np.maximum(log_gate_T, np.finfo(log_gate_T.dtype).min)
    index = np.empty((top_k, n_samples), dtype=np.intp)
    columns = np.arange(n_samples)
    for j in range(top_k):
        index[j] = np.argmax(work, axis=0)
        work[index[j], columns] = -np.inf
    return index
