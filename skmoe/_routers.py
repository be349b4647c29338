"""Routers: one pure step from the E-step's posterior to the M-step's weights.

Soft EM is the identity router. The routing variants of the
mixture-of-experts literature are other routers with the same interface
(the table of "Routing and EM variants" in the user guide):

* an *assignment* router decides which experts fit which samples:
  :class:`SoftRouter` (soft EM), :class:`TopKRouter` (``top_k``: each
  sample picks its experts by the gate, as at prediction, and the gate
  learns from the full posterior), :class:`ClassificationRouter`
  (``algorithm="cem"``),
  :class:`StochasticRouter` (``algorithm="sem"``) and
  :class:`ExpertChoiceRouter` (``routing="expert_choice"``);
* *modifiers* wrap one: :class:`BalancedRouter` (``balance``, before the
  assignment), :class:`CapacityRouter` (``capacity_factor``, after it) and
  :class:`NoisyRouter` (``gate_noise``, in the E-step).

:func:`make_router` builds the composition from an estimator's parameters
and refuses the combinations that make no sense. The array work is in
:mod:`skmoe._routing` (content keys, draws, ranks), :mod:`skmoe._routing_capacity`
and :mod:`skmoe._routing_balance`; see :mod:`skmoe._routing` for how every
router treats a row of weight 2 as two copies of the row.
"""

import math
from numbers import Integral, Real

import numpy as np

from ._router_assignments import (
    ClassificationRouter,
    ExpertChoiceRouter,
    StochasticRouter,
)
from ._router_base import Routing, SoftRouter, TopKRouter
from ._router_modifiers import BalancedRouter, CapacityRouter, NoisyRouter

__all__ = [
    "BalancedRouter",
    "CapacityRouter",
    "ClassificationRouter",
    "ExpertChoiceRouter",
    "NoisyRouter",
    "Routing",
    "SoftRouter",
    "StochasticRouter",
    "TopKRouter",
    "make_router",
]


def _refuse(parameter, value, problem, fix):
    raise ValueError(f"{parameter}={value!r} {problem}. {fix}")


def _balance_targets(balance, n_experts):
    """Target shares of ``balance`` (None, "uniform" or shares), checked."""
    if balance is None:
        return None
    if isinstance(balance, str):
        if balance != "uniform":
            _refuse("balance", balance, "is not a known option",
                    'Use None, "uniform" or an array of n_experts target shares.')
        return np.full(n_experts, 1.0 / n_experts)
    try:
        targets = np.asarray(balance, dtype=np.float64)
    except (TypeError, ValueError):
        _refuse("balance", balance, "is not an array of numbers",
                'Use None, "uniform" or an array of n_experts target shares.')
    if targets.ndim != 1 or targets.size != n_experts:
        _refuse("balance", balance, f"has shape {targets.shape} but n_experts={n_experts}",
                "Give one target share per expert, e.g. balance='uniform'.")
    if not np.all(np.isfinite(targets)):
        _refuse("balance", balance, "has non-finite shares", "Give finite, positive target shares.")
    if np.any(targets < 0):
        _refuse("balance", balance, "has negative shares",
                "Target shares must be positive (they are normalised to sum to one).")
    if targets.sum() <= 0:
        _refuse("balance", balance, "sums to zero",
                "Give positive target shares (they are normalised to sum to one).")
    if np.any(targets == 0):
        _refuse("balance", balance, "gives an expert a zero share",
                "Every target share must be positive (an expert with no share would be "
                "starved and removed); use fewer experts instead.")
    return targets / targets.sum()


def make_router(estimator):
    """The router of an estimator's routing parameters, after checking they go together.

    The assignment (``algorithm``, ``routing``, ``top_k``), wrapped in
    :class:`BalancedRouter` (``balance``), :class:`CapacityRouter`
    (``capacity_factor`` under token choice) and :class:`NoisyRouter`
    (``gate_noise > 0``), in that order.

    Parameters
    ----------
    estimator : estimator
        The mixture of experts (its ``n_experts``, ``top_k``, ``algorithm``,
        ``routing``, ``capacity_factor``, ``balance``, ``gate_noise``).

    Returns
    -------
    router : SoftRouter
        A router instance for one fit.

    Raises
    ------
    ValueError
        For a combination that makes no sense, naming the parameter and the fix.
    """
    n_experts = estimator.n_experts
    top_k = getattr(estimator, "top_k", None)
    algorithm = getattr(estimator, "algorithm", "em")
    routing = getattr(estimator, "routing", "token_choice")
    capacity_factor = getattr(estimator, "capacity_factor", None)
    gate_noise = getattr(estimator, "gate_noise", 0.0)
    if algorithm not in ("em", "cem", "sem"):
        _refuse("algorithm", algorithm, "is not a known option", 'Use "em", "cem" or "sem".')
    if routing not in ("token_choice", "expert_choice"):
        _refuse("routing", routing, "is not a known option",
                'Use "token_choice" or "expert_choice".')
    if capacity_factor is not None and (
        isinstance(capacity_factor, bool) or not isinstance(capacity_factor, Real)
        or not capacity_factor >= 1 or not math.isfinite(capacity_factor)
    ):
        _refuse("capacity_factor", capacity_factor, "must be None or a finite number >= 1",
                "Below 1 the experts' capacities could not hold every sample, and skmoe "
                "drops none; use e.g. capacity_factor=1.25.")
    if isinstance(gate_noise, bool) or not isinstance(gate_noise, Real) or not (
        0 <= gate_noise < math.inf
    ):
        _refuse("gate_noise", gate_noise, "must be a finite number >= 0",
                "It is the standard deviation of the noise on the gate logits; 0 turns it off.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, Integral)):
        _refuse("top_k", top_k, "must be None or an int", "Use e.g. top_k=2.")
    targets = _balance_targets(getattr(estimator, "balance", None), n_experts)
    if routing == "expert_choice":
        if top_k is not None:
            _refuse("top_k", top_k, "does not apply with routing='expert_choice'",
                    "Each expert chooses its samples there (capacity_factor sets how many); "
                    "set top_k=None, or use routing='token_choice' with top_k.")
        if algorithm != "em":
            _refuse("algorithm", algorithm, "does not apply with routing='expert_choice'",
                    "The experts choose the samples themselves; use algorithm='em', or "
                    f"routing='token_choice' with algorithm={algorithm!r}.")
    elif capacity_factor is not None and algorithm == "em" and top_k is None:
        _refuse("capacity_factor", capacity_factor,
                "has no effect with soft EM (algorithm='em') and neither top_k nor "
                "routing='expert_choice': every sample goes to every expert",
                "Set top_k (e.g. top_k=1), algorithm='cem' or 'sem', or "
                "routing='expert_choice'; or leave capacity_factor=None.")
    if targets is not None and top_k is not None:
        _refuse("balance", getattr(estimator, "balance", None),
                "cannot be combined with top_k: the masked posterior of top_k may admit "
                "no balanced solution",
                "To limit the experts' loads under top_k use capacity_factor; or set "
                "top_k=None to balance the full posterior.")

    if routing == "expert_choice":
        router = ExpertChoiceRouter(capacity_factor)
    elif algorithm == "cem":
        router = ClassificationRouter()
    elif algorithm == "sem":
        router = StochasticRouter()
    elif top_k is not None:
        router = TopKRouter(top_k)
    else:
        router = SoftRouter()
    if targets is not None:
        router = BalancedRouter(router, targets)
    if capacity_factor is not None and routing == "token_choice":
        router = CapacityRouter(router, capacity_factor, top_k if algorithm == "em" else 1)
    if gate_noise > 0:
        router = NoisyRouter(router, gate_noise)
    return router
