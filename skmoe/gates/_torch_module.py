"""``TorchGate(module=...)``: a user's network, or a factory of one, as the gate's network.

The module is cloned (deep-copied, or built by the factory under a seed) at
every cold start, moved to the device and dtype of the fit, trained with
the gate's optimisers through autograd, and stored as NumPy arrays
(``module_state_``); prediction rebuilds it from them, so it needs PyTorch.
"""

import copy

import numpy as np
from sklearn.utils import check_random_state

from ..utils import _optional
from ..utils._threads import row_parallel
from ._lbfgs import minimise_lbfgs
from ._softmax import _BestPoint
from ._torch_minibatch import shuffle_seed
from ._torch_network import ModuleNetwork, resolve_device, tensor_like
from ._torch_problem import TorchProblem

MODULE_NEEDS_TORCH = (
    "This TorchGate's network is a torch.nn.Module of your own (module=...): "
    "predicting with it requires PyTorch; install it with `pip install torch`. "
    "Gates with the built-in networks predict without it."
)


class ModuleGateMixin:
    """The parts of :class:`~skmoe.gates.TorchGate` that handle ``module``."""

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

    def _check_module_output(self, torch, module, Xt, mean, scale, n_experts):
        """ValueError unless ``module`` maps rows to ``n_experts`` logits."""
        with torch.no_grad():
            out = module((Xt[:2] - mean) / scale)
        if tuple(out.shape) != (min(2, Xt.shape[0]), n_experts):
            raise ValueError(
                f"module must map inputs of shape (n_samples, {Xt.shape[1]}) to "
                f"logits of shape (n_samples, {n_experts}); on 2 rows it returned "
                f"shape {tuple(out.shape)}."
            )

    def _fit_module(self, X, resp_T, context):
        """:meth:`fit_prepared` with ``module``: warm from the fitted network when its shapes match."""
        torch = _optional.import_torch()
        n_features, n_experts = X.shape[1], resp_T.shape[0]
        Xt = self._fit_device_tensor(torch, X)
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
            self._shuffle_seed, self._n_shuffled_fits = shuffle_seed(rng), 0
            self.input_mean_ = np.array(context.mean, dtype=np.float64)
            self.input_scale_ = np.array(context.scale, dtype=np.float64)
            self.output_index_ = np.arange(n_experts)
            self._n_module_outputs = n_experts
        module = module.to(device=Xt.device, dtype=Xt.dtype)
        module.eval()
        mean = tensor_like(torch, self.input_mean_, Xt)
        scale = tensor_like(torch, self.input_scale_, Xt)
        index = torch.as_tensor(self.output_index_, device=Xt.device)
        network = ModuleNetwork(torch, module, mean, scale, index, float(self.alpha))
        with row_parallel() as pool, self._threads(X.shape[0], pool):
            if not warm:
                self._check_module_output(torch, module, Xt, mean, scale, n_experts)
            problem = TorchProblem(
                torch, network, Xt, tensor_like(torch, resp_T * context.weight, Xt),
                tensor_like(torch, context.weight, Xt), pool,
            )
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
            self._set_penalty(network.penalty())
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

    def _module_logits_T(self, torch, Xt, device, dtype):
        """Logits of the fitted ``module`` on the device tensor ``Xt``."""
        module = self._fitted_module(torch).to(device=device, dtype=dtype)
        mean = torch.as_tensor(self.input_mean_, dtype=dtype, device=device)
        scale = torch.as_tensor(self.input_scale_, dtype=dtype, device=device)
        index = torch.as_tensor(self.output_index_, device=device)
        return module((Xt - mean) / scale).T[index]

    def _module_torch_and_device(self):
        """``(torch, device)`` to predict with ``module``; ImportError without PyTorch."""
        try:
            torch = _optional.import_torch()
        except ImportError as exc:
            raise ImportError(MODULE_NEEDS_TORCH) from exc
        return torch, resolve_device(torch, self.device)
