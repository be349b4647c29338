"""Tables printed and kept as markdown; number formats; the environment header."""

import os
import platform
from pathlib import Path

import numpy as np
import scipy
import sklearn
from threadpoolctl import threadpool_info

import skmoe


class Report:
    """Print headings, lines and aligned tables; keep a markdown copy."""

    def __init__(self):
        self.markdown = []

    def heading(self, text):
        print(f"\n== {text} ==", flush=True)
        self.markdown += ["", f"### {text}", ""]

    def line(self, text=""):
        print(text, flush=True)
        self.markdown.append(text)

    def table(self, headers, rows):
        """Print a pipe table with padded columns (valid markdown as well).

        Columns whose cells all look numeric are right-aligned, others left.
        """
        cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
        widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
        right = [all(_numeric(r[j]) for r in cells[1:]) for j in range(len(headers))]

        def fmt(row):
            padded = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
            return "| " + " | ".join(padded) + " |"

        rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2))
                              for w, r in zip(widths, right)) + "|"
        for text in [fmt(cells[0]), rule] + [fmt(r) for r in cells[1:]]:
            self.line(text)

    def write(self, path):
        """Write the markdown copy to ``path`` (nothing for ``None``, an ``--output`` not given)."""
        if path is not None:
            Path(path).write_text("\n".join(self.markdown).lstrip() + "\n")


def _numeric(text):
    if text in ("-", "skip"):
        return True
    try:
        float(text.rstrip("%"))
        return True
    except ValueError:
        return False


def fmt_ms(seconds):
    if seconds is None:
        return "skip"
    ms = 1e3 * seconds
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_ratio(value):
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def fmt_n(n):
    exponent = round(np.log10(n))
    return f"1e{exponent}" if 10**exponent == n else str(n)


def report_environment(report):
    """Thread variables, versions, CPUs and load, and every threadpoolctl library."""
    report.heading("Environment")
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name)
        report.line(f"{name}: {'set to ' + repr(value) if value is not None else 'not set'}")
    report.line(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {sklearn.__version__}, skmoe {getattr(skmoe, '__version__', '?')}"
    )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    report.line(f"CPUs: os.cpu_count()={os.cpu_count()}, usable={usable}; "
                f"load average at start {load}")
    report.table(
        ["user_api", "internal_api", "version", "num_threads", "architecture", "library"],
        [[i.get("user_api"), i.get("internal_api"), i.get("version"), i.get("num_threads"),
          i.get("architecture", "-"), Path(i.get("filepath", "")).name] for i in threadpool_info()],
    )
