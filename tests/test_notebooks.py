"""Execute every tutorial notebook in ``examples/`` and check they are committed stripped.

Each ``examples/*.ipynb`` is picked up automatically (a new notebook needs no
change here). The execution test is skipped when the notebook tooling
(nbclient, nbformat, ipykernel) or matplotlib is missing; install it with
``pip install -e ".[examples]"``.
"""

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_at_least_four_notebooks():
    assert len(NOTEBOOKS) >= 4, f"expected at least 4 notebooks in {EXAMPLES}, found {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped(path):
    # Plain JSON, no optional dependency: runs everywhere.
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb.get("nbformat") == 4, f"{path.name}: not nbformat 4"
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], (
            f"{path.name}, cell {i}: has outputs; run `python examples/strip_outputs.py`"
        )
        assert cell.get("execution_count") is None, (
            f"{path.name}, cell {i}: has an execution count; run `python examples/strip_outputs.py`"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    from nbclient.exceptions import CellExecutionError

    # Kernels inherit the environment: draw off-screen unless told otherwise.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"{path.name} raised while executing:\n{exc}", pytrace=False)
