"""Pytest configuration for the whole tree: the doctests of ``skmoe/`` and ``tests/``.

Doctests of features that need an optional dependency (PyTorch for
``TorchGate``, matplotlib for the displays, ...) skip when that dependency is
not installed, so that the README's test command, ``pip install -e ".[test]"
&& python -m pytest``, passes without the extras.

The rule is general rather than a list of doctests: a doctest is skipped when
running it raises an ``ImportError`` (directly, or as the cause of one, as
:func:`skmoe.utils._optional.import_torch` raises) for a module that

* is the import name of a package in one of skmoe's extras
  (``[project.optional-dependencies]`` in ``pyproject.toml``), and
* is not installed here.

The doctests of a whole module skip by the same rule when importing the module
fails so. A doctest that imports an optional package itself, or calls code
that does, is covered without being named here. Anything else stays a
failure: a missing core dependency, a misspelt module, an optional package
that is installed but broken, and every doctest when the extras are installed
(as in `.ci/run`'s "latest" job). Regular tests do not use this rule; they
call ``pytest.importorskip`` themselves.
"""

import doctest
import importlib.metadata
import importlib.util
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem, DoctestModule, MultipleDoctestFailures

# ``pytester`` runs the test of the rule above (tests/test_conftest.py).
pytest_plugins = ["pytester"]

PYPROJECT = Path(__file__).resolve().parent / "pyproject.toml"


def _extras_requirements():
    """Requirement strings of the extras: pyproject.toml here, else the installed metadata."""
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # pragma: no cover
        tomllib = None
    if tomllib is not None and PYPROJECT.is_file():
        with PYPROJECT.open("rb") as f:
            extras = tomllib.load(f)["project"].get("optional-dependencies", {})
        return [text for group in extras.values() for text in group]
    try:
        requirements = importlib.metadata.requires("skmoe") or []
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return []
    return [text for text in requirements if "extra ==" in text]


def _optional_dependencies():
    """Import names of the packages in skmoe's extras."""
    from packaging.requirements import Requirement

    # Distribution name -> import name ("myst-nb" -> "myst_nb").
    return frozenset(
        Requirement(text).name.lower().replace("-", "_").replace(".", "_")
        for text in _extras_requirements()
    )


OPTIONAL_DEPENDENCIES = _optional_dependencies()


def missing_optional_dependency(exc):
    """Name of the absent optional package behind ``exc``, or None.

    Follows the ``raise ... from`` chain, so that the friendly ``ImportError``
    of ``import_torch()`` is traced to the ``ModuleNotFoundError`` for
    ``torch`` it wraps (and pytest's collection error to the import error).
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ImportError) and exc.name:
            top = exc.name.partition(".")[0]
            if top in OPTIONAL_DEPENDENCIES and importlib.util.find_spec(top) is None:
                return top
        exc = exc.__cause__ or exc.__context__
    return None


def _skip_reason(missing, what):
    return f"{what} needs the optional dependency {missing!r}, which is not installed"


def _first_unexpected_exception(exc):
    """The exception a failed doctest raised first, or None."""
    if isinstance(exc, MultipleDoctestFailures):  # --doctest-continue-on-failure
        exc = exc.failures[0] if exc.failures else None
    if isinstance(exc, doctest.UnexpectedException):
        return exc.exc_info[1]
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    try:
        return (yield)
    except Exception as exc:
        if isinstance(item, DoctestItem):
            missing = missing_optional_dependency(_first_unexpected_exception(exc))
            if missing is not None:
                pytest.skip(_skip_reason(missing, "doctest"))
        raise


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.failed and isinstance(collector, DoctestModule):
        call = getattr(report, "call", None)  # set by pytest's own implementation
        excinfo = getattr(call, "excinfo", None)
        missing = missing_optional_dependency(excinfo.value if excinfo else None)
        if missing is not None:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), 0, "Skipped: " + _skip_reason(missing, "module"))
    return report
