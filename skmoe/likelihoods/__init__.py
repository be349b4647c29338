"""Likelihoods: the density of the target under one expert (the task as an object).

A likelihood owns everything that depends on the kind of target: its
validation, the experts' outputs it needs, the per-expert log-likelihood used
by both the E-step and :meth:`log_prob`, its own parameters (noise
variances) and their M-step, the predictive moments, and the parameter
count for BIC. See :class:`BaseLikelihood` for the protocol and
"Extending skmoe" in the user guide for writing one.
"""

from ._base import BaseLikelihood
from ._categorical import CategoricalLikelihood
from ._gamma import GammaLikelihood
from ._gaussian import GaussianLikelihood
from ._poisson import PoissonLikelihood
from ._student_t import StudentTLikelihood

__all__ = [
    "BaseLikelihood",
    "CategoricalLikelihood",
    "GammaLikelihood",
    "GaussianLikelihood",
    "PoissonLikelihood",
    "StudentTLikelihood",
]
