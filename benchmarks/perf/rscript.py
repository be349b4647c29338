"""Running the R scripts of ``benchmarks/flexmix/`` on a data set and reading their results.

Each script takes a CSV of the data first and the path of its output last,
and writes one line per result: ``name value`` for a number (``loglik``,
``cpu``, ``iter``...) and ``name index v1 v2 ...`` for one row of a table
(``comp``: a component's parameters, ``gate``: a gate row).
"""

import subprocess
import tempfile
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parents[1] / "flexmix"


def write_csv(path, X, y, names=None):
    """``X`` and ``y`` as a CSV with a header (``names`` of the columns of ``X``, default ``x1..xd``)."""
    names = names or [f"x{j + 1}" for j in range(X.shape[1])]
    np.savetxt(path, np.c_[X, y], delimiter=",", header=",".join([*names, "y"]), comments="",
               fmt="%.17g")


def parse_output(lines):
    """The results of a script: numbers as floats, the rows of each table stacked in a 2-D array."""
    result, rows = {}, {}
    for line in lines:
        name, *values = line.split() or [None]
        if name is None:
            continue
        if len(values) == 1:
            result[name] = float(values[0])
        else:  # values[0] is the row's index
            rows.setdefault(name, []).append([float(v) for v in values[1:]])
    return result | {name: np.array(table) for name, table in rows.items()}


def run_rscript(script, X, y, *args, names=None):
    """``Rscript SCRIPTS/script data.csv *args out.txt`` on ``(X, y)``; its results (:func:`parse_output`)."""
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.csv", Path(tmp) / "out.txt"
        write_csv(data, X, y, names)
        subprocess.run(
            ["Rscript", str(SCRIPTS / script), str(data), *map(str, args), str(out)],
            check=True, capture_output=True,
        )
        return parse_output(out.read_text().splitlines())
