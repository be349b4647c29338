"""Visual inspection of fitted mixtures of experts.

Displays in the style of :class:`sklearn.inspection.DecisionBoundaryDisplay`:
``from_estimator`` computes, ``plot`` draws and can be called again to
restyle without recomputing. matplotlib is imported only when drawing
(``pip install skmoe[plot]``), so this module imports without it.

- :class:`GateDisplay`: which expert the gate trusts where, over two features.
- :class:`ExpertsDisplay`: each expert's curve where the gate trusts it, the
  pooled prediction with its uncertainty band, and the gate, along one
  feature.
- :class:`ConvergenceDisplay`: the log-likelihood of EM for every restart.

An expert has the same colour in every display (``tab10`` by default).
"""

from ._convergence_display import ConvergenceDisplay
from ._experts_display import ExpertsDisplay
from ._gate_display import GateDisplay

__all__ = ["ConvergenceDisplay", "ExpertsDisplay", "GateDisplay"]
