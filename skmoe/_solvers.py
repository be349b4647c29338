"""Expert solvers: how the experts' M-step is run, chosen once per fit.

A solver offers fit-from-weights (``fit``), the experts' predictions in the
core layout (``predict_T``), and declares what it can do: ``exact`` (its
M-step maximises the weighted log-likelihood, so EM's objective cannot
decrease), ``splits_rows`` (its passes over the rows run on the
:class:`~skmoe.utils._threads.RowPool` with one BLAS thread) and
``takes_routed`` (its ``fit`` takes ``routed=``, the router's list of the
non-zero weights, :class:`~skmoe._routed.RoutedWeights`, and then touches
each expert's routed rows only).
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

import numbers

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.utils.parallel import Parallel, delayed

from ._experts import fit_experts
from ._gram import (
    solve_normal_equations,
    solve_normal_equations_batch,
    weighted_gram_matrices,
)
from ._routed import expert_part, routed_row_weights
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
    takes_routed = True

    def __init__(self, templates, *, n_jobs=None, drop_zero_rows=True):
        self.n_jobs = n_jobs
        self.drop_zero_rows = drop_zero_rows

    @staticmethod
    def supports(templates, likelihood):
        """Every expert and likelihood: the fallback."""
        return True

    def fit(self, templates, X, y, weights_T, sample_weight=None, routed=None):
        """Fitted clones of ``templates``; see :func:`skmoe._experts.fit_experts`.

        With ``routed`` (and zero-weight rows dropped), each expert is
        fitted on its routed rows alone (:func:`fit_routed_experts`).
        """
        if routed is not None and self.drop_zero_rows:
            return fit_routed_experts(templates, X, y, routed, sample_weight, n_jobs=self.n_jobs)
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


def fit_routed_experts(templates, X, y, routed, sample_weight=None, *, n_jobs=None):
    """Generic expert M-step on each expert's routed rows alone.

    :func:`~skmoe._experts.fit_experts` (zero-weight rows dropped) of each
    expert on its own rows, taken from ``routed``: the same rows, in the
    same order and with the same weights as from the dense weights, so the
    same fits, without a pass over ``n_samples`` rows per expert.

    Parameters
    ----------
    templates : list of estimators
        Unfitted, seeded experts.
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    routed : RoutedWeights
        The experts' rows and weights.
    sample_weight : ndarray of shape (n_samples,), default=None
        User weights, multiplied into the routed weights.
    n_jobs : int, default=None
        Parallel jobs over the experts (joblib).

    Returns
    -------
    experts : list of estimators
        Fitted clones.
    """
    def own_rows(k):
        rows, weights = expert_part(routed, k, sample_weight)
        return X[rows], y[rows], weights[None, :]

    if n_jobs is None or n_jobs == 1 or len(templates) == 1:
        return [fit_experts([t], *own_rows(k))[0] for k, t in enumerate(templates)]
    fitted = Parallel(n_jobs=n_jobs)(delayed(fit_experts)([t], *own_rows(k)) for k, t in enumerate(templates))
    return [expert for (expert,) in fitted]


class BatchedLinearSolver:
    """All ``LinearRegression`` / ``Ridge`` experts' weighted normal equations in one pass.

    ``exact`` holds for ``LinearRegression`` (and ``Ridge(alpha=0)``) experts
    only: a ridge penalty is not part of the mixture's likelihood, so a
    ridge M-step does not maximise it.
    """

    name = "batched_linear"
    splits_rows = True
    takes_routed = True

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

    def fit(self, templates, X, y, weights_T, sample_weight=None, routed=None):
        """Fitted experts; see :func:`fit_linear_experts`."""
        return fit_linear_experts(templates, X, y, weights_T, sample_weight, routed=routed)

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


def linear_offsets(X, y, weights_T, sample_weight=None, routed=None):
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
    routed : RoutedWeights, default=None
        The non-zero entries of ``weights_T`` (NumPy only): the per-sample
        sums then come from them, not from a pass over ``weights_T``.

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
    if routed is not None:
        row_weight = routed_row_weights(routed, sample_weight)
    else:
        # float64 sums whatever the dtype of the weights (float32 in a float32 fit).
        row_weight = weights_T.sum(axis=0, dtype=np.float64)
        if sample_weight is not None:
            row_weight *= sample_weight
    grand = row_weight.sum()
    if is_sparse(X):
        return np.zeros(X.shape[1]), float(row_weight @ y / grand)
    return (row_weight @ X) / grand, float(row_weight @ y / grand)


def fit_linear_experts(templates, X, y, weights_T, sample_weight=None, routed=None):
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
    routed : RoutedWeights, default=None
        The non-zero entries of ``weights_T``, listed by the router: the
        offsets and, when the routed pass pays, the Gram matrices come from
        them with no pass over ``weights_T``.

    Returns
    -------
    experts : list of LinearRegression or Ridge
        Fitted estimators (``coef_``, ``intercept_``, ``n_features_in_`` and,
        for LinearRegression, ``rank_`` and ``singular_``), as their own
        ``fit`` with ``sample_weight`` would leave them.
    """
    n_samples = X.shape[0]
    x_offset, y_offset = linear_offsets(X, y, weights_T, sample_weight, routed=routed)
    if is_sparse(X):  # also for routed weights: the sparse pass follows the routed rows itself
        gram = sparse_gram_matrices(X, y, weights_T, y_offset, sample_weight)
    else:
        gram = weighted_gram_matrices(X, y, weights_T, x_offset, y_offset, sample_weight, routed=routed)
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
    plain = np.array([type(t) is LinearRegression for t in templates], dtype=bool)
    # While the stacked copy of the systems is small, they are formed, solved
    # and (for lstsq's diagnostics of LinearRegression experts) their
    # eigenvalues computed in batches; wide designs one system at a time
    # (the same values up to rounding; no copy of every system at once).
    if len(templates) * d * d <= _BATCHED_SYSTEMS_ELEMENTS:
        A, b, mx, my = _normal_systems(templates, gram, x_offset, y_offset)
        coef = solve_normal_equations_batch(A, b, rank_deficient_rcond=rcond)
        eigenvalues = np.linalg.eigvalsh(A[plain]) if plain.any() else None
    else:
        coef, mx, my = np.empty((len(templates), d)), np.empty((len(templates), d)), np.empty(len(templates))
        eigenvalues = []
        for k in range(len(templates)):
            A, b, mx[k : k + 1], my[k : k + 1] = _normal_systems(templates[k : k + 1], gram[k : k + 1], x_offset, y_offset)
            coef[k] = solve_normal_equations(A[0], b[0], rank_deficient_rcond=rcond)
            if plain[k]:
                eigenvalues.append(np.linalg.eigvalsh(A[0]))
    intercept = my + y_offset - np.einsum("kd,kd->k", mx + x_offset, coef)
    # lstsq's diagnostics: eigenvalues below eps-level rounding (the solve's
    # threshold) are zero.
    evals = np.clip(np.asarray(eigenvalues)[:, ::-1], 0.0, None) if plain.any() else np.empty((0, d))
    singular = np.sqrt(evals)
    rank = np.sum(evals > rcond * evals[:, :1], axis=1) * (evals[:, 0] > 0)
    plain_index = np.cumsum(plain) - 1
    experts = []
    for k, template in enumerate(templates):
        # A shallow copy of the unfitted template: what clone (or copy.copy)
        # gives for these plain LinearRegression / Ridge objects, at a
        # fraction of the cost (copy.copy goes through their pickling hooks).
        expert = object.__new__(type(template))
        expert.__dict__.update(template.__dict__)
        expert.coef_ = coef[k].copy()  # its own array, as fit leaves it
        expert.intercept_ = float(intercept[k]) if template.fit_intercept else 0.0
        expert.n_features_in_ = n_features
        if plain[k]:
            expert.singular_ = singular[plain_index[k]].copy()
            expert.rank_ = int(rank[plain_index[k]])
        else:
            expert.n_iter_ = None
            expert.solver_ = "cholesky"
        experts.append(expert)
    return experts


def _normal_systems(templates, gram, x_offset, y_offset):
    """The experts' centred normal equations ``(A, b)`` and centres ``(mx, my)``, stacked, from their Gram matrices."""
    d = gram.shape[1] - 2
    sw = gram[:, d, d]
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty expert without intercept: set below
        mx = gram[:, :d, d] / sw[:, None]
        my = gram[:, d, d + 1] / sw
    A = gram[:, :d, :d] - sw[:, None, None] * (mx[:, :, None] * mx[:, None, :])
    b = gram[:, :d, d + 1] - sw[:, None] * mx * my[:, None]
    for k, template in enumerate(templates):
        if not template.fit_intercept:
            # Undo the global centering: sums over the raw [X, y].
            G = gram[k]
            mx[k], my[k] = -x_offset, -y_offset
            A[k] = G[:d, :d] + np.outer(G[:d, d], x_offset) + np.outer(x_offset, G[:d, d]) + sw[k] * np.outer(x_offset, x_offset)
            b[k] = G[:d, d + 1] + x_offset * G[d, d + 1] + y_offset * G[:d, d] + sw[k] * x_offset * y_offset
    A = 0.5 * (A + A.transpose(0, 2, 1))
    alpha = np.array([float(t.alpha) if type(t) is Ridge else 0.0 for t in templates])
    A[:, np.arange(d), np.arange(d)] += alpha[:, None]
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
