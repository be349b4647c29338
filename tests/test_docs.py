"""The Sphinx documentation builds without a warning, with every public object.

The build runs ``sphinx-build -W --keep-going -b html docs <tmp>`` in a
subprocess, as CI does: it executes the tutorial notebooks of ``examples/``
(myst-nb), the ``.. plot::`` figures of the user guide and the autosummary
API pages, so a broken notebook, a docstring that does not render or a
dangling reference fails here.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(
    not (DOCS / "conf.py").is_file(), reason="docs/ is not beside the tests (installed copy)"
)

for _module in ("sphinx", "numpydoc", "myst_nb", "pydata_sphinx_theme", "matplotlib"):
    pytest.importorskip(_module)

# Every public object must have an API page (docs/api.rst lists them).
PUBLIC_MODULES = ["skmoe.gates", "skmoe.datasets", "skmoe.inspection"]


def _public_objects():
    import skmoe

    names = [f"skmoe.{name}" for name in skmoe.__all__ if not name.startswith("__")]
    for module in PUBLIC_MODULES:
        names += [f"{module}.{name}" for name in importlib.import_module(module).__all__]
    names.append("skmoe.utils.discovery.all_estimators")
    return names


def _examples_dir():
    return Path(os.environ.get("SKMOE_EXAMPLES_DIR", ROOT / "examples"))


@pytest.fixture(scope="module")
def html_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs_html")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return proc, out


def test_docs_build_without_warnings(html_build):
    proc, _ = html_build
    assert proc.returncode == 0, (
        f"sphinx-build exited with {proc.returncode}\n"
        f"--- stderr (tail) ---\n{proc.stderr[-8000:]}\n"
        f"--- stdout (tail) ---\n{proc.stdout[-3000:]}"
    )


@pytest.mark.parametrize("name", _public_objects())
def test_api_page_generated(html_build, name):
    proc, out = html_build
    page = out / "generated" / f"{name}.html"
    assert page.is_file(), f"no API page for {name}; add it to docs/api.rst"
    assert f'id="{name}"' in page.read_text(encoding="utf-8"), (
        f"the API page of {name} does not document it"
    )


def test_user_guide_and_figures(html_build):
    _, out = html_build
    guide = (out / "user_guide.html").read_text(encoding="utf-8")
    assert 'id="user-guide"' in guide
    # The .. plot:: figures were drawn at build time.
    assert len(list((out / "_images").glob("user_guide-*.png"))) >= 2


def test_tutorials_rendered(html_build):
    _, out = html_build
    notebooks = sorted(_examples_dir().glob("*.ipynb"))
    assert notebooks, f"no tutorial notebooks in {_examples_dir()}"
    tutorials = (out / "tutorials.html").read_text(encoding="utf-8")
    for notebook in notebooks:
        page = out / "auto_examples" / f"{notebook.stem}.html"
        assert page.is_file(), f"{notebook.name} was not rendered"
        assert f"auto_examples/{notebook.stem}.html" in tutorials
        # Executed at build time: the stripped notebook now has outputs.
        assert "cell_output" in page.read_text(encoding="utf-8"), (
            f"{notebook.name} has no outputs in the docs"
        )
