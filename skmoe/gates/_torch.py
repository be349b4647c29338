"""Softmax / MLP gate trained with PyTorch (CPU or GPU), or a user's network.

PyTorch is imported inside the functions that need it, through
:func:`skmoe.utils._optional.import_torch`, so this module (and
``import skmoe``) works without it. PyTorch evaluates the objective and its
gradient; the full-batch optimiser is the NumPy gates' (so both backends take
the same path), mini-batch training is PyTorch's Adam. Fitted parameters are
stored as NumPy arrays; the tensors an instance holds (the input array moved
to the device, the optimiser's state within an EM run, a user's live module)
are caches, never pickled.
"""

import copy
from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ..utils import _optional
from ..utils._compat import Interval, StrOptions
from ..utils._threads import RowPool, row_parallel, torch_threads
from ._lbfgs import minimise_lbfgs
from ._network import (
    ACTIVATIONS,
    check_hidden_layer_sizes,
    initial_parameters,
    pack,
    unpack,
)
from ._softmax import _BaseSoftmaxGate, _BestPoint


def resolve_device(torch, device):
    """The :class:`torch.device` to use for ``device``.

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    device : str or None
        ``None`` picks ``"cuda"`` when available, else ``"cpu"``.

    Returns
    -------
    device : torch.device
        The resolved device.

    Raises
    ------
    ValueError
        If ``device`` is not a device name, or names a CUDA device that is not
        available.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a valid PyTorch device.") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available to "
                "PyTorch; use device='cpu' or device=None."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are available."
            )
    return resolved


def _torch_dtype(torch, device, X_dtype):
    """float64 on CPU; on an accelerator, float32 when ``X`` is float32."""
    if device.type != "cpu" and X_dtype == np.float32:
        return torch.float32
    return torch.float64


def _forward_logits_T(torch, X, coefs, intercepts, activation):
    """Logits ``(n_experts, n_samples)`` of the network on ``X`` ``(n_samples, n_features)``."""
    act = {"tanh": torch.tanh, "relu": torch.relu, "logistic": torch.sigmoid}[activation]
    A = X.T
    last = len(coefs) - 1
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        A = torch.addmm(b[:, None], W, A)
        if layer < last:
            A = act(A)
    return A


def _standardised_logits_T(torch, X, mean, scale, coefs, intercepts, activation):
    """Logits of the built-in network whose parameters are in standardised units."""
    # Standardisation folded into the first layer: no standardised copy of X.
    W0 = coefs[0] / scale
    b0 = intercepts[0] - W0 @ mean
    return _forward_logits_T(torch, X, [W0, *coefs[1:]], [b0, *intercepts[1:]], activation)


def _cross_entropy(torch, Z, weighted_resp_T, weight):
    """``sum_i w_i (logsumexp_k z_ki - sum_k r_ki z_ki)``: the formula of the NumPy objective."""
    return torch.logsumexp(Z, dim=0) @ weight - (weighted_resp_T * Z).sum()


def torch_objective(torch, X, resp_T, weight, mean, scale, alpha, coefs, intercepts, activation):
    """The objective of :class:`~skmoe.gates._softmax.SoftmaxObjective`, in PyTorch (autograd).

    A reference written with autograd; the gate itself evaluates the same
    formula with the backward pass written out (:class:`_BuiltinNetwork`).

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    X : torch.Tensor of shape (n_samples, n_features)
        Raw inputs.
    resp_T : torch.Tensor of shape (n_experts, n_samples)
        Targets, columns summing to one.
    weight, mean, scale : torch.Tensor
        The :class:`~skmoe.gates._softmax.SoftmaxContext` of ``X``.
    alpha : float
        L2 penalty on the weights.
    coefs, intercepts : list of torch.Tensor
        Parameters in standardised units (autograd leaves).
    activation : str
        Hidden activation.

    Returns
    -------
    loss : torch.Tensor
        Scalar penalised weighted cross-entropy.
    """
    Z = _standardised_logits_T(torch, X, mean, scale, coefs, intercepts, activation)
    penalty = sum((W * W).sum() for W in coefs)
    return _cross_entropy(torch, Z, resp_T * weight, weight) + 0.5 * alpha * penalty


def _activate_(Z, activation):
    """Apply the activation to ``Z`` in place; return it."""
    if activation == "tanh":
        return Z.tanh_()
    if activation == "relu":
        return Z.clamp_(min=0)
    return Z.sigmoid_()


def _multiply_derivative_(delta, A, activation):
    """``delta *= f'(z)`` in place, in terms of the activation ``A = f(z)``; overwrites ``A``."""
    if activation == "tanh":  # delta - delta * A^2
        return delta.addcmul_(delta, A.mul_(A), value=-1)
    if activation == "relu":
        return delta.mul_(A > 0)
    return delta.mul_(A.sub_(A * A))


class _BuiltinNetwork:
    """A built-in softmax network in PyTorch, its backward pass written out.

    The parameters are one flat tensor (``params[0]``, packed as
    :func:`~skmoe.gates._network.pack` packs them) in standardised units, as
    the NumPy gates'; each evaluation folds the standardisation into the
    first layer and makes the forward and backward passes of
    :class:`~skmoe.gates._softmax.SoftmaxObjective` block by block, with the
    same formula, so the two backends differ by rounding only. No autograd
    graph is built (measured about twice as fast as autograd on CPU).
    """

    def __init__(self, torch, flat, shapes, mean, scale, alpha, activation):
        self.torch = torch
        self.params = [flat]
        self.coefs, self.intercepts = unpack(flat, shapes)  # views of flat
        self.mean, self.scale = mean, scale
        self.alpha, self.activation = alpha, activation
        self.width = sum(n_in for _, n_in in shapes)
        self.n_weights = sum(n_out * n_in for n_out, n_in in shapes)
        self.macs_per_row = self.n_weights  # of the forward pass

    def raw(self):
        """Weights and biases acting on raw inputs (the first layer's standardisation folded)."""
        W0 = self.coefs[0] / self.scale
        b0 = self.intercepts[0] - W0 @ self.mean
        return [W0, *self.coefs[1:]], [b0[:, None], *(b[:, None] for b in self.intercepts[1:])]

    def logits_T(self, X, raw=None):
        coefs, intercepts = self.raw() if raw is None else raw
        return _forward_logits_T(
            self.torch, X, coefs, [b[:, 0] for b in intercepts], self.activation
        )

    def set_moments(self, X, weighted_resp_T):
        """Without hidden layer: the targets' moments, for :meth:`targets_term`."""
        if len(self.coefs) == 1:
            self.moments = (weighted_resp_T @ X, weighted_resp_T.sum(dim=1))

    def targets_term(self, raw):
        """``sum_ki w_i r_ki z_ki`` over every row from the moments; None with hidden layers.

        The logits of a network without hidden layer are linear in its
        parameters, so the targets' term is, as in the NumPy objective.
        """
        moments = getattr(self, "moments", None)
        if moments is None:
            return None
        (W,), (b,) = raw
        return (W * moments[0]).sum() + b[:, 0] @ moments[1]

    def chunk(self, X, weighted_resp_T, weight, raw, buffers, targets=True):
        """Cross-entropy of the rows and its gradient with respect to the raw parameters.

        ``buffers`` (a dict, one per thread) keeps the activations' storage
        from one block to the next, as the NumPy objective does: fresh
        tensors of a few MiB per block cost page faults. ``targets=False``
        leaves the targets' term out of the loss (:meth:`targets_term`).
        """
        torch = self.torch
        coefs, intercepts = raw
        act, n_layers = self.activation, len(coefs)
        n_rows = X.shape[0]

        def buffer(key, n_out):
            flat = buffers.get(key)
            if flat is None or flat.numel() < n_out * n_rows:
                flat = buffers[key] = X.new_empty(n_out * max(n_rows, buffers["block"]))
            return flat[: n_out * n_rows].view(n_out, n_rows)

        activations = []
        source = X.T
        for layer, (W, b) in enumerate(zip(coefs, intercepts)):
            out = buffer(("a", layer), W.shape[0])
            if layer == n_layers - 1:
                source = torch.addmm(b, W, source, out=out)
            elif act == "tanh" and X.device.type == "cpu":
                # tanh(z) = 2 sigmoid(2z) - 1, the 2z from the product's own
                # scalars: PyTorch's float64 tanh on CPU is not vectorised
                # (64 x 10,000 entries: 3.8 ms against 0.8 ms for sigmoid;
                # NumPy's tanh 1.1 ms). Equal to tanh to rounding.
                source = torch.addmm(b, W, source, beta=2, alpha=2, out=out)
                source.sigmoid_().mul_(2).sub_(1)
            else:
                source = torch.addmm(b, W, source, out=out)
                _activate_(source, act)
            activations.append(source)
        Z = activations[-1]  # logits
        loss = (Z.new_zeros(()) if not targets
                else -torch.mul(weighted_resp_T, Z, out=buffer("r", Z.shape[0])).sum())
        shift = Z.amax(dim=0)
        Z.sub_(shift).exp_()
        total = Z.sum(dim=0)
        loss = loss + (total.log() + shift) @ weight
        Z.mul_(weight / total).sub_(weighted_resp_T)  # w_i (p_ki - r_ki)
        delta = Z
        grad_W, grad_b = [None] * n_layers, [None] * n_layers
        for layer in range(n_layers - 1, -1, -1):
            source = X if layer == 0 else activations[layer - 1].T
            grad_W[layer] = delta @ source
            grad_b[layer] = delta.sum(dim=1)
            if layer > 0:  # the activation is not needed after this
                n_in = coefs[layer].shape[1]
                back = torch.mm(coefs[layer].T, delta, out=buffer(("d", layer), n_in))
                delta = _multiply_derivative_(back, activations[layer - 1], act)
        return loss, grad_W + grad_b

    def finish(self, grads):
        """The flat gradient in the parameters (standardised units) from the raw one."""
        torch, n_layers = self.torch, len(self.coefs)
        grads = list(grads)
        grads[0] = torch.addr(grads[0], grads[n_layers], self.mean, alpha=-1).div_(self.scale)
        return [torch.cat([g.view(-1) for g in grads])]

    def penalty(self):
        """``alpha / 2`` times the squared weights, and its gradient."""
        flat = self.params[0]
        if getattr(self, "_penalty_scale", None) is None:  # alpha on weights, 0 on biases
            self._penalty_scale = flat.new_zeros(flat.shape)
            self._penalty_scale[: self.n_weights] = self.alpha
        weights = flat[: self.n_weights]
        return 0.5 * self.alpha * (weights @ weights), [flat * self._penalty_scale]


class _ModuleNetwork:
    """A user's :class:`torch.nn.Module` on standardised inputs; gradients by autograd."""

    def __init__(self, torch, module, mean, scale, index, alpha):
        self.torch = torch
        self.module = module
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.mean, self.scale, self.index = mean, scale, index
        self.alpha = alpha
        # The width of the rows' activations is unknown: the parameters per input.
        n_features = mean.shape[0]
        self.width = max(n_features, sum(p.numel() for p in self.params) // max(1, n_features))
        # Multiply-adds of the forward pass per row: those of the weight matrices.
        self.macs_per_row = sum(p.numel() for p in self.params if p.ndim >= 2)

    def raw(self):
        return None

    def logits_T(self, X, raw=None):
        return self.module((X - self.mean) / self.scale).T[self.index]

    def targets_term(self, raw):
        return None

    def chunk(self, X, weighted_resp_T, weight, raw, buffers, targets=True):
        torch = self.torch
        with torch.enable_grad():  # grad mode is per thread
            loss = _cross_entropy(torch, self.logits_T(X), weighted_resp_T, weight)
            grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return loss.detach(), list(grads)

    def finish(self, grads):
        return grads

    def penalty(self):
        """``alpha / 2`` times the squares of the parameters of two or more dimensions."""
        weights = [p.detach() for p in self.params]
        value = sum(((W * W).sum() for W in weights if W.ndim >= 2), weights[0].new_zeros(()))
        grads = [self.alpha * W if W.ndim >= 2 else None for W in weights]
        return 0.5 * self.alpha * value, grads


def _sum_parts(parts):
    """Sum ``(loss, grads)`` pairs in order; a ``None`` gradient counts as zero."""
    loss, grads = parts[0][0], list(parts[0][1])
    for part_loss, part_grads in parts[1:]:
        loss = loss + part_loss
        grads = [a if b is None else (b if a is None else a + b) for a, b in zip(grads, part_grads)]
    return loss, grads


class _TorchProblem:
    """The penalised cross-entropy of one fit, for a network of PyTorch tensors.

    As an objective of the shared L-BFGS driver, ``problem(theta)`` copies
    the flat NumPy ``theta`` into the parameters and returns the loss and
    the gradient as NumPy; :meth:`evaluate` on a mini-batch serves Adam.

    On CPU the passes over the rows follow the rule of the NumPy gates:
    PyTorch runs on one thread, the rows are split into chunks over the
    threads of the row pool (:meth:`~skmoe.utils._threads.RowPool.bounds`),
    each chunk's passes made in its own Python thread (PyTorch releases the
    GIL in its kernels) in blocks of rows that stay in cache, and the sums
    are combined in chunk order. PyTorch's own OpenMP threads spin while
    they wait: on busy cores two of them were measured 12x slower per
    evaluation than one.

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    network : _BuiltinNetwork or _ModuleNetwork
        The network, its parameters in ``network.params``.
    X, weighted_resp_T, weight : torch.Tensor
        Inputs, ``w * R`` and ``w`` (summing to one) on the device.
    pool : RowPool
        Row threads; used on CPU only.
    """

    def __init__(self, torch, network, X, weighted_resp_T, weight, pool):
        self.torch = torch
        self.network = network
        self.params = network.params
        self.X, self.weighted_resp_T, self.weight = X, weighted_resp_T, weight
        self.sizes = [p.numel() for p in self.params]
        self._buffers = {}  # per chunk of rows (one thread each)
        if X.device.type == "cpu":
            self.pool = pool
            # Multiply-adds per row of a forward and backward pass, for the thread rule.
            self.n_cols = 3 * network.macs_per_row
            # Blocks of rows whose activations stay in cache, as the NumPy objective's.
            self.block = int(np.clip(2**18 // max(1, network.width), 1024, 16384))
        else:  # one pass on an accelerator
            self.pool, self.n_cols, self.block = RowPool(1, None), None, max(1, X.shape[0])

    def _rows(self, rows, start, stop):
        """``X``, ``w * R`` and ``w`` of the rows ``start:stop`` (of ``rows`` if given)."""
        if rows is None:
            return (self.X[start:stop], self.weighted_resp_T[:, start:stop],
                    self.weight[start:stop])
        index = rows[start:stop]
        return self.X[index], self.weighted_resp_T[:, index], self.weight[index]

    def evaluate(self, rows=None):
        """Loss (a float) and gradient (a tensor per parameter).

        On every row, or (``rows``, an index tensor) the unbiased estimate
        from these rows: their cross-entropy times ``n_samples / len(rows)``.
        """
        torch, network = self.torch, self.network
        n_rows = self.X.shape[0] if rows is None else rows.shape[0]
        factor = self.X.shape[0] / n_rows
        with torch.no_grad():
            raw = network.raw()
            # Without hidden layer, on every row, the targets' term from the moments.
            targets_term = network.targets_term(raw) if rows is None else None

        def part(start, stop):
            buffers = self._buffers.setdefault(start, {"block": self.block})
            with torch.no_grad():
                return _sum_parts([
                    network.chunk(*self._rows(rows, lo, min(lo + self.block, stop)), raw,
                                  buffers, targets=targets_term is None)
                    for lo in range(start, stop, self.block)
                ])

        loss, grads = _sum_parts(self.pool.map(part, self.pool.bounds(n_rows, n_cols=self.n_cols)))
        with torch.no_grad():
            if targets_term is not None:
                loss = loss - targets_term
            if factor != 1.0:
                loss = loss * factor
                grads = [None if g is None else g * factor for g in grads]
            grads = network.finish(grads)
            penalty, penalty_grads = network.penalty()
            loss, grads = _sum_parts([(loss, grads), (penalty, penalty_grads)])
            grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.params)]
        return float(loss), grads

    def full_loss(self):
        """The loss on every row without gradient (a float)."""
        torch, network = self.torch, self.network
        with torch.no_grad():
            raw = network.raw()

        def part(start, stop):
            with torch.no_grad():
                total = 0.0
                for lo in range(start, stop, self.block):
                    X, weighted_resp_T, weight = self._rows(None, lo, min(lo + self.block, stop))
                    Z = network.logits_T(X, raw)
                    total = total + _cross_entropy(torch, Z, weighted_resp_T, weight)
                return total

        with torch.no_grad():
            total = network.penalty()[0]
            for value in self.pool.map(part, self.pool.bounds(self.X.shape[0], n_cols=self.n_cols)):
                total = total + value
        return float(total)

    def flat(self):
        """The parameters as one float64 NumPy vector."""
        return np.concatenate(
            [p.detach().reshape(-1).cpu().double().numpy() for p in self.params]
        )

    def set_flat(self, theta):
        """Copy the flat ``theta`` into the parameters."""
        torch = self.torch
        with torch.no_grad():
            for p, part in zip(self.params, torch.as_tensor(theta).split(self.sizes)):
                p.copy_(part.view_as(p))

    def snapshot(self):
        """Copies of the parameters."""
        return [p.detach().clone() for p in self.params]

    def restore(self, snapshot):
        """Set the parameters to a :meth:`snapshot`."""
        with self.torch.no_grad():
            for p, saved in zip(self.params, snapshot):
                p.copy_(saved)

    def __call__(self, theta):
        self.set_flat(theta)
        loss, grads = self.evaluate()
        grad = self.torch.cat([g.reshape(-1) for g in grads])
        return loss, grad.cpu().double().numpy()


def _adam(torch, problem, *, batch_size, learning_rate, epochs, generator, state):
    """``epochs`` epochs of mini-batch Adam; the best iterate of the epochs' ends (and the start).

    Returns the best loss, the number of Adam steps and the optimiser's
    state (for the next M-step).
    """
    optimiser = torch.optim.Adam(problem.params, lr=learning_rate)
    if state is not None:
        optimiser.load_state_dict(state)
    best_loss, best = problem.full_loss(), problem.snapshot()
    n_rows = problem.X.shape[0]
    device = problem.X.device
    n_steps = 0
    for _ in range(epochs):
        order = torch.randperm(n_rows, generator=generator).to(device)
        for start in range(0, n_rows, batch_size):
            _, grads = problem.evaluate(order[start : start + batch_size])
            for p, g in zip(problem.params, grads):
                p.grad = g
            optimiser.step()
            n_steps += 1
        loss = problem.full_loss()
        if loss < best_loss:
            best_loss, best = loss, problem.snapshot()
    problem.restore(best)
    for p in problem.params:
        p.grad = None
    return best_loss, n_steps, optimiser.state_dict()


class TorchGate(_BaseSoftmaxGate):
    """Softmax or MLP gate trained with PyTorch, on CPU or GPU, or a user's network.

    The same model family and objective as :class:`~skmoe.gates.MLPGate`:
    weighted mean cross-entropy between the soft targets and
    ``softmax(f(x))`` plus ``alpha / 2`` times the sum of squared weights
    (first layer in standardised units, biases not penalised), with the
    features standardised internally by their weighted mean and standard
    deviation. With ``hidden_layer_sizes=()`` it is the linear softmax gate
    of :class:`~skmoe.gates.LinearGate`. PyTorch evaluates the objective and
    its gradient (autograd), in float64 on CPU (float32 on an accelerator
    when ``X`` is float32); successive calls to :meth:`fit` with the same
    shapes warm-start from the current weights.

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
        Number of input features.
    n_experts_ : int
        Number of experts (outputs).
    n_parameters_ : int
        Number of weights and biases less the softmax redundancy of the last
        layer; ``(n_experts - 1) * (n_features + 1)`` without hidden layer.
        With ``module``: the number of trainable parameter entries.
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
    instead. The cache, the L-BFGS curvature pairs and Adam's moments kept
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
    >>> X = np.linspace(-1, 1, 6).reshape(-1, 1)
    >>> resp = np.c_[X[:, 0] < 0, X[:, 0] >= 0].astype(float)
    >>> gate = TorchGate(device="cpu").fit(X, resp)
    >>> gate.predict(X)
    array([0, 0, 0, 1, 1, 1])

    A network of your own, built by a factory:

    >>> import torch
    >>> def network(n_features, n_experts):
    ...     return torch.nn.Sequential(torch.nn.Linear(n_features, 8), torch.nn.ReLU(),
    ...                                torch.nn.Linear(8, n_experts))
    >>> gate = TorchGate(module=network, device="cpu", random_state=0).fit(X, resp)
    >>> gate.predict(X)
    array([0, 0, 0, 1, 1, 1])
    """

    # The gate does not use NumPy's BLAS threads: the EM loop may hold them to one.
    splits_rows = True

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "epochs_per_step": [Interval(Integral, 1, None, closed="left")],
        "module": [callable, None],
        "device": [str, None],
        "random_state": ["random_state"],
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
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.epochs_per_step = epochs_per_step
        self.module = module
        self.device = device
        self.random_state = random_state

    # ------------------------------------------------------------------
    # Device, dtype and threads

    def _device_tensor(self, torch, X, device, dtype, store):
        """``X`` on ``device``; the cached tensor when ``X`` is the array last cached."""
        key = (
            id(X),
            X.shape,
            X.dtype.str,
            X.__array_interface__["data"][0],
            str(device),
            dtype,
        )
        cache = self.__dict__.get("_X_cache")
        if cache is not None and cache[0] == key and cache[1] is X:
            return cache[2]
        tensor = torch.as_tensor(X, dtype=dtype, device=device)
        if store:
            self._X_cache = (key, X, tensor)
        return tensor

    def _fit_tensors(self, torch, X, resp_T, context):
        """``X``, ``w * R``, ``w`` on the device of the fit, and the converter to it."""
        device = resolve_device(torch, self.device)
        dtype = _torch_dtype(torch, device, X.dtype)

        def to_device(array):
            return torch.as_tensor(np.asarray(array), dtype=dtype, device=device)

        Xt = self._device_tensor(torch, X, device, dtype, store=True)
        self.device_ = str(device)
        return Xt, to_device(resp_T * context.weight), to_device(context.weight), to_device

    def _threads(self, n_rows, pool):
        """One PyTorch thread: the row pool gives the parallelism (see :class:`_TorchProblem`)."""
        return torch_threads(_optional.import_torch(), 1)

    # ------------------------------------------------------------------
    # Built-in networks

    def _hidden_layers(self):
        return check_hidden_layer_sizes(self.hidden_layer_sizes)

    def _initial_parameters(self, shapes, prior):
        """The Glorot start of :class:`MLPGate`, then the seed of the mini-batches."""
        rng = check_random_state(self.random_state)
        coefs, intercepts = initial_parameters(shapes, self.activation, rng, prior)
        self._start_shuffles(rng)
        return coefs, intercepts

    def _objective(self, X, resp_T, context, shapes, pool):
        """The objective of this fit, evaluated by PyTorch (a :class:`_TorchProblem`)."""
        torch = _optional.import_torch()
        Xt, weighted_resp_T, weight, to_device = self._fit_tensors(torch, X, resp_T, context)
        mean, scale = to_device(context.mean), to_device(context.scale)
        flat = to_device(np.zeros(sum(n_out * (n_in + 1) for n_out, n_in in shapes)))
        network = _BuiltinNetwork(
            torch, flat, shapes, mean, scale, float(self.alpha), self._activation_name()
        )
        network.set_moments(Xt, weighted_resp_T)
        return _TorchProblem(torch, network, Xt, weighted_resp_T, weight, pool)

    def _minimise(self, X, resp_T, context, shapes, coefs, intercepts):
        """Full batch: the NumPy gates' optimiser; with ``batch_size``, mini-batch Adam."""
        if self.batch_size is None:
            return super()._minimise(X, resp_T, context, shapes, coefs, intercepts)
        torch = _optional.import_torch()
        with row_parallel() as pool, self._threads(X.shape[0], pool):
            problem = self._objective(X, resp_T, context, shapes, pool)
            problem.set_flat(pack(coefs, intercepts))
            loss, n_steps = self._minibatch(torch, problem, context)
            theta = problem.flat()
        return (*unpack(theta, shapes), loss, n_steps)

    # ------------------------------------------------------------------
    # Mini-batches

    def _start_shuffles(self, rng):
        """Draw the seed of the mini-batch order of a cold start."""
        self._shuffle_seed = int(rng.randint(np.iinfo(np.int32).max))
        self._n_shuffled_fits = 0

    def _minibatch(self, torch, problem, context):
        """Mini-batch Adam on ``problem``, continuing Adam's moments within an EM run."""
        if not hasattr(self, "_shuffle_seed"):  # warm from a full-batch fit of an old version
            self._start_shuffles(check_random_state(self.random_state))
        # One seed per fit from the cold start's seed and the fit's number:
        # no generator is kept, and a restart of the same fit is identical.
        seed = np.random.SeedSequence([self._shuffle_seed, self._n_shuffled_fits])
        self._n_shuffled_fits += 1
        generator = torch.Generator(device="cpu")
        generator.manual_seed(int(seed.generate_state(1)[0]))
        n_params = sum(problem.sizes)
        state = self.__dict__.get("_torch_state")
        moments = state[2] if state and state[0] is context and state[1] == n_params else None
        loss, n_steps, moments = _adam(
            torch, problem, batch_size=self.batch_size, learning_rate=self.learning_rate,
            epochs=self.epochs_per_step, generator=generator, state=moments,
        )
        self._torch_state = (context, n_params, moments)
        return loss, n_steps

    # ------------------------------------------------------------------
    # A user's network

    def fit_prepared(self, X, resp_T, context):
        """:meth:`fit` in the core's layout, on validated input.

        Warm-starts from the fitted parameters when their shapes match the
        number of features and experts; otherwise starts cold.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Validated inputs (float32 or float64); not validated again.
        resp_T : ndarray of shape (n_experts, n_samples)
            C-contiguous float64 targets whose columns sum to one.
        context : SoftmaxContext
            :meth:`prepare` of the same ``X`` and sample weights.

        Returns
        -------
        self : object
            The fitted gate.
        """
        if self.module is None:
            return super().fit_prepared(X, resp_T, context)
        return self._fit_module(X, resp_T, context)

    def _new_module(self, torch, n_features, n_outputs, seed):
        """A copy of ``module``, or a new network from the factory, seeded."""
        if isinstance(self.module, torch.nn.Module):
            return copy.deepcopy(self.module)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self.module(n_features, n_outputs)
        if not isinstance(module, torch.nn.Module):
            raise TypeError(
                f"module={self.module!r} is neither a torch.nn.Module nor a factory "
                f"returning one: module({n_features}, {n_outputs}) returned {module!r}."
            )
        return module

    def _fitted_module(self, torch):
        """The fitted network: the live one of the last fit, or rebuilt from ``module_state_``."""
        module = self.__dict__.get("_module")
        if module is None:
            module = self._new_module(torch, self.n_features_in_, self._n_module_outputs, 0)
            floating = [v for v in self.module_state_.values() if v.dtype.kind == "f"]
            if floating:  # load without rounding to the module's own dtype
                module = module.to(dtype=torch.from_numpy(floating[0][:0]).dtype)
            module.load_state_dict(
                {name: torch.as_tensor(value) for name, value in self.module_state_.items()}
            )
            module.eval()
            self._module = module
        return module

    def _fit_module(self, X, resp_T, context):
        torch = _optional.import_torch()
        n_features, n_experts = X.shape[1], resp_T.shape[0]
        Xt, weighted_resp_T, weight, to_device = self._fit_tensors(torch, X, resp_T, context)
        warm = (
            hasattr(self, "module_state_")
            and self.n_features_in_ == n_features
            and self.n_experts_ == n_experts
        )
        if warm:
            module = self._fitted_module(torch)
        else:
            rng = check_random_state(self.random_state)
            module = self._new_module(torch, n_features, n_experts, int(rng.randint(2**31 - 1)))
            self._start_shuffles(rng)
            self.input_mean_ = np.array(context.mean, dtype=np.float64)
            self.input_scale_ = np.array(context.scale, dtype=np.float64)
            self.output_index_ = np.arange(n_experts)
            self._n_module_outputs = n_experts
        module = module.to(device=Xt.device, dtype=Xt.dtype)
        module.eval()
        mean, scale = to_device(self.input_mean_), to_device(self.input_scale_)
        index = torch.as_tensor(self.output_index_, device=Xt.device)
        network = _ModuleNetwork(torch, module, mean, scale, index, float(self.alpha))
        with row_parallel() as pool, self._threads(X.shape[0], pool):
            if not warm:
                with torch.no_grad():
                    out = module((Xt[:2] - mean) / scale)
                if tuple(out.shape) != (min(2, len(X)), n_experts):
                    raise ValueError(
                        f"module must map inputs of shape (n_samples, {n_features}) to "
                        f"logits of shape (n_samples, {n_experts}); on 2 rows it returned "
                        f"shape {tuple(out.shape)}."
                    )
            problem = _TorchProblem(torch, network, Xt, weighted_resp_T, weight, pool)
            if self.batch_size is None:
                objective = _BestPoint(problem)
                theta = problem.flat()
                theta, loss, n_iter, _ = minimise_lbfgs(
                    objective, theta, max_iter=self.max_iter, gtol=self.tol,
                    memory=self._curvature_memory(context, theta.size),
                )
                if objective.theta is not None and objective.loss < loss:
                    theta, loss = objective.theta, objective.loss
                problem.set_flat(theta)
            else:
                loss, n_iter = self._minibatch(torch, problem, context)
            self._set_penalty(float(network.penalty()[0]))
        self._module = module
        self.module_state_ = {
            name: value.detach().cpu().numpy().copy() for name, value in module.state_dict().items()
        }
        self.n_features_in_ = n_features
        self.n_experts_ = n_experts
        self.n_parameters_ = int(sum(p.numel() for p in network.params))
        self.n_iter_ = int(n_iter)
        self.loss_ = float(loss)
        return self

    def remove_experts(self, keep):
        """Keep only the outputs ``keep``.

        The gate becomes the softmax over the kept outputs, i.e. its
        probabilities renormalised over them, and later fits warm-start from
        there. With ``module``, the kept outputs of the network are selected
        (``output_index_``); the network itself, and its penalty, are unchanged.

        Parameters
        ----------
        keep : array-like of int
            Indices of the outputs to keep, in their new order.

        Returns
        -------
        self : object
            The gate, with ``n_experts_`` and ``n_parameters_`` updated.
        """
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
        if self.module is None:
            accelerator = self._accelerator()
            if accelerator is None:
                return super()._log_proba_native_T(X)
            torch, device = accelerator
        else:
            try:
                torch = _optional.import_torch()
            except ImportError as exc:
                raise ImportError(
                    "This TorchGate's network is a torch.nn.Module of your own (module="
                    "...): predicting with it requires PyTorch; install it with `pip "
                    "install torch`. Gates with the built-in networks predict without it."
                ) from exc
            device = resolve_device(torch, self.device)
        X = check_array(X, dtype=[np.float64, np.float32], ensure_min_features=0)
        self._check_n_features_in(X)
        dtype = _torch_dtype(torch, device, X.dtype)
        with torch.no_grad():
            Xt = self._device_tensor(torch, X, device, dtype, store=False)
            if self.module is None:
                coefs = [torch.as_tensor(c, dtype=dtype, device=device) for c in self.coefs_]
                intercepts = [
                    torch.as_tensor(b, dtype=dtype, device=device) for b in self.intercepts_
                ]
                Z = _forward_logits_T(torch, Xt, coefs, intercepts, self.activation)
            else:
                module = self._fitted_module(torch).to(device=device, dtype=dtype)
                mean = torch.as_tensor(self.input_mean_, dtype=dtype, device=device)
                scale = torch.as_tensor(self.input_scale_, dtype=dtype, device=device)
                index = torch.as_tensor(self.output_index_, device=device)
                Z = module((Xt - mean) / scale).T[index]
            log_p = torch.log_softmax(Z, dim=0).contiguous()
        return log_p.cpu().numpy()
