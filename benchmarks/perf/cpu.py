"""CPU time of a call, best of several, and a busy neighbour process.

The whole-fit benchmarks report CPU seconds (``time.process_time``: every
thread of this process, user and system) rather than wall time: on a shared
machine the wall time of a fit mostly measures the other processes, while
its CPU time shows what the fit itself burned, including threads spinning
against a busy core, which is the cost a neighbour imposes.
"""

import gc
import os
import subprocess
import sys
import time

SPIN = "while True:\n    pass\n"


def cpu_and_wall(func, repeat=1):
    """Best CPU seconds and best wall seconds of ``repeat`` calls of ``func()``, and its last result."""
    best_cpu = best_wall = float("inf")
    result = None
    for _ in range(max(1, repeat)):
        gc.collect()
        cpu, wall = time.process_time(), time.perf_counter()
        result = func()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_cpu, best_wall, result


def load_average():
    """The 1-minute load average, or nan where the platform has none."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


class BusyNeighbour:
    """A spinning Python loop in a subprocess (one core busy), for a ``with`` block.

    ``BusyNeighbour(active=False)`` does nothing, so that the quiet and the
    busy runs go through the same code.
    """

    def __init__(self, active=True):
        self.active = active
        self.process = None

    def __enter__(self):
        if self.active:
            self.process = subprocess.Popen([sys.executable, "-c", SPIN])
            time.sleep(0.5)  # let it reach the loop before anything is timed
        return self

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
        return False
