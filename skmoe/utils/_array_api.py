"""The array namespace of the EM core's arrays: NumPy, or any array-API library.

The pure functions of :mod:`skmoe._em` and the batched linear solver take
their namespace from their arguments, so that the same code can later run on
torch tensors (through ``array_api_compat``) without importing torch here.
NumPy arrays take NumPy's own in-place fast paths.
"""

import numpy as np
import scipy.sparse as sp


def get_namespace(*arrays):
    """The namespace of ``arrays`` and whether it is NumPy.

    Parameters
    ----------
    *arrays : arrays, scalars or None
        Arguments of an array function; scalars and None are ignored, and
        SciPy sparse matrices count as NumPy.

    Returns
    -------
    xp : module
        ``numpy`` for NumPy arrays, the namespace that standard-conforming
        arrays name (``__array_namespace__``), else the one
        ``array_api_compat`` finds for them (torch tensors).
    is_numpy : bool
        Whether ``xp`` is NumPy (in-place ``out=`` buffers may be used).

    Raises
    ------
    TypeError
        If an argument is neither a NumPy array nor a standard-conforming one
        and ``array_api_compat`` is not installed.
    """
    others = [
        a for a in arrays
        if a is not None and not isinstance(a, (np.ndarray, np.generic, float, int, bool))
        and not sp.issparse(a)  # SciPy sparse matrices go with NumPy
    ]
    if not others:
        return np, True
    # Arrays of a standard-conforming library name their namespace themselves.
    spaces = {a.__array_namespace__() for a in others if hasattr(a, "__array_namespace__")}
    if len(spaces) == 1 and all(hasattr(a, "__array_namespace__") for a in others):
        return spaces.pop(), False
    try:
        import array_api_compat
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TypeError(
            f"Arrays of type {type(others[0]).__name__} need the array_api_compat "
            "package (pip install array-api-compat); NumPy arrays need nothing."
        ) from exc
    return array_api_compat.array_namespace(*others), False


def float_dtype(*arrays):
    """The floating dtype the EM core computes in: float32 when every array is float32, else float64.

    float32 input is kept end to end (the experts' predictions, the E-step,
    the predictions); anything else (float64, integers, None) computes in
    float64.

    Parameters
    ----------
    *arrays : arrays (dense or sparse) or None
        The inputs; None is ignored.

    Returns
    -------
    dtype : numpy.dtype
        ``float32`` or ``float64``.
    """
    dtypes = [np.dtype(a.dtype) for a in arrays if a is not None]
    if dtypes and all(dt == np.float32 for dt in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)
