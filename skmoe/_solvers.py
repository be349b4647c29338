"""Expert solvers: how the experts' M-step is run, chosen once per fit.

A solver offers fit-from-weights (``fit``), the experts' predictions in the
core layout (``predict_T``), and declares what it can do: ``exact`` (its
M-step maximises the weighted log-likelihood, so EM's objective cannot
decrease) and ``splits_rows`` (its passes over the rows run on the
:class:`~skmoe.utils._threads.RowPool` with one BLAS thread).
:func:`select_solver` takes the first of :data:`SOLVERS` that supports the
experts and the likelihood.

* :class:`BatchedLinearSolver`: ``LinearRegression`` / ``Ridge`` experts
  with a least-squares likelihood: the weighted normal equations of all
  experts from one pass over row blocks of ``[X, 1, y]`` (statistics
  accumulated per block, then solved), returned as ordinary fitted
  ``LinearRegression`` / ``Ridge`` objects equal to what their own ``fit``
  gives (``tests/test_experts.py``).
* :class:`GenericSolver`: any estimator, each fitted with
  ``sample_weight = weight * user weight`` through
  :class:`sklearn.utils.parallel.Parallel`, so a Dask or Ray joblib backend
  spreads the experts over a cluster.
"""

import copy
import numbers

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge

from ._experts import fit_experts
from ._gram import solve_normal_equations, weighted_gram_matrices
from ._sparse import is_sparse
from ._sparse_gram import sparse_gram_matrices
from .utils._array_api import float_dtype, get_namespace
from .utils._threads import matmul_rows_T

FAST_PATH_TYPES = (LinearRegression, Ridge)
# Elements of all experts' normal equations up to which they are formed and
# their eigenvalues computed in one batch (8 MiB of float64).
_BATCHED_SYSTEMS_ELEMENTS = 2**20


class GenericSolver:
    """Each expert a clone of its template, fitted with its weights (joblib-parallel).

    Parameters
    ----------
    n_jobs : int or None
        Parallel jobs over the experts.
    drop_zero_rows : bool
        Pass each expert only its positive-weight rows (the likelihood says
        whether that is allowed).
    """

    name = "generic"
    exact = False
    splits_rows = False

    def __init__(self, templates, *, n_jobs=None, drop_zero_rows=True):
        self.n_jobs = n_jobs
        self.drop_zero_rows = drop_zero_rows

    @staticmethod
    def supports(templates, likelihood):
        """Every expert and likelihood: the fallback."""
        return True

    def fit(self, templates, X, y, weights_T, sample_weight=None):
        """Fitted clones of ``templates``; see :func:`skmoe._experts.fit_experts`."""
        return fit_experts(
            templates, X, y, weights_T, sample_weight=sample_weight, n_jobs=self.n_jobs,
            drop_zero_rows=self.drop_zero_rows,
        )

    @staticmethod
    def predict_T(experts, X):
        """Predictions ``(n_experts, n_samples)`` of the floating dtype of ``X``."""
        return predict_experts(experts, X)

    @staticmethod
    def n_parameters_per_expert(templates, n_features):
        """Unknown before fitting: a non-parametric expert counts its mean only."""
        return 1


class BatchedLinearSolver:
    """All ``LinearRegression`` / ``Ridge`` experts' weighted normal equations in one pass.

    ``exact`` holds for ``LinearRegression`` (and ``Ridge(alpha=0)``) experts
    only: a ridge penalty is not part of the mixture's likelihood, so a
    ridge M-step does not maximise it.
    """

    name = "batched_linear"
    splits_rows = True

    def __init__(self, templates, **kwargs):
        self.exact = all(
            type(t) is LinearRegression or float(getattr(t, "alpha", 0.0)) == 0.0 for t in templates
        )

    @staticmethod
    def supports(templates, likelihood):
        """Plain ``LinearRegression`` / ``Ridge`` experts and a least-squares likelihood.

        Exact types (no subclasses), ``positive=False`` and, for ``Ridge``, a
        scalar ``alpha`` and a direct solver (iterative solvers stop at a
        tolerance; only direct ones give the same answer).
        """
        if not getattr(likelihood, "least_squares", False):
            return False
        for est in templates:
            if type(est) not in FAST_PATH_TYPES or getattr(est, "positive", False):
                return False
            if type(est) is Ridge:
                if not isinstance(est.alpha, numbers.Real):
                    return False
                if est.solver not in ("auto", "cholesky", "svd"):
                    return False
        return True

    def fit(self, templates, X, y, weights_T, sample_weight=None):
        """Fitted experts; see :func:`fit_linear_experts`."""
        return fit_linear_experts(templates, X, y, weights_T, sample_weight)

    @staticmethod
    def predict_T(experts, X):
        """Predictions ``(n_experts, n_samples)`` in one product, of the dtype of ``X``."""
        return predict_linear_experts(experts, X)

    @staticmethod
    def n_parameters_per_expert(templates, n_features):
        """Coefficients and intercept."""
        return n_features + int(any(t.fit_intercept for t in templates))


SOLVERS = (BatchedLinearSolver, GenericSolver)


def select_solver(templates, likelihood, *, n_jobs=None):
    """The first solver of :data:`SOLVERS` that supports the experts and the likelihood.

    Parameters
    ----------
    templates : list of estimators
        Unfitted experts.
    likelihood : BaseLikelihood
        The task.
    n_jobs : int or None
        Parallel jobs for the generic solver.

    Returns
    -------
    solver : object
        A solver instance for this fit.
    """
    for cls in SOLVERS:
        if cls.supports(templates, likelihood):
            return cls(
                templates, n_jobs=n_jobs,
                drop_zero_rows=getattr(likelihood, "drop_zero_weight_rows", True),
            )
    raise ValueError("No expert solver supports these experts.")  # pragma: no cover


def linear_offsets(X, y, weights_T, sample_weight=None):
    """Global weighted means of ``X`` and ``y`` that centre the Gram pass.

    Centring the blocks by them keeps the Gram matrices well conditioned for
    features with large offsets. Sparse ``X`` is not centred (that would
    fill it): its offset is 0, and each expert's system is centred from its
    Gram matrix in :func:`solve_linear_experts`.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    weights_T : ndarray of shape (n_experts, n_samples)
        Weights per expert.
    sample_weight : ndarray of shape (n_samples,), default=None
        User weights.

    Returns
    -------
    x_offset : ndarray of shape (n_features,)
        Weighted mean of ``X``.
    y_offset : float
        Weighted mean of ``y``.
    """
    xp, is_numpy = get_namespace(X, y, weights_T, sample_weight)
    if not is_numpy:
        row_weight = xp.sum(weights_T, axis=0)
        if sample_weight is not None:
            row_weight = row_weight * sample_weight
        grand = xp.sum(row_weight)
        return (row_weight @ X) / grand, (row_weight @ y) / grand
    # float64 sums whatever the dtype of the weights (float32 in a float32 fit).
    row_weight = weights_T.sum(axis=0, dtype=np.float64)
    if sample_weight is not None:
        row_weight *= sample_weight
    grand = row_weight.sum()
    if is_sparse(X):
        return np.zeros(X.shape[1]), float(row_weight @ y / grand)
    return (row_weight @ X) / grand, float(row_weight @ y / grand)


def fit_linear_experts(templates, X, y, weights_T, sample_weight=None):
    """Batched M-step of ``LinearRegression`` / ``Ridge`` experts.

    Parameters
    ----------
    templates : list of LinearRegression or Ridge
        Unfitted experts.
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Inputs; sparse ``X`` takes :func:`~skmoe._sparse_gram.sparse_gram_matrices`.
    y : ndarray of shape (n_samples,)
        Targets.
    weights_T : ndarray of shape (n_experts, n_samples)
        Weights per expert (responsibilities).
    sample_weight : ndarray of shape (n_samples,), default=None
        User weights, multiplied into every expert's weights.

    Returns
    -------
    experts : list of LinearRegression or Ridge
        Fitted estimators (``coef_``, ``intercept_``, ``n_features_in_`` and,
        for LinearRegression, ``rank_`` and ``singular_``), as their own
        ``fit`` with ``sample_weight`` would leave them.
    """
    n_samples = X.shape[0]
    x_offset, y_offset = linear_offsets(X, y, weights_T, sample_weight)
    if is_sparse(X):  # also for routed weights: the sparse pass follows the routed rows itself
        gram = sparse_gram_matrices(X, y, weights_T, y_offset, sample_weight)
    else:
        gram = weighted_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight)
    return solve_linear_experts(templates, gram, x_offset, y_offset, n_samples)


def solve_linear_experts(templates, gram, x_offset, y_offset, n_samples):
    """Fitted ``LinearRegression`` / ``Ridge`` experts from their weighted Gram matrices.

    Parameters
    ----------
    templates : list of LinearRegression or Ridge
        Unfitted experts.
    gram : ndarray of shape (n_experts, n_features + 2, n_features + 2)
        :func:`~skmoe._gram.weighted_gram_matrices` of ``[X - x_offset, 1, y - y_offset]``.
    x_offset : ndarray of shape (n_features,)
        Centre of ``X`` used in the Gram pass.
    y_offset : float
        Centre of ``y``.
    n_samples : int
        Number of rows (sets the rank tolerance).

    Returns
    -------
    experts : list of LinearRegression or Ridge
        Fitted estimators.
    """
    n_features = gram.shape[1] - 2
    d = n_features
    rcond = np.finfo(np.float64).eps * max(n_samples, n_features)
    # lstsq's diagnostics of LinearRegression experts come from the eigenvalues
    # of their weighted (centred) Gram matrices: in one batched call while the
    # stacked copy of the systems is small, one system at a time for wide
    # designs (the same values; no copy of every system at once).
    batched = len(templates) * d * d <= _BATCHED_SYSTEMS_ELEMENTS
    plain = [k for k, t in enumerate(templates) if type(t) is LinearRegression]
    if batched:
        systems = [
            _normal_system(gram[k], t, x_offset, y_offset) for k, t in enumerate(templates)
        ]
        eigenvalues = dict(zip(plain, np.linalg.eigvalsh(np.stack([systems[k][0] for k in plain])))) if plain else {}
    experts = []
    for k, template in enumerate(templates):
        if batched:
            A, b, mx, my = systems[k]
            evals = eigenvalues.get(k)
        else:
            A, b, mx, my = _normal_system(gram[k], template, x_offset, y_offset)
            evals = np.linalg.eigvalsh(A) if k in plain else None
        # Eigenvalues of a Gram matrix carry absolute rounding of about eps * its norm:
        # smaller ones are treated as zero (minimum-norm solution, as lstsq).
        coef = solve_normal_equations(A, b, rank_deficient_rcond=rcond)
        # A shallow copy of the unfitted template: what clone gives for these
        # plain LinearRegression / Ridge objects, at a fraction of its cost.
        expert = copy.copy(template)
        expert.coef_ = coef
        if template.fit_intercept:
            expert.intercept_ = float(my + y_offset - (mx + x_offset) @ coef)
        else:
            expert.intercept_ = 0.0
        expert.n_features_in_ = n_features
        if evals is not None:
            evals = np.clip(evals[::-1], 0.0, None)
            singular = np.sqrt(evals)
            expert.singular_ = singular
            # Same threshold as the solve: eigenvalues below eps-level rounding are zero.
            expert.rank_ = int(np.sum(evals > rcond * evals[0])) if evals[0] > 0 else 0
        else:
            expert.n_iter_ = None
            expert.solver_ = "cholesky"
        experts.append(expert)
    return experts


def _normal_system(G, template, x_offset, y_offset):
    """One expert's centred normal equations ``(A, b)`` and centres ``(mx, my)`` from its Gram matrix."""
    d = G.shape[0] - 2
    sw = G[d, d]
    alpha = float(template.alpha) if type(template) is Ridge else 0.0
    if template.fit_intercept:
        mx = G[:d, d] / sw
        my = G[d, d + 1] / sw
        A = G[:d, :d] - sw * np.outer(mx, mx)
        b = G[:d, d + 1] - sw * mx * my
    else:
        # Undo the global centering: sums over the raw [X, y].
        mx, my = -x_offset, -y_offset
        A = G[:d, :d] + np.outer(G[:d, d], x_offset) + np.outer(x_offset, G[:d, d]) + sw * np.outer(x_offset, x_offset)
        b = G[:d, d + 1] + x_offset * G[d, d + 1] + y_offset * G[:d, d] + sw * x_offset * y_offset
    A = 0.5 * (A + A.T)
    if alpha > 0:
        A = A + alpha * np.eye(d)
    return A, b, mx, my


def predict_linear_experts(experts, X, out=None):
    """Predictions of linear experts, ``(n_experts, n_samples)``, in one product.

    Parameters
    ----------
    experts : list of fitted linear models
        Experts with ``coef_`` of shape (n_features,) and scalar ``intercept_``.
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Inputs, float32 or float64.
    out : ndarray of shape (n_experts, n_samples), default=None
        Buffer.

    Returns
    -------
    mean_T : ndarray of shape (n_experts, n_samples)
        Predictions, of the dtype of ``X`` (the product runs in it).
    """
    coef = np.vstack([np.ravel(e.coef_) for e in experts]).astype(float_dtype(X), copy=False)
    intercept = np.array([float(np.ravel(e.intercept_)[0]) for e in experts])
    # Written straight into the (n_experts, n_samples) layout: measured faster
    # than X @ coef.T followed by a transposed copy.
    out = matmul_rows_T(coef, X, out=out)
    out += intercept.astype(out.dtype)[:, None]
    return out


def predict_experts(experts, X):
    """Predictions of any regressors, ``(n_experts, n_samples)``.

    Parameters
    ----------
    experts : list of fitted regressors
        Experts.
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Inputs.

    Returns
    -------
    mean_T : ndarray of shape (n_experts, n_samples)
        Predictions, float32 for float32 ``X`` (float32 kept end to end),
        float64 otherwise.
    """
    if all(type(e) in FAST_PATH_TYPES and np.ndim(e.coef_) == 1 for e in experts):
        return predict_linear_experts(experts, X)
    mean_T = np.empty((len(experts), X.shape[0]), dtype=float_dtype(X))
    for k, e in enumerate(experts):
        mean_T[k] = np.ravel(e.predict(X))
    return mean_T
