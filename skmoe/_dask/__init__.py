"""The estimators on Dask collections: blockwise EM on a cluster, lazy predictions.

``_BaseMixtureOfExperts`` calls :func:`fit_dask` from ``fit`` and
:func:`predict_dask` from its prediction methods when an argument is a Dask
collection (checked without importing dask). Nothing here imports dask at
import time: :mod:`skmoe` works without it, and dask input implies dask is
installed.

* :mod:`._data`: inputs as row-chunked dask arrays, their checks and moments.
* :mod:`._blocks`: per-block passes gathered to the client, row samples.
* :mod:`._resp`: the responsibilities as recipes evaluated in the tasks,
  and the bounded cache of each process.
* :mod:`._init`: first responsibilities without gathering the data.
* :mod:`._kernels`: what the tasks compute on their blocks.
* :mod:`._gate`: the linear gate's L-BFGS on the client, its objective
  summed over blocks.
* :mod:`._steps`: the EM steps (statistics, M- and E-step, starved experts).
* :mod:`._fit`: the driver; :mod:`._support`: what is supported.
* :mod:`._predict`: lazy predictions.
"""

from ._fit import fit_dask
from ._predict import predict_dask
from ._support import SUPPORTED, check_supported

__all__ = ["SUPPORTED", "check_supported", "fit_dask", "predict_dask"]
