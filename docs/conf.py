"""Sphinx configuration of the skmoe documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``.

The tutorial notebooks live in ``../examples`` (outputs stripped); they are
copied into ``docs/auto_examples/`` (git-ignored) each time this file is
loaded and executed by myst-nb on every build, so that none can rot. Set
``SKMOE_EXAMPLES_DIR`` to render the notebooks of another folder.
"""

import os
import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # this process: the plot directive draws off-screen

# The notebook kernels inherit the environment: they must draw inline (the
# figures become cell outputs), even where CI sets MPLBACKEND=Agg globally.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import skmoe  # noqa: E402

# -- Project ---------------------------------------------------------------

project = "skmoe"
author = "The skmoe developers"
copyright = "The skmoe developers, BSD 3-Clause licence"
version = release = skmoe.__version__

# -- Extensions ------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
    "matplotlib.sphinxext.plot_directive",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "generated_includes"]
source_suffix = {".rst": "restructuredtext", ".ipynb": "myst-nb"}
root_doc = "index"
default_role = "literal"  # `x` renders as code, as ``x``

# -- autodoc / autosummary / numpydoc --------------------------------------

autosummary_generate = True  # write a stub page per object into generated/
autosummary_generate_overwrite = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
autoclass_content = "class"
add_module_names = False

numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()  # tests/test_docstrings.py validates instead

# No intersphinx: the build must work offline (no inventories to fetch).

# -- matplotlib plot directive ---------------------------------------------

plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.autolayout": False}
plot_pre_code = "import numpy as np\nimport matplotlib.pyplot as plt\n"

# -- myst-nb: tutorial notebooks, executed on every build --------------------

nb_execution_mode = "force"
nb_execution_timeout = 300
nb_execution_raise_on_error = True  # a broken notebook fails the build
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

EXAMPLES = Path(os.environ.get("SKMOE_EXAMPLES_DIR", ROOT / "examples")).resolve()
AUTO_EXAMPLES = DOCS / "auto_examples"


def copy_examples(source=EXAMPLES, target=AUTO_EXAMPLES):
    """Mirror ``source/*.ipynb`` into ``target`` (stale copies are removed)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    notebooks = sorted(source.glob("*.ipynb")) if source.is_dir() else []
    for notebook in notebooks:
        shutil.copy2(notebook, target / notebook.name)
    return notebooks


NOTEBOOKS = copy_examples()

# The engine's table of supported combinations, rendered from the code that checks it.
GENERATED_INCLUDES = DOCS / "generated_includes"
GENERATED_INCLUDES.mkdir(exist_ok=True)
from skmoe._combinations import combination_table_rst  # noqa: E402

(GENERATED_INCLUDES / "combinations.rst").write_text(combination_table_rst())

# -- HTML ------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skmoe {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "api": [], "tutorials": []}


def _warn_without_notebooks(app):
    if not NOTEBOOKS:
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            "no tutorial notebooks found in %s; the Tutorials page is empty", EXAMPLES
        )


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Document only the members skmoe defines (or inherits from skmoe).

    Methods inherited from scikit-learn (``get_params``, ``score``,
    ``set_fit_request``, ...) are documented by scikit-learn, and their
    docstrings cross-reference labels of scikit-learn's own documentation,
    which an offline build cannot resolve.
    """
    if what != "class":
        return None
    func = obj.fget if isinstance(obj, property) else getattr(obj, "__func__", obj)
    module = getattr(func, "__module__", None)
    if module is not None and not module.startswith("skmoe"):
        return True
    return None


def setup(app):
    app.connect("builder-inited", _warn_without_notebooks)
    app.connect("autodoc-skip-member", _skip_foreign_members)
