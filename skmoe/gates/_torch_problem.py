"""The objective of one :class:`~skmoe.gates.TorchGate` fit over the rows, for L-BFGS and Adam.

:class:`TorchProblem` evaluates the penalised cross-entropy of a network of
:mod:`skmoe.gates._torch_network` on every row (the full-batch objective of
the shared L-BFGS driver, NumPy in and out) or on a mini-batch (Adam's
gradient), splitting the rows over the row threads as the NumPy objective
does.
"""

import numpy as np

from ..utils._threads import RowPool
from ._torch_network import add_parts, cross_entropy


class TorchProblem:
    """The penalised cross-entropy of one fit, for a network of PyTorch tensors.

    As an objective of the shared L-BFGS driver, ``problem(theta)`` copies
    the flat NumPy ``theta`` into the parameters and returns the loss and
    the gradient as NumPy; :meth:`evaluate` on a mini-batch serves Adam.
    Within one EM run the gate keeps the problem and only changes its
    targets (:meth:`set_targets`): its buffers are allocated once per run.

    On CPU the passes over the rows follow the rule of the NumPy gates:
    PyTorch runs on one thread, the rows are split into chunks over the
    threads of the row pool (:meth:`~skmoe.utils._threads.RowPool.bounds`),
    each chunk's passes made in its own Python thread (PyTorch releases the
    GIL in its kernels) in blocks of rows that stay in cache, and the sums
    are combined in chunk order. Each row thread sets its own PyTorch
    thread count to one: OpenMP's and MKL's counts are per thread, and
    PyTorch's own threads spin while they wait (on busy cores two of them
    were measured 12x slower per evaluation than one).

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    network : BuiltinNetwork or ModuleNetwork
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
        self.X, self.weight = X, weight
        self.sizes = [p.numel() for p in self.params]
        self._workspaces = []  # per chunk of rows (one thread each)
        self.on_cpu = X.device.type == "cpu"
        if self.on_cpu:
            # Multiply-adds per row of a forward and backward pass, for the thread rule.
            self.n_cols = 3 * network.macs_per_row
            # Blocks of rows whose activations stay in cache, as the NumPy objective's.
            self.block = int(np.clip(2**18 // max(1, network.width), 1024, 16384))
        else:  # one pass on an accelerator
            self.n_cols, self.block = None, max(1, X.shape[0])
        self.set_pool(pool)
        # On CPU in float64 the flat parameters of the built-in network are
        # NumPy's memory too: theta is copied in without a PyTorch operation.
        flat = getattr(network, "flat", None)
        self._flat_numpy = (
            flat.numpy() if self.on_cpu and flat is not None and flat.dtype == torch.float64
            else None
        )
        self.set_targets(weighted_resp_T)

    def set_pool(self, pool):
        """The row threads of the current M-step."""
        self.pool = pool if self.on_cpu else RowPool(1, None)
        self._bounds = {}  # chunks of rows by the number of rows

    def set_targets(self, weighted_resp_T):
        """Fit the next M-step's targets ``w * R`` (on the device)."""
        self.weighted_resp_T = weighted_resp_T
        if hasattr(self.network, "set_moments"):
            self.network.set_moments(self.X, weighted_resp_T)

    def release(self):
        """Drop what only the current M-step needs: the targets (and, on an accelerator, the buffers).

        The problem outlives the M-step in the fitted gate; ``w * R`` and the
        buffers of a pass over every row on a GPU can be large.
        """
        self.weighted_resp_T = None
        if hasattr(self.network, "moments"):
            self.network.moments = None
        if not self.on_cpu:
            self._workspaces = []

    def _rows(self, rows, start, stop):
        """``X``, ``w * R`` and ``w`` of the rows ``start:stop`` (of ``rows`` if given)."""
        if rows is None:
            if start == 0 and stop == self.X.shape[0]:
                return self.X, self.weighted_resp_T, self.weight
            return (self.X[start:stop], self.weighted_resp_T[:, start:stop],
                    self.weight[start:stop])
        index = rows[start:stop]
        return self.X[index], self.weighted_resp_T[:, index], self.weight[index]

    def _workspace(self, chunk):
        while len(self._workspaces) <= chunk:
            self._workspaces.append(self.network.workspace(self.X, self.block))
        return self._workspaces[chunk]

    def evaluate(self, rows=None):
        """Loss (a 0-d tensor) and gradient (a tensor per parameter).

        On every row, or (``rows``, an index tensor) the unbiased estimate
        from these rows: their cross-entropy times ``n_samples / len(rows)``.
        """
        torch, network = self.torch, self.network
        every_row = rows is None
        n_rows = self.X.shape[0] if every_row else rows.shape[0]
        bounds = self._bounds.get(n_rows)
        if bounds is None:
            bounds = self._bounds[n_rows] = self.pool.bounds(n_rows, n_cols=self.n_cols)
        workspaces = [self._workspace(i) for i in range(len(bounds))]
        chunk_of = {start: i for i, (start, _) in enumerate(bounds)}
        # No tensor of the built-in network requires a gradient: no graph is
        # recorded without no_grad; a user's module records one in ``rows``.
        network.prepare()

        def part(start, stop):
            if self.on_cpu:
                # The thread counts of OpenMP and MKL are per thread: a row
                # thread's PyTorch would otherwise run (and spin) on all cores.
                torch.set_num_threads(1)
            return network.rows(workspaces[chunk_of[start]], *self._rows(rows, start, stop),
                                self.block, every_row)

        loss, grads = None, None
        for part_loss, part_grads in self.pool.map(part, bounds):  # in chunk order
            loss, grads = add_parts(loss, grads, part_loss, part_grads)
        return network.finish(loss, grads, self.X.shape[0] / n_rows, every_row, workspaces[0])

    def full_loss(self):
        """The loss on every row without gradient (a float)."""
        torch, network = self.torch, self.network
        with torch.no_grad():
            network.prepare()

        def part(start, stop):
            if self.on_cpu:
                torch.set_num_threads(1)  # per thread (see evaluate)
            with torch.no_grad():
                total = 0.0
                for lo in range(start, stop, self.block):
                    X, weighted_resp_T, weight = self._rows(None, lo, min(lo + self.block, stop))
                    Z = network.logits_T(X)
                    total = total + cross_entropy(torch, Z, weighted_resp_T, weight)
                return total

        total = network.penalty()
        for value in self.pool.map(part, self.pool.bounds(self.X.shape[0], n_cols=self.n_cols)):
            total = total + float(value)
        return float(total)

    def flat(self):
        """The parameters as one float64 NumPy vector (a copy)."""
        return np.concatenate(
            [p.detach().reshape(-1).cpu().double().numpy() for p in self.params]
        )

    def set_flat(self, theta):
        """Copy the flat ``theta`` into the parameters."""
        if self._flat_numpy is not None:
            self._flat_numpy[:] = theta
            return
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
        """Loss and gradient at the flat NumPy ``theta``, as a float and a float64 array."""
        self.set_flat(theta)
        loss, grads = self.evaluate()
        grad = self.torch.cat([g.reshape(-1) for g in grads]) if len(grads) > 1 else grads[0]
        grad = grad.reshape(-1)
        if grad.device.type == "cpu" and grad.dtype == self.torch.float64:
            # The gradient's storage is reused by the next evaluation: a copy.
            return float(loss), grad.numpy().copy()
        return float(loss), grad.cpu().double().numpy()
