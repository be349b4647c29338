"""Peak memory of a fit, measured in fresh subprocesses of ``benchmarks/run.py``.

Peak memory (``--memory``)
--------------------------
For the largest configuration requested (by default n=1e6, d=50, k=16; with
``--quick`` n=1e5) each measurement runs in a fresh subprocess of this script
that draws ``X, y``, resets the kernel's RSS high-water mark
(``/proc/self/clear_refs``, so that the temporaries of the data generator do
not hide the fit's peak), then fits ``MixtureOfExpertsRegressor(
n_experts=k, max_iter=3, random_state=0)``. Reported:

* ``ru_maxrss``: ``(ru_maxrss after fit - ru_maxrss before fit) /
  X.nbytes``;
* ``tracemalloc``: peak of the memory traced during the fit (NumPy reports
  its array buffers to tracemalloc) / ``X.nbytes``, in a second subprocess.

The memory runs are outside the time budget; the correctness check is inside it.
"""

import gc
import json
import os
import resource
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor

from .data import make_data
from .report import fmt_n

RUN_SCRIPT = Path(__file__).resolve().parents[1] / "run.py"


def _maxrss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _reset_peak_rss():
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(spec):
    """Body of the ``--memory-child n,d,k,mode`` subprocess: print one JSON line."""
    n, d, k, mode = spec.split(",")
    n, d, k = int(float(n)), int(d), int(k)
    X, y, _ = make_data(n, d, k)
    model = MixtureOfExpertsRegressor(n_experts=k, max_iter=3, random_state=0)
    gc.collect()
    out = {"n": n, "d": d, "k": k, "mode": mode, "x_bytes": X.nbytes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if mode == "rusage":
            out["reset"] = _reset_peak_rss()
            out["baseline_kib"] = _maxrss_kib()
            model.fit(X, y)
            out["peak_kib"] = _maxrss_kib()
            out["ratio"] = (out["peak_kib"] - out["baseline_kib"]) * 1024 / X.nbytes
        else:
            tracemalloc.start()
            model.fit(X, y)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out["peak_bytes"] = peak
            out["ratio"] = peak / X.nbytes
    print(json.dumps(out))


def run_memory_child(n, d, k, mode):
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(RUN_SCRIPT), "--memory-child", f"{n},{d},{k},{mode}"],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_memory(n, d, k):
    rss = run_memory_child(n, d, k, "rusage")
    traced = run_memory_child(n, d, k, "tracemalloc")
    return {"n": n, "d": d, "k": k, "x_bytes": rss["x_bytes"], "rusage": rss, "tracemalloc": traced}


def report_memory(report, mem):
    report.heading(
        f"Peak memory of MixtureOfExpertsRegressor(n_experts={mem['k']}, max_iter=3).fit, "
        f"n={fmt_n(mem['n'])}, d={mem['d']}"
    )
    mib = 2.0**20
    rss, traced = mem["rusage"], mem["tracemalloc"]
    report.table(
        ["measure", "X MiB", "baseline MiB", "peak - baseline MiB", "/ X bytes"],
        [
            ["ru_maxrss", f"{mem['x_bytes'] / mib:.0f}", f"{rss['baseline_kib'] / 1024:.0f}",
             f"{(rss['peak_kib'] - rss['baseline_kib']) / 1024:.0f}", f"{rss['ratio']:.2f}"],
            ["tracemalloc", f"{mem['x_bytes'] / mib:.0f}", "-",
             f"{traced['peak_bytes'] / mib:.0f}", f"{traced['ratio']:.2f}"],
        ],
    )
    if not rss["reset"]:
        report.line("(could not reset the RSS high-water mark: the ru_maxrss baseline includes "
                    "the data generator's peak, so the ratio may be too low)")
