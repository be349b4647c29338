"""Statistical inference for fitted mixtures of experts.

Standard errors from the observed information (:func:`standard_errors`, as
flexmix's ``refit()``), the likelihood-ratio test between nested fits with the
same number of experts (:func:`likelihood_ratio_test`), a parametric
bootstrap test of the number of experts (:func:`bootstrap_n_experts`, as
mixtools' ``boot.comp``), and a stable order of the experts
(:func:`order_experts`) so that tables, replicates and refits line up.
"""

from ._bootstrap import BootstrapResult, bootstrap_n_experts
from ._derivatives import LikelihoodDerivatives
from ._lrt import LikelihoodRatioResult, likelihood_ratio_test
from ._order import order_experts
from ._standard_errors import ParameterTable, standard_errors

__all__ = [
    "BootstrapResult",
    "LikelihoodDerivatives",
    "LikelihoodRatioResult",
    "ParameterTable",
    "bootstrap_n_experts",
    "likelihood_ratio_test",
    "order_experts",
    "standard_errors",
]
