"""Feed-forward (MLP) softmax gate in NumPy/SciPy, fitted to soft targets with L-BFGS.

The objective, its gradient and everything but the architecture are shared
with :class:`~skmoe.gates.LinearGate` (:mod:`skmoe.gates._softmax`); the
pure helpers (layout, Glorot start, standardisation) live in
:mod:`skmoe.gates._network`, shared with the PyTorch gate.
"""

from numbers import Integral, Real
from typing import ClassVar

from sklearn.utils import check_random_state

from ..utils._compat import Interval, StrOptions
from ._network import ACTIVATIONS, check_hidden_layer_sizes, initial_parameters
from ._softmax import _BaseSoftmaxGate


class _BaseNetworkGate(_BaseSoftmaxGate):
    """A softmax gate of hidden layers: the parameters and the cold start of MLPGate and TorchGate.

    Subclasses have the parameters ``hidden_layer_sizes``, ``activation``,
    ``alpha``, ``max_iter``, ``tol`` and ``random_state``; a cold start
    draws the Glorot weights from ``random_state`` (the same draw for both
    gates, so the two backends start alike), then calls
    :meth:`_seed_more` with the same generator. The defaults of
    ``__init__`` are :class:`MLPGate`'s.
    """

    _parameter_constraints: ClassVar[dict] = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        hidden_layer_sizes=(16,),
        activation="tanh",
        alpha=3e-3,
        max_iter=200,
        tol=1e-7,
        random_state=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _hidden_layers(self):
        return check_hidden_layer_sizes(self.hidden_layer_sizes)

    def _initial_parameters(self, shapes, prior):
        rng = check_random_state(self.random_state)
        coefs, intercepts = initial_parameters(shapes, self.activation, rng, prior)
        self._seed_more(rng)
        return coefs, intercepts

    def _seed_more(self, rng):
        """Draw the other seeds of a cold start from ``rng``, after the weights."""


class MLPGate(_BaseNetworkGate):
    """Feed-forward softmax gate, ``g(x) = softmax(f(x))``, fitted to soft targets.

    ``f`` is a fully connected network with ``hidden_layer_sizes`` hidden
    layers and the given activation. The gate minimises the same objective as
    :class:`~skmoe.gates.LinearGate`, the weighted mean cross-entropy between
    the targets and the gate plus ``alpha / 2`` times the sum of squared
    weights (biases are not penalised), with L-BFGS (a strong-Wolfe line
    search, :mod:`skmoe.gates._lbfgs`; SciPy's L-BFGS-B without hidden
    layer) and a backpropagated gradient computed in the same pass as the
    loss. The features are standardised internally (weighted mean and
    standard deviation) so the fit does not depend on the units of ``X``.
    Successive calls to :meth:`fit` with the same shapes warm-start from the
    current weights, and within one EM run (the same :meth:`prepare`) the
    L-BFGS curvature pairs carry over too, which keeps the gate M-step of EM
    cheap: ``gate="mlp"`` takes 5 iterations per M-step (generalised EM).
    The optimiser runs with one BLAS thread, its passes over the rows on
    the row threads of the EM loop (``splits_rows``).

    Read more in the :ref:`User Guide <moe_em>`.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(16,)
        Width of each hidden layer. ``()`` gives the linear softmax gate.
    activation : {"tanh", "relu", "logistic"}, default="tanh"
        Activation of the hidden units.
    alpha : float, default=3e-3
        L2 penalty on the weights (first layer in standardised units),
        against the weighted mean cross-entropy. The estimators'
        ``gate="mlp"`` uses the same value by default (``gate_alpha="auto"``):
        measured over 23 data sets, smaller penalties let the gate fit EM's
        training responsibilities ever more sharply (overfitting, and many
        more EM iterations), larger ones underfit.
    max_iter : int, default=200
        Maximum number of L-BFGS iterations per call to :meth:`fit` (the
        estimators' ``gate="mlp"`` uses 5: a bounded M-step).
    tol : float, default=1e-7
        Gradient tolerance (infinity norm) of L-BFGS.
    random_state : int, RandomState instance or None, default=None
        Seeds the Glorot initialisation of a cold start (the same draw as
        :class:`~skmoe.gates.TorchGate`'s, so the two start alike).

    Attributes
    ----------
    coefs_ : list of ndarray
        Weights of each layer, shape ``(n_out, n_in)``, input layer first, in
        the units of ``X``.
    intercepts_ : list of ndarray
        Biases of each layer, shape ``(n_out,)``, in the units of ``X``.
    n_features_in_ : int
        Number of input features.
    n_experts_ : int
        Number of experts (outputs).
    n_parameters_ : int
        Number of weights and biases less the softmax redundancy of the last
        layer (``n_in + 1``); equals ``(n_experts - 1) * (n_features + 1)``
        without hidden layer.
    n_iter_ : int
        L-BFGS iterations of the last call to :meth:`fit`.
    loss_ : float
        Penalised objective at the solution of the last call to :meth:`fit`;
        its penalty term is :meth:`penalty`.

    See Also
    --------
    LinearGate : Softmax gate without hidden layer.
    TorchGate : The same model family trained with PyTorch.

    Notes
    -----
    The standardisation is folded into the first layer: the optimiser works
    on standardised weights ``W_std`` and the first-layer product is formed
    with the raw ``X`` through ``W_std / scale``, so no standardised copy of
    ``X`` is made. With float32 input whose features have a mean much larger
    than their spread, centre ``X`` first to avoid cancellation.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.gates import MLPGate
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(200, 2))
    >>> xor = (X[:, 0] * X[:, 1] > 0).astype(int)
    >>> resp = np.eye(2)[xor]
    >>> gate = MLPGate(hidden_layer_sizes=(8,), random_state=0).fit(X, resp)
    >>> bool((gate.predict(X) == xor).mean() > 0.95)
    True
    """

    splits_rows = True
