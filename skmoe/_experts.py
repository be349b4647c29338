"""Expert adapters: check, clone and seed experts, fit them with weights, count parameters.

The generic expert M-step (:func:`fit_experts`) lives here; the solvers of
:mod:`skmoe._solvers` choose between it and the batched linear path.
"""

import copy
import functools
import numbers

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import has_fit_parameter

from .utils._array_api import float_dtype
from .utils._threads import fit_threads


def _accepts_sample_weight(estimator):
    if isinstance(estimator, Pipeline):
        return _accepts_sample_weight(estimator.steps[-1][1])
    return has_fit_parameter(estimator, "sample_weight")


def check_expert(estimator):
    """Refuse an object that cannot be an expert, naming it.

    The kind of expert (regressor or classifier) is the likelihood's check
    (:meth:`skmoe.likelihoods.BaseLikelihood.check_expert`).

    Parameters
    ----------
    estimator : estimator
        Candidate expert.

    Raises
    ------
    TypeError
        If it has no ``fit``/``predict`` or its ``fit`` takes no ``sample_weight``.
    """
    name = type(estimator).__name__
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise TypeError(f"expert {estimator!r} must implement fit and predict.")
    if not _accepts_sample_weight(estimator):
        raise TypeError(
            f"expert {name} does not accept sample_weight in fit; mixture-of-experts "
            "training fits each expert with responsibility weights, so every expert "
            "(for a Pipeline, its last step) must support sample_weight."
        )


def seed_expert(estimator, rng):
    """Write integers from ``rng`` into every ``*random_state`` parameter left as None or a generator.

    Parameters
    ----------
    estimator : estimator
        Unfitted clone, modified in place.
    rng : numpy.random.RandomState
        Source of seeds.

    Returns
    -------
    estimator : estimator
        The same object.
    """
    to_set = {}
    for key, value in sorted(estimator.get_params(deep=True).items()):
        if (key == "random_state" or key.endswith("__random_state")) and not isinstance(
            value, numbers.Integral
        ):
            to_set[key] = int(rng.randint(np.iinfo(np.int32).max))
    if to_set:
        estimator.set_params(**to_set)
    return estimator


@functools.lru_cache(maxsize=256)
def _class_takes_sample_weight(cls):
    # inspect.signature, cached per class: the generic M-step asks every iteration.
    return has_fit_parameter(cls, "sample_weight")


def _takes_sample_weight(step):
    try:
        return _class_takes_sample_weight(type(step))
    except TypeError:  # pragma: no cover - an unhashable class
        return has_fit_parameter(step, "sample_weight")


def _fit_params(estimator, sample_weight):
    if isinstance(estimator, Pipeline):
        # Route the weights to every step that takes them (a weighted scaler too).
        params = {}
        for name, step in estimator.steps:
            if step is not None and step != "passthrough" and _takes_sample_weight(step):
                params[f"{name}__sample_weight"] = sample_weight
        return params
    return {"sample_weight": sample_weight}


def fresh_copy(template):
    """An unfitted copy of an unfitted template, equal to ``clone(template)``.

    The generic M-step needs a new expert object every iteration (the best
    iterate keeps the previous ones). ``clone`` rebuilds the object from
    ``get_params``, which inspects the constructor's signature of every
    nested estimator: 150-550 us per expert, measured, against 30-120 us for
    a deep copy. A template is an unfitted, seeded clone, so its deep copy
    is what ``clone`` would build; estimators that define their own
    ``__sklearn_clone__`` (``FrozenEstimator``) and objects that are not
    scikit-learn estimators keep ``clone``.

    Parameters
    ----------
    template : estimator
        Unfitted expert.

    Returns
    -------
    expert : estimator
        New unfitted object.
    """
    if (
        isinstance(template, BaseEstimator)
        and type(template).__sklearn_clone__ is BaseEstimator.__sklearn_clone__
    ):
        return copy.deepcopy(template)
    return clone(template)


def _fit_one(estimator, X, y, sample_weight, drop_zero_rows):
    if drop_zero_rows:
        keep = sample_weight > 0
        if not np.all(keep):
            X, y, sample_weight = X[keep], y[keep], sample_weight[keep]
    return estimator.fit(X, y, **_fit_params(estimator, sample_weight))


def fit_experts(templates, X, y, weights_T, *, sample_weight=None, n_jobs=None, drop_zero_rows=True):
    """Generic expert M-step: fit a clone of each template with its weights.

    Parameters
    ----------
    templates : list of estimators
        Unfitted, seeded experts.
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    weights_T : ndarray of shape (n_experts, n_samples)
        Responsibilities (or any per-expert weights).
    sample_weight : ndarray of shape (n_samples,), default=None
        User weights, multiplied into each expert's row of ``weights_T``.
    n_jobs : int, default=None
        Parallel jobs (joblib).
    drop_zero_rows : bool, default=True
        Pass only rows with positive weight (exactly equivalent for weighted
        fits, and what makes sparse gating cheap). Classifiers keep all rows so
        that every expert sees every class.

    Returns
    -------
    experts : list of estimators
        Fitted clones.
    """
    def weights(k):
        return weights_T[k] if sample_weight is None else weights_T[k] * sample_weight

    if n_jobs is None or n_jobs == 1 or len(templates) == 1:
        # The thread rule (utils/_threads.py): each expert's fit gets the
        # threads one pass over its rows pays for.
        with fit_threads(X.shape[0], X.shape[1]):
            return [
                _fit_one(fresh_copy(t), X, y, weights(k), drop_zero_rows)
                for k, t in enumerate(templates)
            ]
    # joblib's process workers already limit their inner threads.
    return Parallel(n_jobs=n_jobs)(
        delayed(_fit_one)(fresh_copy(t), X, y, weights(k), drop_zero_rows)
        for k, t in enumerate(templates)
    )


def aligned_proba(expert, X, n_classes):
    """``predict_proba`` of a classifier expert aligned to ``range(n_classes)``.

    An expert whose weights left some classes out (or who never saw them)
    gets probability 0 for them.

    Parameters
    ----------
    expert : fitted classifier
        Fitted on integer-encoded labels.
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Inputs.
    n_classes : int
        Number of classes of the mixture.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
        Probabilities in the mixture's class order; float32 for float32
        ``X``, float64 otherwise.
    """
    proba = np.asarray(expert.predict_proba(X), dtype=float_dtype(X))
    classes = np.asarray(expert.classes_).astype(np.intp)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((X.shape[0], n_classes), dtype=proba.dtype)
    full[:, classes] = proba
    return full


def n_expert_parameters(expert):
    """Number of free parameters of a fitted expert, for BIC/AIC.

    Counted: ``coef_`` and ``intercept_`` entries when present (a linear model;
    a binary ``LogisticRegression`` has one row), the leaves of a fitted
    decision tree, the sum over the members of an ensemble exposing
    ``estimators_``, the last step of a Pipeline. Anything else counts 0.

    Parameters
    ----------
    expert : fitted estimator
        Expert.

    Returns
    -------
    n_parameters : int
        Parameter count.
    """
    if isinstance(expert, Pipeline):
        return n_expert_parameters(expert.steps[-1][1])
    if hasattr(expert, "coef_"):
        n = int(np.size(expert.coef_))
        if getattr(expert, "fit_intercept", True):
            n += int(np.size(getattr(expert, "intercept_", 0)))
        return n
    if hasattr(expert, "tree_"):
        return int(expert.get_n_leaves()) * int(np.prod(expert.tree_.value.shape[1:2]))
    members = getattr(expert, "estimators_", None)
    if members is not None:
        flat = np.ravel(np.asarray(members, dtype=object))
        return int(sum(n_expert_parameters(m) for m in flat))
    predictors = getattr(expert, "_predictors", None)  # HistGradientBoosting: leaves of every tree
    if predictors is not None:
        return int(sum(p.get_n_leaf_nodes() for row in predictors for p in row))
    return 0
