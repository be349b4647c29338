"""Dask inputs as row-chunked arrays, checked, and their weighted moments.

:func:`as_row_data` turns the arguments of ``fit`` into a :class:`RowData`
(dask arrays sharing one row chunking), :func:`as_row_array` the input of a
prediction; :func:`summarise` checks the values and computes the weighted
moments in two passes over the blocks.
"""

import warnings

import numpy as np
from sklearn.exceptions import DataConversionWarning

from ._blocks import import_dask, is_dask, reduce_blocks


def _feature_names(X):
    """Column names of a dataframe when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(columns, dtype=object)
    if names.size and all(isinstance(name, str) for name in names):
        return names
    return None


def _to_dask_array(a, name, *, known):
    """A dask array from a dask array, dataframe or series (lengths computed if ``known``)."""
    _, da = import_dask()
    if isinstance(a, da.Array):
        if known and any(np.isnan(c) for c in a.chunks[0]):
            a = a.compute_chunk_sizes()
        return a
    if hasattr(a, "to_dask_array"):  # dask DataFrame or Series
        return a.to_dask_array(lengths=True if known else None)
    raise TypeError(
        f"{name} is a Dask collection of type {type(a).__name__}; skmoe accepts "
        "dask arrays, dask DataFrames and dask Series."
    )


class RowData:
    """Validated training data: dask arrays sharing one row chunking.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        One chunk across the columns, float32 or float64.
    y : dask.array.Array of shape (n_samples,)
        Float64 target.
    sample_weight : dask.array.Array of shape (n_samples,) or None
        Float64 weights; None for unit weights.
    feature_names : ndarray of str or None
        Column names of a dataframe ``X``.
    """

    def __init__(self, X, y, sample_weight, feature_names):
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        self.feature_names = feature_names
        self.chunks = X.chunks[0]
        self.n_samples, self.n_features = (int(s) for s in X.shape)

    def blocks(self, *arrays, weights=True):
        """Per row block: the delayed blocks of ``X``, ``y``, (``sample_weight``) and ``arrays``.

        The graphs are not optimised one by one, so that a chunk of ``X`` that
        ``arrays`` are computed from keeps its key: read once per pass.

        ``arrays`` are ``(k, n_samples)`` dask arrays chunked ``((k,), rows)``.
        """
        X = self.X.to_delayed(optimize_graph=False).ravel()
        y = self.y.to_delayed(optimize_graph=False).ravel()
        columns = [X, y]
        if weights:
            sw = self.sample_weight
            columns.append([None] * len(X) if sw is None else sw.to_delayed(optimize_graph=False).ravel())
        for a in arrays:
            columns.append(a.to_delayed(optimize_graph=False).ravel())
        return list(zip(*columns))


def as_row_data(X, y, sample_weight):
    """Training inputs as :class:`RowData`: converted, aligned, chunked by rows only.

    Dask DataFrames and Series are converted with known chunk sizes; NumPy
    companions of a dask input (``y`` or ``sample_weight`` in memory) are
    chunked like it. Values are checked later, blockwise
    (:func:`summarise`).

    Parameters
    ----------
    X, y, sample_weight : dask collection, array-like or None
        The arguments of ``fit``; at least one is a Dask collection.

    Returns
    -------
    data : RowData
        The aligned arrays.
    """
    _, da = import_dask()
    feature_names = _feature_names(X)
    arrays = {"X": X, "y": y, "sample_weight": sample_weight}
    converted = {
        name: _to_dask_array(a, name, known=True) for name, a in arrays.items() if is_dask(a)
    }
    reference = next(iter(converted.values()))
    rows = reference.chunks[0]
    n_samples = reference.shape[0]
    for name, a in arrays.items():
        if a is None or name in converted:
            continue
        a = np.asarray(a)
        chunks = (rows,) + tuple((s,) for s in a.shape[1:])
        converted[name] = da.from_array(a, chunks=chunks) if a.ndim else a
    X = converted["X"]
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D array for X, got an array of {X.ndim} dimension(s) with shape "
            f"{X.shape}. Reshape a single feature with X.reshape(-1, 1) "
            "(dask: X[:, None])."
        )
    if X.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_samples < 1:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    if X.dtype.kind not in "fiub":
        raise ValueError(f"X must be numeric; got a dask array of dtype {X.dtype}.")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    rows = X.chunks[0]

    y = converted["y"]
    if getattr(y, "ndim", 0) == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change "
            "the shape of y to (n_samples, ), for example using ravel().",
            DataConversionWarning,
            stacklevel=4,
        )
        y = y[:, 0]
    if getattr(y, "ndim", 0) != 1:
        raise ValueError(f"y should be a 1d array; got an array of shape {getattr(y, 'shape', ())}.")
    if y.dtype.kind in "USO":
        raise ValueError(
            f"MixtureOfExpertsRegressor needs a numeric target y; got values of dtype {y.dtype}."
        )
    sw = converted.get("sample_weight")
    if sw is not None and sw.ndim != 1:
        raise ValueError(f"sample_weight should be 1d; got shape {sw.shape}.")
    for name, a in (("y", y), ("sample_weight", sw)):
        if a is not None and a.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} samples but {name} has {a.shape[0]}; they must have "
                "the same rows."
            )
    y = y.astype(np.float64).rechunk((rows,))
    if sw is not None:
        sw = sw.astype(np.float64).rechunk((rows,))
    return RowData(X, y, sw, feature_names)


def as_row_array(X, estimator, *, known=False):
    """Prediction input as a dask array chunked by rows only, checked against the fit.

    Parameters
    ----------
    X : dask collection or array-like
        Inputs.
    estimator : fitted estimator
        Gives ``n_features_in_`` and ``feature_names_in_``.
    known : bool, default=False
        Compute unknown chunk sizes (to align with another array).

    Returns
    -------
    X : dask.array.Array
        The inputs.
    """
    _, da = import_dask()
    names = _feature_names(X)
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if names is not None and fitted_names is not None and (
        len(names) != len(fitted_names) or np.any(names != fitted_names)
    ):
        raise ValueError(
            "The feature names should match those that were passed during fit; "
            f"got {list(names)}, fitted with {list(fitted_names)}."
        )
    X = _to_dask_array(X, "X", known=known) if is_dask(X) else da.from_array(np.asarray(X))
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array for X, got shape {X.shape}.")
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


# ----------------------------------------------------------------------
# The first passes: checks and weighted moments


def _summary_block(X, y, sw):
    """Counts and sums of a block: non-finite values, weights, weighted sums of ``X`` and ``y``."""
    n = X.shape[0]
    bad_X = int(n * X.shape[1] - np.count_nonzero(np.isfinite(X)))
    bad_y = int(n - np.count_nonzero(np.isfinite(y)))
    if sw is None:
        return {
            "n": n, "bad_X": bad_X, "bad_y": bad_y, "bad_w": 0, "negative": 0, "positive": n,
            "unit": n, "sum_w": float(n), "min_w": 1.0,
            "sum_wx": X.sum(axis=0, dtype=np.float64), "sum_wy": float(y.sum()),
        }
    finite = np.isfinite(sw)
    positive = sw > 0
    return {
        "n": n, "bad_X": bad_X, "bad_y": bad_y, "bad_w": int(n - np.count_nonzero(finite)),
        "negative": int(np.count_nonzero(sw < 0)), "positive": int(np.count_nonzero(positive)),
        "unit": int(np.count_nonzero(sw == 1.0)), "sum_w": float(sw[finite].sum()),
        "min_w": float(sw[positive & finite].min()) if np.any(positive & finite) else np.inf,
        "sum_wx": np.asarray(np.where(finite, sw, 0.0) @ X, dtype=np.float64),
        "sum_wy": float(np.where(finite, sw, 0.0) @ np.where(np.isfinite(y), y, 0.0)),
    }


def _spread_block(X, y, sw, x_mean, y_mean, total):
    """Weighted sums of squared deviations of ``X`` and ``y`` (weights normalised by ``total``)."""
    weight = np.full(X.shape[0], 1.0 / total) if sw is None else sw / total
    var = np.zeros(X.shape[1])
    block = max(1, 2**15 // max(1, X.shape[1]))
    for start in range(0, X.shape[0], block):
        centred = X[start : start + block] - x_mean
        np.square(centred, out=centred)
        var += weight[start : start + block] @ centred
    return var, float(weight @ np.square(y - y_mean))


class Summary:
    """What the first two passes learn: sizes, weights and the weighted moments."""


def summarise(data):
    """Check the values blockwise and compute the weighted means and spreads.

    Two passes over the data: counts and weighted sums, then the weighted
    squared deviations from the means (centred before squaring, as the
    in-memory standardisation).

    Parameters
    ----------
    data : RowData
        Training data.

    Returns
    -------
    summary : Summary
        ``n_positive`` (rows of positive weight), ``sum_w``, ``min_w``,
        ``unit_weights``, ``x_mean``, ``x_scale`` (weighted standard deviation,
        1 for a constant feature), ``x_var``, ``y_mean``, ``y_var``.

    Raises
    ------
    ValueError
        Non-finite values, negative or non-finite weights, or all weights zero.
    """
    parts = reduce_blocks(_summary_block, data, [])
    total = {key: sum(p[key] for p in parts) for key in ("n", "bad_X", "bad_y", "bad_w", "negative", "positive", "unit", "sum_w")}
    if total["bad_X"]:
        raise ValueError("Input X contains NaN or infinity.")
    if total["bad_y"]:
        raise ValueError("Input y contains NaN or infinity.")
    if total["negative"]:
        raise ValueError("Negative values in data passed to `sample_weight`")
    if total["bad_w"]:
        raise ValueError("sample_weight must be finite.")
    if total["positive"] == 0:
        raise ValueError("sample_weight is zero for every sample; nothing to fit.")
    s = Summary()
    s.n_samples = total["n"]
    s.n_positive = total["positive"]
    s.sum_w = total["sum_w"]
    s.min_w = min(p["min_w"] for p in parts)
    s.unit_weights = total["unit"] == total["n"]
    s.x_mean = sum(p["sum_wx"] for p in parts) / s.sum_w
    s.y_mean = sum(p["sum_wy"] for p in parts) / s.sum_w
    spreads = reduce_blocks(_spread_block, data, [], s.x_mean, s.y_mean, s.sum_w)
    s.x_var = sum(p[0] for p in spreads)
    s.y_var = sum(p[1] for p in spreads)
    s.x_scale = _scale(s.x_var, s.x_mean)
    s.y_scale = float(_scale(np.array([s.y_var]), np.array([s.y_mean]))[0])
    return s


def _scale(var, mean):
    """Standard deviations, 1 for a constant column (the rule of the in-memory standardisation)."""
    scale = np.sqrt(var)
    scale[scale <= 1e-12 * (np.abs(mean) + 1.0)] = 1.0
    return scale

