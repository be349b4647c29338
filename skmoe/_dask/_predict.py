"""Predictions of a fitted mixture on Dask collections: lazy, block by block.

Each row block is predicted by the fitted estimator's own NumPy method (the
same code as in memory), in a task with one BLAS thread; the result is a
lazy dask array aligned with the row chunks of ``X``. Any fitted mixture
predicts this way, whichever way it was fitted.
"""

import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.validation import check_is_fitted

from ..utils._threads import single_blas_thread
from ._blocks import import_dask, is_dask
from ._data import as_row_array


def _method_block(X, *rest):
    """``getattr(estimator, method)(X, *extra, **kwargs)`` on one block (NumPy code path)."""
    *extra, estimator, method, kwargs, stack = rest
    with single_blas_thread(), warnings.catch_warnings():
        # A dataframe's names were checked once on the client; blocks are arrays.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        result = getattr(estimator, method)(X, *extra, **kwargs)
    return np.column_stack(result) if stack else result


def _output(estimator, method, kwargs):
    """``(n_columns or None, dtype, stacked)`` of a method's result per row."""
    if method == "predict":
        if is_classifier(estimator):
            return None, estimator.classes_.dtype, False
        if kwargs.get("return_std", False):
            return 2, np.float64, True
        return None, np.float64, False
    if method in ("predict_proba", "predict_log_proba"):
        return len(estimator.classes_), np.float64, False
    if method in ("predict_gate", "predict_experts"):
        return int(estimator.n_experts_), np.float64, False
    if method == "predict_expert":
        return None, np.intp, False
    if method == "log_prob":
        return None, np.float64, False
    raise ValueError(f"{method} does not take Dask input.")


def predict_dask(estimator, method, X, *args, **kwargs):
    """A fitted mixture's ``method`` on Dask input, as a lazy dask array.

    Parameters
    ----------
    estimator : fitted MixtureOfExpertsRegressor or MixtureOfExpertsClassifier
        The estimator.
    method : str
        ``"predict"`` (regressor: with ``return_std``), ``"predict_proba"``,
        ``"predict_log_proba"``, ``"predict_gate"``, ``"predict_expert"``,
        ``"predict_experts"`` or ``"log_prob"`` (with ``y``).
    X : dask array or dask DataFrame of shape (n_samples, n_features)
        Inputs, chunked by rows.
    *args : object
        ``y`` for ``log_prob`` (dask or in memory, aligned with ``X``).
    **kwargs : object
        Keyword arguments of the method (``return_std``).

    Returns
    -------
    result : dask.array.Array or tuple of dask.array.Array
        Lazy, aligned with the row chunks of ``X``; for ``predict`` with
        ``return_std=True``, the mean and the standard deviation.
    """
    check_is_fitted(estimator)
    dask, da = import_dask()
    n_columns, dtype, stack = _output(estimator, method, kwargs)
    extra = list(args)
    X = as_row_array(X, estimator, known=bool(extra))
    rows = X.chunks[0]
    pairs = [X, "ij"]
    for value in extra:
        if is_dask(value):
            value = value.to_dask_array(lengths=True) if hasattr(value, "to_dask_array") else value
        else:
            value = da.from_array(np.asarray(value), chunks=-1)
        if value.ndim == 2 and value.shape[1] == 1:
            value = value[:, 0]
        if value.ndim != 1 or value.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has shape {value.shape}.")
        pairs += [value.rechunk((rows,)), "i"]
    shared = dask.delayed(estimator, pure=True, traverse=False)
    pairs += [shared, None, method, None, kwargs, None, stack, None]
    if n_columns is None:
        return da.blockwise(_method_block, "i", *pairs, concatenate=True, dtype=dtype,
                            meta=np.empty((0,), dtype=dtype))
    result = da.blockwise(_method_block, "ik", *pairs, new_axes={"k": n_columns},
                          concatenate=True, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))
    if stack:
        return result[:, 0], result[:, 1]
    return result
