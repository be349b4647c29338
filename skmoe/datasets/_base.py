"""Loaders for the small real data sets shipped with skmoe."""

import csv
import io
from importlib import resources

import numpy as np
from sklearn.utils import Bunch

_DATA_MODULE = "skmoe.datasets"

_MOTORCYCLE_DESCR = """\
.. _motorcycle_dataset:

Motorcycle crash data set
-------------------------

**Data Set Characteristics:**

:Number of Instances: 133
:Number of Attributes: 1 numeric feature and 1 numeric target
:Feature: ``times`` - time after a simulated impact, in milliseconds
:Target: ``accel`` - head acceleration, in g
:Missing Attribute Values: None

Measurements of head acceleration against time after impact in a simulated
motorcycle crash, used to test crash helmets. Several measurements can share
one time. The response is flat, then swings down and up, then settles, and
its noise changes with time (heteroscedastic), so no single smooth model fits
it well: a classic benchmark for mixtures of experts and for
heteroscedastic regression.

.. dropdown:: References

  - Silverman, B. W. (1985). Some aspects of the spline smoothing approach to
    non-parametric regression curve fitting. Journal of the Royal Statistical
    Society, Series B, 47(1), 1-52.
  - Distributed as ``mcycle`` in the R package MASS (Venables, W. N. and
    Ripley, B. D. (2002). Modern Applied Statistics with S, 4th ed.
    Springer).
"""


def _read_csv(name):
    """Read a bundled CSV file with a header row into (header, float array)."""
    text = resources.files(_DATA_MODULE).joinpath("data", name).read_text(
        encoding="utf-8"
    )
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    values = np.array([[float(v) for v in row] for row in reader if row])
    return header, values


def load_motorcycle(*, return_X_y=False, as_frame=False):
    """Load the motorcycle crash data set (regression, 133 samples).

    Head acceleration (in g) against time after impact (in milliseconds) in a
    simulated motorcycle crash (Silverman, 1985; ``mcycle`` in R's MASS). The
    mean response is flat, swings sharply and settles, and the noise level
    changes along the way, so a mixture of a few linear experts fits it far
    better than one linear model.

    =================   ==============
    Samples total                  133
    Dimensionality                   1
    Features            real, 2.4-57.6
    Targets             real, -134-75
    =================   ==============

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch object.
    as_frame : bool, default=False
        If True, ``data`` is a pandas DataFrame, ``target`` a pandas Series
        and ``frame`` a DataFrame with both columns (requires pandas). With
        ``return_X_y=True``, ``(data, target)`` are then pandas objects.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with the attributes

        data : {ndarray, DataFrame} of shape (133, 1)
            The time after impact, in milliseconds.
        target : {ndarray, Series} of shape (133,)
            The head acceleration, in g.
        feature_names : list of str
            ``["times"]``.
        target_names : list of str
            ``["accel"]``.
        frame : DataFrame of shape (133, 2) or None
            Data and target together, only when ``as_frame=True``.
        DESCR : str
            Description and provenance of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        The data and the target.

    See Also
    --------
    make_gated_regression : Synthetic regression data from a known mixture
        of linear experts.

    Notes
    -----
    Bundled from Silverman, B. W. (1985), "Some aspects of the spline
    smoothing approach to non-parametric regression curve fitting", Journal
    of the Royal Statistical Society, Series B 47(1), 1-52, as distributed in
    the ``mcycle`` data set of R's MASS package.

    Examples
    --------
    >>> from skmoe.datasets import load_motorcycle
    >>> motorcycle = load_motorcycle()
    >>> motorcycle.data.shape, motorcycle.target.shape
    ((133, 1), (133,))
    >>> motorcycle.feature_names, motorcycle.target_names
    (['times'], ['accel'])
    >>> X, y = load_motorcycle(return_X_y=True)
    >>> float(X[0, 0]), float(y[0])
    (2.4, 0.0)
    """
    for name, value in (("return_X_y", return_X_y), ("as_frame", as_frame)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be a bool, got {value!r}.")
    header, values = _read_csv("motorcycle.csv")
    feature_names, target_names = header[:1], header[1:]
    data, target = values[:, :1], values[:, 1]
    frame = None
    if as_frame:
        import pandas as pd

        frame = pd.DataFrame(values, columns=header)
        data, target = frame[feature_names], frame[target_names[0]]
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        frame=frame,
        feature_names=feature_names,
        target_names=target_names,
        DESCR=_MOTORCYCLE_DESCR,
    )
