"""Softmax / MLP gate trained with PyTorch (CPU or GPU), or a user's network.

PyTorch is imported inside the functions that need it, through
:func:`skmoe.utils._optional.import_torch`, so this module (and
``import skmoe``) works without it. PyTorch evaluates the objective and its
gradient (:mod:`skmoe.gates._torch_network`, :mod:`skmoe.gates._torch_problem`);
the full-batch optimiser is the NumPy gates' (so both backends take the same
path), mini-batch training is PyTorch's Adam (:mod:`skmoe.gates._torch_minibatch`),
and a user's network is handled in :mod:`skmoe.gates._torch_module`. Fitted
parameters are stored as NumPy arrays; the tensors an instance holds (the
input array moved to the device, the problem and optimiser state of an EM
run, a user's live module) are caches, never pickled.
"""

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ..utils import _optional
from ..utils._compat import Interval
from ..utils._threads import row_parallel, torch_threads
from ._mlp import _BaseNetworkGate
from ._network import pack, unpack
from ._torch_minibatch import adam, fit_generator, shuffle_seed
from ._torch_module import ModuleGateMixin
from ._torch_network import (
    BuiltinNetwork,
    forward_logits_T,
    resolve_device,
    tensor_context,
    tensor_like,
    tensor_torch,
    torch_dtype,
    torch_objective,
)
from ._torch_problem import TorchProblem

# torch_objective, the autograd reference of the objective, is imported from here by the tests.
__all__ = ["TorchGate", "torch_objective"]


class _RunState:
    """What a gate keeps from one M-step of an EM run to the next (never pickled).

    The run is the ``context`` object the EM loop passes to every M-step.
    """

    def __init__(self, context):
        self.context = context
        self.problem, self.problem_key = None, None  # the built-in network's TorchProblem
        self.adam, self.adam_size = None, None  # Adam's state, and its number of parameters


class TorchGate(ModuleGateMixin, _BaseNetworkGate):
    """Softmax or MLP gate trained with PyTorch, on CPU or GPU, or a user's network.

    The same model family and objective as :class:`~skmoe.gates.MLPGate`:
    weighted mean cross-entropy between the soft targets and
    ``softmax(f(x))`` plus ``alpha / 2`` times the sum of squared weights
    (first layer in standardised units, biases not penalised), with the
    features standardised internally by their weighted mean and standard
    deviation. With ``hidden_layer_sizes=()`` it is the linear softmax gate
    of :class:`~skmoe.gates.LinearGate`. PyTorch evaluates the objective and
    its gradient (the backward pass written out; autograd for ``module``), in
    float64 on CPU (float32 on an accelerator when ``X`` is float32);
    successive calls to :meth:`fit` with the same shapes warm-start from the
    current weights.

    Full-batch training (``batch_size=None``) uses the optimiser of the
    NumPy gates on the same start (the same Glorot draw from
    ``random_state``): SciPy's L-BFGS-B without hidden layer, skmoe's
    L-BFGS (:mod:`skmoe.gates._lbfgs`) with hidden layers. On CPU in float64
    it therefore follows :class:`~skmoe.gates.LinearGate` /
    :class:`~skmoe.gates.MLPGate` to rounding. With ``batch_size`` set, each
    fit runs ``epochs_per_step`` epochs of mini-batch Adam instead, for data
    too large for full-batch L-BFGS.

    Read more in the :ref:`User Guide <moe_torch>`.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=()
        Width of each hidden layer; ``()`` is the linear softmax gate.
        Ignored when ``module`` is given.
    activation : {"tanh", "relu", "logistic"}, default="tanh"
        Activation of the hidden units. Ignored when ``module`` is given.
    alpha : float, default=1e-4
        L2 penalty on the weights (first layer in standardised units). With
        ``module``, on every parameter of two or more dimensions.
    max_iter : int, default=100
        Maximum number of L-BFGS iterations per call to :meth:`fit`
        (full-batch training).
    tol : float, default=1e-7
        Gradient tolerance (infinity norm) of L-BFGS (full-batch training).
    batch_size : int or None, default=None
        None trains full-batch with L-BFGS. An int trains with mini-batch
        Adam on batches of this many rows, shuffled by a
        :class:`torch.Generator` seeded from ``random_state`` (reproducible
        on CPU). Each fit runs a fixed budget of ``epochs_per_step`` epochs,
        evaluates the whole objective at the start and after each epoch, and
        keeps the best of these iterates, so a fit never raises the
        objective (the EM loop's objective keeps rising).

        .. versionadded:: 0.2
    learning_rate : float, default=1e-3
        Adam's learning rate (mini-batch training).

        .. versionadded:: 0.2
    epochs_per_step : int, default=1
        Epochs of Adam per call to :meth:`fit`, i.e. per EM M-step
        (mini-batch training).

        .. versionadded:: 0.2
    module : torch.nn.Module, callable or None, default=None
        A network of your own mapping standardised inputs ``(n_samples,
        n_features)`` to logits ``(n_samples, n_experts)``, or a factory
        called as ``module(n_features, n_experts)`` that returns one (under
        ``torch.manual_seed`` drawn from ``random_state``). A module is
        deep-copied at every cold start, never modified; it is moved to the
        device and dtype of the fit and used in evaluation mode
        (``module.eval()``: a deterministic objective). The fitted
        parameters and buffers are stored as NumPy arrays in
        ``module_state_``. Unlike the built-in networks, such a gate needs
        PyTorch to predict.

        .. versionadded:: 0.2
    device : str or None, default=None
        PyTorch device, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:1"``. ``None``
        uses ``"cuda"`` when available, else ``"cpu"``. Asking for CUDA when
        it is not available raises ``ValueError`` at fit.
    random_state : int, RandomState instance or None, default=None
        Seeds the Glorot initialisation of a cold start (a NumPy draw, the
        same as :class:`~skmoe.gates.MLPGate`'s, so it does not depend on
        the device), the factory of ``module`` and the shuffling of
        mini-batches.

    Attributes
    ----------
    coefs_ : list of ndarray
        Weights of each layer, shape ``(n_out, n_in)``, input layer first, in
        the units of ``X`` (float64 NumPy arrays). Built-in networks only.
    intercepts_ : list of ndarray
        Biases of each layer, shape ``(n_out,)``, in the units of ``X``.
        Built-in networks only.
    module_state_ : dict of str to ndarray
        ``state_dict()`` of the fitted ``module``, as NumPy arrays. With
        ``module`` only.
    input_mean_, input_scale_ : ndarray of shape (n_features,)
        Standardisation of the inputs of ``module`` (from its cold start).
        With ``module`` only.
    output_index_ : ndarray of int
        Outputs of ``module`` that are the gate's logits (all, unless
        experts were removed). With ``module`` only.
    n_features_in_ : int
        Features seen by :meth:`fit`.
    n_experts_ : int
        Outputs of the gate, one per expert.
    n_parameters_ : int
        Free parameters: as :class:`~skmoe.gates.MLPGate` counts them for the
        built-in networks; with ``module``, its trainable parameter entries.
    n_iter_ : int
        L-BFGS iterations (Adam steps with ``batch_size``) of the last call
        to :meth:`fit`.
    loss_ : float
        Penalised objective at the solution of the last call to :meth:`fit`.
    device_ : str
        Device the last fit ran on.

    See Also
    --------
    LinearGate : NumPy softmax gate.
    MLPGate : NumPy MLP gate.

    Notes
    -----
    Fitted gates with the built-in networks pickle without tensors and
    predict without PyTorch: on CPU, or when PyTorch or the fit's device is
    missing, the log-probabilities are computed with NumPy (as
    :class:`~skmoe.gates.MLPGate` computes them); on an accelerator, with
    PyTorch on the device.

    The EM loop fits the gate once per iteration on the same ``X``. To avoid
    moving ``X`` to the device every time, the gate caches the device tensor
    of the last array it saw, keyed on ``id(X)``, its shape, dtype and data
    pointer (``X.__array_interface__['data'][0]``), and keeps a reference to
    that array so its ``id`` cannot be reused while cached. Modifying ``X``
    in place between calls is therefore not noticed: pass a new array
    instead. Within one EM run (the same :meth:`prepare`) the objective is
    built once, with its buffers and the device copies of the
    standardisation, and each M-step only gives it new targets. The cache,
    that objective, the L-BFGS curvature pairs and Adam's moments kept
    between the fits of one EM run are dropped when the gate is pickled,
    copied or cloned.

    Threads follow the rule of the NumPy gates: PyTorch runs on one thread,
    and a pass over at least 8,192 rows (the data, or a mini-batch) is split
    into one chunk per row thread of :func:`~skmoe.utils._threads.row_parallel`
    (as many as BLAS had threads), each chunk in its own Python thread.
    PyTorch's own threads spin while they wait: on busy cores they were
    measured 12x slower per evaluation than one thread.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.gates import TorchGate
    >>> X = np.linspace(-2, 2, 9).reshape(-1, 1)
    >>> middle = (np.abs(X[:, 0]) < 1).astype(int)
    >>> gate = TorchGate((4,), max_iter=200, device="cpu", random_state=0)
    >>> gate.fit(X, np.eye(2)[middle]).predict(X)
    array([0, 0, 0, 1, 1, 1, 0, 0, 0])

    A network of your own, built by a factory:

    >>> import torch
    >>> def network(n_features, n_experts):
    ...     return torch.nn.Sequential(torch.nn.Linear(n_features, 8), torch.nn.ReLU(),
    ...                                torch.nn.Linear(8, n_experts))
    >>> gate = TorchGate(module=network, max_iter=200, device="cpu", random_state=0)
    >>> gate.fit(X, np.eye(2)[middle]).predict(X)
    array([0, 0, 0, 1, 1, 1, 0, 0, 0])
    """

    # The gate does not use NumPy's BLAS threads: the EM loop may hold them to one.
    splits_rows = True

    _parameter_constraints: ClassVar[dict] = {
        **_BaseNetworkGate._parameter_constraints,
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "epochs_per_step": [Interval(Integral, 1, None, closed="left")],
        "module": [callable, None],
        "device": [str, None],
    }

    def __init__(
        self,
        hidden_layer_sizes=(),
        activation="tanh",
        alpha=1e-4,
        max_iter=100,
        tol=1e-7,
        batch_size=None,
        learning_rate=1e-3,
        epochs_per_step=1,
        module=None,
        device=None,
        random_state=None,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, alpha=alpha,
            max_iter=max_iter, tol=tol, random_state=random_state,
        )
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.epochs_per_step = epochs_per_step
        self.module = module
        self.device = device

    # ------------------------------------------------------------------
    # Device, dtype, threads and the state of a run

    def _device_tensor(self, torch, X, device, dtype, store):
        """``X`` (NumPy or a tensor) on ``device``; the cached tensor when ``X`` is the array last cached."""
        is_tensor = isinstance(X, torch.Tensor)
        key = (
            id(X),
            tuple(X.shape),
            str(X.dtype),
            X.data_ptr() if is_tensor else X.__array_interface__["data"][0],
            str(device),
            dtype,
        )
        cache = self.__dict__.get("_X_cache")
        if cache is not None and cache[0] == key and cache[1] is X:
            return cache[2]
        if is_tensor:  # device-resident EM: converted where it is (no copy when it is already right)
            tensor = X.to(device=device, dtype=dtype)
        else:
            tensor = torch.as_tensor(X, dtype=dtype, device=device)
        if store:
            self._X_cache = (key, X, tensor)
        return tensor

    def _fit_device_tensor(self, torch, X):
        """``X`` on the device and in the dtype of the fit (cached between fits)."""
        device = resolve_device(torch, self.device)
        self.device_ = str(device)
        return self._device_tensor(torch, X, device, torch_dtype(torch, device, X.dtype), True)

    def _threads(self, n_rows, pool):
        """One PyTorch thread: the row pool gives the parallelism (see :class:`TorchProblem`)."""
        return torch_threads(_optional.import_torch(), 1)

    def _run_state(self, context):
        """The :class:`_RunState` of the run of ``context``, new at its first M-step."""
        state = self.__dict__.get("_torch_state")
        if state is None or state.context is not context:
            state = self._torch_state = _RunState(context)
        return state

    # ------------------------------------------------------------------
    # Device-resident EM (skmoe._device): X, the targets and the log-probabilities as tensors

    def fit_device(self):
        """The :class:`torch.device` the gate fits on; the EM loop may keep its arrays there.

        The capability by which :func:`skmoe._device.device_context` finds
        that the gate takes tensors: :meth:`prepare`, :meth:`fit_prepared`
        and :meth:`log_proba_T` accept ``X`` and the targets as tensors on
        this device and return the log-probabilities there, so that no array
        of the size of ``X`` crosses to the host.

        Returns
        -------
        device : torch.device
            The resolved ``device`` (ValueError for an unavailable one).
        """
        return resolve_device(_optional.import_torch(), self.device)

    def prepare(self, X, sample_weight):
        # Documented where inherited from. A tensor X (device-resident EM):
        # the standardisation computed on its device; its mean and scale
        # (n_features numbers) come to the host once per run.
        torch = tensor_torch(X)
        if torch is None:
            return super().prepare(X, sample_weight)
        self._validate_params()
        return tensor_context(torch, X, sample_weight)

    def _initial_parameters(self, shapes, prior):
        # The experts' shares of a cold start: n_experts numbers to the host.
        torch = tensor_torch(prior)
        if torch is not None:
            prior = prior.detach().cpu().double().numpy()
        return super()._initial_parameters(shapes, prior)

    def log_proba_T(self, X):
        # Documented where inherited from. A tensor X: the log-probabilities
        # as a tensor of its device and dtype (device-resident EM).
        torch = tensor_torch(X)
        if torch is None:
            return super().log_proba_T(X)
        check_is_fitted(self)
        self._check_n_features_in(X)
        if self.module is not None:
            torch, device = self._module_torch_and_device()
        else:
            device = resolve_device(torch, self.device)
        log_p = self._torch_log_proba_T(torch, X, device)
        return log_p.to(device=X.device, dtype=X.dtype).contiguous()

    # ------------------------------------------------------------------
    # Built-in networks

    def _seed_more(self, rng):
        """After the Glorot draw of :class:`MLPGate`: the seed of the mini-batches."""
        self._shuffle_seed, self._n_shuffled_fits = shuffle_seed(rng), 0

    def _objective(self, X, resp_T, context, shapes, pool):
        """The objective of this M-step, evaluated by PyTorch (a :class:`TorchProblem`).

        Built once per EM run (its buffers, the device copies of the weights
        and of the standardisation), then given each M-step's targets.
        """
        torch = _optional.import_torch()
        Xt = self._fit_device_tensor(torch, X)
        state = self._run_state(context)
        key = (tuple(shapes), float(self.alpha), self._activation_name())
        weighted_resp_T = tensor_like(torch, resp_T * context.weight, Xt)
        if state.problem is None or state.problem_key != key or state.problem.X is not Xt:
            network = BuiltinNetwork(
                torch, shapes, tensor_like(torch, context.mean, Xt),
                tensor_like(torch, context.scale, Xt), float(self.alpha),
                self._activation_name(),
            )
            state.problem = TorchProblem(
                torch, network, Xt, weighted_resp_T, tensor_like(torch, context.weight, Xt), pool
            )
            state.problem_key = key
        else:
            state.problem.set_pool(pool)
            state.problem.set_targets(weighted_resp_T)
        return state.problem

    def _minimise(self, X, resp_T, context, shapes, coefs, intercepts):
        """Full batch: the NumPy gates' optimiser; with ``batch_size``, mini-batch Adam."""
        try:
            if self.batch_size is None:
                return super()._minimise(X, resp_T, context, shapes, coefs, intercepts)
            torch = _optional.import_torch()
            with row_parallel() as pool, self._threads(X.shape[0], pool):
                problem = self._objective(X, resp_T, context, shapes, pool)
                problem.set_flat(pack(coefs, intercepts))
                loss, n_steps = self._minibatch(torch, problem, context)
                theta = problem.flat()
            return (*unpack(theta, shapes), loss, n_steps)
        finally:
            state = self.__dict__.get("_torch_state")
            if state is not None and state.problem is not None:
                state.problem.release()

    def _minibatch(self, torch, problem, context):
        """Mini-batch Adam on ``problem``, continuing Adam's moments within an EM run."""
        if not hasattr(self, "_shuffle_seed"):  # warm from a full-batch fit of an old version
            self._seed_more(check_random_state(self.random_state))
        generator = fit_generator(torch, self._shuffle_seed, self._n_shuffled_fits)
        self._n_shuffled_fits += 1
        state = self._run_state(context)
        if state.adam_size != sum(problem.sizes):
            state.adam, state.adam_size = None, sum(problem.sizes)
        loss, n_steps, state.adam = adam(
            torch, problem, batch_size=self.batch_size, learning_rate=self.learning_rate,
            epochs=self.epochs_per_step, generator=generator, state=state.adam,
        )
        return loss, n_steps

    # ------------------------------------------------------------------
    # Fit and experts

    def fit_prepared(self, X, resp_T, context):
        # Documented where inherited from. With ``module``: warm from the
        # fitted network when the numbers of features and experts match.
        if tensor_torch(resp_T) is not None:
            # Device-resident EM: the targets in the weights' dtype (float64), as
            # NumPy promotes them on the host; a copy on the device.
            resp_T = resp_T.to(dtype=context.weight.dtype)
        if self.module is None:
            return super().fit_prepared(X, resp_T, context)
        return self._fit_module(X, resp_T, context)

    def remove_experts(self, keep):
        # Documented where inherited from. With ``module``: the kept outputs
        # of the network are selected (``output_index_``); the network, and
        # its penalty, are unchanged.
        if self.module is None:
            return super().remove_experts(keep)
        keep = self._check_keep(keep)
        self.output_index_ = self.output_index_[keep]
        self.n_experts_ = int(keep.size)
        return self

    # ------------------------------------------------------------------
    # Prediction

    def _accelerator(self):
        """``(torch, device)`` to predict on an accelerator; None for NumPy on the CPU."""
        try:
            torch = _optional.import_torch()
        except ImportError:
            return None
        try:
            device = resolve_device(torch, self.device)
        except ValueError:  # e.g. fitted on a GPU, loaded on a machine without one
            return None
        return None if device.type == "cpu" else (torch, device)

    def _log_proba_native_T(self, X):
        """Log-probabilities: NumPy on CPU, PyTorch on an accelerator or with ``module``."""
        check_is_fitted(self)
        if self.module is not None:
            torch, device = self._module_torch_and_device()
        else:
            accelerator = self._accelerator()
            if accelerator is None:
                return super()._log_proba_native_T(X)
            torch, device = accelerator
        X = check_array(X, dtype=[np.float64, np.float32], ensure_min_features=0)
        self._check_n_features_in(X)
        return self._torch_log_proba_T(torch, X, device).cpu().numpy()

    def _torch_log_proba_T(self, torch, X, device):
        """Log-probabilities ``(n_experts, n_samples)`` on ``device`` of NumPy or tensor ``X``."""
        dtype = torch_dtype(torch, device, X.dtype)
        with torch.no_grad():
            Xt = self._device_tensor(torch, X, device, dtype, store=False)
            if self.module is None:
                coefs = [torch.as_tensor(c, dtype=dtype, device=device) for c in self.coefs_]
                intercepts = [
                    torch.as_tensor(b, dtype=dtype, device=device) for b in self.intercepts_
                ]
                Z = forward_logits_T(torch, Xt, coefs, intercepts, self.activation)
            else:
                Z = self._module_logits_T(torch, Xt, device, dtype)
            return torch.log_softmax(Z, dim=0).contiguous()
