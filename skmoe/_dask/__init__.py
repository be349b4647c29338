"""The estimators on Dask collections: blockwise EM on a cluster, lazy predictions.

``_BaseMixtureOfExperts`` calls :func:`fit_dask` from ``fit`` and
:func:`predict_dask` from its prediction methods when an argument is a Dask
collection (checked without importing dask). Nothing here imports dask at
import time: :mod:`skmoe` works without it, and dask input implies dask is
installed.

* :mod:`._blocks`: inputs as row-chunked dask arrays, per-block passes
  (``map_rows`` for arrays aligned with the rows, ``reduce_blocks`` for
  small statistics gathered to the client), the first checks and moments,
  row samples.
* :mod:`._init`: first responsibilities without gathering the data.
* :mod:`._gate`: the linear gate's L-BFGS on the client, its objective
  summed over blocks.
* :mod:`._fit`: the EM driver (what is supported, E- and M-steps, starved
  experts).
* :mod:`._predict`: lazy predictions.
"""

from ._fit import SUPPORTED, check_supported, fit_dask
from ._predict import predict_dask

__all__ = ["SUPPORTED", "check_supported", "fit_dask", "predict_dask"]
