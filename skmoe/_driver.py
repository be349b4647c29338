"""The EM iterations: a template method over the fit's protocols.

:class:`_EMDriver` holds the steps of one EM run (initialisation, M-step,
E-step, objective, stopping, starved and degenerate experts, pruning) as
methods of the estimators, which inherit it. Every step talks to the
likelihood, the expert solver, the gate adapter and the router of the
:class:`~skmoe._fit_state._FitContext` through their protocols and never
names a concrete class.
"""

import time
import warnings

import numpy as np
from sklearn.base import clone

from . import _em
from ._device import asarray_like, take_rows, to_numpy
from ._experts import seed_expert
from ._fit_state import (
    _MIN_ITER,
    _MIN_SHARE,
    _converged,
    _EMResult,
    _EMState,
    classify_experts,
    reseed_slices,
    select_pruned,
)
from ._init import initial_responsibilities
from ._routed import scale_routed
from .exceptions import DegenerateExpertWarning
from .gates._protocol import GateAdapter
from .utils._array_api import get_namespace


class _EMDriver:
    """EM steps shared by the estimators; parameters are read from ``self``, state from the arguments."""

    def _resume_state(self, ctx, templates):
        """The previous fit's parameters as a new run's state, after an E-step."""
        state = _EMState(list(self._templates), list(self.experts_), GateAdapter(self.gate_),
                         asarray_like(self.likelihood_.params_, ctx.sample_weight))
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
        host = ctx.host  # the initial partition runs on the host's arrays
        resp_T = initial_responsibilities(
            ctx.init, host.X, host.y, host.sample_weight, self.n_experts, rng,
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
                "random", host.X, host.y, host.sample_weight, self.n_experts, rng,
                is_regression=ctx.likelihood.numeric_target,
            )
        resp_T = asarray_like(resp_T, ctx.sample_weight)  # to the fit's device, once
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
        routed = {}
        if routing.routed is not None and getattr(ctx.solver, "takes_routed", False):
            # The router listed the non-zero weights: the solver touches those rows only.
            routed["routed"] = routing.routed if state.extra_T is None else scale_routed(routing.routed, state.extra_T)
        state.experts = ctx.solver.fit(state.templates, ctx.X_expert, ctx.y, fit_weights_T, ctx.sw, **routed)
        state.load = _em.positive_share(weights_T, ctx.sample_weight)
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
        # The router's E-step: its training gate (noise), then the posterior and
        # the per-sample log-likelihood of the model it trains (top_k: the
        # top-k model, each sample picking its experts by the gate).
        log_gate_T = ctx.router.perturb_log_gate(state.gate.log_proba_T(ctx.X_gate), ctx.rng)
        state.resp_T, state.log_prob = ctx.router.posterior(log_gate_T, log_lik_T)
        return state

    def _objective(self, ctx, state):
        """The objective EM raises: mean log-likelihood minus the gate's penalty (also sets ``state.log_likelihood``)."""
        state.log_likelihood = _em.mean_log_likelihood(state.log_prob, ctx.sample_weight)
        return state.log_likelihood - state.gate.penalty()

    def _monotone(self, ctx):
        """Whether every step is exact, so EM's objective cannot decrease."""
        return (
            ctx.solver.exact and ctx.router.exact and ctx.router.stopping == "objective"
        )

    def _stop(self, ctx, change, objective, n_iter, partition_changed):
        """The router's stopping rule (see :class:`~skmoe._routers.SoftRouter`)."""
        if ctx.router.stopping == "partition":
            return n_iter >= _MIN_ITER and not partition_changed
        if ctx.router.stopping == "budget":
            return False
        return _converged(change, objective, n_iter, self.tol, ctx.dtype)

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
            partition_changed = True
            if ctx.router.stopping == "partition":
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
        share = to_numpy(_em.responsibility_share(resp_T, ctx.sample_weight))  # n_experts numbers
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
        # (On a device, the one per-sample array that comes to the host: rare.)
        slices = reseed_slices(to_numpy(state.log_prob), ctx.host.sample_weight, bad.size, slice_share)
        for k, rows in zip(bad, slices):
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
            state.outputs_T = take_rows(state.outputs_T, keep)
        if state.extra_T is not None:
            state.extra_T = take_rows(state.extra_T, keep)
        if state.resp_T is None:
            return
        xp, _ = get_namespace(state.resp_T)
        resp = take_rows(state.resp_T, keep)
        # A sample only the removed experts explained takes its gate row.
        orphans = np.flatnonzero(to_numpy(xp.sum(resp, axis=0)) <= 0)
        if orphans.size:
            with np.errstate(under="ignore"):
                resp[:, orphans] = xp.exp(state.gate.log_proba_T(ctx.X_gate[orphans]))
        state.resp_T = resp / xp.sum(resp, axis=0)

    def _prune(self, ctx, state):
        """Remove experts whose mean gate probability is below ``min_prior`` (flexmix's minprior)."""
        log_gate_T = state.gate.log_proba_T(ctx.X_gate)
        xp, _ = get_namespace(log_gate_T)
        with np.errstate(under="ignore"):
            prior = to_numpy(_em.responsibility_share(xp.exp(log_gate_T), ctx.sample_weight))
        small = select_pruned(prior, self.min_prior, state)
        if small.size:
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

