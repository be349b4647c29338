"""Shared base of the mixture-of-experts estimators: parameters, validation and ``fit``.

The driver is a template method over four small protocols, chosen once per
fit and never named here by class:

* a likelihood (:mod:`skmoe.likelihoods`): the target, the per-expert
  log-likelihood and its own parameters;
* an expert solver (:mod:`skmoe._solvers`): the experts' M-step;
* a gate (:mod:`skmoe.gates`, through its adapter): the gate's M-step and
  log-probabilities;
* a router (:mod:`skmoe._routers`): the E-step's posterior to the M-step's
  weights.

The EM steps are in :mod:`skmoe._driver`, per-fit state in
:mod:`skmoe._fit_state` (a :class:`_FitContext` per fit and the
:class:`_EMState` of each restart), the prediction methods in
:mod:`skmoe._prediction`; the estimator holds its parameters and fitted
``*_`` attributes.
"""

import contextlib
import time
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn import config_context
from sklearn.base import MetaEstimatorMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.validation import validate_data

from . import _em
from ._combinations import Combination, check_combination
from ._device import device_context, fit_guard, result_to_host
from ._driver import _EMDriver
from ._experts import check_expert
from ._fit_state import (  # noqa: F401  (classify_experts, _converged...: re-exported for the Dask driver)
    _MIN_SHARE,
    _converged,
    _EMResult,
    _EMState,
    _FitContext,
    _is_dask,
    _select_columns,
    classify_experts,
)
from ._prediction import _PredictionMixin
from ._repr import _MixtureReprMixin
from ._routers import make_router
from ._solvers import select_solver
from ._sparse import as_csr, is_sparse, sparse_refusal
from .gates._base import check_gate
from .gates._protocol import make_gate
from .utils._compat import (
    HasMethods,
    Interval,
    StrOptions,
    _BaseComposition,
    _check_sample_weight,
)
from .utils._threads import row_parallel


def _init_rows(init, rows):
    """``init``'s labels or responsibilities of the rows kept (``rows``, a mask); other ``init`` as is.

    Zero-weight rows are dropped before the fit, so an ``init`` array given
    for every row must drop them too.
    """
    if isinstance(init, str) or hasattr(init, "fit") or _is_dask(init):
        return init
    init = np.asarray(init)
    if init.ndim in (1, 2) and init.shape[0] == rows.shape[0]:
        return init[rows]
    return init  # a wrong shape: initial_responsibilities says which


class _BaseMixtureOfExperts(
    _EMDriver, _PredictionMixin, _MixtureReprMixin, MetaEstimatorMixin, _BaseComposition,
    metaclass=ABCMeta,
):
    """Base class of the mixture-of-experts estimators (EM driver).

    Subclasses provide the likelihood (:meth:`_make_likelihood`) and the
    task's prediction methods.
    """

    _parameter_constraints = {
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "expert": [HasMethods(["fit", "predict"]), list, None],
        "gate": [StrOptions({"linear", "mlp"}), HasMethods(["fit", "predict_log_proba"])],
        "gate_alpha": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "init": [
            StrOptions({"kmeans", "random", "tree", "gmm"}), HasMethods(["fit_predict"]),
            HasMethods(["fit", "predict"]), "array-like",
        ],
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
        gate_alpha="auto",
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
        # Any sparse format is taken as canonical CSR (the row-wise passes'
        # layout; a CSC matrix costs one conversion); which plug-ins accept
        # it is checked once the experts and the gate are known.
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            y_numeric=likelihood.numeric_target,
            ensure_min_samples=1,
        )
        return (as_csr(X) if is_sparse(X) else X), y

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
        init = self.init
        if not np.all(positive):
            X, y, sample_weight = X[positive], y[positive], sample_weight[positive]
            init = _init_rows(init, positive)
        if not np.all(np.isfinite(sample_weight)):
            raise ValueError("sample_weight must be finite.")
        self._check_parameters(X)
        gate_features = self._resolve_features(self.gate_features, "gate_features", X.shape[1])
        expert_features = self._resolve_features(self.expert_features, "expert_features", X.shape[1])
        templates = self._resolve_experts(likelihood)
        solver = select_solver(templates, likelihood, n_jobs=self.n_jobs)
        router = make_router(self)
        check_combination(self._combination(likelihood, solver, router, X))
        if is_sparse(X):
            problem = sparse_refusal(templates, gate=self.gate, init=self.init)
            if problem is not None:
                raise TypeError(problem)
        y_fit = likelihood.prepare_target(y, sample_weight)
        resume = self._can_resume(templates, gate_features, expert_features)
        if resume:
            likelihood.check_warm_start(self.likelihood_)
        ctx = _FitContext(X, y_fit, sample_weight, likelihood, solver, router,
                          check_random_state(self.random_state), gate_features, expert_features)
        ctx.gate_features, ctx.expert_features = gate_features, expert_features
        ctx.iterations_before = getattr(self, "_n_iter_total_", 0) if resume else 0
        ctx.init = init
        ctx.min_effective = [
            likelihood.min_effective_samples(solver.n_parameters_per_expert([t], ctx.X_expert.shape[1]))
            for t in templates
        ]
        few_samples = self._few_samples_note(ctx)
        # The built-in linear gate and the batched solver split their passes
        # over the rows themselves: the loop then holds BLAS to one thread.
        probe_gate = make_gate(
            self.gate, backend=self.backend, alpha=self.gate_alpha, device=self.device,
            random_state=0,
        )
        # The whole EM loop on the gate's device when it can run there (skmoe._device).
        ctx = device_context(ctx, probe_gate)
        row_threads = ctx.solver.splits_rows and probe_gate.splits_rows

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
            with config_context(assume_finite=True), threads, fit_guard(ctx, len(templates)):
                state = self._resume_state(ctx, templates) if resume else self._initialize(ctx, templates)
                result = self._run_em(ctx, state)
            results.append(result_to_host(ctx, result))
            if self.verbose:
                status = "converged" if result.converged else "did not converge"
                print(
                    f"Initialization {init}: {status} after {result.n_iter} iterations, "
                    f"objective {result.state.objective:.6f}, time {time.time() - start:.2f}s"
                )
        ctx = ctx.host
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

    def _set_fitted_state(self, ctx, result, curves):
        state = result.state
        self._templates = state.templates
        self._expert_ids_ = state.expert_ids
        self._fit_n_experts_ = self.n_experts
        self.gate_features_ = ctx.gate_features
        self.expert_features_ = ctx.expert_features
        self.experts_ = state.experts
        self.gate_ = state.gate.estimator
        # A gate may keep per-run caches (optional capability): none outlive the fit.
        release = getattr(self.gate_, "release_run", None)
        if callable(release):
            release()
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

    def _accepts_sparse(self):
        """Whether a fit with these parameters takes sparse ``X`` (for the tags; never raises)."""
        if isinstance(self.gate, str) and (self.gate != "linear" or self.backend != "numpy"):
            return False  # the combination table's refusal: the neural and PyTorch gates
        # The experts as given (no clones, no checks: tags are asked for often).
        expert = self.expert
        try:
            if expert is None:
                experts = [self._make_likelihood().default_expert()]
            elif isinstance(expert, list):
                experts = [e[1] if isinstance(e, tuple) else e for e in expert]
            else:
                experts = [expert]
            return sparse_refusal(experts, gate=self.gate, init=self.init) is None
        except (TypeError, ValueError, AttributeError, IndexError):
            return False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._accepts_sparse()
        tags.input_tags.allow_nan = False
        # Predictions keep float32 input in float32 (the E-step too). The tag is
        # scikit-learn's for transformers; here it documents the predictions.
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        return tags
