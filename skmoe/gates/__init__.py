"""Gating networks: which expert to trust where.

See :mod:`skmoe.gates._base` for the protocol a custom gate must follow.
:class:`TorchGate` imports PyTorch only when it is fitted or used, so this
module imports without PyTorch installed.
"""

from ._base import BaseGate, check_gate
from ._hierarchical import HierarchicalGate
from ._linear import LinearGate
from ._mlp import MLPGate
from ._torch import TorchGate

__all__ = ["BaseGate", "HierarchicalGate", "LinearGate", "MLPGate", "TorchGate", "check_gate"]
