"""Assignment routers: classification EM, stochastic EM and expert choice.

Every ``route`` takes and returns what :meth:`skmoe._router_base.SoftRouter.route`
documents.
"""

import math

import numpy as np

from . import _routing, _routing_capacity
from ._router_base import Routing, SoftRouter, _both, _fill_empty, _hard, _listed, _seed


class ClassificationRouter(SoftRouter):
    """Classification EM (``algorithm="cem"``): each sample wholly to its most responsible expert.

    ``argmax_k r_ki``, ties to the lowest index. Maximises the
    classification (complete-data) likelihood ``sum_i log g_{z_i}(x_i)
    p_{z_i}(y_i | x_i)`` over the partition and the parameters; its fixed
    points are not the maximum-likelihood estimate of the mixture. Stops when
    the partition no longer changes.
    """

    name = "cem"
    exact = False
    stopping = "partition"

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The partition, for experts and gate alike (an empty expert takes its best samples)."""
        weights, routed = _hard(np.argmax(resp_T, axis=0), resp_T.shape[0])
        return _both(*_fill_empty(weights, resp_T, log_prob, sample_weight, routed=routed))


class StochasticRouter(SoftRouter):
    """Stochastic EM (``algorithm="sem"``): one expert drawn per sample from its responsibilities.

    The draws are seeded by the fit's ``random_state`` and are functions of
    each row's content (copies of a row draw alike, as a row of weight 2
    does). The chain does not converge to a point: EM runs ``max_iter``
    iterations and keeps the iterate with the best objective.
    """

    name = "sem"
    exact = False
    stopping = "budget"

    def route(self, resp_T, log_prob, sample_weight, rng):
        """The drawn partition, for experts and gate alike (the seed drawn from ``rng``)."""
        keys = _routing.content_keys(resp_T, log_prob)
        u = _routing.keyed_uniforms(keys, _seed(rng))[0]
        weights, routed = _hard(_routing.draw_experts(resp_T, u), resp_T.shape[0])
        return _both(*_fill_empty(weights, resp_T, log_prob, sample_weight, keys=keys, routed=routed))


def _capacity_units(sample_weight):
    """Rows of the weighted set: a row of integer weight w counts w rows."""
    if np.all(sample_weight == np.round(sample_weight)):
        return float(sample_weight.sum())
    return float(sample_weight.sum() / sample_weight.min())


class ExpertChoiceRouter(SoftRouter):
    """Expert choice (``routing="expert_choice"``, Zhou et al. 2022).

    Each expert takes the samples it is most responsible for up to
    ``c = ceil(capacity_factor * n / n_experts)`` rows (by weight: a row of
    weight 2 counts two; the boundary row is split); a sample that no expert
    took goes to its most responsible expert, outside ``c``, so none is
    dropped. A sample taken by several experts is shared among them in
    proportion to its responsibilities.

    Parameters
    ----------
    capacity_factor : float, default=None
        ``None`` means 1.
    """

    name = "expert_choice"
    exact = False

    def __init__(self, capacity_factor=None):
        self.capacity_factor = capacity_factor

    def capacity(self, sample_weight, n_experts):
        """Weight each expert takes, in the units of ``sample_weight``: ``ceil(capacity_factor * n / n_experts)`` rows."""
        factor = 1.0 if self.capacity_factor is None else float(self.capacity_factor)
        n_rows = _capacity_units(sample_weight)
        rows = min(math.ceil(factor * n_rows / n_experts - 1e-9), n_rows)
        return rows / n_rows * float(sample_weight.sum())

    def route(self, resp_T, log_prob, sample_weight, rng):
        """Each expert's picks plus the fallbacks, for experts and gate alike; the initial partition passes through."""
        if log_prob is None:
            return Routing(resp_T, resp_T)
        rank = _routing.sample_rank(resp_T, log_prob)
        capacity = self.capacity(sample_weight, resp_T.shape[0])
        picks = _routing_capacity.expert_choice_picks(resp_T, sample_weight, capacity, rank)
        return _listed(_routing_capacity.expert_choice_weights(picks, resp_T))

    def __repr__(self):
        return f"{type(self).__name__}(capacity_factor={self.capacity_factor!r})"
