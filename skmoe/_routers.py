"""Routers: one pure step from the E-step's posterior to the M-step's weights.

Soft EM is the identity router. The routing variants of the
mixture-of-experts literature (classification and stochastic EM, capacity
limits, expert choice, balanced responsibilities) are other routers with the
same ``route`` method; the driver only calls it and reads ``exact``.
"""

from collections import namedtuple

Routing = namedtuple("Routing", ["experts_T", "gate_T"])
Routing.__doc__ = """What the M-step fits: the experts' weights and the gate's soft targets.

Both are ``(n_experts, n_samples)`` arrays in the core layout; the columns
of ``gate_T`` sum to one.
"""


class SoftRouter:
    """Soft EM: experts and gate are fitted to the responsibilities.

    What the driver reads of a router: ``exact`` (with an exact expert
    M-step the objective cannot decrease), ``stopping`` (``"objective"``:
    the relative-change rule on the objective; ``"partition"``: stop when
    the hard partition of the experts' weights no longer changes;
    ``"budget"``: run ``max_iter`` iterations and keep the iterate with the
    best objective), :meth:`perturb_log_gate` (the training E-step's gate)
    and :meth:`route`.
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
        log_prob : ndarray of shape (n_samples,)
            Per-sample log-likelihood of the mixture.
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


def make_router(estimator):
    """The router of an estimator's parameters (soft EM today).

    Parameters
    ----------
    estimator : estimator
        The mixture of experts.

    Returns
    -------
    router : SoftRouter
        A router instance for one fit.
    """
    return SoftRouter()
