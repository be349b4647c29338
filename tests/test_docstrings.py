"""numpydoc validation of the docstrings of every public object.

Modelled on scikit-learn's ``sklearn/tests/test_docstrings.py``: every public
class and function (the estimators and the ``__all__`` of ``skmoe.gates``,
``skmoe.datasets``, ``skmoe.inspection``, plus
``skmoe.utils.discovery.all_estimators``) and every public method that skmoe
defines (methods inherited from scikit-learn are scikit-learn's business) is
validated with :func:`numpydoc.validate.validate`.

Every numpydoc error fails, except:

- ``GL01``, ``GL02``, ``RT02``: layout preferences scikit-learn does not
  follow either (a returned value is named, not only typed);
- for methods and properties, ``ES01`` (extended summary), ``SA01`` (See
  Also) and ``EX01`` (Examples), required of classes and functions only;
- ``GL08`` / ``PR02`` on properties (no signature to parse).

A method that overrides a documented skmoe method without a docstring of
its own inherits that docstring (``inspect.getdoc``, as Sphinx's autodoc
shows it), which is validated where it is defined.

So a missing Parameters or Returns section (``PR01``, ``RT01``), a parameter
documented that does not exist or one left out (``PR02``, ``PR01``), a
missing Examples section of a public class or function (``EX01``) and every
formatting error fail.
"""

import importlib
import inspect
import re

import pytest

numpydoc_validation = pytest.importorskip("numpydoc.validate")

# Error codes never checked.
IGNORED = {"GL01", "GL02", "RT02"}
# Error codes checked for public classes and functions, not for their methods.
TOP_LEVEL_ONLY = {"ES01", "SA01", "EX01"}

# Known failures in docstrings of files owned by someone else, to be fixed
# there. TEMPORARY: each entry must be removed as soon as the docstring is
# fixed (the test below fails on an entry that no longer fails, so the list
# cannot go stale). Keys: (import path, error code).
ALLOWED_FAILURES = set()

PUBLIC_MODULES = [
    "skmoe.gates", "skmoe.datasets", "skmoe.inspection", "skmoe.likelihoods", "skmoe.exceptions",
    "skmoe.inference",
]
EXTRA_OBJECTS = [
    "skmoe.MixtureOfExpertsRegressor",
    "skmoe.MixtureOfExpertsClassifier",
    "skmoe.utils.discovery.all_estimators",
]


def _resolve(path):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _public_objects():
    paths = list(EXTRA_OBJECTS)
    for module in PUBLIC_MODULES:
        paths += [f"{module}.{name}" for name in importlib.import_module(module).__all__]
    return paths


def _defined_in_skmoe(member):
    if isinstance(member, property):
        member = member.fget
    member = getattr(member, "__func__", member)
    return (getattr(member, "__module__", None) or "").startswith("skmoe")


def _public_methods(cls):
    """Public methods and properties of ``cls`` that skmoe defines or inherits from skmoe."""
    names = []
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        member = inspect.getattr_static(cls, name)
        if isinstance(member, (staticmethod, classmethod, property)) or inspect.isfunction(
            member
        ):
            if _defined_in_skmoe(member):
                names.append(name)
    return names


def _all_docstrings():
    """``(import path, is_method, is_property)`` for every docstring validated."""
    items = []
    for path in _public_objects():
        obj = _resolve(path)
        items.append((path, False, False))
        if inspect.isclass(obj):
            for name in _public_methods(obj):
                is_property = isinstance(inspect.getattr_static(obj, name), property)
                items.append((f"{path}.{name}", True, is_property))
    return items


DOCSTRINGS = _all_docstrings()


def _inherits_docstring(path):
    """An override without a docstring of its own shows its base's (as Sphinx does)."""
    owner, _, name = path.rpartition(".")
    obj = inspect.getattr_static(_resolve(owner), name)
    obj = getattr(obj, "__func__", obj)
    if isinstance(obj, property):
        obj = obj.fget
    if getattr(obj, "__doc__", None) is not None:
        return False
    return bool(inspect.getdoc(getattr(_resolve(owner), name)))


def _errors(path, is_method, is_property):
    if is_method and _inherits_docstring(path):
        return []  # the base method's docstring is validated where it is defined
    result = numpydoc_validation.validate(path)
    errors = []
    for code, message in result["errors"]:
        if code in IGNORED:
            continue
        if is_method and code in TOP_LEVEL_ONLY:
            continue
        if is_property and code in ("GL08", "PR02"):
            continue
        errors.append((code, message))
    return errors


def test_public_objects_are_found():
    paths = [path for path, is_method, _ in DOCSTRINGS if not is_method]
    assert "skmoe.gates.LinearGate" in paths
    assert "skmoe.MixtureOfExpertsRegressor.bic" in [p for p, _, _ in DOCSTRINGS]
    # Methods inherited from scikit-learn are left out.
    assert "skmoe.MixtureOfExpertsRegressor.score" not in [p for p, _, _ in DOCSTRINGS]


@pytest.mark.parametrize(
    "path, is_method, is_property", DOCSTRINGS, ids=[p for p, _, _ in DOCSTRINGS]
)
def test_docstring(path, is_method, is_property):
    errors = _errors(path, is_method, is_property)
    unexpected = [(c, m) for c, m in errors if (path, c) not in ALLOWED_FAILURES]
    if unexpected:
        listing = "\n".join(f"  {code}: {message}" for code, message in unexpected)
        pytest.fail(f"numpydoc validation of {path} failed:\n{listing}")


@pytest.mark.parametrize("path, code", sorted(ALLOWED_FAILURES))
def test_allowed_failures_still_fail(path, code):
    item = next((item for item in DOCSTRINGS if item[0] == path), None)
    assert item is not None, f"{path} is in ALLOWED_FAILURES but is not a public object"
    codes = [c for c, _ in _errors(*item)]
    assert code in codes, (
        f"{path} no longer fails {code}: remove it from ALLOWED_FAILURES in "
        "tests/test_docstrings.py"
    )


# The shared-entry filler of skmoe/_docstrings.py: placeholders are replaced by
# their entries, re-indented to the placeholder's own indentation.
def test_fill_docstring_reindents_entries():
    from skmoe._docstrings import doc_filler, fill_docstring

    # An entry is written at the indentation of a function's docstring
    # (name at four spaces, description at eight), its first line unindented.
    entries = {"alpha": "alpha : float\n        Strength."}
    function_doc = "Do it.\n\n    Parameters\n    ----------\n    %(alpha)s\n    "
    assert fill_docstring(function_doc, entries) == (
        "Do it.\n\n    Parameters\n    ----------\n    alpha : float\n        Strength.\n    "
    )
    method_doc = "Do it.\n\n        Parameters\n        ----------\n        %(alpha)s\n        "
    assert "\n        alpha : float\n            Strength.\n" in fill_docstring(method_doc, entries)
    # Only a placeholder alone on its line is one: text around it is left as is.
    assert fill_docstring("uses %(alpha)s inline", entries) == "uses %(alpha)s inline"
    with pytest.raises(KeyError, match="beta"):
        fill_docstring("    %(beta)s", entries)
    with pytest.raises(ValueError, match="not indented"):
        fill_docstring("    %(bad)s", {"bad": "bad : int\nno indentation"})

    @doc_filler(entries)
    class Thing:
        """A thing.

        Parameters
        ----------
        %(alpha)s
        """

        def method(self):
            """Method.

            Parameters
            ----------
            %(alpha)s
            """

    # The description sits four spaces deeper than the placeholder, wherever
    # the placeholder is (Python 3.13 also dedents docstrings itself).
    for doc in (Thing.__doc__, Thing.method.__doc__):
        assert re.search(r"\n( *)alpha : float\n\1    Strength\.\n", doc), doc
