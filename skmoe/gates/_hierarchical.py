"""Hierarchical gate (Jordan & Jacobs 1994): a tree of softmax gates, experts at the leaves."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from .._docstrings import GATES_DOC, doc_filler
from ..utils._compat import Interval
from ._base import BaseGate, check_keep, validate_resp
from ._linear import LinearGate


@doc_filler(GATES_DOC)
class HierarchicalGate(BaseGate):
    """Tree of softmax gates: the hierarchical mixture of experts of Jordan & Jacobs.

    The root gate splits the input space among ``branching[0]`` children,
    each of them among ``branching[1]`` grandchildren, and so on; the experts
    are the ``prod(branching)`` leaves. The probability of a leaf is the
    product of the gate probabilities along its path,
    ``g_leaf(x) = prod_{(v, c) on the path} g_{v, c}(x)``, where every
    internal node ``v`` is a :class:`LinearGate` over its children.

    Fitting to the soft targets ``h`` (the responsibilities of the leaves)
    propagates them up the tree: a node's posterior ``h_v`` is the sum of its
    leaves' responsibilities, and node ``v`` is fitted to the targets
    ``h_{v,c} / h_v`` of its children with sample weights ``w_i h_v(x_i)``.
    The weighted cross-entropy of the leaves splits exactly into these
    per-node cross-entropies, so fitting every node maximises the gate's part
    of the EM objective (the M-step of Jordan & Jacobs, with L-BFGS in place
    of IRLS). Every node is standardised with the weighted mean and standard
    deviation of the whole ``X`` and penalised by ``alpha / 2`` times its
    squared weights, so :meth:`penalty` is the sum of the nodes' penalties,
    in the units of the mean log-likelihood.

    Read more in the :ref:`User Guide <likelihoods>`.

    .. versionadded:: 0.2

    Parameters
    ----------
    branching : tuple of int, default=(2, 2)
        Number of children of the nodes at each depth, root first; every
        entry at least 2. The gate has ``prod(branching)`` experts: pass
        ``n_experts=prod(branching)`` to the estimator. ``(k,)`` is a flat
        :class:`LinearGate` with ``k`` experts.
    alpha : float, default=1e-4
        L2 penalty on each node's (standardised) weights; intercepts are not
        penalised.
    max_iter : int, default=100
        Maximum number of L-BFGS iterations per node and call to :meth:`fit`.
        Nodes warm-start, so a few per EM iteration suffice.
    tol : float, default=1e-9
        Gradient tolerance of each node's L-BFGS.

    Attributes
    ----------
    nodes_ : list of LinearGate
        The internal nodes' gates, root first (breadth first).
    children_ : list of list of tuple
        For each node, its children in the order of its gate's outputs:
        ``("node", j)`` for node ``nodes_[j]``, ``("leaf", k)`` for expert ``k``.
    leaf_paths_ : list of list of tuple
        For each expert, the ``(node, output)`` pairs from the root to it.
    n_features_in_ : int
        Number of input features.
    n_experts_ : int
        Number of experts (leaves).
    n_parameters_ : int
        Free parameters: the sum over the nodes of ``(n_children - 1) *
        (n_features + 1)``.

    See Also
    --------
    LinearGate : The flat softmax gate, and the gate of each node.

    Notes
    -----
    Pruning is supported: :meth:`remove_experts` (used by the estimators'
    ``min_prior`` and when a starved expert is removed) drops the leaves
    from their parents' gates, which renormalise over the kept children; a
    node left without children is dropped from its own parent, and a node
    with one child passes its posterior through unchanged (probability 1).
    The tree is then no longer regular, and ``branching`` describes the tree
    a fresh fit starts from.

    References
    ----------
    .. [1] M. I. Jordan and R. A. Jacobs, "Hierarchical mixtures of experts
       and the EM algorithm", Neural Computation 6(2), 1994.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> from skmoe.gates import HierarchicalGate
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-2, 2, size=(800, 1))
    >>> y = np.abs(np.round(X[:, 0] + 0.5)) + 0.05 * rng.randn(800)
    >>> moe = MixtureOfExpertsRegressor(
    ...     n_experts=4, gate=HierarchicalGate(branching=(2, 2)), random_state=0
    ... ).fit(X, y)
    >>> moe.gate_.n_parameters_
    6
    >>> moe.predict_gate(X[:2]).shape
    (2, 4)
    """

    splits_rows = True

    _parameter_constraints = {
        "branching": [tuple, list],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, branching=(2, 2), alpha=1e-4, max_iter=100, tol=1e-9):
        self.branching = branching
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    # ------------------------------------------------------------------
    # Tree

    def _check_branching(self):
        branching = self.branching
        if (
            len(branching) == 0
            or any(isinstance(b, (bool, np.bool_)) or not isinstance(b, Integral) for b in branching)
            or any(b < 2 for b in branching)
        ):
            raise ValueError(
                f"branching must be a non-empty tuple of ints >= 2 (children per node at "
                f"each depth); got {branching!r}."
            )
        return tuple(int(b) for b in branching)

    def _node(self):
        return LinearGate(alpha=self.alpha, max_iter=self.max_iter, tol=self.tol)

    def _build(self, branching):
        """A regular tree: nodes breadth first, leaves numbered left to right."""
        nodes, children = [self._node()], [[]]
        level = [0]
        n_leaves = 0
        for depth, width in enumerate(branching):
            last = depth == len(branching) - 1
            next_level = []
            for v in level:
                for _ in range(width):
                    if last:
                        children[v].append(("leaf", n_leaves))
                        n_leaves += 1
                    else:
                        nodes.append(self._node())
                        children.append([])
                        children[v].append(("node", len(nodes) - 1))
                        next_level.append(len(nodes) - 1)
            level = next_level
        self.nodes_, self.children_ = nodes, children
        self._set_paths()

    def _set_paths(self):
        paths = {}
        stack = [(0, [])]
        while stack:
            v, path = stack.pop()
            for c, (kind, index) in enumerate(self.children_[v]):
                if kind == "leaf":
                    paths[index] = path + [(v, c)]
                else:
                    stack.append((index, path + [(v, c)]))
        self.leaf_paths_ = [paths[k] for k in range(len(paths))]
        self.n_experts_ = len(self.leaf_paths_)

    def _order(self):
        """Node indices, every child before its parent."""
        order, stack = [], [0]
        while stack:
            v = stack.pop()
            order.append(v)
            stack.extend(index for kind, index in self.children_[v] if kind == "node")
        return order[::-1]

    # ------------------------------------------------------------------
    # Protocol

    def prepare(self, X, sample_weight):
        """The constants of a fit: the weighted standardisation of ``X``, shared by all nodes.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated inputs.
        sample_weight : array-like of shape (n_samples,) or None
            Per-sample weights; None for uniform weights.

        Returns
        -------
        context : object
            The root's :meth:`LinearGate.prepare` (weights normalised to sum
            to one, feature means and scales).
        """
        self._validate_params()
        self._check_branching()
        return self._node().prepare(X, sample_weight)

    # No docstring: it inherits BaseGate's; the class docstring says how the
    # targets propagate up the tree.
    def fit(self, X, resp, sample_weight=None):
        X = check_array(X, dtype=[np.float64, np.float32])
        resp_T = validate_resp(resp, X.shape[0])
        return self.fit_prepared(X, resp_T, self.prepare(X, sample_weight))

    def fit_prepared(self, X, resp_T, context):
        """:meth:`fit` in the core's layout, on validated input.

        Warm-starts every node when the tree has ``resp_T.shape[0]`` leaves
        and ``X`` as many features as before; otherwise builds the tree of
        ``branching`` and starts cold.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated inputs.
        resp_T : ndarray of shape (n_experts, n_samples)
            C-contiguous float64 targets whose columns sum to one.
        context : object
            :meth:`prepare` of the same ``X`` and sample weights.

        Returns
        -------
        self : HierarchicalGate
            The fitted gate.
        """
        n_experts = resp_T.shape[0]
        warm = (
            hasattr(self, "nodes_")
            and self.n_experts_ == n_experts
            and self.n_features_in_ == X.shape[1]
        )
        if not warm:
            branching = self._check_branching()
            n_leaves = int(np.prod(branching))
            if n_leaves != n_experts:
                raise ValueError(
                    f"HierarchicalGate(branching={branching}) has {n_leaves} leaves, one "
                    f"per expert, but the targets have {n_experts} experts: set "
                    f"n_experts={n_leaves} or a branching whose product is {n_experts}."
                )
            self._build(branching)
        # Posterior of each node: the sum of its leaves' responsibilities, bottom up.
        node_resp = [None] * len(self.nodes_)
        for v in self._order():
            targets = np.stack(
                [resp_T[index] if kind == "leaf" else node_resp[index] for kind, index in self.children_[v]]
            )
            node_resp[v] = targets.sum(axis=0)
            if len(self.children_[v]) < 2:
                continue
            mass = node_resp[v]
            # A sample the node does not explain has weight 0 and uniform targets.
            safe = np.where(mass > 0, mass, 1.0)
            node_targets = np.ascontiguousarray(
                np.where(mass > 0, targets / safe, 1.0 / targets.shape[0]), dtype=np.float64
            )
            # Node v's cross-entropy is weighted by w_i h_v(x_i): the leaves'
            # weighted cross-entropy is the sum of the nodes'.
            node_context = context._replace(weight=context.weight * mass)
            self.nodes_[v].fit_prepared(X, node_targets, node_context)
        self.n_features_in_ = X.shape[1]
        self.n_parameters_ = int(sum(self._node_parameters(v) for v in range(len(self.nodes_))))
        return self

    def _node_parameters(self, v):
        if len(self.children_[v]) < 2:
            return 0
        return int(self.nodes_[v].n_parameters_)

    def _node_log_proba_T(self, X):
        log_proba = []
        for v, node in enumerate(self.nodes_):
            if len(self.children_[v]) < 2:
                log_proba.append(np.zeros((1, X.shape[0])))
            else:
                log_proba.append(node.log_proba_T(X))
        return log_proba

    def log_proba_T(self, X):
        """Log leaf probabilities in the core's ``(n_experts, n_samples)`` layout.

        A leaf's log-probability is the sum of the nodes' log-probabilities
        along its path.

        %(log_proba_T_sections)s
        """
        check_is_fitted(self)
        X = check_array(X, dtype=[np.float64, np.float32])
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but HierarchicalGate is expecting "
                f"{self.n_features_in_} features as input."
            )
        node_log_proba = self._node_log_proba_T(X)
        out = np.zeros((self.n_experts_, X.shape[0]))
        for k, path in enumerate(self.leaf_paths_):
            for v, c in path:
                out[k] += node_log_proba[v][c]
        return out

    # No docstring: it inherits BaseGate's (the experts are the leaves).
    def predict_log_proba(self, X):
        return self.log_proba_T(X).T

    def penalty(self):
        """The sum of the nodes' L2 penalties, in units of the mean log-likelihood.

        Returns
        -------
        penalty : float
            The penalty term of the last fit.
        """
        check_is_fitted(self)
        return float(
            sum(node.penalty() for v, node in enumerate(self.nodes_) if len(self.children_[v]) >= 2)
        )

    def remove_experts(self, keep):
        """Keep only the leaves ``keep``; prune the tree above them.

        Each parent's gate drops the removed children (renormalising over
        the others, as :meth:`LinearGate.remove_experts`); a node left
        without children is removed from its parent in turn.

        Parameters
        ----------
        %(keep)s

        Returns
        -------
        self : HierarchicalGate
            The pruned gate.
        """
        check_is_fitted(self)
        keep = check_keep(keep, self.n_experts_)
        new_index = {int(old): new for new, old in enumerate(keep)}
        alive = [True] * len(self.nodes_)
        for v in self._order():
            kept = [
                c for c, (kind, index) in enumerate(self.children_[v])
                if (kind == "leaf" and index in new_index) or (kind == "node" and alive[index])
            ]
            if not kept:
                alive[v] = False
                continue
            if len(kept) < len(self.children_[v]) and len(self.children_[v]) >= 2 and len(kept) >= 1:
                self.nodes_[v].remove_experts(np.asarray(kept))
            self.children_[v] = [self.children_[v][c] for c in kept]
        # Renumber nodes (dropping dead ones) and leaves.
        node_index = {}
        for v in range(len(self.nodes_)):
            if alive[v]:
                node_index[v] = len(node_index)
        self.nodes_ = [node for v, node in enumerate(self.nodes_) if alive[v]]
        self.children_ = [
            [("leaf", new_index[index]) if kind == "leaf" else ("node", node_index[index])
             for kind, index in children]
            for v, children in enumerate(self.children_) if alive[v]
        ]
        self._set_paths()
        self.n_parameters_ = int(sum(self._node_parameters(v) for v in range(len(self.nodes_))))
        return self
