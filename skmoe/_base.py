"""Shared engine of the mixture-of-experts estimators: parameters, EM driver, introspection.

The driver is a template method over four small protocols, chosen once per
fit and never named here by class:

* a likelihood (:mod:`skmoe.likelihoods`): the target, the per-expert
  log-likelihood and its own parameters;
* an expert solver (:mod:`skmoe._solvers`): the experts' M-step;
* a gate (:mod:`skmoe.gates`, through its adapter): the gate's M-step and
  log-probabilities;
* a router (:mod:`skmoe._routers`): the E-step's posterior to the M-step's
  weights.

Per-fit state lives in a :class:`_FitContext` and the :class:`_EMState` of each
restart; the estimator holds its parameters and fitted ``*_`` attributes.
"""

import contextlib
import copy
import time
import warnings
from abc import ABCMeta, abstractmethod
from collections import namedtuple
from numbers import Integral, Real

import numpy as np
from sklearn import config_context
from sklearn.base import MetaEstimatorMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _em
from ._combinations import Combination, check_combination
from ._experts import check_expert, n_expert_parameters, seed_expert
from ._init import initial_responsibilities
from ._repr import _MixtureReprMixin
from ._routers import make_router
from ._solvers import GenericSolver, select_solver
from .exceptions import DegenerateExpertWarning
from .gates._base import check_gate
from .gates._protocol import GateAdapter, make_gate
from .utils._compat import HasMethods, Interval, StrOptions, _BaseComposition, _check_sample_weight
from .utils._threads import row_parallel

# An expert is starved when its share of the (weighted) responsibility falls
# below this. A share, not a count of rows, so that a weight of 2 and a
# repeated row behave the same and the scale of sample_weight does not matter.
_MIN_SHARE = 1e-3
# Re-seeding attempts per expert and restart before the expert is removed.
_MAX_RESEEDS = 2
# EM never stops before this many iterations: a generalised M-step (neural
# gates, tree experts) can move the objective very little at first.
_MIN_ITER = 3


class _FitContext:
    """What one fit's helpers share: the data, the plug-ins chosen for it and the rng.

    ``sw`` is None for unit weights (the experts then get the
    responsibilities alone), ``sample_weight`` is always an array.
    """

    def __init__(self, X, y, sample_weight, likelihood, solver, router, rng,
                 gate_features=None, expert_features=None):
        self.X = X  # every column: the initial partition sees them all
        self.X_gate = _select_columns(X, gate_features)
        self.X_expert = _select_columns(X, expert_features)
        self.y = y
        self.sample_weight = sample_weight
        self.sw = None if np.all(sample_weight == 1.0) else sample_weight
        self.likelihood = likelihood
        self.solver = solver
        self.router = router
        self.rng = rng
        # Effective sample size: the total weight in units of the smallest
        # weight. A weight of 2 counts as two rows (as a repeated row does),
        # and weights that all equal 1/n count as n rows.
        self.n_effective = float(sample_weight.sum() / sample_weight.min())


class _EMState:
    """Parameters of one EM run (experts, gate, likelihood parameters) and its last E-step."""

    def __init__(self, templates, experts, gate, params):
        self.templates = templates
        self.experts = experts
        self.gate = gate  # a GateAdapter
        self.params = params  # the likelihood's parameters (noise variances)
        self.outputs_T = None  # the experts' outputs the likelihood asked for
        self.resp_T = None  # responsibilities of the last E-step, (n_experts, n_samples)
        self.extra_T = None  # the likelihood's extra expert weights of the last E-step
        self.log_prob = None
        self.objective = -np.inf
        self.log_likelihood = -np.inf
        self.gate_context = None  # gate.prepare(X, sample_weight), once per run
        self.gate_prepared = False
        self.expert_ids = np.arange(len(templates))  # indices into the requested experts
        self.reseeds = np.zeros(len(templates), dtype=int)
        self.events = {"reseeded": {}, "removed": [], "pruned": [], "reasons": {}}
        self.load = None  # share of the weight each expert's last M-step was fitted on

    def snapshot(self):
        """Copy of what a later iteration could overwrite (experts are new objects each M-step)."""
        other = copy.copy(self)
        other.experts = list(self.experts)
        other.templates = list(self.templates)
        other.gate = copy.deepcopy(self.gate)
        other.resp_T = None if self.resp_T is None else self.resp_T.copy()
        other.outputs_T = None  # overwritten in place by the E-step; not needed after
        other.events = copy.deepcopy(self.events)
        other.reseeds = self.reseeds.copy()
        return other


_EMResult = namedtuple("_EMResult", ["state", "curve", "log_likelihood_curve", "converged", "n_iter"])


def _select_columns(X, columns):
    """``X[:, columns]`` as a C-contiguous array; ``X`` itself for None (every column)."""
    if columns is None:
        return X
    return np.ascontiguousarray(X[:, columns])


def classify_experts(share, ctx, state):
    """Experts to re-seed or remove, from their responsibility shares; records the reasons.

    Starved: a share below ``_MIN_SHARE``. Degenerate: an effective sample
    size (share times ``ctx.n_effective``) below ``ctx.min_effective`` of the
    expert. One is removed after ``_MAX_RESEEDS`` re-seedings, or at once when
    even a re-seeded slice (``1 / (2 * n_experts)`` of the weight) could not
    give it enough samples; the expert with the largest share always stays.
    Shared by the in-memory and the Dask drivers.

    Returns
    -------
    bad : ndarray of int
        Starved or degenerate experts.
    remove : list of int
        Those of ``bad`` to remove.
    """
    n_experts = share.shape[0]
    ess = share * ctx.n_effective
    need = np.array([ctx.min_effective[i] for i in state.expert_ids])
    starved = share < _MIN_SHARE
    degenerate = ess < need
    bad = np.flatnonzero(starved | degenerate)
    hopeless = degenerate & (0.5 / n_experts * ctx.n_effective < need)
    remove = [k for k in bad if state.reseeds[k] >= _MAX_RESEEDS or hopeless[k]]
    if len(remove) == n_experts:  # keep the expert with the largest share
        remove.remove(int(np.argmax(share)))
    for k in bad:
        reason = (
            f"share {share[k]:.2g}" if starved[k]
            else f"effective sample size {ess[k]:.3g} < {need[k]:.3g}"
        )
        state.events["reasons"][int(state.expert_ids[k])] = reason
    return bad, remove


def _is_dask(*arrays):
    """Whether any argument is a Dask collection (without importing dask)."""
    return any(type(a).__module__.partition(".")[0] == "dask" for a in arrays if a is not None)


def _converged(change, objective, n_iter, tol):
    """EM's stopping rule: a non-negative relative change below ``tol``.

    ``0 <= change <= tol * (|objective| + 0.1)`` (flexmix's relative rule on
    the per-sample objective), never on a decrease beyond rounding, and not
    before ``_MIN_ITER`` iterations.
    """
    if n_iter < _MIN_ITER:
        return False
    rounding = 64 * np.finfo(np.float64).eps * (abs(objective) + 1.0)
    return -rounding <= change <= tol * (abs(objective) + 0.1)


class _BaseMixtureOfExperts(_MixtureReprMixin, MetaEstimatorMixin, _BaseComposition, metaclass=ABCMeta):
    """Base class of the mixture-of-experts estimators (EM driver).

    Subclasses provide the likelihood (:meth:`_make_likelihood`) and the
    task's prediction methods.
    """

    _parameter_constraints = {
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "expert": [HasMethods(["fit", "predict"]), list, None],
        "gate": [StrOptions({"linear", "mlp"}), HasMethods(["fit", "predict_log_proba"])],
        "gate_alpha": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"kmeans", "random", "tree", "gmm"}), HasMethods(["fit_predict"]), "array-like"],
        "pooling": [StrOptions({"weighted", "argmax"})],
        "top_k": [Interval(Integral, 1, None, closed="left"), None],
        "gate_features": ["array-like", None],
        "expert_features": ["array-like", None],
        "min_prior": [Interval(Real, 0, 1, closed="neither"), None],
        "algorithm": [StrOptions({"em", "cem", "sem"})],
        "routing": [StrOptions({"token_choice", "expert_choice"})],
        "capacity_factor": [Interval(Real, 1, None, closed="left"), None],
        "balance": [StrOptions({"uniform"}), "array-like", None],
        "gate_noise": [Interval(Real, 0, None, closed="left")],
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

    def __init__(
        self,
        n_experts=4,
        *,
        expert=None,
        gate="linear",
        gate_alpha=1e-6,
        init="kmeans",
        pooling="weighted",
        top_k=None,
        gate_features=None,
        expert_features=None,
        min_prior=None,
        algorithm="em",
        routing="token_choice",
        capacity_factor=None,
        balance=None,
        gate_noise=0.0,
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
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.min_prior = min_prior
        self.algorithm = algorithm
        self.routing = routing
        self.capacity_factor = capacity_factor
        self.balance = balance
        self.gate_noise = gate_noise
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.backend = backend
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    @abstractmethod
    def _make_likelihood(self):
        """A fresh (unfitted) likelihood for one fit."""

    # ------------------------------------------------------------------
    # Parameters: named experts reach their parameters as <name>__<param>

    def _named_experts(self):
        """``expert`` as ``(name, estimator)`` pairs, or None when it is not a named list."""
        expert = self.expert
        if isinstance(expert, list) and expert and all(
            isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], str) for e in expert
        ):
            return expert
        return None

    def get_params(self, deep=True):
        """Get parameters for this estimator.

        With ``expert`` a list of ``(name, estimator)`` pairs, each expert's
        parameters are included as ``<name>__<parameter>``, as for
        :class:`~sklearn.ensemble.VotingRegressor`.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of the contained estimators.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        if self._named_experts() is None:
            return super(_BaseComposition, self).get_params(deep=deep)
        return self._get_params("expert", deep=deep)

    def set_params(self, **params):
        """Set the parameters of this estimator.

        ``expert__<parameter>`` sets a parameter of a single ``expert``;
        ``<name>__<parameter>`` one of a named expert of a list of
        ``(name, estimator)`` pairs.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator
            This estimator.
        """
        expert = params.get("expert", self.expert)
        if expert is None and any(key.startswith("expert__") for key in params):
            nested = sorted(key for key in params if key.startswith("expert__"))
            raise ValueError(
                f"Cannot set {', '.join(nested)}: expert=None means the default expert, "
                "which has no parameters to set. Pass the expert explicitly, e.g. "
                "expert=LinearRegression() (regressor) or expert=LogisticRegression() "
                "(classifier), then set its parameters (in GridSearchCV: "
                "{'expert__<param>': [...]} with the estimator built as "
                "MixtureOfExperts...(expert=...))."
            )
        if "expert" in params:
            self.expert = params.pop("expert")
        if self._named_experts() is None:
            return super(_BaseComposition, self).set_params(**params)
        return self._set_params("expert", **params)

    # ------------------------------------------------------------------
    # Validation

    def _validate_fit_data(self, X, y, likelihood):
        return validate_data(
            self,
            X,
            y,
            dtype=[np.float64, np.float32],
            y_numeric=likelihood.numeric_target,
            ensure_min_samples=1,
        )

    def _resolve_experts(self, likelihood):
        """The expert templates (unfitted clones), checked before any work."""
        expert = self.expert
        if expert is None:
            templates = [likelihood.default_expert() for _ in range(self.n_experts)]
        elif isinstance(expert, list):
            named = self._named_experts()
            if named is not None:
                self._validate_names([name for name, _ in named])
                expert = [e for _, e in named]
            elif any(isinstance(e, tuple) for e in expert):
                raise ValueError(
                    "expert must be one estimator, a list of estimators or a list of "
                    "(name, estimator) pairs with string names; got a list mixing them."
                )
            if len(expert) != self.n_experts:
                raise ValueError(
                    f"expert is a list of {len(expert)} estimators but n_experts="
                    f"{self.n_experts}; give one estimator per expert or a single one."
                )
            templates = [clone(e) for e in expert]
        else:
            templates = [clone(expert) for _ in range(self.n_experts)]
        for t in templates:
            check_expert(t)
            likelihood.check_expert(t)
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

    def _resolve_features(self, selection, name, n_features):
        """Column indices of ``selection`` (None for every column), checked before any work."""
        if selection is None:
            return None
        values = list(selection) if not isinstance(selection, np.ndarray) else selection
        sel = np.asarray(values)
        if sel.size == 0:
            if name == "expert_features":
                raise ValueError(
                    "expert_features selects no column; the experts need at least one "
                    "(use None for every column)."
                )
            return np.zeros(0, dtype=np.intp)
        if sel.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional; got shape {sel.shape}.")
        if sel.dtype == bool:
            if sel.shape[0] != n_features:
                raise ValueError(
                    f"{name} is a boolean mask of {sel.shape[0]} entries but X has "
                    f"{n_features} features."
                )
            idx = np.flatnonzero(sel)
        elif sel.dtype.kind in "iu":
            if sel.min() < 0 or sel.max() >= n_features:
                raise ValueError(
                    f"{name} has column indices out of range for X with {n_features} "
                    f"features: {sel[(sel < 0) | (sel >= n_features)].tolist()}."
                )
            idx = sel.astype(np.intp)
        elif sel.dtype.kind in "UO":
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                raise ValueError(
                    f"{name} gives column names {sel.tolist()[:5]}, but X has no feature "
                    "names; pass a pandas DataFrame or use column indices."
                )
            lookup = {str(n): i for i, n in enumerate(names)}
            unknown = [str(v) for v in sel if str(v) not in lookup]
            if unknown:
                raise ValueError(f"{name} names unknown columns {unknown}; X has {list(names)}.")
            idx = np.array([lookup[str(v)] for v in sel], dtype=np.intp)
        else:
            raise TypeError(
                f"{name} must be column indices, column names or a boolean mask; got "
                f"values of dtype {sel.dtype}."
            )
        if np.unique(idx).size != idx.size:
            raise ValueError(f"{name} selects a column twice: {idx.tolist()}.")
        if name == "expert_features" and idx.size == 0:
            raise ValueError("expert_features selects no column; the experts need at least one.")
        if idx.size == n_features and np.array_equal(idx, np.arange(n_features)):
            return None
        return idx

    def _combination(self, likelihood, solver, router, X):
        """The fit's plug-ins by name, for the combination table."""
        return Combination(
            likelihood=getattr(likelihood, "name", "custom"),
            solver=solver.name,
            gate=self.gate if isinstance(self.gate, str) else "custom",
            backend=self.backend,
            router=router.name,
            input="sparse" if hasattr(X, "tocsr") else "dense",
        )

    def _new_gate(self, rng):
        seed = int(rng.randint(np.iinfo(np.int32).max))
        return make_gate(
            self.gate, backend=self.backend, alpha=self.gate_alpha, device=self.device,
            random_state=seed,
        )

    # ------------------------------------------------------------------
    # EM

    def _fit(self, X, y, sample_weight=None):
        """Validate, run ``n_init`` EM restarts, keep the best; shared by both estimators."""
        if _is_dask(X, y, sample_weight):
            from ._dask import fit_dask

            return fit_dask(self, X, y, sample_weight)
        likelihood = self._make_likelihood()
        X, y = self._validate_fit_data(X, y, likelihood)
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
        gate_features = self._resolve_features(self.gate_features, "gate_features", X.shape[1])
        expert_features = self._resolve_features(self.expert_features, "expert_features", X.shape[1])
        templates = self._resolve_experts(likelihood)
        solver = select_solver(templates, likelihood, n_jobs=self.n_jobs)
        router = make_router(self)
        check_combination(self._combination(likelihood, solver, router, X))
        y_fit = likelihood.prepare_target(y, sample_weight)
        resume = self._can_resume(templates, gate_features, expert_features)
        if resume:
            likelihood.check_warm_start(self.likelihood_)
        ctx = _FitContext(X, y_fit, sample_weight, likelihood, solver, router,
                          check_random_state(self.random_state), gate_features, expert_features)
        ctx.gate_features, ctx.expert_features = gate_features, expert_features
        ctx.iterations_before = getattr(self, "_n_iter_total_", 0) if resume else 0
        ctx.min_effective = [
            likelihood.min_effective_samples(solver.n_parameters_per_expert([t], ctx.X_expert.shape[1]))
            for t in templates
        ]
        few_samples = self._few_samples_note(ctx)
        # The built-in linear gate and the batched solver split their passes
        # over the rows themselves: the loop then holds BLAS to one thread.
        row_threads = solver.splits_rows and make_gate(
            self.gate, backend=self.backend, alpha=self.gate_alpha, device=self.device,
            random_state=0,
        ).splits_rows

        n_init = 1 if resume else self.n_init
        results = []
        for init in range(n_init):
            start = time.time()
            # X and y are validated above: spare the gate and the experts the
            # finite checks (a pass over X each) they would repeat every iteration.
            threads = (
                row_parallel(n_rows=X.shape[0], n_cols=(ctx.X_expert.shape[1] + 2) ** 2 * len(templates))
                if row_threads else contextlib.nullcontext()
            )
            with config_context(assume_finite=True), threads:
                state = self._resume_state(ctx, templates) if resume else self._initialize(ctx, templates)
                result = self._run_em(ctx, state)
            results.append(result)
            if self.verbose:
                status = "converged" if result.converged else "did not converge"
                print(
                    f"Initialization {init}: {status} after {result.n_iter} iterations, "
                    f"objective {result.state.objective:.6f}, time {time.time() - start:.2f}s"
                )
        best = max(results, key=lambda r: r.state.objective)  # the first of equals
        self._warn_experts(best.state, n_init, few_samples)
        if not best.converged and self.max_iter > 0 and not resume:
            warnings.warn(
                f"Best of {n_init} initialisation(s) did not converge in max_iter="
                f"{self.max_iter} iterations (tol={self.tol}). Try different init "
                "parameters, increase max_iter or tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_fitted_state(ctx, best, [np.asarray(r.log_likelihood_curve) for r in results])
        self._order_experts(ctx)
        return self

    def _order_experts(self, ctx):
        """Number the experts by a stable rule (label switching), predictions unchanged.

        Regression: ascending sample-weighted mean of each expert's predicted
        mean over the training inputs (expert 0 is the lowest regime);
        classification, or a likelihood without predictive means: descending
        ``expert_share_``. Skipped when ``expert`` is a list (the user's order
        names the experts) and for a gate that cannot reorder its outputs.
        See :func:`skmoe.inference.order_experts`.
        """
        if (
            self.n_experts_ < 2
            or isinstance(self.expert, list)
            or not callable(getattr(self.gate_, "remove_experts", None))
        ):
            return
        likelihood = self.likelihood_
        keys = -np.asarray(self.expert_share_)
        if likelihood.numeric_target:
            outputs_T = likelihood.expert_outputs(self.experts_, ctx.X_expert, ctx.y, ctx.solver)
            try:
                mean_T, _ = likelihood.mean_variance(outputs_T, likelihood.params_)
                keys = np.asarray(mean_T, dtype=np.float64) @ ctx.sample_weight
            except NotImplementedError:
                pass
        from .inference import order_experts

        order_experts(self, by=np.argsort(keys, kind="stable"))

    def _can_resume(self, templates, gate_features, expert_features):
        """Whether ``warm_start`` can continue the previous fit; warns when it cannot."""
        if not (self.warm_start and hasattr(self, "converged_")):
            return False
        previous = getattr(self, "_templates", None)
        reasons = []
        for name, now in (("gate_features", gate_features), ("expert_features", expert_features)):
            before = getattr(self, name + "_", None)
            same = (before is None and now is None) or (
                before is not None and now is not None and np.array_equal(before, now)
            )
            if not same:
                reasons.append(f"{name} changed")
        if self._fit_n_experts_ != self.n_experts:
            reasons.append(f"n_experts changed from {self._fit_n_experts_} to {self.n_experts}")
        elif previous is not None and [type(t) for t in previous] != [
            type(templates[k]) for k in self._expert_ids_
        ]:
            reasons.append("the experts' type changed")
        new_gate = make_gate(self.gate, backend=self.backend, alpha=self.gate_alpha,
                             device=self.device, random_state=0).estimator
        if type(new_gate) is not type(self.gate_):
            reasons.append(
                f"the gate changed from {type(self.gate_).__name__} to {type(new_gate).__name__}"
            )
        if reasons:
            warnings.warn(
                f"warm_start=True but {' and '.join(reasons)} since the last fit; "
                "starting a fresh fit.",
                UserWarning,
            )
            return False
        return True

    def _resume_state(self, ctx, templates):
        """The previous fit's parameters as a new run's state, after an E-step."""
        state = _EMState(list(self._templates), list(self.experts_), GateAdapter(self.gate_),
                         self.likelihood_.params_)
        state.expert_ids = np.asarray(self._expert_ids_)
        state.load = np.asarray(self.expert_load_)
        state.outputs_T = ctx.likelihood.expert_outputs(state.experts, ctx.X_expert, ctx.y, ctx.solver)
        self._e_step(ctx, state)
        return state

    def _few_samples_note(self, ctx):
        """A note when the experts cannot all get enough samples for their parameters, else None."""
        need = max(ctx.min_effective)
        per_expert = ctx.n_effective / self.n_experts
        if self.n_experts > 1 and need > 0 and per_expert < need:
            return (
                f"{ctx.n_effective:.4g} effective samples give n_experts={self.n_experts} "
                f"experts {per_expert:.3g} each, fewer than the {need:.3g} an expert needs "
                "for its parameters"
            )
        return None

    def _initialize(self, ctx, templates):
        """First responsibilities from ``init``, then an M-step and an E-step."""
        rng = ctx.rng
        resp_T = initial_responsibilities(
            self.init, ctx.X, ctx.y, ctx.sample_weight, self.n_experts, rng,
            is_regression=ctx.likelihood.numeric_target,
        )
        empty = resp_T.sum(axis=1) <= 0
        if np.any(empty):
            # Given labels or responsibilities that leave an expert without
            # samples: a tiny uniform share, below the starvation threshold,
            # so that the first bookkeeping re-seeds it (with the fit's warning).
            resp_T[empty] = 0.1 * _MIN_SHARE
            resp_T /= resp_T.sum(axis=0)
        if self.n_experts > 1 and np.ptp(resp_T, axis=0).max() <= 1e-12:
            # Identical responsibilities are a symmetric fixed point of EM:
            # every expert would stay the same. Mix in a random soft partition.
            warnings.warn(
                "The initial responsibilities are the same for every expert, a fixed "
                "point where all experts stay identical; mixing in a random soft "
                "partition (init='random') to break the symmetry.",
                UserWarning,
            )
            resp_T = 0.5 * resp_T + 0.5 * initial_responsibilities(
                "random", ctx.X, ctx.y, ctx.sample_weight, self.n_experts, rng,
                is_regression=ctx.likelihood.numeric_target,
            )
        seeded = [seed_expert(clone(t), rng) for t in templates]
        state = _EMState(seeded, None, self._new_gate(rng), ctx.likelihood.init_params(len(seeded)))
        self._m_step(ctx, state, ctx.router.route(resp_T, None, ctx.sample_weight, rng))
        self._e_step(ctx, state)
        return state

    def _m_step(self, ctx, state, routing):
        """Refit experts, likelihood parameters and gate to the router's weights."""
        weights_T = routing.experts_T
        # Expert weights are weights * sample_weight, formed row by row (or block
        # by block by the batched solver), never as a second (n_experts, n_samples) array.
        fit_weights_T = weights_T if state.extra_T is None else weights_T * state.extra_T
        state.experts = ctx.solver.fit(state.templates, ctx.X_expert, ctx.y, fit_weights_T, ctx.sw)
        state.load = (weights_T > 0) @ ctx.sample_weight / ctx.sample_weight.sum()
        state.outputs_T = ctx.likelihood.expert_outputs(state.experts, ctx.X_expert, ctx.y, ctx.solver)
        state.params = ctx.likelihood.m_step(
            ctx.y, state.outputs_T, weights_T, ctx.sample_weight, state.params
        )
        if not state.gate_prepared:
            # The gate's constants depend on X and sample_weight only: once per run.
            state.gate_context = state.gate.prepare(ctx.X_gate, ctx.sample_weight)
            state.gate_prepared = True
        state.gate.fit(ctx.X_gate, routing.gate_T, ctx.sample_weight, state.gate_context)
        if self.min_prior is not None:
            self._prune(ctx, state)

    def _log_gate_T(self, gate, X):
        return _em.top_k_log_gate(gate.log_proba_T(X), self.top_k)

    def _e_step(self, ctx, state):
        """Responsibilities and per-sample log-likelihood, fused in log space."""
        lik = ctx.likelihood
        state.extra_T = lik.expert_weights(state.outputs_T, ctx.y, state.params)
        # In place: the outputs are not needed once the log-likelihoods exist.
        log_lik_T = lik.log_likelihood(state.outputs_T, ctx.y, state.params, out=state.outputs_T)
        # Noise on the gate first, so that it can change which experts top_k keeps.
        log_gate_T = _em.top_k_log_gate(
            ctx.router.perturb_log_gate(state.gate.log_proba_T(ctx.X_gate), ctx.rng), self.top_k
        )
        state.resp_T, state.log_prob = _em.responsibilities(log_gate_T, log_lik_T, out=log_lik_T)
        return state

    def _objective(self, ctx, state):
        """The objective EM raises: mean log-likelihood minus the gate's penalty (also sets ``state.log_likelihood``)."""
        state.log_likelihood = _em.mean_log_likelihood(state.log_prob, ctx.sample_weight)
        return state.log_likelihood - state.gate.penalty()

    def _monotone(self, ctx):
        """Whether every step is exact, so EM's objective cannot decrease."""
        return (
            ctx.solver.exact and ctx.router.exact and self.top_k is None
            and ctx.router.stopping == "objective"
        )

    def _stop(self, ctx, change, objective, n_iter, partition_changed):
        """The router's stopping rule (see :class:`~skmoe._routers.SoftRouter`)."""
        if ctx.router.stopping == "partition":
            return n_iter >= _MIN_ITER and not partition_changed
        if ctx.router.stopping == "budget":
            return False
        return _converged(change, objective, n_iter, self.tol)

    def _run_em(self, ctx, state):
        """EM iterations from an initialised state; returns the best iterate."""
        state.objective = self._objective(ctx, state)
        curve = [state.objective]
        ll_curve = [state.log_likelihood]
        monotone = self._monotone(ctx)
        # CEM stops on a fixed partition and returns it; the others keep the
        # best iterate when a step may lower the objective.
        keep_best = not monotone and ctx.router.stopping != "partition"
        best = state.snapshot() if keep_best else None
        converged = False
        n_iter = 0
        # A warm start continues the previous fit: its iterations count
        # towards the minimum before convergence (stepping with max_iter=1).
        done_before = ctx.iterations_before
        reseeded = self._handle_degenerate(ctx, state)
        partition = None
        for n_iter in range(1, self.max_iter + 1):
            tic = time.time()
            routing = ctx.router.route(state.resp_T, state.log_prob, ctx.sample_weight, ctx.rng)
            previous, partition = partition, np.argmax(routing.experts_T, axis=0)
            partition_changed = previous is None or previous.shape != partition.shape or np.any(
                previous != partition
            )
            self._m_step(ctx, state, routing)
            self._e_step(ctx, state)
            objective = self._objective(ctx, state)
            change = objective - curve[-1]
            state.objective = objective
            curve.append(objective)
            ll_curve.append(state.log_likelihood)
            if self.verbose >= 2:
                print(
                    f"  Iteration {n_iter}: objective {objective:.8f} "
                    f"(change {change:+.3e}), time {time.time() - tic:.3f}s"
                )
            if best is not None and objective > best.objective:
                best = state.snapshot()
            just_reseeded = reseeded
            reseeded = self._handle_degenerate(ctx, state)
            if reseeded:
                best = state.snapshot() if keep_best else None
            if not just_reseeded and not reseeded and self._stop(
                ctx, change, objective, done_before + n_iter, partition_changed
            ):
                converged = True
                break
        if best is not None and best.objective > state.objective:
            state = best
        if ctx.router.stopping == "budget" and n_iter == self.max_iter:
            converged = True  # a fixed budget, spent as asked: nothing to converge
        return _EMResult(state, curve, ll_curve, converged, n_iter)

    def _handle_degenerate(self, ctx, state):
        """Re-seed (or remove) experts that are starved or degenerate; whether any was.

        Starved: a share of the weighted responsibility below ``_MIN_SHARE``.
        Degenerate: an effective sample size below what the likelihood needs
        for the expert's parameters. Re-seeding cannot help an expert whose
        re-seeded share would still be too small: it is removed at once.
        """
        resp_T = state.resp_T
        n_experts = resp_T.shape[0]
        if n_experts == 1:
            return False
        share = _em.responsibility_share(resp_T, ctx.sample_weight)
        bad, remove = classify_experts(share, ctx, state)
        if bad.size == 0:
            return False
        slice_share = 0.5 / n_experts
        if remove:
            self._remove_experts(ctx, state, remove)
            # The others still starved or degenerate are re-seeded below, in
            # the reduced state (a starved expert left as it is would be fitted
            # on no weight at the next M-step).
            kept = np.setdiff1d(np.arange(n_experts), remove)
            bad = np.flatnonzero(np.isin(kept, bad))
            if bad.size == 0:
                return True
            resp_T = state.resp_T
            slice_share = 0.5 / kept.size
        # Re-seed each starved expert from the samples the model explains worst:
        # consecutive slices, each holding 1 / (2 * n_experts) of the total weight.
        order = np.argsort(state.log_prob, kind="stable")
        cumulative = np.cumsum(ctx.sample_weight[order]) / np.sum(ctx.sample_weight)
        for j, k in enumerate(bad):
            lo, hi = np.searchsorted(cumulative, [j * slice_share, (j + 1) * slice_share], side="right")
            rows = order[lo : max(hi, lo + 1)]
            resp_T[:, rows] = 0.0
            resp_T[k, rows] = 1.0
            state.reseeds[k] += 1
            expert_id = int(state.expert_ids[k])
            state.events["reseeded"][expert_id] = state.events["reseeded"].get(expert_id, 0) + 1
        return True

    def _remove_experts(self, ctx, state, remove, record=True):
        """Drop experts ``remove`` from the state: templates, experts, gate, parameters, responsibilities."""
        keep = np.setdiff1d(np.arange(len(state.experts)), remove)
        if record:
            state.events["removed"].extend(int(state.expert_ids[k]) for k in remove)
        state.templates = [state.templates[k] for k in keep]
        state.experts = [state.experts[k] for k in keep]
        state.params = ctx.likelihood.subset(state.params, keep)
        state.expert_ids = state.expert_ids[keep]
        state.load = None if state.load is None else state.load[keep]
        state.reseeds = np.zeros(keep.size, dtype=int)
        state.gate.remove_experts(keep)
        remove_from_router = getattr(ctx.router, "remove_experts", None)
        if callable(remove_from_router):
            remove_from_router(keep)
        if state.outputs_T is not None:
            state.outputs_T = np.ascontiguousarray(state.outputs_T[keep])
        if state.extra_T is not None:
            state.extra_T = np.ascontiguousarray(state.extra_T[keep])
        if state.resp_T is None:
            return
        resp = state.resp_T[keep]
        total = resp.sum(axis=0)
        # A sample only the removed experts explained takes its gate row.
        orphans = total <= 0
        if np.any(orphans):
            with np.errstate(under="ignore"):
                resp[:, orphans] = np.exp(state.gate.log_proba_T(ctx.X_gate[orphans]))
        resp /= resp.sum(axis=0)
        state.resp_T = np.ascontiguousarray(resp)

    def _prune(self, ctx, state):
        """Remove experts whose mean gate probability is below ``min_prior`` (flexmix's minprior)."""
        with np.errstate(under="ignore"):
            prior = _em.responsibility_share(np.exp(state.gate.log_proba_T(ctx.X_gate)), ctx.sample_weight)
        small = np.flatnonzero(prior < self.min_prior)
        if small.size == 0:
            return
        if small.size == prior.size:
            raise ValueError(
                f"min_prior={self.min_prior} would remove every expert (mean gate "
                f"probabilities {np.array2string(prior, precision=3)}); lower min_prior."
            )
        for k in small:
            state.events["reasons"][int(state.expert_ids[k])] = f"mean gate probability {prior[k]:.3g}"
        state.events["pruned"].extend(int(state.expert_ids[k]) for k in small)
        self._remove_experts(ctx, state, small, record=False)

    def _warn_experts(self, state, n_init, few_samples=None):
        """One warning about the returned fit's re-seeded and removed experts."""
        events = state.events
        if not events["reseeded"] and not events["removed"] and not events["pruned"]:
            if few_samples is not None:
                warnings.warn(f"{few_samples}. Use fewer or simpler experts.", DegenerateExpertWarning)
            return
        parts = []
        reasons = events["reasons"]
        if events["reseeded"]:
            items = ", ".join(
                f"{k} ({count}x; {reasons.get(k, 'starved')})" for k, count in sorted(events["reseeded"].items())
            )
            parts.append(f"re-seeded expert(s) {items}")
        if events["removed"]:
            items = ", ".join(f"{k} ({reasons.get(k, 'starved')})" for k in events["removed"])
            parts.append(f"removed expert(s) {items}")
        if events["pruned"]:
            items = ", ".join(f"{k} ({reasons.get(k)})" for k in events["pruned"])
            parts.append(f"pruned expert(s) {items} below min_prior={self.min_prior}")
        if events["removed"] or events["pruned"]:
            parts[-1] += f"; {len(state.experts)} remain"
        restarts = "" if n_init == 1 else f" (the best of {n_init} restarts)"
        prefix = "" if few_samples is None else f"{few_samples}: "
        warnings.warn(
            f"{prefix}The returned fit{restarts} {' and '.join(parts)}. An expert is starved when "
            f"its share of the responsibility is below {_MIN_SHARE:g} and degenerate when "
            "its effective sample size is too small for its parameters (it can "
            "interpolate its samples, which inflates the likelihood and misleads BIC). "
            "Consider fewer experts.",
            DegenerateExpertWarning,
        )

    def _set_fitted_state(self, ctx, result, curves):
        state = result.state
        self._templates = state.templates
        self._expert_ids_ = state.expert_ids
        self._fit_n_experts_ = self.n_experts
        self.gate_features_ = ctx.gate_features
        self.expert_features_ = ctx.expert_features
        self.experts_ = state.experts
        self.gate_ = state.gate.estimator
        likelihood = ctx.likelihood
        likelihood.params_ = state.params
        self.likelihood_ = likelihood
        for name, value in likelihood.fitted_attributes(state.params).items():
            setattr(self, name, value)
        self.n_experts_ = len(state.experts)
        self.expert_share_ = _em.responsibility_share(state.resp_T, ctx.sample_weight)
        self.expert_load_ = np.asarray(state.load, dtype=np.float64)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self._n_iter_total_ = ctx.iterations_before + self.n_iter_
        self.log_likelihood_ = float(state.log_likelihood)
        self.log_likelihood_curve_ = np.asarray(result.log_likelihood_curve, dtype=np.float64)
        self.log_likelihood_curves_ = [np.asarray(c, dtype=np.float64) for c in curves]
        self.objective_ = float(state.objective)
        self.objective_curve_ = np.asarray(result.curve, dtype=np.float64)

    # ------------------------------------------------------------------
    # Prediction helpers

    def _validate_predict_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=[np.float64, np.float32])

    def _gate_X(self, X):
        """The gate's columns of validated ``X``."""
        return _select_columns(X, getattr(self, "gate_features_", None))

    def _expert_X(self, X):
        """The experts' columns of validated ``X``."""
        return _select_columns(X, getattr(self, "expert_features_", None))

    def _pooling_log_weights_T(self, X):
        """Log pooling weights ``(n_experts, n_samples)``: gate, top-k, or argmax one-hot."""
        log_gate_T = self._log_gate_T(GateAdapter(self.gate_), self._gate_X(X))
        if self.pooling == "argmax":
            return _em.argmax_log_gate(log_gate_T)
        return log_gate_T

    def _expert_outputs(self, X, y):
        """The fitted likelihood's expert outputs on ``(X, y)``."""
        return self.likelihood_.expert_outputs(self.experts_, self._expert_X(X), y, GenericSolver)

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
        if _is_dask(X):
            from ._dask import predict_dask

            return predict_dask(self, "predict_gate", X)
        X = self._validate_predict_X(X)
        with np.errstate(under="ignore"):
            return np.exp(self._log_gate_T(GateAdapter(self.gate_), self._gate_X(X))).T

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
        return np.argmax(self._log_gate_T(GateAdapter(self.gate_), self._gate_X(X)), axis=0)

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
        if _is_dask(X, y):
            from ._dask import predict_dask

            return predict_dask(self, "log_prob", X, y)
        X, log_lik_T = self._log_likelihood_T(X, y)
        log_w_T = self._pooling_log_weights_T(X)
        with np.errstate(under="ignore"):
            _, log_prob = _em.e_step(log_w_T, log_lik_T, out=log_lik_T)
        return log_prob

    def _log_likelihood_T(self, X, y):
        """Validated ``X`` and every expert's log-likelihood of ``y``, ``(n_experts, n_samples)``."""
        X = self._validate_predict_X(X)
        y = self.likelihood_.transform_target(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}.")
        outputs_T = self._expert_outputs(X, y)
        return X, self.likelihood_.log_likelihood(outputs_T, y, self.likelihood_.params_, out=outputs_T)

    def predict_responsibilities(self, X, y):
        """Posterior probability of each expert given the input and the target.

        ``p(expert k | x_i, y_i)``, proportional to the gate (with ``top_k``,
        as in training) times the expert's likelihood of ``y_i``: the
        responsibilities of an E-step on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,)
            Targets.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_experts)
            Rows sum to one.
        """
        X, log_lik_T = self._log_likelihood_T(X, y)
        log_gate_T = self._log_gate_T(GateAdapter(self.gate_), self._gate_X(X))
        with np.errstate(under="ignore"):
            resp_T, _ = _em.responsibilities(log_gate_T, log_lik_T, out=log_lik_T)
        return resp_T.T

    def _n_parameters(self):
        """Free parameters: gate + experts + likelihood parameters (see ``bic``)."""
        check_is_fitted(self)
        n_gate = GateAdapter(self.gate_).n_parameters
        n_experts = sum(n_expert_parameters(e) for e in self.experts_)
        return int(n_gate + n_experts + self.likelihood_.n_parameters(self.likelihood_.params_))

    def bic(self, X, y):
        """Bayesian information criterion of the fit on ``(X, y)``; lower is better.

        ``-2 * sum_i log p(y_i | x_i) + n_parameters * log(n_samples)``.
        The parameter count is the gate's ``n_parameters_`` (``(n_experts - 1)
        * (n_features + 1)`` for the linear gate), plus each expert's
        coefficients and intercept when it exposes ``coef_`` (leaves for
        trees, summed over the members of tree ensembles, 0 for experts with
        neither), plus the likelihood's parameters (the noise variances of
        the regressor). BIC is unreliable when an expert is degenerate (too
        few effective samples for its parameters): such experts are re-seeded
        or removed during the fit, with a
        :class:`~skmoe.exceptions.DegenerateExpertWarning`.

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
