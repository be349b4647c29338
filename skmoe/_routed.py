"""Routed weights: the M-step weights of a sparse router, listed expert by expert.

Top-k, hard and capacity-limited routing leave most of the ``(n_experts,
n_samples)`` weights zero. A router that knows which entries it set hands
the experts' M-step a :class:`RoutedWeights` besides the dense weights, so
that the solvers touch each expert's routed rows only and never scan the
dense matrix (its scan, ``weights_T != 0``, cost as much as the routed
Gram pass itself at 64 experts). Every function here is pure.
"""

from collections import namedtuple

import numpy as np

RoutedWeights = namedtuple("RoutedWeights", ["indptr", "rows", "weights", "n_samples"])
RoutedWeights.__doc__ = """The non-zero entries of ``(n_experts, n_samples)`` weights, expert by expert.

``rows[indptr[k]:indptr[k + 1]]`` are expert ``k``'s rows in increasing
order and ``weights[...]`` their non-zero weights (of the dense weights'
dtype): the compressed
sparse rows of the weight matrix (built by :func:`routed_from_picks` or
:func:`routed_from_dense`).
"""


def _from_sorted(experts, rows, weights, n_experts, n_samples):
    counts = np.bincount(experts, minlength=n_experts)
    indptr = np.zeros(n_experts + 1, dtype=np.intp)
    np.cumsum(counts, out=indptr[1:])
    return RoutedWeights(indptr, rows, weights, int(n_samples))


def routed_from_dense(weights_T):
    """The non-zero entries of a dense weight matrix (one scan of it).

    Parameters
    ----------
    weights_T : ndarray of shape (n_experts, n_samples)
        Weights per expert.

    Returns
    -------
    routed : RoutedWeights
        Its non-zero entries.
    """
    n_experts, n_samples = weights_T.shape
    # Expert-major, so each expert's rows come in order. (nonzero of a float
    # array was measured 7x slower than of the comparison.)
    flat = np.flatnonzero(weights_T != 0)
    experts, rows = np.divmod(flat, n_samples)
    return _from_sorted(experts, rows, np.take(weights_T, flat), n_experts, n_samples)


def routed_from_picks(index, values, n_experts):
    """Routed weights from each sample's picked experts, without an ``(n_experts, n_samples)`` scan.

    Parameters
    ----------
    index : ndarray of shape (n_picks, n_samples)
        The experts of each sample, distinct within a column; -1 for none.
    values : ndarray of shape (n_picks, n_samples)
        Their weights; zeros are left out.
    n_experts : int
        Number of experts.

    Returns
    -------
    routed : RoutedWeights
        The entries grouped by expert, rows in increasing order.
    """
    n_picks, n_samples = index.shape
    # Sample-major order, then a stable sort by expert: each expert's rows in
    # increasing order. A stable sort of 16-bit integers is a radix sort
    # (linear time; measured 15x faster than of intp at 200,000 samples).
    small = np.int16 if n_experts <= np.iinfo(np.int16).max else np.intp
    key = np.ascontiguousarray(index.T, dtype=small).ravel()
    order = np.argsort(key, kind="stable")
    order = order[np.count_nonzero(key < 0):]  # no pick (-1) sorts first
    experts = key[order]
    weights = np.take(np.ascontiguousarray(values.T).ravel(), order)
    rows = order if n_picks == 1 else order // n_picks
    nonzero = weights != 0
    if not nonzero.all():
        experts, rows, weights = experts[nonzero], rows[nonzero], weights[nonzero]
    return _from_sorted(experts, rows, weights, n_experts, n_samples)


def routed_to_dense(routed, dtype=None):
    """The dense ``(n_experts, n_samples)`` weights of ``routed``.

    Parameters
    ----------
    routed : RoutedWeights
        Routed weights.
    dtype : dtype, default=None
        Of the result; that of the routed weights by default.

    Returns
    -------
    weights_T : ndarray of shape (n_experts, n_samples)
        Zero outside the routed entries.
    """
    n_experts = routed.indptr.size - 1
    dense = np.zeros((n_experts, routed.n_samples), dtype=routed.weights.dtype if dtype is None else dtype)
    dense[entry_experts(routed), routed.rows] = routed.weights
    return dense


def entry_experts(routed):
    """The expert of each routed entry, ``(nnz,)``."""
    return np.repeat(np.arange(routed.indptr.size - 1), np.diff(routed.indptr))


def scale_routed(routed, factor_T):
    """Routed weights times per-expert, per-sample factors (the likelihood's extra weights).

    Parameters
    ----------
    routed : RoutedWeights
        Routed weights.
    factor_T : ndarray of shape (n_experts, n_samples)
        Factors; read on the routed entries only.

    Returns
    -------
    routed : RoutedWeights
        ``weights * factor_T[expert, row]`` entry by entry (an entry whose
        product is zero is kept: it adds nothing).
    """
    factor = factor_T[entry_experts(routed), routed.rows]
    return routed._replace(weights=routed.weights * factor)


def routed_fraction(routed):
    """Fraction of the ``n_experts * n_samples`` entries that are routed."""
    n_experts = routed.indptr.size - 1
    return routed.rows.size / max(n_experts * routed.n_samples, 1)


def routed_row_weights(routed, sample_weight=None):
    """Per-sample sum of the routed weights times ``sample_weight``, float64.

    Parameters
    ----------
    routed : RoutedWeights
        Routed weights.
    sample_weight : ndarray of shape (n_samples,), default=None
        User weights.

    Returns
    -------
    row_weight : ndarray of shape (n_samples,)
        ``sum_k w_ki * s_i`` (what :func:`skmoe._solvers.linear_offsets`
        forms from dense weights).
    """
    row_weight = np.bincount(routed.rows, weights=routed.weights, minlength=routed.n_samples)
    if sample_weight is not None:
        row_weight *= sample_weight
    return row_weight


def expert_part(routed, k, sample_weight=None):
    """Expert ``k``'s rows and their weights (times ``sample_weight``).

    Parameters
    ----------
    routed : RoutedWeights
        Routed weights.
    k : int
        Expert.
    sample_weight : ndarray of shape (n_samples,), default=None
        User weights.

    Returns
    -------
    rows : ndarray of int
        Its rows, increasing.
    weights : ndarray
        Their weights.
    """
    part = slice(routed.indptr[k], routed.indptr[k + 1])
    rows, weights = routed.rows[part], routed.weights[part]
    if sample_weight is not None:
        weights = weights * sample_weight[rows]
    return rows, weights
