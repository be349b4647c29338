"""How the EM loop calls a gate: one adapter for any gate, and the gate factory.

The EM driver never looks at the class of a gate. It wraps it in a
:class:`GateAdapter`, which uses the optional capabilities of the gate
protocol (see :mod:`skmoe.gates._base`) when the gate has them, found by the
presence of the method or attribute, and falls back on the minimal protocol
(``fit``/``predict_log_proba``) otherwise.
"""

from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state

from ..utils._array_api import float_dtype, get_namespace
from ._base import check_gate

# L-BFGS iterations of the linear gate per M-step. The gate warm-starts,
# so its optimisation continues across M-steps (generalised EM: every M-step
# still raises the objective); 5 was measured the fastest setting that reaches
# the same log-likelihood (benchmarks/README.md, "Gate iterations per M-step").
_GATE_ITER_PER_M_STEP = 5
# The built-in gates' L2 penalty for gate_alpha="auto". The linear gate's is
# a guard that keeps separable regions' weights finite and leaves the fit the
# maximum-likelihood one; the neural gates' regularises: at 1e-6 they fit the
# training responsibilities ever more sharply (overfitting: up to 4 nats per
# row lost held-out, and most of their EM iterations), 3e-3 was within 0.01 of
# the best held-out log-likelihood on the most data sets (benchmarks/README.md,
# "Neural gates: the default penalty").
_LINEAR_GATE_ALPHA = 1e-6
_NEURAL_GATE_ALPHA = 3e-3
# L-BFGS iterations of the MLP gates (NumPy and PyTorch) per M-step, their
# curvature pairs kept from one M-step to the next (benchmarks/README.md,
# "Neural gates: iterations per M-step").
_NEURAL_GATE_ITER_PER_M_STEP = 5


def _method(obj, name):
    """``obj.name`` if it is callable, else None."""
    member = getattr(obj, name, None)
    return member if callable(member) else None


def _shortcut(obj, fast, slow):
    """``obj.fast`` where it stands for ``obj.slow``: defined by the class of ``slow`` or below.

    A subclass that overrides ``slow`` but inherits ``fast`` from above it
    would have its override skipped by the shortcut: then None.
    """
    member = _method(obj, fast)
    if member is None:
        return None
    owner = {name: next((c for c in type(obj).__mro__ if name in vars(c)), None) for name in (fast, slow)}
    if owner[slow] is not None and (owner[fast] is None or not issubclass(owner[fast], owner[slow])):
        return None
    return member


class GateAdapter:
    """The gate as the EM loop sees it, whatever gate it wraps.

    Each method uses the gate's capability of the same purpose when the gate
    has it (a callable of that name; an attribute for ``splits_rows`` and
    ``n_parameters_``) and otherwise falls back on ``fit`` and
    ``predict_log_proba`` with the defaults below. The class of the gate is
    never looked at.

    Parameters
    ----------
    gate : object
        A gate following at least the minimal protocol:
        ``fit(X, resp, sample_weight=None)`` with ``resp`` of shape
        ``(n_samples, n_experts)`` and ``predict_log_proba(X)``.

    Attributes
    ----------
    estimator : object
        The wrapped gate (replaced by an unfitted clone when
        :meth:`remove_experts` cannot remove outputs from it).

    See Also
    --------
    make_gate : Build the gate of an EM run from the estimator's parameters.
    skmoe.gates.BaseGate : Base class of gates, documenting the protocol.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.gates import LinearGate
    >>> from skmoe.gates._protocol import GateAdapter
    >>> X = np.linspace(-1, 1, 6).reshape(-1, 1)
    >>> resp_T = np.ascontiguousarray([X[:, 0] < 0, X[:, 0] >= 0], dtype=float)
    >>> gate = GateAdapter(LinearGate())
    >>> context = gate.prepare(X, None)
    >>> gate.fit(X, resp_T, None, context).log_proba_T(X).shape
    (2, 6)
    >>> gate.remove_experts([1]), gate.n_parameters
    (True, 0)
    """

    def __init__(self, gate):
        self.estimator = gate

    def __repr__(self):
        return f"GateAdapter({self.estimator!r})"

    def prepare(self, X, sample_weight):
        """The gate's constants of an EM run, or None when it has none.

        Parameters
        ----------
        X : ndarray or sparse matrix of shape (n_samples, n_features)
            Validated inputs of the run.
        sample_weight : ndarray of shape (n_samples,) or None
            Sample weights of the run.

        Returns
        -------
        context : object or None
            What to pass to every :meth:`fit` of the run: the gate's
            ``prepare(X, sample_weight)`` when it has ``prepare`` and
            ``fit_prepared``, else None.
        """
        prepare = _method(self.estimator, "prepare")
        if prepare is None or _method(self.estimator, "fit_prepared") is None:
            return None
        return prepare(X, sample_weight)

    def fit(self, X, resp_T, sample_weight, context):
        """M-step of the gate: fit it to the responsibilities.

        Parameters
        ----------
        X : ndarray or sparse matrix of shape (n_samples, n_features)
            Validated inputs.
        resp_T : ndarray of shape (n_experts, n_samples)
            C-contiguous responsibilities, columns summing to one: float64,
            or float32 in a fit on float32 ``X``.
        sample_weight : ndarray of shape (n_samples,) or None
            Sample weights (for a gate fitted through ``fit``).
        context : object or None
            :meth:`prepare` of the same ``X`` and ``sample_weight``.

        Returns
        -------
        self : GateAdapter
            The adapter, its gate fitted.
        """
        fit_prepared = _method(self.estimator, "fit_prepared")
        if context is not None and fit_prepared is not None:
            fit_prepared(X, resp_T, context)
        else:
            self.estimator.fit(X, resp_T.T, sample_weight=sample_weight)
        return self

    def log_proba_T(self, X):
        """Log gate probabilities in the core's layout.

        Parameters
        ----------
        X : ndarray or sparse matrix of shape (n_samples, n_features)
            Validated inputs.

        Returns
        -------
        log_proba_T : ndarray of shape (n_experts, n_samples)
            C-contiguous log-probabilities: float32 for float32 ``X`` (kept
            end to end), float64 otherwise.
        """
        log_proba_T = _method(self.estimator, "log_proba_T")
        if log_proba_T is not None and not get_namespace(X)[1]:
            # Device arrays (skmoe._device): the gate answers on their device, in their dtype.
            return log_proba_T(X)
        dtype = float_dtype(X)
        prepared = _shortcut(self.estimator, "log_proba_prepared_T", "log_proba_T")
        if prepared is not None:
            # Skips the gate's own validation of X: a tenth of a small fit's E-step.
            return np.ascontiguousarray(prepared(X), dtype=dtype)
        if log_proba_T is not None:
            return np.ascontiguousarray(log_proba_T(X), dtype=dtype)
        return np.ascontiguousarray(self.estimator.predict_log_proba(X).T, dtype=dtype)

    def penalty(self):
        """Penalty term of the gate's last fit (0.0 when the gate has no ``penalty()``).

        Returns
        -------
        penalty : float
            In the units of the mean log-likelihood: the EM objective is the
            mean log-likelihood minus this.
        """
        penalty = _method(self.estimator, "penalty")
        return 0.0 if penalty is None else float(penalty())

    def remove_experts(self, keep):
        """Keep only the gate outputs ``keep``.

        Parameters
        ----------
        keep : array-like of int
            Indices of the experts kept, in their new order.

        Returns
        -------
        removed : bool
            True when the gate removed the outputs (it is now the softmax
            over the kept ones and warm-starts from there); False when it
            cannot: the gate is then replaced by an unfitted clone, so that
            its next fit starts cold with the new number of experts.
        """
        remove_experts = _method(self.estimator, "remove_experts")
        if remove_experts is not None:
            remove_experts(np.asarray(keep))
            return True
        self.estimator = clone(self.estimator)
        return False

    @property
    def n_parameters(self):
        """Free parameters of the fitted gate (``n_parameters_``; 0 when absent)."""
        return int(getattr(self.estimator, "n_parameters_", 0))

    @property
    def splits_rows(self):
        """Whether the gate's passes over the rows run on row threads (``splits_rows``)."""
        return bool(getattr(self.estimator, "splits_rows", False))


def make_gate(gate, *, backend, alpha, device, random_state):
    """The gate of one EM run, wrapped in a :class:`GateAdapter`.

    The built-in gates of the two backends start from the same weights (the
    Glorot draw of :class:`~skmoe.gates.MLPGate` from the seed), run the same
    optimiser and the same bounded number of warm-started iterations per
    M-step (generalised EM), so that on CPU in float64 ``backend="torch"``
    reproduces ``backend="numpy"`` to rounding.

    Parameters
    ----------
    gate : {"linear", "mlp"} or object
        ``"linear"``: :class:`~skmoe.gates.LinearGate` (NumPy) or a
        :class:`~skmoe.gates.TorchGate` without hidden layer (PyTorch), at
        ``_GATE_ITER_PER_M_STEP`` L-BFGS iterations per M-step; ``"mlp"``:
        :class:`~skmoe.gates.MLPGate` (NumPy) or a
        :class:`~skmoe.gates.TorchGate` (PyTorch) with one hidden layer of 16
        units, at ``_NEURAL_GATE_ITER_PER_M_STEP`` iterations per M-step. An
        object is checked with :func:`~skmoe.gates.check_gate` and cloned,
        with its ``random_state`` parameter, if any, set to the seed.
    backend : {"numpy", "torch"}
        Library of the built-in gates.
    alpha : float or "auto"
        L2 penalty of the built-in gates (the estimator's ``gate_alpha``);
        ``"auto"``: ``_LINEAR_GATE_ALPHA`` for ``"linear"``,
        ``_NEURAL_GATE_ALPHA`` for ``"mlp"``.
    device : str or None
        PyTorch device of the PyTorch gates.
    random_state : int, RandomState instance or None
        The seed of the gate: an int is used as it is (the estimators draw it
        from the fit's RandomState, one per restart, whatever the gate);
        from a RandomState instance or None one int is drawn, whatever the
        gate, so the draws that follow do not depend on it.

    Returns
    -------
    gate : GateAdapter
        The unfitted gate, wrapped.

    See Also
    --------
    GateAdapter : How the EM loop calls the gate.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.gates._protocol import make_gate
    >>> make_gate("linear", backend="numpy", alpha=1e-4, device=None,
    ...           random_state=np.random.RandomState(0))
    GateAdapter(LinearGate(max_iter=5))
    """
    if isinstance(random_state, Integral):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    if not isinstance(gate, str):
        check_gate(gate)
        gate = clone(gate)
        if "random_state" in gate.get_params():
            gate.set_params(random_state=seed)
        return GateAdapter(gate)
    if gate not in ("linear", "mlp"):
        raise ValueError(f"gate must be 'linear', 'mlp' or a gate object; got {gate!r}.")
    if backend not in ("numpy", "torch"):
        raise ValueError(f"backend must be 'numpy' or 'torch'; got {backend!r}.")
    if isinstance(alpha, str) and alpha == "auto":
        alpha = _LINEAR_GATE_ALPHA if gate == "linear" else _NEURAL_GATE_ALPHA
    # Both backends: the same start (the Glorot draw from the seed), the same
    # optimiser and the same budget per M-step, hence the same fit to rounding.
    if backend == "torch":
        from ._linear import LinearGate
        from ._torch import TorchGate

        if gate == "linear":
            return GateAdapter(TorchGate(
                hidden_layer_sizes=(), alpha=alpha, max_iter=_GATE_ITER_PER_M_STEP,
                tol=LinearGate().tol, device=device, random_state=seed,
            ))
        return GateAdapter(TorchGate(
            hidden_layer_sizes=(16,), alpha=alpha, max_iter=_NEURAL_GATE_ITER_PER_M_STEP,
            device=device, random_state=seed,
        ))
    if gate == "linear":
        from ._linear import LinearGate

        return GateAdapter(LinearGate(alpha=alpha, max_iter=_GATE_ITER_PER_M_STEP))
    from ._mlp import MLPGate

    return GateAdapter(
        MLPGate(alpha=alpha, max_iter=_NEURAL_GATE_ITER_PER_M_STEP, random_state=seed)
    )
