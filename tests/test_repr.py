"""HTML diagram of the mixtures: the experts side by side, then the gate.

The lead adds :class:`skmoe._repr._MixtureReprMixin` to the estimators'
bases; until then the tests use subclasses with the mixin, named and placed
like the estimators (the documentation link depends on both).
"""

import re

import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils import estimator_html_repr

import skmoe
from skmoe._repr import _DocLinkMixin, _MixtureReprMixin
from skmoe.gates import LinearGate


def _with_mixin(cls):
    """``cls`` itself when it has the mixin, else a look-alike subclass with it."""
    if issubclass(cls, _MixtureReprMixin):
        return cls
    sub = type(cls.__name__, (_MixtureReprMixin, cls), {"__module__": cls.__module__})
    sub.__qualname__ = cls.__qualname__
    return sub


Regressor = _with_mixin(skmoe.MixtureOfExpertsRegressor)
Classifier = _with_mixin(skmoe.MixtureOfExpertsClassifier)

DOCS = "https://skmoe.readthedocs.io/en/stable/generated/"


def _labels(html):
    """Texts of the diagram's labels (names of the blocks), in order."""
    found = []
    for inner in re.findall(r"<label[^>]*>(.*?)</label>", html, flags=re.S):
        match = re.search(r"<div><div>(.*?)</div></div>", inner, flags=re.S)
        found.append(match.group(1) if match else inner)
    return found


def _block_parts(est):
    block = est._sk_visual_block_()
    assert block.kind == "serial"
    experts, gate = block.estimators
    assert experts.kind == gate.kind == "parallel"
    assert list(gate.names) == ["gate"]
    return experts, gate


def test_mixin_is_left_of_base_estimator():
    for cls in (Regressor, Classifier):
        mro = cls.__mro__
        base_estimator = next(c for c in mro if c.__name__ == "BaseEstimator")
        assert mro.index(_MixtureReprMixin) < mro.index(base_estimator)


def test_default_expert_shown():
    experts, gate = _block_parts(Regressor(n_experts=3))
    assert [type(e) for e in experts.estimators] == [LinearRegression]
    assert list(experts.names) == ["expert (n_experts=3)"]
    assert list(gate.estimators) == ["linear"]

    experts, _ = _block_parts(Classifier(n_experts=2, gate="mlp"))
    assert [type(e) for e in experts.estimators] == [LogisticRegression]


def test_single_expert_shown_once():
    ridge = Ridge(alpha=3.0)
    experts, _ = _block_parts(Regressor(n_experts=4, expert=ridge))
    assert list(experts.estimators) == [ridge]
    assert list(experts.names) == ["expert (n_experts=4)"]


def test_list_of_experts_each_shown():
    tree, ridge = DecisionTreeRegressor(max_depth=2), Ridge()
    experts, _ = _block_parts(Regressor(n_experts=2, expert=[tree, ridge]))
    assert list(experts.estimators) == [tree, ridge]
    assert list(experts.names) == ["expert 0", "expert 1"]


def test_named_pairs_of_experts():
    tree, lr = DecisionTreeClassifier(), LogisticRegression(C=0.1)
    experts, _ = _block_parts(Classifier(n_experts=2, expert=[("tree", tree), ("lr", lr)]))
    assert list(experts.estimators) == [tree, lr]
    assert list(experts.names) == ["tree", "lr"]


def test_gate_object_shown():
    gate_obj = LinearGate(alpha=1.0)
    _, gate = _block_parts(Regressor(n_experts=2, gate=gate_obj))
    assert list(gate.estimators) == [gate_obj]


def test_html_has_experts_then_gate():
    est = Regressor(
        n_experts=2, expert=[("tree", DecisionTreeRegressor()), ("ridge", Ridge())]
    )
    labels = _labels(estimator_html_repr(est))
    assert labels == ["MixtureOfExpertsRegressor", "tree", "DecisionTreeRegressor",
                      "ridge", "Ridge", "gate", "linear"]
    labels = _labels(estimator_html_repr(Classifier(n_experts=5)))
    assert labels == ["MixtureOfExpertsClassifier", "expert (n_experts=5)",
                      "LogisticRegression", "gate", "linear"]


def test_html_of_fitted_estimator():
    import numpy as np

    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(40, 1))
    est = Regressor(n_experts=2, max_iter=3, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, np.abs(X[:, 0]))
    html = estimator_html_repr(est)
    assert "expert (n_experts=2)" in html and "LinearRegression" in html
    assert "Fitted" in html


def test_doc_link_points_at_our_api_pages():
    for cls, name in ((Regressor, "MixtureOfExpertsRegressor"),
                      (Classifier, "MixtureOfExpertsClassifier")):
        est = cls()
        assert est._doc_link_module == "skmoe"
        url = f"{DOCS}skmoe.{name}.html"
        assert est._get_doc_link() == url
        assert f'href="{url}"' in estimator_html_repr(est)
    # the experts keep scikit-learn's own links
    html = estimator_html_repr(Regressor())
    assert "scikit-learn.org" in html and "sklearn.linear_model.LinearRegression.html" in html


def test_doc_link_can_be_overridden_per_instance():
    est = Regressor()
    est._doc_link_template = "https://example.org/{estimator_name}"
    assert est._get_doc_link() == "https://example.org/MixtureOfExpertsRegressor"
    assert Regressor()._get_doc_link().startswith(DOCS)


def test_doc_link_version(monkeypatch):
    monkeypatch.setattr(skmoe, "__version__", "0.2.dev0")
    assert Regressor()._get_doc_link().startswith(
        "https://skmoe.readthedocs.io/en/latest/generated/"
    )


def test_doc_link_mixin_on_another_estimator():
    from sklearn.base import BaseEstimator

    class LinearGateLike(_DocLinkMixin, BaseEstimator):
        __module__ = "skmoe.gates._linear"

    assert LinearGateLike()._get_doc_link() == f"{DOCS}skmoe.gates.LinearGateLike.html"


def test_subclass_outside_skmoe_gets_no_link():
    class Mine(Regressor):
        pass

    assert Mine.__module__ == __name__
    assert Mine()._get_doc_link() == ""
    # but still the diagram
    assert "expert (n_experts=4)" in estimator_html_repr(Mine())


@pytest.mark.parametrize("cls", [Regressor, Classifier])
def test_params_and_clone_unaffected(cls):
    from sklearn.base import clone

    est = cls(n_experts=2, expert=[("a", DecisionTreeRegressor()), ("b", Ridge())])
    assert set(clone(est).get_params()) == set(est.get_params())


def test_default_expert_comes_from_the_likelihood(monkeypatch):
    from types import SimpleNamespace

    est = Regressor(n_experts=2)
    monkeypatch.setattr(
        est, "_make_likelihood", lambda: SimpleNamespace(default_expert=lambda: Ridge(alpha=7.0))
    )
    experts, _ = _block_parts(est)
    assert [type(e) for e in experts.estimators] == [Ridge]
    assert experts.estimators[0].alpha == 7.0
