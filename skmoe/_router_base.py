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
    """Top-k routing (``top_k``): the posterior of the masked gate, unchanged.

    The driver masks the gate to each sample's ``top_k`` experts in every
    E-step, so the responsibilities are already zero outside them: each
    expert's M-step touches only the rows routed to it (the solvers skip
    zero-weight rows).
    """

    name = "top_k"


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
