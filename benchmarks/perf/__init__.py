"""Benchmark modules of skmoe, each small and each calling the functions the estimator runs.

``benchmarks/run.py`` is the entry point of the EM benchmark (pieces of an EM
iteration against scikit-learn baselines); ``benchmarks/flexmix_speed.py``
times whole fits against R's flexmix. Modules:

* :mod:`perf.report`: tables (printed and markdown), number formats, the environment header;
* :mod:`perf.cpu`: CPU-time measurement and a busy neighbour process;
* :mod:`perf.data`: the benchmark data sets;
* :mod:`perf.pieces`: the measurements of the EM benchmark (one function each);
* :mod:`perf.schedule`: running them size by size under a time budget;
* :mod:`perf.targets`: ratios, targets and the summary table;
* :mod:`perf.memory`: peak memory of a fit, in subprocesses;
* :mod:`perf.correctness`: a fit recovers a known model;
* :mod:`perf.rscript`: running the R scripts of ``flexmix/`` and reading their results;
* :mod:`perf.threads`: the measurement behind the thread rule of ``skmoe.utils._threads``.
"""

import sys
from pathlib import Path

try:
    import skmoe  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
