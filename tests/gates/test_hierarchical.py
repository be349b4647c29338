"""HierarchicalGate: a tree of softmax gates (Jordan & Jacobs 1994)."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import softmax
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_gated_regression
from skmoe.gates import HierarchicalGate, LinearGate
from tests._em_steps import assert_never_decreases, stepped_objectives


def _tree_data(n, random_state=0):
    """Data from a two-level tree: the root splits on x0, each child on x1 (in opposite directions)."""
    rng = np.random.RandomState(random_state)
    X = rng.standard_normal((n, 2))
    root = softmax(np.c_[4 * X[:, 0], -4 * X[:, 0]], axis=1)
    left = softmax(np.c_[4 * X[:, 1], -4 * X[:, 1]], axis=1)
    right = softmax(np.c_[-4 * X[:, 1] + 2, 4 * X[:, 1] - 2], axis=1)
    proba = np.c_[root[:, :1] * left, root[:, 1:] * right]
    coef = np.array([[2.0, 1.0], [-2.0, 1.0], [1.0, -3.0], [0.0, 3.0]])
    intercept = np.array([0.0, 2.0, -2.0, 1.0])
    labels = (rng.uniform(size=(n, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)
    mean_T = (X @ coef.T + intercept).T
    y = mean_T[labels, np.arange(n)] + 0.1 * rng.standard_normal(n)
    return X, y, proba, mean_T


def test_one_level_tree_is_the_flat_linear_gate():
    X, y = make_gated_regression(600, 2, 3, noise=0.2, return_labels=False, random_state=0)
    kw = {"n_experts": 3, "random_state": 0, "max_iter": 20}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tree = MixtureOfExpertsRegressor(gate=HierarchicalGate(branching=(3,), max_iter=5), **kw).fit(X, y)
        flat = MixtureOfExpertsRegressor(gate=LinearGate(max_iter=5), **kw).fit(X, y)
    # The same fit, to rounding (the root's targets are divided by their sum, 1).
    assert_allclose(tree.objective_curve_, flat.objective_curve_, rtol=1e-10)
    assert_allclose(tree.predict_gate(X), flat.predict_gate(X), atol=1e-10)
    assert tree.gate_.n_parameters_ == flat.gate_.n_parameters_ == 2 * 3
    assert tree.bic(X, y) == pytest.approx(flat.bic(X, y), rel=1e-10)


def test_leaf_probabilities_are_products_along_the_paths():
    X, _, proba, _ = _tree_data(500)
    gate = HierarchicalGate(branching=(2, 2)).fit(X, proba)
    root, left, right = (np.exp(node.log_proba_T(X)) for node in gate.nodes_)
    expected = np.c_[root[0] * left[0], root[0] * left[1], root[1] * right[0], root[1] * right[1]]
    assert_allclose(gate.predict_proba(X), expected, rtol=1e-12)
    assert_allclose(gate.predict_proba(X).sum(axis=1), 1.0)
    assert gate.leaf_paths_[2] == [(0, 1), (2, 0)]


def test_fit_to_a_trees_probabilities_recovers_them():
    # Soft targets from a two-level tree: each node's M-step recovers its split.
    X, _, proba, _ = _tree_data(3000)
    gate = HierarchicalGate(branching=(2, 2), alpha=0.0, max_iter=500).fit(X, proba)
    assert_allclose(gate.predict_proba(X), proba, atol=1e-3)


def test_two_level_tree_fits_hierarchical_data():
    X, y, proba, mean_T = _tree_data(1500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe = MixtureOfExpertsRegressor(
            n_experts=4, gate=HierarchicalGate(branching=(2, 2), max_iter=10), n_init=2, random_state=0
        ).fit(X, y)
    oracle = np.sum(proba.T * mean_T, axis=0)
    oracle_r2 = 1 - np.mean((y - oracle) ** 2) / np.var(y)
    assert moe.score(X, y) > oracle_r2 - 0.02
    assert moe.gate_.n_parameters_ == 3 * (2 + 1)


def test_em_with_a_tree_never_decreases_its_objective():
    # The objective is the mean log-likelihood minus the sum of the nodes' penalties.
    X, y, _, _ = _tree_data(500)
    moe = MixtureOfExpertsRegressor(
        n_experts=4, gate=HierarchicalGate(branching=(2, 2), alpha=1e-2, max_iter=5),
        max_iter=1, warm_start=True, random_state=0,
    )
    assert_never_decreases(stepped_objectives(moe, X, y, 12), rtol=1e-9)
    assert moe.gate_.penalty() == pytest.approx(sum(node.penalty() for node in moe.gate_.nodes_))
    assert moe.gate_.penalty() > 0


@pytest.mark.parametrize("branching, n_features", [((2, 3, 2), 5), ((3, 2), 1), ((4,), 3)])
def test_any_branching_and_number_of_features(branching, n_features):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((200, n_features))
    n_leaves = int(np.prod(branching))
    resp = rng.dirichlet(np.ones(n_leaves), size=200)
    gate = HierarchicalGate(branching=branching, max_iter=20).fit(X, resp)
    assert gate.predict_log_proba(X).shape == (200, n_leaves)
    # Every internal node has (children - 1) * (n_features + 1) parameters.
    n_nodes = [int(np.prod(branching[:depth])) for depth in range(len(branching))]
    expected = sum(count * (b - 1) * (n_features + 1) for count, b in zip(n_nodes, branching))
    assert gate.n_parameters_ == expected
    assert len(gate.nodes_) == sum(n_nodes)
    clone(gate)  # a scikit-learn estimator


def test_wrong_number_of_experts_is_refused():
    X, y = make_gated_regression(100, 2, 3, return_labels=False, random_state=0)
    moe = MixtureOfExpertsRegressor(n_experts=3, gate=HierarchicalGate(branching=(2, 2)))
    with pytest.raises(ValueError, match=r"has 4 leaves, one per expert, .* n_experts=4"):
        moe.fit(X, y)


@pytest.mark.parametrize("branching", [(), (1,), (2, 1), (2.0, 2), (True, 2)])
def test_bad_branching_is_refused(branching):
    gate = HierarchicalGate(branching=branching)
    with pytest.raises(ValueError, match="branching"):
        gate.fit(np.ones((4, 1)), np.full((4, 2), 0.5))


def test_remove_experts_prunes_the_tree():
    X, _, proba, _ = _tree_data(500)
    gate = HierarchicalGate(branching=(2, 2)).fit(X, proba)
    before = gate.predict_proba(X)
    gate.remove_experts(np.array([0, 2, 3]))
    after = gate.predict_proba(X)
    # Leaf 1's parent now has one child: leaf 0 takes the parent's whole probability.
    assert_allclose(after[:, 0], before[:, 0] + before[:, 1], rtol=1e-10)
    assert_allclose(after[:, 1:], before[:, 2:], rtol=1e-10)
    assert gate.n_parameters_ == 2 * 3
    gate.remove_experts(np.array([1, 2]))  # the root's left subtree goes
    assert gate.n_experts_ == 2 and len(gate.nodes_) == 2
    assert_allclose(gate.predict_proba(X), before[:, 2:] / before[:, 2:].sum(axis=1, keepdims=True), rtol=1e-8)
    with pytest.raises(ValueError, match="keep"):
        gate.remove_experts(np.array([5]))


def test_pruning_with_min_prior():
    X, y, _, _ = _tree_data(600)
    X = np.c_[X[:, :1]]  # the second split cannot be seen: some leaves starve
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moe = MixtureOfExpertsRegressor(
            n_experts=4, gate=HierarchicalGate(branching=(2, 2)), min_prior=0.2, random_state=0
        ).fit(X, y)
    assert moe.n_experts_ < 4
    assert moe.predict_gate(X).shape == (600, moe.n_experts_)
    assert_allclose(moe.predict_gate(X).sum(axis=1), 1.0)
