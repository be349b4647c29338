"""Strip outputs and execution counts from the tutorial notebooks.

Notebooks in ``examples/`` are committed without outputs (CI and the docs
build execute them afresh). After running a notebook in Jupyter, strip it with::

    python examples/strip_outputs.py            # every examples/*.ipynb
    python examples/strip_outputs.py a.ipynb    # given files
    python examples/strip_outputs.py --check    # exit 1 if any is not stripped

Only ``nbformat`` is needed (``pip install -e ".[examples]"``); nbconvert is not.
"""

import argparse
import sys
from pathlib import Path

import nbformat


def strip(nb):
    """Remove outputs and execution counts in place; return True if anything changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None:
            changed = True
        cell.outputs = []
        cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            if cell.metadata.pop(key, None) is not None:
                changed = True
    for key in ("widgets",):
        if nb.metadata.pop(key, None) is not None:
            changed = True
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: examples/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if any needs stripping")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(Path(__file__).resolve().parent.glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.write(nb, path)
    for path in dirty:
        print(f"{'not stripped' if args.check else 'stripped'}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
