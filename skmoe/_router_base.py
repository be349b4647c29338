"""The router protocol: :class:`Routing`, soft EM and the base of the modifiers.

See :mod:`skmoe._routers` for the routers of the parameters and how they
compose.
"""

from collections import namedtuple

import numpy as np

Routing = namedtuple("Routing", ["experts_T", "gate_T"])
Routing.__doc__ = """What the M-step fits: the experts' weights and the gate's soft targets.

Both are ``(n_experts, n_samples)`` arrays in the core layout; the columns
of ``gate_T`` sum to one.
"""


def _both(weights_T):
    """Both targets from one weight matrix (columns summing to one)."""
    weights_T = np.ascontiguousarray(weights_T, dtype=np.float64)
    return Routing(weights_T, weights_T)


def _seed(rng):
    return int(rng.randint(np.iinfo(np.int32).max))


class SoftRouter:
    """Soft EM: experts and gate are fitted to the responsibilities.

    What the driver reads of a router: ``exact`` (with an exact expert
    M-step the objective cannot decrease), ``stopping`` (``"objective"``:
    the relative-change rule on the objective; ``"partition"``: stop when
    the hard partition of the experts' weights no longer changes;
    ``"budget"``: run ``max_iter`` iterations and keep the iterate with the
    best objective), :meth:`perturb_log_gate` (the training E-step's gate)
    and :meth:`route`. ``name`` is the assignment's name in the engine's
    combination table.
    """

    name = "soft"
    exact = True
    stopping = "objective"

    def perturb_log_gate(self, log_gate_T, rng):
        """The gate's log-probabilities as the training E-step uses them (unchanged).

        Parameters
        ----------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Log gate probabilities.
        rng : numpy.random.RandomState
            Random generator (for noisy gating).

        Returns
        -------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            The same array.
        """
        return log_gate_T

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The responsibilities, unchanged.

        Parameters
        ----------
        resp_T : ndarray of shape (n_experts, n_samples)
            Posterior probabilities of the experts (columns sum to one).
        log_prob : ndarray of shape (n_samples,) or None
            Per-sample log-likelihood of the mixture; None for the initial
            partition (before any E-step).
        sample_weight : ndarray of shape (n_samples,)
            User weights.
        rng : numpy.random.RandomState
            Random generator (for stochastic routers).

        Returns
        -------
        routing : Routing
            ``Routing(resp_T, resp_T)``.
        """
        return Routing(resp_T, resp_T)

    def __repr__(self):
        return f"{type(self).__name__}()"


class TopKRouter(SoftRouter):
    """Top-k routing (``top_k``): each sample's ``top_k`` largest responsibilities, renormalised.

    The experts' M-step then touches only the rows routed to them (the
    solvers skip zero-weight rows, the batched linear solver switches to
    its routed pass). The driver masks the gate to each sample's ``top_k``
    experts in every training E-step, so the responsibilities arrive with
    at most ``top_k`` non-zeros and pass unchanged; the truncation makes
    the guarantee the router's own.

    Parameters
    ----------
    top_k : int
        Experts kept per sample.
    """

    name = "top_k"

    def __init__(self, top_k):
        self.top_k = top_k

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The ``top_k`` largest responsibilities of each sample, renormalised.

        Parameters
        ----------
        resp_T : ndarray of shape (n_experts, n_samples)
            Responsibilities.
        log_prob : ndarray of shape (n_samples,) or None
            Per-sample log-likelihood (unused).
        sample_weight : ndarray of shape (n_samples,)
            User weights (unused).
        rng : numpy.random.RandomState
            Unused.

        Returns
        -------
        routing : Routing
            Experts and gate fitted to the truncated posterior.
        """
        return _both(top_k_columns(resp_T, self.top_k))

    def __repr__(self):
        return f"{type(self).__name__}(top_k={self.top_k!r})"


def top_k_columns(resp_T, top_k):
    """Keep the ``top_k`` largest entries of each column, renormalised (ties: lowest index).

    Parameters
    ----------
    resp_T : ndarray of shape (n_experts, n_samples)
        Non-negative weights, columns summing to one.
    top_k : int
        Entries kept per column.

    Returns
    -------
    kept_T : ndarray of shape (n_experts, n_samples)
        ``resp_T`` itself when no column has more than ``top_k`` non-zeros.
    """
    n_experts = resp_T.shape[0]
    if top_k >= n_experts or np.all(np.count_nonzero(resp_T, axis=0) <= top_k):
        return resp_T
    rank = np.argsort(np.argsort(-resp_T, axis=0, kind="stable"), axis=0, kind="stable")
    kept = np.where(rank < top_k, resp_T, 0.0)
    return kept / kept.sum(axis=0)


class _Modifier(SoftRouter):
    """A router that changes what another one (``inner``) does."""

    exact = False

    def __init__(self, inner):
        self.inner = inner

    @property
    def name(self):
        return self.inner.name

    @property
    def stopping(self):
        return self.inner.stopping

    def perturb_log_gate(self, log_gate_T, rng):
        """The inner router's training gate.

        Parameters
        ----------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            Log gate probabilities.
        rng : numpy.random.RandomState
            Random generator.

        Returns
        -------
        log_gate_T : ndarray of shape (n_experts, n_samples)
            What the inner router makes of it.
        """
        return self.inner.perturb_log_gate(log_gate_T, rng)

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The inner router's routing.

        Parameters
        ----------
        resp_T : ndarray of shape (n_experts, n_samples)
            Responsibilities.
        log_prob : ndarray of shape (n_samples,) or None
            Per-sample log-likelihood.
        sample_weight : ndarray of shape (n_samples,)
            User weights.
        rng : numpy.random.RandomState
            Random generator.

        Returns
        -------
        routing : Routing
            The inner router's.
        """
        return self.inner.route(resp_T, log_prob, sample_weight, rng)

    def __repr__(self):
        return f"{type(self).__name__}({self.inner!r})"
