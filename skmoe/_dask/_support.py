"""What the blockwise EM on Dask arrays supports, and the error for the rest."""

from sklearn.base import is_regressor

from .._solvers import BatchedLinearSolver
from ..gates._linear import LinearGate
from ..likelihoods import GaussianLikelihood

SUPPORTED = (
    "MixtureOfExpertsRegressor with LinearRegression or Ridge experts (Ridge with a "
    "scalar alpha and solver='auto', 'cholesky' or 'svd'; positive=False), "
    "likelihood='gaussian', gate='linear' (or a LinearGate) with backend='numpy', and "
    "soft EM (algorithm='em', routing='token_choice', top_k, capacity_factor and "
    "balance None, gate_noise=0); gate_features, expert_features and min_prior work as "
    "in memory"
)
# Parameters that must keep their default for the blockwise EM.
_DEFAULTS = {
    "backend": "numpy", "top_k": None, "algorithm": "em", "routing": "token_choice",
    "capacity_factor": None, "balance": None, "gate_noise": 0.0,
}


def _is_default(value, default):
    if default is None or value is None:
        return value is default
    if isinstance(default, str) or isinstance(value, str):
        return value == default
    try:
        return float(value) == float(default)
    except (TypeError, ValueError):
        return False


def check_supported(estimator, templates=None, likelihood=None):
    """Refuse, before any work, what the blockwise EM does not implement.

    Parameters
    ----------
    estimator : estimator
        The mixture of experts.
    templates : list of estimators, default=None
        Its resolved experts (checked when given).
    likelihood : BaseLikelihood, default=None
        Its likelihood (with ``templates``).

    Raises
    ------
    ValueError
        Listing what is not supported, what is, and the alternative for
        in-memory data (``n_jobs`` with the dask joblib backend).
    """
    problems = []
    if not is_regressor(estimator):
        problems.append(f"{type(estimator).__name__} (only the regressor)")
    else:
        lik = getattr(estimator, "likelihood", "gaussian")
        if not (isinstance(lik, str) and lik == "gaussian") and type(lik) is not GaussianLikelihood:
            problems.append(f"likelihood={lik!r}")
    gate = estimator.gate
    if not (isinstance(gate, str) and gate == "linear") and type(gate) is not LinearGate:
        problems.append(f"gate={gate!r}")
    for name, default in _DEFAULTS.items():
        value = getattr(estimator, name, default)
        if not _is_default(value, default):
            problems.append(f"{name}={value!r}")
    if templates is not None and not problems:
        unsupported = [t for t in templates if not BatchedLinearSolver.supports([t], likelihood)]
        if unsupported:
            names = ", ".join(dict.fromkeys(repr(t) for t in unsupported))
            problems.append(f"expert={names}")
    if problems:
        raise ValueError(
            f"Dask input is not supported with {'; '.join(problems)}. The blockwise EM on "
            f"Dask arrays supports {SUPPORTED}. For other estimators, fit in memory and "
            "spread the experts' fits over the Dask cluster with n_jobs and the dask "
            "joblib backend: `with joblib.parallel_backend('dask'): "
            "est.set_params(n_jobs=-1).fit(X.compute(), y.compute())` (see 'Scaling out' "
            "in the user guide)."
        )
