"""A stable order of the experts of a fitted mixture (label switching)."""

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from .._solvers import GenericSolver
from ._model import select_columns
from ._utils import fill_doc

# Fitted attributes with one entry per expert, besides the likelihood's
# (``fitted_attributes``) and any the estimator lists in ``_per_expert_attributes``.
_PER_EXPERT = ("experts_", "expert_share_", "expert_load_", "_expert_ids_", "_templates")

_RULES = ("mean", "share", "intercept")


def _keys(model, X, by):
    """Sort keys of the experts (ascending) under rule ``by``."""
    if by == "share":
        return -np.asarray(model.expert_share_, dtype=np.float64)
    if by == "intercept":
        try:
            return np.array([float(np.ravel(e.intercept_)[0]) for e in model.experts_])
        except AttributeError:
            raise ValueError(
                "by='intercept' needs experts with an intercept_ (linear experts); "
                "use by='mean' or by='share'."
            ) from None
    likelihood = model.likelihood_
    if not getattr(likelihood, "numeric_target", True):
        raise ValueError(
            f"by='mean' needs predictive means, which the {type(likelihood).__name__} "
            "likelihood does not have; use by='share'."
        )
    if X is None:
        raise ValueError("by='mean' needs X (the inputs to average the experts' predictions over).")
    X = validate_data(model, X, reset=False, dtype=[np.float64, np.float32])
    cols = select_columns(model, "expert_features", X.shape[1])
    outputs_T = likelihood.expert_outputs(model.experts_, X[:, cols], None, GenericSolver)
    try:
        mean_T, _ = likelihood.mean_variance(outputs_T, likelihood.params_)
    except NotImplementedError:
        raise ValueError(
            f"by='mean' needs predictive means, which the {type(likelihood).__name__} "
            "likelihood does not have; use by='share'."
        ) from None
    return np.asarray(mean_T, dtype=np.float64).mean(axis=1)


@fill_doc
def order_experts(model, X=None, *, by="mean"):
    """Sort the experts of a fitted mixture in place, by a rule that survives refits.

    The experts of a mixture are only defined up to a permutation (label
    switching): two fits, or the replicates of a bootstrap, can number the
    same experts differently. This function renumbers them by a documented
    rule, permuting consistently everything indexed by expert: ``experts_``,
    the gate's outputs, the likelihood's parameters (``noise_variance_``),
    ``expert_share_``, ``expert_load_`` and the estimator's bookkeeping for
    ``warm_start``. Predictions, log-likelihoods and criteria do not change;
    the columns of :meth:`predict_gate` and of ``predict_experts`` are
    permuted.

    Read more in the :ref:`User Guide <inference>`.

    Parameters
    ----------
    model : estimator
        A fitted mixture of experts whose gate can reorder its outputs (the
        built-in gates can); modified in place.
    X : array-like of shape (n_samples, n_features), default=None
        Inputs for ``by="mean"`` (the training inputs, typically).
    by : {"mean", "share", "intercept"} or array-like of int, default="mean"
        The rule:

        - ``"mean"``: ascending mean over ``X`` of each expert's predicted
          mean (regression likelihoods): expert 0 is the lowest regime. A
          property of the whole fitted function, so it is stable across
          refits and bootstrap replicates.
        - ``"share"``: descending ``expert_share_`` (the mixing proportions);
          needs no ``X``, works for classifiers, but unstable when shares
          are close.
        - ``"intercept"``: ascending ``intercept_`` of the experts (linear
          experts).
        - an array of the ``n_experts_`` expert indices: that order (expert
          ``by[j]`` becomes expert ``j``).

        Ties keep the current order.

    Returns
    -------
    order : ndarray of shape (`n_experts_`,)
        The permutation applied: the new expert ``j`` is the former expert
        ``order[j]``.

    See Also
    --------
    standard_errors : Tables that line up once the experts are ordered.

    Examples
    --------
    %(example_fit)s
    >>> from skmoe.inference import order_experts
    >>> before = moe.predict(X)
    >>> order = order_experts(moe, X)
    >>> [round(float(e.intercept_)) for e in moe.experts_]  # the lower regime first
    [1, 4]
    >>> bool(np.allclose(moe.predict(X), before))
    True
    """
    check_is_fitted(model)
    K = int(model.n_experts_)
    if isinstance(by, str):
        if by not in _RULES:
            raise ValueError(f"by must be one of {_RULES} or a permutation; got {by!r}.")
        order = np.argsort(_keys(model, X, by), kind="stable")
    else:
        order = np.asarray(by)
        if not (order.ndim == 1 and np.issubdtype(order.dtype, np.integer)
                and np.array_equal(np.sort(order), np.arange(K))):
            raise ValueError(f"by must be a permutation of range({K}); got {by!r}.")
    gate = model.gate_
    reorder = getattr(gate, "remove_experts", None)
    if not callable(reorder):
        raise TypeError(
            f"The gate {type(gate).__name__} cannot reorder its outputs (it has no "
            "remove_experts method); its experts cannot be renumbered."
        )
    if np.array_equal(order, np.arange(K)):
        return order
    reorder(order)
    likelihood = model.likelihood_
    likelihood.params_ = likelihood.subset(likelihood.params_, order)
    names = set(_PER_EXPERT) | set(getattr(model, "_per_expert_attributes", ()))
    for name, value in likelihood.fitted_attributes(likelihood.params_).items():
        setattr(model, name, value)
        names.discard(name)
    for name in sorted(names):
        value = getattr(model, name, None)
        if isinstance(value, list):
            setattr(model, name, [value[k] for k in order])
        elif value is not None:
            setattr(model, name, np.asarray(value)[order])
    return order
