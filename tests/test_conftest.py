"""The root conftest's rule: doctests needing an absent optional dependency skip."""

import importlib.util
from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

pytestmark = pytest.mark.skipif(
    not ROOT_CONFTEST.is_file(), reason="conftest.py is not beside the tests (installed copy)"
)

DOCTESTS = '''
def load_optional():
    """A lazy import with a friendly error, as skmoe.utils._optional does."""
    try:
        import skmoe_test_absent_optional  # noqa: F401
    except ImportError as exc:
        raise ImportError("install it with pip install ...") from exc


def imports_optional():
    """
    >>> import skmoe_test_absent_optional.sub
    """


def calls_optional():
    """
    >>> load_optional()
    >>> 1 + 1
    2
    """


def imports_undeclared():
    """
    >>> import skmoe_test_absent_undeclared
    """


def wrong_output():
    """
    >>> 1 + 1
    3
    """


def passes():
    """
    >>> 1 + 1
    2
    """
'''


def _load_root_conftest():
    spec = importlib.util.spec_from_file_location("_skmoe_root_conftest", ROOT_CONFTEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_optional_dependencies_are_the_extras():
    optional = _load_root_conftest().OPTIONAL_DEPENDENCIES
    assert {"torch", "matplotlib", "myst_nb", "pydata_sphinx_theme"} <= optional
    assert not {"numpy", "scipy", "scikit_learn", "sklearn", "skmoe"} & optional


@pytest.mark.parametrize("options", [[], ["--doctest-continue-on-failure"]])
def test_doctest_needing_absent_optional_dependency_skips(pytester, options):
    # The root conftest, with one more (absent) optional package declared.
    pytester.makeconftest(
        ROOT_CONFTEST.read_text(encoding="utf-8")
        + '\nOPTIONAL_DEPENDENCIES = OPTIONAL_DEPENDENCIES | {"skmoe_test_absent_optional"}\n'
    )
    doctest = '\n\ndef f():\n    """\n    >>> 1\n    1\n    """\n'
    pytester.makepyfile(
        mod=DOCTESTS,
        # Modules that import a package at import time: their doctests are not collected.
        needs_optional="import skmoe_test_absent_optional" + doctest,
        needs_undeclared="import skmoe_test_absent_undeclared" + doctest,
    )
    result = pytester.runpytest_inprocess(
        "--doctest-modules", "-p", "no:cacheprovider", "-rs", "--continue-on-collection-errors",
        *options,
    )
    outcomes = {
        report.nodeid.rsplit(".", 1)[1]: report.outcome
        for report in result.reprec.getreports("pytest_runtest_logreport")
        if report.when == "call" or report.outcome == "skipped"
    }
    assert outcomes == {
        "imports_optional": "skipped",
        "calls_optional": "skipped",
        "imports_undeclared": "failed",
        "wrong_output": "failed",
        "passes": "passed",
    }
    collected = {
        report.nodeid: report.outcome
        for report in result.reprec.getreports("pytest_collectreport")
        if report.nodeid.startswith("needs_")
    }
    assert collected == {"needs_optional.py": "skipped", "needs_undeclared.py": "failed"}
    for what in ("module", "doctest"):
        result.stdout.fnmatch_lines(
            [f"SKIPPED*{what} needs the optional dependency 'skmoe_test_absent_optional'*"]
        )
