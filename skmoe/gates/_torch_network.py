"""The networks of :class:`~skmoe.gates.TorchGate`: the built-in softmax networks and a user's module.

Pure PyTorch helpers (device, dtype, forward pass, the reference objective
with autograd) and the two network classes that
:class:`~skmoe.gates._torch_problem.TorchProblem` evaluates over the rows:
:class:`BuiltinNetwork`, the network of :class:`~skmoe.gates.MLPGate` with
its backward pass written out into one flat gradient, and
:class:`ModuleNetwork`, a user's :class:`torch.nn.Module` with autograd.
The ``torch`` module is passed in, never imported here.
"""

import math

import numpy as np

from ._network import unpack

# exp(z) = exp2(z log2(e)): PyTorch's float64 exp on CPU is not vectorised as
# well as its exp2 (measured 0.31 against 0.12 ms on 8 x 16,384 entries;
# NumPy's exp 0.11 ms). Equal to exp to rounding.
_LOG2E = math.log2(math.e)


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


def torch_dtype(torch, device, X_dtype):
    """float64 on CPU; on an accelerator, float32 when ``X`` (a NumPy or PyTorch dtype) is float32."""
    if device.type != "cpu" and X_dtype in (np.float32, torch.float32):
        return torch.float32
    return torch.float64


def tensor_like(torch, array, like):
    """``array`` (NumPy or a tensor) as a tensor of the device and dtype of the tensor ``like``."""
    if isinstance(array, torch.Tensor):  # already a tensor: converted where it is, if at all
        return array.to(device=like.device, dtype=like.dtype)
    return torch.as_tensor(np.asarray(array), dtype=like.dtype, device=like.device)


def tensor_torch(X):
    """:mod:`torch` when ``X`` is a PyTorch tensor, else None (torch is not imported for NumPy input)."""
    if type(X).__module__.partition(".")[0] != "torch":
        return None
    import torch

    return torch


def tensor_context(torch, X, sample_weight):
    """The gate's :class:`~skmoe.gates._softmax.SoftmaxContext` of a tensor ``X``, computed on its device.

    As :func:`~skmoe.gates._softmax.prepare_context`: the weights summing to
    one (a float64 tensor on the device of ``X``) and the weighted mean and
    standard deviation of each feature, accumulated in float64 over blocks
    of rows (no float64 copy of float32 ``X``) and returned as NumPy arrays
    (``n_features`` numbers to the host, once per EM run).
    """
    from ._softmax import SoftmaxContext

    n = X.shape[0]
    if sample_weight is None:
        weight = torch.full((n,), 1.0 / n, dtype=torch.float64, device=X.device)
    else:
        weight = sample_weight.to(device=X.device, dtype=torch.float64)
        weight = weight / weight.sum()
    block = max(1, 2**22 // max(1, X.shape[1]))
    mean = X.new_zeros(X.shape[1], dtype=torch.float64)
    for start in range(0, n, block):
        mean += weight[start : start + block] @ X[start : start + block].double()
    var = torch.zeros_like(mean)
    for start in range(0, n, block):  # centred before squaring: no cancellation
        centred = X[start : start + block].double() - mean
        var += weight[start : start + block] @ (centred * centred)
    mean, scale = mean.cpu().numpy(), torch.sqrt(var).cpu().numpy()
    scale[scale <= 1e-12 * (np.abs(mean) + 1.0)] = 1.0
    return SoftmaxContext(weight, mean, scale)


def forward_logits_T(torch, X, coefs, intercepts, activation):
    """Logits ``(n_experts, n_samples)`` of the network on ``X`` ``(n_samples, n_features)``."""
    act = {"tanh": torch.tanh, "relu": torch.relu, "logistic": torch.sigmoid}[activation]
    A = X.T
    last = len(coefs) - 1
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        A = torch.addmm(b[:, None], W, A)
        if layer < last:
            A = act(A)
    return A


def cross_entropy(torch, Z, weighted_resp_T, weight):
    """``sum_i w_i (logsumexp_k z_ki - sum_k r_ki z_ki)``: the formula of the NumPy objective."""
    return torch.logsumexp(Z, dim=0) @ weight - (weighted_resp_T * Z).sum()


def torch_objective(torch, X, resp_T, weight, mean, scale, alpha, coefs, intercepts, activation):
    """The objective of :class:`~skmoe.gates._softmax.SoftmaxObjective`, in PyTorch (autograd).

    A reference written with autograd; the gate itself evaluates the same
    formula with the backward pass written out (:class:`BuiltinNetwork`).

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
    # Standardisation folded into the first layer: no standardised copy of X.
    W0 = coefs[0] / scale
    b0 = intercepts[0] - W0 @ mean
    Z = forward_logits_T(torch, X, [W0, *coefs[1:]], [b0, *intercepts[1:]], activation)
    penalty = sum((W * W).sum() for W in coefs)
    return cross_entropy(torch, Z, resp_T * weight, weight) + 0.5 * alpha * penalty


def _multiply_derivative_(delta, A, activation):
    """``delta *= f'(z)`` in place, in terms of the activation ``A = f(z)``; overwrites ``A``."""
    if activation == "tanh":  # delta - delta * A^2
        return delta.addcmul_(delta, A.mul_(A), value=-1)
    if activation == "relu":
        return delta.mul_(A > 0)
    return delta.mul_(A.addcmul_(A, A, value=-1))  # A (1 - A)


class _Workspace:
    """The storage of one chunk of rows (one thread) of :class:`BuiltinNetwork`.

    Fresh tensors of a few MiB per block would cost page faults at every
    evaluation, as they would for the NumPy objective; these live as long as
    the fit's problem. ``grad`` is the chunk's gradient with respect to the
    raw parameters, packed as :func:`~skmoe.gates._network.pack` packs them.
    """

    def __init__(self, like, shapes, block, n_params):
        n_layers = len(shapes)
        # Activations of every layer, the targets' product with the logits,
        # then the back-propagated errors of every hidden layer.
        self.widths = [n_out for n_out, _ in shapes] + [shapes[-1][0]]
        self.widths += [n_in for _, n_in in shapes[1:]]
        self.flat = [like.new_empty(width * block) for width in self.widths]
        self.grad = like.new_empty(n_params)
        self.grad_W, self.grad_b = unpack(self.grad, shapes)
        self.grad_weights = self.grad[: sum(n_out * n_in for n_out, n_in in shapes)]
        self.n_layers = n_layers
        self._views = {}

    def views(self, n_rows):
        """The buffers as ``(width, n_rows)`` tensors (cached per row count)."""
        views = self._views.get(n_rows)
        if views is None:
            if len(self._views) > 8:  # mini-batches of many sizes: keep few
                self._views.clear()
            views = self._views[n_rows] = [
                flat[: width * n_rows].view(width, n_rows)
                for flat, width in zip(self.flat, self.widths)
            ]
        return views


class BuiltinNetwork:
    """A built-in softmax network in PyTorch, its backward pass written out.

    The parameters are one flat tensor (``params[0]``, packed as
    :func:`~skmoe.gates._network.pack` packs them) in standardised units, as
    the NumPy gates'; each evaluation folds the standardisation into the
    first layer and makes the forward and backward passes of
    :class:`~skmoe.gates._softmax.SoftmaxObjective` block by block, with the
    same formula, so the two backends differ by rounding only. No autograd
    graph is built (measured about twice as fast as autograd on CPU), every
    buffer is allocated once per fit, and the gradient is written into one
    flat tensor, so an evaluation costs few PyTorch operations: at 800 rows
    their fixed costs are most of its time.

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    shapes : list of tuple of int
        ``(n_out, n_in)`` per layer.
    mean, scale : torch.Tensor of shape (n_features,)
        Standardisation of the inputs.
    alpha : float
        L2 penalty on the weights.
    activation : str
        Hidden activation.
    """

    def __init__(self, torch, shapes, mean, scale, alpha, activation):
        self.torch = torch
        self.shapes = list(shapes)
        n_params = sum(n_out * (n_in + 1) for n_out, n_in in shapes)
        self.n_weights = sum(n_out * n_in for n_out, n_in in shapes)
        self.flat = mean.new_zeros(n_params)
        self.params = [self.flat]
        self.coefs, self.intercepts = unpack(self.flat, shapes)  # views of flat
        self._weights = self.flat[: self.n_weights]
        # The parameters acting on raw inputs: the first layer's own storage,
        # the other layers views of flat; biases as columns.
        self._raw_W0 = mean.new_empty(shapes[0])
        self._raw_b0 = mean.new_empty(shapes[0][0])
        self.raw_coefs = [self._raw_W0, *self.coefs[1:]]
        self.raw_intercepts = [self._raw_b0[:, None], *(b[:, None] for b in self.intercepts[1:])]
        self.mean, self.scale = mean, scale
        self.alpha, self.activation = alpha, activation
        on_cpu = mean.device.type == "cpu"
        # PyTorch's float64 tanh on CPU is not vectorised (64 x 10,000 entries:
        # 3.8 ms against 0.8 ms for sigmoid; NumPy's tanh 1.1 ms): there, tanh(z)
        # = 2 sigmoid(2z) - 1, the 2z from the product's own scalars.
        self._tanh_by_sigmoid = on_cpu and activation == "tanh"
        self._exp2 = on_cpu
        self.width = sum(n_in for _, n_in in shapes)
        self.macs_per_row = self.n_weights  # of the forward pass
        self.moments = None

    def prepare(self):
        """Fold the standardisation into the first layer, before a pass over the rows."""
        torch = self.torch
        torch.div(self.coefs[0], self.scale, out=self._raw_W0)
        torch.addmv(self.intercepts[0], self._raw_W0, self.mean, alpha=-1, out=self._raw_b0)

    def workspace(self, like, block):
        """Storage of one chunk of rows of at most ``block`` rows per block."""
        return _Workspace(like, self.shapes, block, self.flat.numel())

    def logits_T(self, X):
        """Logits of the rows of ``X`` (after :meth:`prepare`)."""
        return forward_logits_T(
            self.torch, X, self.raw_coefs, [b[:, 0] for b in self.raw_intercepts],
            self.activation,
        )

    def set_moments(self, X, weighted_resp_T):
        """Without hidden layer: the targets' moments, for the targets' term on every row."""
        if len(self.shapes) == 1:
            self.moments = (weighted_resp_T @ X, weighted_resp_T.sum(dim=1))

    def rows(self, workspace, X, weighted_resp_T, weight, block, every_row):
        """Cross-entropy of the rows and its gradient in the raw parameters.

        Makes the passes block by block; the gradient goes to
        ``workspace.grad``. On every row of a network without hidden layer
        (``every_row``) the targets' term is left out of the loss: it comes
        from the moments (:meth:`finish`).

        Returns
        -------
        loss : torch.Tensor
            0-d.
        grads : list of torch.Tensor
            ``[workspace.grad]``.
        """
        torch = self.torch
        act, n_layers = self.activation, len(self.shapes)
        coefs, intercepts = self.raw_coefs, self.raw_intercepts
        targets = not (every_row and self.moments is not None)
        grad_W, grad_b = workspace.grad_W, workspace.grad_b
        n_rows = X.shape[0]
        loss = None
        for lo in range(0, n_rows, block):
            hi = min(lo + block, n_rows)
            rows = X[lo:hi] if hi - lo < n_rows else X
            buffers = workspace.views(hi - lo)
            activations = buffers[:n_layers]
            source = rows.T
            for layer in range(n_layers):
                out = activations[layer]
                if layer == n_layers - 1:
                    torch.addmm(intercepts[layer], coefs[layer], source, out=out)
                elif self._tanh_by_sigmoid:
                    torch.addmm(intercepts[layer], coefs[layer], source, beta=2, alpha=2, out=out)
                    out.sigmoid_().mul_(2).sub_(1)
                else:
                    torch.addmm(intercepts[layer], coefs[layer], source, out=out)
                    if act == "tanh":
                        out.tanh_()
                    elif act == "relu":
                        out.clamp_(min=0)
                    else:
                        out.sigmoid_()
                source = out
            Z = activations[-1]  # logits
            resp = weighted_resp_T[:, lo:hi] if hi - lo < n_rows else weighted_resp_T
            w = weight[lo:hi] if hi - lo < n_rows else weight
            part = None
            if targets:
                part = torch.mul(resp, Z, out=buffers[n_layers]).sum().neg_()
            shift = Z.amax(dim=0)
            Z.sub_(shift)
            if self._exp2:
                Z.mul_(_LOG2E).exp2_()
            else:
                Z.exp_()
            total = Z.sum(dim=0)
            ratio = torch.div(w, total)
            log_norm = total.log_().add_(shift)  # logsumexp of the logits, per sample
            part = log_norm @ w if part is None else part.add_(log_norm @ w)
            loss = part if loss is None else loss.add_(part)
            Z.mul_(ratio).sub_(resp)  # w_i (p_ki - r_ki), per sample (see SoftmaxObjective)
            delta = Z
            for layer in range(n_layers - 1, -1, -1):
                source = rows if layer == 0 else activations[layer - 1].T
                if lo == 0:
                    torch.mm(delta, source, out=grad_W[layer])
                    torch.sum(delta, dim=1, out=grad_b[layer])
                else:
                    grad_W[layer].addmm_(delta, source)
                    grad_b[layer].add_(delta.sum(dim=1))
                if layer > 0:  # the activation is not needed after this
                    back = torch.mm(coefs[layer].T, delta, out=buffers[n_layers + layer])
                    delta = _multiply_derivative_(back, activations[layer - 1], act)
        if loss is None:  # no rows
            workspace.grad.zero_()
            loss = workspace.grad.new_zeros(())
        return loss, [workspace.grad]

    def finish(self, loss, grads, factor, every_row, workspace):
        """The penalised loss and its gradient in the parameters from the rows' sums.

        ``grads`` is ``[workspace.grad]``, modified in place.
        """
        torch = self.torch
        grad = workspace.grad
        if every_row and self.moments is not None:
            # loss -= sum_k (Wr_k . M_k + br_k * rtot_k), the targets' term
            loss = loss - torch.vdot(self._raw_W0.view(-1), self.moments[0].view(-1))
            loss = loss - torch.dot(self._raw_b0, self.moments[1])
        if factor != 1.0:
            loss = loss * factor
            grad.mul_(factor)
        # Chain rule through the folded standardisation of the first layer.
        workspace.grad_W[0].addr_(workspace.grad_b[0], self.mean, alpha=-1).div_(self.scale)
        workspace.grad_weights.add_(self._weights, alpha=self.alpha)
        return loss + 0.5 * self.alpha * torch.dot(self._weights, self._weights), grads

    def penalty(self):
        """``alpha / 2`` times the squared weights (a float)."""
        return 0.5 * self.alpha * float(self._weights @ self._weights)


class ModuleNetwork:
    """A user's :class:`torch.nn.Module` on standardised inputs; gradients by autograd.

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    module : torch.nn.Module
        The network, on the device and dtype of the fit.
    mean, scale : torch.Tensor of shape (n_features,)
        Standardisation of its inputs.
    index : torch.Tensor of int
        Its outputs that are the gate's logits.
    alpha : float
        L2 penalty on its parameters of two or more dimensions.
    """

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

    def prepare(self):
        pass

    def workspace(self, like, block):
        return None

    def logits_T(self, X):
        return self.module((X - self.mean) / self.scale).T[self.index]

    def rows(self, workspace, X, weighted_resp_T, weight, block, every_row):
        """Cross-entropy of the rows and its gradients (one tensor, or None, per parameter)."""
        torch = self.torch
        loss, grads = None, None
        for lo in range(0, X.shape[0], block):
            hi = lo + block
            with torch.enable_grad():  # grad mode is per thread
                part = cross_entropy(torch, self.logits_T(X[lo:hi]), weighted_resp_T[:, lo:hi],
                                     weight[lo:hi])
                part_grads = torch.autograd.grad(part, self.params, allow_unused=True)
            loss, grads = add_parts(loss, grads, part.detach(), part_grads)
        return loss, grads

    def finish(self, loss, grads, factor, every_row, workspace):
        """The penalised loss and its gradients (zeros for unused parameters)."""
        weights = [p.detach() for p in self.params]
        if factor != 1.0:
            loss = loss * factor
            grads = [None if g is None else g * factor for g in grads]
        value = sum(((W * W).sum() for W in weights if W.ndim >= 2), weights[0].new_zeros(()))
        grads = [
            (self.torch.zeros_like(W) if g is None else g) + (self.alpha * W if W.ndim >= 2 else 0)
            for g, W in zip(grads, weights)
        ]
        return loss + 0.5 * self.alpha * value, grads

    def penalty(self):
        """``alpha / 2`` times the squares of the parameters of two or more dimensions (a float)."""
        value = sum(float((p.detach() ** 2).sum()) for p in self.params if p.ndim >= 2)
        return 0.5 * self.alpha * value


def add_parts(loss, grads, part_loss, part_grads):
    """``(loss + part_loss, grads + part_grads)``, in place where possible; ``None`` is zero."""
    if loss is None:
        return part_loss, list(part_grads)
    grads = [
        a if b is None else (b if a is None else a.add_(b)) for a, b in zip(grads, part_grads)
    ]
    return loss.add_(part_loss), grads
