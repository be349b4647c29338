"""Shared engine of the mixture-of-experts estimators: parameters, EM driver, introspection."""

import contextlib
import copy
import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _em
from ._experts import (
    check_expert,
    fit_experts,
    fit_linear_experts,
    n_expert_parameters,
    seed_expert,
    supports_fast_path,
)
from ._init import initial_responsibilities
from .gates._base import check_gate
from .gates._linear import LinearGate
from .utils._compat import HasMethods, Interval, StrOptions, _check_sample_weight
from .utils._threads import row_parallel

# An expert is starved when its share of the (weighted) responsibility falls
# below this. A share, not a count of rows, so that a weight of 2 and a
# repeated row behave the same and the scale of sample_weight does not matter.
_MIN_SHARE = 1e-3
# Re-seeding attempts per expert and restart before the expert is removed.
_MAX_RESEEDS = 2
# L-BFGS iterations of the linear gate per M-step. The gate warm-starts, so
# its optimisation continues across M-steps (generalised EM: every M-step
# still raises the objective). Solving each M-step to the gate's own
# tolerance was measured at 38 iterations per M-step (n=1e5, d=10, 16
# experts) and 2.6x the time of the whole fit, for the same EM iteration
# count and log-likelihood. Against 10 iterations, 5 reached the same final
# log-likelihood (within 1e-5 per sample) in 0.44-0.73x the fit time on
# motorcycle and make_gated_regression (n up to 1e5, d 5-10, 3-16 experts);
# at d=50, 4 experts both seeds found a better optimum in 1.06x the time;
# on three classification sets the log-likelihood was higher. 3 lost up to
# 1.4e-4 per sample.
_GATE_ITER_PER_M_STEP = 5


class _EMState:
    """Parameters of one EM run (experts, gate, noise variances) and its last E-step."""

    def __init__(self, templates, experts, gate, variance=None):
        self.templates = templates
        self.experts = experts
        self.gate = gate
        self.variance = variance
        self.outputs_T = None  # expert predictions (regression) or log p(y|x) (classification)
        self.resp_T = None  # responsibilities of the last E-step, (n_experts, n_samples)
        self.log_prob = None
        self.objective = -np.inf
        self.gate_constants = None  # LinearGate._prepare(X, sample_weight), once per run

    def snapshot(self):
        """Copy of what a later iteration could overwrite (experts are new objects each M-step)."""
        other = copy.copy(self)
        other.experts = list(self.experts)
        other.templates = list(self.templates)
        other.gate = copy.deepcopy(self.gate)
        other.resp_T = None if self.resp_T is None else self.resp_T.copy()
        other.outputs_T = None  # overwritten in place by the E-step; not needed after
        return other


class _BaseMixtureOfExperts(MetaEstimatorMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the mixture-of-experts estimators (EM driver).

    Subclasses provide the task: the default expert, the target preparation,
    the experts' per-sample log-likelihood and the M-step pieces particular
    to the task (the noise variances of regression).
    """

    _parameter_constraints = {
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "expert": [HasMethods(["fit", "predict"]), list, None],
        "gate": [StrOptions({"linear", "mlp"}), HasMethods(["fit", "predict_log_proba"])],
        "gate_alpha": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"kmeans", "random", "tree"}), HasMethods(["fit_predict"]), "array-like"],
        "pooling": [StrOptions({"weighted", "argmax"})],
        "top_k": [Interval(Integral, 1, None, closed="left"), None],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "backend": [StrOptions({"numpy", "torch"})],
        "device": [str, None],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    @abstractmethod
    def __init__(
        self,
        n_experts=4,
        *,
        expert=None,
        gate="linear",
        gate_alpha=1e-4,
        init="kmeans",
        pooling="weighted",
        top_k=None,
        max_iter=100,
        tol=1e-4,
        n_init=1,
        backend="numpy",
        device=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
        warm_start=False,
    ):
        self.n_experts = n_experts
        self.expert = expert
        self.gate = gate
        self.gate_alpha = gate_alpha
        self.init = init
        self.pooling = pooling
        self.top_k = top_k
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.backend = backend
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------
    # Task hooks

    _is_regression = True

    @abstractmethod
    def _default_expert(self):
        """The expert used when ``expert=None``."""

    @abstractmethod
    def _prepare_target(self, y, sample_weight):
        """Validate/encode ``y`` for fitting; set task attributes (``classes_``)."""

    @abstractmethod
    def _expert_outputs(self, experts, X, y):
        """What the E-step needs from the experts, ``(n_experts, n_samples)``."""

    @abstractmethod
    def _log_lik_T(self, state, y):
        """``log p_k(y_i | x_i)``, ``(n_experts, n_samples)``."""

    def _update_task_parameters(self, state, y, resp_T, sample_weight):
        """M-step of task parameters beyond experts and gate (noise variances)."""

    def _init_task_parameters(self, n_experts):
        """Starting values of task parameters for a new restart."""
        return None

    def _n_task_parameters(self):
        """Free parameters beyond experts and gate (noise variances)."""
        return 0

    # ------------------------------------------------------------------
    # Validation

    def _validate_fit_data(self, X, y):
        return validate_data(
            self,
            X,
            y,
            dtype=[np.float64, np.float32],
            y_numeric=self._is_regression,
            ensure_min_samples=1,
        )

    def _resolve_experts(self):
        """The expert templates (unfitted clones) and checks, before any work."""
        expert = self.expert
        if expert is None:
            templates = [self._default_expert() for _ in range(self.n_experts)]
        elif isinstance(expert, list):
            if len(expert) != self.n_experts:
                raise ValueError(
                    f"expert is a list of {len(expert)} estimators but n_experts="
                    f"{self.n_experts}; give one estimator per expert or a single one."
                )
            templates = [clone(e) for e in expert]
        else:
            templates = [clone(expert) for _ in range(self.n_experts)]
        for t in templates:
            check_expert(t, classification=not self._is_regression)
        return templates

    def _check_parameters(self, X):
        """Checks that involve several parameters or the data (after validate_data)."""
        n_samples = X.shape[0]
        if n_samples < self.n_experts:
            raise ValueError(
                f"n_samples={n_samples} should be >= n_experts={self.n_experts}: "
                "every expert needs samples."
            )
        if self.top_k is not None and self.top_k > self.n_experts:
            raise ValueError(
                f"top_k={self.top_k} must be <= n_experts={self.n_experts}."
            )
        if self.backend == "torch":
            from .utils._optional import import_torch

            import_torch()
        if not isinstance(self.gate, str):
            check_gate(self.gate)

    def _make_gate(self, rng):
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if not isinstance(self.gate, str):
            gate = clone(self.gate)
            if "random_state" in gate.get_params():
                gate.set_params(random_state=seed)
            return gate
        if self.backend == "torch":
            from .gates._torch import TorchGate

            hidden = () if self.gate == "linear" else (16,)
            return TorchGate(
                hidden_layer_sizes=hidden, alpha=self.gate_alpha, device=self.device, random_state=seed
            )
        if self.gate == "linear":
            return LinearGate(alpha=self.gate_alpha, max_iter=_GATE_ITER_PER_M_STEP)
        from .gates._mlp import MLPGate

        return MLPGate(alpha=self.gate_alpha, random_state=seed)

    # ------------------------------------------------------------------
    # EM

    def _fit(self, X, y, sample_weight=None):
        """Validate, run ``n_init`` EM restarts, keep the best; shared by both estimators."""
        X, y = self._validate_fit_data(X, y)
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        # Zero-weight rows are removed outright: identical to not having them.
        positive = sample_weight > 0
        if not np.any(positive):
            raise ValueError("sample_weight is zero for every sample; nothing to fit.")
        if not np.all(positive):
            X, y, sample_weight = X[positive], y[positive], sample_weight[positive]
        if not np.all(np.isfinite(sample_weight)):
            raise ValueError("sample_weight must be finite.")
        self._check_parameters(X)
        self._unit_weights = bool(np.all(sample_weight == 1.0))
        y_fit = self._prepare_target(y, sample_weight)
        templates = self._resolve_experts()
        self._use_fast_path = self._is_regression and supports_fast_path(templates)

        rng = check_random_state(self.random_state)
        resume = self.warm_start and hasattr(self, "converged_")
        n_init = 1 if resume else self.n_init
        best, best_curve, curves = None, None, []
        best_converged, best_n_iter = False, 0
        for init in range(n_init):
            start = time.time()
            # X and y are validated above: spare the gate and the experts the
            # finite checks (a pass over X each) they would repeat every iteration.
            with config_context(assume_finite=True), self._em_threads():
                if resume:
                    state = _EMState(list(self._templates), list(self.experts_), self.gate_,
                                     getattr(self, "noise_variance_", None))
                    state.outputs_T = self._expert_outputs(state.experts, X, y_fit)
                    self._e_step(state, X, y_fit)
                else:
                    state = self._initialize(X, y_fit, sample_weight, templates, rng)
                state, curve, converged, n_iter = self._run_em(state, X, y_fit, sample_weight, rng)
            curves.append(np.asarray(curve))
            if self.verbose:
                status = "converged" if converged else "did not converge"
                print(
                    f"Initialization {init}: {status} after {n_iter} iterations, "
                    f"log-likelihood {curve[-1]:.6f}, time {time.time() - start:.2f}s"
                )
            if best is None or curve[-1] > best.objective:
                best, best_curve = state, curve
                best_converged, best_n_iter = converged, n_iter

        if not best_converged and self.max_iter > 0:
            warnings.warn(
                f"Best of {n_init} initialisation(s) did not converge in max_iter="
                f"{self.max_iter} iterations (tol={self.tol}). Try different init "
                "parameters, increase max_iter or tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_fitted_state(best, best_curve, curves, best_converged, best_n_iter, sample_weight)
        return self

    def _em_threads(self):
        """Threading of the EM loop (see ``utils/_threads.py``).

        With linear experts and the built-in linear gate every large pass
        (Gram matrices, gate objective, logits, predictions) splits its rows
        over a :class:`~skmoe.utils._threads.RowPool` and BLAS runs
        single-threaded for the whole loop, so that no spinning BLAS worker
        competes with the pool's threads. Other experts and gates keep BLAS's
        own threads.
        """
        if self._use_fast_path and self._builtin_linear_gate():
            return row_parallel()
        return contextlib.nullcontext()

    def _builtin_linear_gate(self):
        """Whether the gate is the NumPy :class:`~skmoe.gates.LinearGate` (by name or as an object)."""
        if isinstance(self.gate, str):
            return self.gate == "linear" and self.backend == "numpy"
        return type(self.gate) is LinearGate

    def _initialize(self, X, y, sample_weight, templates, rng):
        """First responsibilities from ``init``, then an M-step and an E-step."""
        resp_T = initial_responsibilities(
            self.init, X, y, sample_weight, self.n_experts, rng, is_regression=self._is_regression
        )
        seeded = [seed_expert(clone(t), rng) for t in templates]
        state = _EMState(seeded, None, self._make_gate(rng), self._init_task_parameters(len(seeded)))
        self._m_step(state, X, y, sample_weight, resp_T)
        self._e_step(state, X, y)
        return state

    def _m_step(self, state, X, y, sample_weight, resp_T):
        """Refit experts, task parameters and gate to the responsibilities ``resp_T``."""
        # Expert weights are resp * sample_weight, formed row by row (or block
        # by block on the fast path), never as a second (n_experts, n_samples) array.
        sw = None if self._unit_weights else sample_weight
        if self._use_fast_path:
            state.experts = fit_linear_experts(state.templates, X, y, resp_T, sw)
        else:
            state.experts = fit_experts(
                state.templates, X, y, resp_T, sample_weight=sw, n_jobs=self.n_jobs,
                drop_zero_rows=self._is_regression,
            )
        state.outputs_T = self._expert_outputs(state.experts, X, y)
        self._update_task_parameters(state, y, resp_T, sample_weight)
        if type(state.gate) is LinearGate:
            # The built-in gate's weights and standardisation depend on X and
            # sample_weight only: computed once per run, not in every M-step;
            # resp_T is already in the gate's layout, its columns sum to one.
            if state.gate_constants is None:
                state.gate_constants = LinearGate._prepare(X, sample_weight)
            state.gate._fit_prepared(X, resp_T, *state.gate_constants)
        else:
            state.gate.fit(X, resp_T.T, sample_weight=sample_weight)

    def _log_gate_T(self, gate, X):
        log_gate_T = np.ascontiguousarray(gate.predict_log_proba(X).T, dtype=np.float64)
        return _em.top_k_log_gate(log_gate_T, self.top_k)

    def _e_step(self, state, X, y):
        """Responsibilities and per-sample log-likelihood, fused in log space."""
        log_lik_T = self._log_lik_T(state, y)  # may reuse the experts' output buffer
        log_gate_T = self._log_gate_T(state.gate, X)
        state.resp_T, state.log_prob = _em.responsibilities(log_gate_T, log_lik_T, out=log_lik_T)
        return state

    def _objective(self, state, sample_weight):
        penalty = float(getattr(state.gate, "penalty_", 0.0))
        return _em.mean_log_likelihood(state.log_prob, sample_weight) - penalty

    def _run_em(self, state, X, y, sample_weight, rng):
        """EM iterations from an initialised state; returns the best iterate."""
        state.objective = self._objective(state, sample_weight)
        curve = [state.objective]
        best = state.snapshot() if not self._monotone(state) else None
        converged = False
        n_iter = 0
        reseeds = np.zeros(len(state.experts), dtype=int)
        reseeded = self._handle_starved(state, X, sample_weight, reseeds)
        for n_iter in range(1, self.max_iter + 1):
            tic = time.time()
            self._m_step(state, X, y, sample_weight, state.resp_T)
            self._e_step(state, X, y)
            objective = self._objective(state, sample_weight)
            change = objective - curve[-1]
            state.objective = objective
            curve.append(objective)
            if self.verbose >= 2:
                print(
                    f"  Iteration {n_iter}: log-likelihood {objective:.8f} "
                    f"(change {change:+.3e}), time {time.time() - tic:.3f}s"
                )
            if best is not None and objective > best.objective:
                best = state.snapshot()
            just_reseeded = reseeded
            reseeded = self._handle_starved(state, X, sample_weight, reseeds)
            if reseeded:
                best = None if self._monotone(state) else state.snapshot()
            if not just_reseeded and not reseeded and abs(change) < self.tol:
                converged = True
                break
        if best is not None and best.objective > state.objective:
            state = best
        return state, curve, converged, n_iter

    def _monotone(self, state):
        """EM is exact (non-decreasing objective) for linear experts without top_k."""
        return self._use_fast_path and self.top_k is None

    def _handle_starved(self, state, X, sample_weight, reseeds):
        """Re-seed (or remove) experts whose responsibility share is negligible."""
        resp_T = state.resp_T
        n_experts, n_samples = resp_T.shape
        if n_experts == 1:
            return False
        share = _em.responsibility_share(resp_T, sample_weight)
        starved = np.flatnonzero(share < _MIN_SHARE)
        if starved.size == 0:
            return False
        remove = [k for k in starved if reseeds[k] >= _MAX_RESEEDS]
        if remove:
            keep = np.setdiff1d(np.arange(n_experts), remove)
            warnings.warn(
                f"Expert(s) {list(map(int, remove))} kept losing all responsibility "
                f"after {_MAX_RESEEDS} re-seedings and were removed; "
                f"{keep.size} experts remain.",
                ConvergenceWarning,
            )
            state.templates = [state.templates[k] for k in keep]
            state.experts = [state.experts[k] for k in keep]
            if state.variance is not None:
                state.variance = state.variance[keep]
            resp = state.resp_T[keep]
            total = resp.sum(axis=0)
            # A sample only the removed experts explained is shared evenly.
            resp[:, total <= 0] = 1.0
            resp /= resp.sum(axis=0)
            state.resp_T = np.ascontiguousarray(resp)
            reseeds[:] = 0
            reseeds.resize(keep.size, refcheck=False)
            return True
        # Re-seed each starved expert from the samples the model explains worst:
        # consecutive slices, each holding 1 / (2 * n_experts) of the total weight.
        order = np.argsort(state.log_prob, kind="stable")
        cumulative = np.cumsum(sample_weight[order]) / np.sum(sample_weight)
        slice_share = 0.5 / n_experts
        warnings.warn(
            f"Expert(s) {starved.tolist()} received almost no responsibility "
            f"(share {np.array2string(share[starved], precision=4)}); re-seeded from "
            f"the worst-fitted samples ({slice_share:.1%} of the weight each).",
            ConvergenceWarning,
        )
        for j, k in enumerate(starved):
            lo, hi = np.searchsorted(cumulative, [j * slice_share, (j + 1) * slice_share], side="right")
            rows = order[lo : max(hi, lo + 1)]
            resp_T[:, rows] = 0.0
            resp_T[k, rows] = 1.0
            reseeds[k] += 1
        return True

    def _set_fitted_state(self, state, curve, curves, converged, n_iter, sample_weight):
        self._templates = state.templates
        self.experts_ = state.experts
        self.gate_ = state.gate
        self.n_experts_ = len(state.experts)
        self.expert_share_ = _em.responsibility_share(state.resp_T, sample_weight)
        self.converged_ = bool(converged)
        self.n_iter_ = int(n_iter)
        self.log_likelihood_ = float(state.objective)
        self.log_likelihood_curve_ = np.asarray(curve, dtype=np.float64)
        self.log_likelihood_curves_ = [np.asarray(c, dtype=np.float64) for c in curves]
        self._set_task_state(state)

    def _set_task_state(self, state):
        """Task-specific fitted attributes (``noise_variance_``)."""

    # ------------------------------------------------------------------
    # Prediction helpers

    def _validate_predict_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=[np.float64, np.float32])

    def _pooling_log_weights_T(self, X):
        """Log pooling weights ``(n_experts, n_samples)``: gate, top-k, or argmax one-hot."""
        log_gate_T = self._log_gate_T(self.gate_, X)
        if self.pooling == "argmax":
            return _em.argmax_log_gate(log_gate_T)
        return log_gate_T

    def predict_gate(self, X):
        """Gate probabilities of each expert.

        With ``top_k`` set, only the ``top_k`` largest probabilities of each
        sample are kept and renormalised, as in training.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        gate : ndarray of shape (n_samples, n_experts)
            Probability that each expert is the one to trust; rows sum to one.
        """
        X = self._validate_predict_X(X)
        with np.errstate(under="ignore"):
            return np.exp(self._log_gate_T(self.gate_, X)).T

    def predict_expert(self, X):
        """Index of the expert the gate trusts most for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        expert : ndarray of shape (n_samples,)
            Index into ``experts_``.
        """
        X = self._validate_predict_X(X)
        return np.argmax(self._log_gate_T(self.gate_, X), axis=0)

    @abstractmethod
    def _log_prob_T(self, X, y):
        """Per-expert log-likelihood of ``y`` at ``X``, ``(n_experts, n_samples)``."""

    def log_prob(self, X, y):
        """Conditional log-density (log-probability) of ``y`` given ``X``.

        Uses the same pooled gate as :meth:`predict`: the mixture under
        ``pooling="weighted"`` (with ``top_k``), the chosen expert under
        ``pooling="argmax"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            ``log p(y_i | x_i)``.
        """
        X = self._validate_predict_X(X)
        log_lik_T = self._log_prob_T(X, y)
        log_w_T = self._pooling_log_weights_T(X)
        with np.errstate(under="ignore"):
            _, log_prob = _em.e_step(log_w_T, log_lik_T, out=log_lik_T)
        return log_prob

    def _n_parameters(self):
        """Free parameters: gate + experts + task parameters (see ``bic``)."""
        check_is_fitted(self)
        n_gate = getattr(self.gate_, "n_parameters_", 0)
        n_experts = sum(n_expert_parameters(e) for e in self.experts_)
        return int(n_gate + n_experts + self._n_task_parameters())

    def bic(self, X, y):
        """Bayesian information criterion of the fit on ``(X, y)``; lower is better.

        ``-2 * sum_i log p(y_i | x_i) + n_parameters * log(n_samples)``.
        The parameter count is the gate's ``n_parameters_`` (``(n_experts - 1)
        * (n_features + 1)`` for the linear gate), plus each expert's
        coefficients and intercept when it exposes ``coef_`` (leaves for
        trees, summed over the members of tree ensembles, 0 for experts with
        neither), plus the noise variances of the regressor.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        bic : float
            The criterion.
        """
        log_prob = self.log_prob(X, y)
        return float(-2.0 * np.sum(log_prob) + self._n_parameters() * np.log(log_prob.shape[0]))

    def aic(self, X, y):
        """Akaike information criterion of the fit on ``(X, y)``; lower is better.

        ``-2 * sum_i log p(y_i | x_i) + 2 * n_parameters``, with the parameter
        count described in :meth:`bic`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        aic : float
            The criterion.
        """
        log_prob = self.log_prob(X, y)
        return float(-2.0 * np.sum(log_prob) + 2.0 * self._n_parameters())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags
