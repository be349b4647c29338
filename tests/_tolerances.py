"""Tolerances for floating-point comparisons, from the precision and the problem.

A tolerance written as digits that happened to pass on one machine (``atol=1e-4``)
breaks on the next: another BLAS kernel (OpenBLAS picks Haswell, SkylakeX,
Zen... code paths at run time), another thread count or another summation
order changes the last bits of every reduction, and an ill-conditioned problem
amplifies that change. The helpers below state where a tolerance comes from:

* :func:`tol` -- a *direct* computation (products, reductions, a softmax, a
  least-squares solve) whose result in ``dtype`` is accurate to about
  ``cond * eps``;
* :func:`optimum_tol` -- the *location* of the minimum of a smooth objective
  evaluated in ``dtype`` (an L-BFGS gate fit, an EM fixed point): near the
  optimum the objective changes only quadratically, so rounding of ``eps`` in
  the objective hides a step of about ``sqrt(cond * eps)`` in the parameters.

``cond`` is the problem's condition number (how much a relative change of the
input moves the output); ``factor`` is the headroom for accumulated rounding
(a reduction of ``n`` terms can lose ``sqrt(n)`` to ``n`` ulps; kernels differ
in their order of summation). Both default to values that hold for the small,
well-conditioned problems of this test suite; pass a larger ``cond`` where the
data are ill-conditioned, rather than a larger number of digits.

Tolerances that are *statistical* (a recovered coefficient against the truth
that generated the data) or *solver* tolerances (``tol=`` of an iterative fit)
are not from precision; they stay where they are, with their reason.
"""

import numpy as np

__all__ = ["eps", "normal_equations_cond", "optimum_tol", "tol"]


def eps(dtype=np.float64):
    """Machine epsilon of ``dtype`` (2.2e-16 for float64, 1.2e-7 for float32)."""
    return float(np.finfo(dtype).eps)


def tol(dtype=np.float64, cond=1.0, factor=100.0):
    """Relative tolerance of a direct computation in ``dtype``.

    Parameters
    ----------
    dtype : dtype, default=np.float64
        Precision the compared values were computed in (the lower of the two).
    cond : float, default=1.0
        Condition number of the computation.
    factor : float, default=100.0
        Headroom for rounding accumulated over reductions and for kernels that
        sum in another order.

    Returns
    -------
    tol : float
        ``factor * cond * eps(dtype)``: 2.2e-14 for float64 and 1.2e-5 for
        float32 at the defaults.
    """
    return factor * cond * eps(dtype)


def optimum_tol(dtype=np.float64, cond=1.0, factor=10.0):
    """Tolerance on the location of an optimum computed in ``dtype``.

    Parameters
    ----------
    dtype : dtype, default=np.float64
        Precision the objective and its gradient were evaluated in.
    cond : float, default=1.0
        Condition number of the objective's Hessian at the optimum.
    factor : float, default=10.0
        Headroom, as in :func:`tol`.

    Returns
    -------
    tol : float
        ``factor * sqrt(cond * eps(dtype))``: 1.5e-7 for float64 and 3.5e-3
        for float32 at the defaults.
    """
    return factor * float(np.sqrt(cond * eps(dtype)))


def normal_equations_cond(X, sample_weight=None, alpha=0.0, fit_intercept=True):
    """Condition number of the weighted normal equations of a linear fit.

    ``cond(Z' W Z + alpha I)`` with ``Z`` the (weighted-)centred ``X`` when
    ``fit_intercept``: the ``cond`` to pass to :func:`tol` when comparing two
    solutions of one (ridge) least-squares problem, since a solve through the
    normal equations is accurate to about ``cond * eps`` of the coefficients'
    norm.
    """
    X = np.asarray(X, dtype=np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    Z = X - np.average(X, axis=0, weights=w) if fit_intercept else X
    return float(np.linalg.cond((Z * w[:, None]).T @ Z + alpha * np.eye(X.shape[1])))
