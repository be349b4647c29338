"""Routing and EM variants: each router does what its row of the issue's table says.

Array-level tests exercise :mod:`skmoe._routing`; estimator-level tests spy
on the router the driver builds (``skmoe._base.make_router``) to see the
M-step's weights of every iteration.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.utils import shuffle

from skmoe import (
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _routers,
    _routing,
    _routing_balance,
    _routing_capacity,
)
from skmoe._combinations import ROUTERS
from skmoe._routed import routed_to_dense
from skmoe.datasets import make_gated_regression, make_xor_blobs

# Every option of the table, as estimator parameters.
OPTIONS = {
    "em": {},
    "cem": {"algorithm": "cem"},
    "sem": {"algorithm": "sem"},
    "top2": {"top_k": 2},
    "top1": {"top_k": 1},
    "top1-capacity": {"top_k": 1, "capacity_factor": 1.25},
    "cem-capacity": {"algorithm": "cem", "capacity_factor": 1.1},
    "expert-choice": {"routing": "expert_choice"},
    "expert-choice-1.5": {"routing": "expert_choice", "capacity_factor": 1.5},
    "balanced": {"balance": "uniform"},
    "balanced-cem": {"balance": [0.1, 0.2, 0.3, 0.4], "algorithm": "cem"},
    "noisy": {"gate_noise": 0.5},
}


@pytest.fixture(autouse=True)
def _quiet():
    # Budget routers (SEM, noise) report that they ran max_iter.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _regression(n=600, n_experts=4, random_state=0):
    return make_gated_regression(
        n_samples=n, n_features=2, n_experts=n_experts, noise=0.2, return_labels=False,
        random_state=random_state,
    )


class _Spy:
    """A router that records every routing the driver asks of the real one."""

    def __init__(self, router):
        self.router = router
        self.calls = []
        self.choices = []

    def __getattr__(self, name):
        return getattr(self.router, name)

    def route(self, resp_T, log_prob, sample_weight, rng):
        inner = self.router
        while hasattr(inner, "inner"):
            inner = inner.inner
        # top_k: the experts each sample picked in the E-step being routed.
        choice = getattr(inner, "choice_", None)
        self.choices.append(None if choice is None else choice.copy())
        routing = self.router.route(resp_T, log_prob, sample_weight, rng)
        self.calls.append((resp_T.copy(), log_prob, routing.experts_T.copy(), routing.gate_T.copy()))
        return routing


@pytest.fixture
def spy(monkeypatch):
    spies = []

    def make(estimator):
        spies.append(_Spy(_routers.make_router(estimator)))
        return spies[-1]

    monkeypatch.setattr("skmoe._base.make_router", make)
    return spies


# ----------------------------------------------------------------------
# The arrays: content keys, draws, balancing, capacity, expert choice


def test_content_keys_are_functions_of_the_content():
    rng = np.random.RandomState(0)
    resp = rng.dirichlet(np.ones(3), size=50).T
    log_prob = rng.randn(50)
    keys = _routing.content_keys(resp, log_prob)
    order = rng.permutation(50)
    assert_array_equal(_routing.content_keys(resp[:, order], log_prob[order]), keys[order])
    assert np.unique(keys).size == 50
    # Rounding of the last bits (another summation order) does not change them.
    nudged = resp * (1 + 1e-15)
    assert np.mean(_routing.content_keys(nudged, log_prob) == keys) > 0.99
    u = _routing.keyed_uniforms(keys, seed=3, n_streams=2)
    assert u.shape == (2, 50) and np.all((u > 0) & (u < 1))
    assert_array_equal(u, _routing.keyed_uniforms(keys, seed=3, n_streams=2))
    assert not np.allclose(u, _routing.keyed_uniforms(keys, seed=4, n_streams=2))


def test_keyed_draws_are_uniform_and_follow_the_responsibilities():
    rng = np.random.RandomState(0)
    n = 20000
    keys = _routing.content_keys(rng.randn(n))
    u = _routing.keyed_uniforms(keys, seed=1)[0]
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    z = _routing.keyed_normals(keys, seed=1, n_streams=3)
    assert np.all(np.abs(z.mean(axis=1)) < 0.03) and np.all(np.abs(z.std(axis=1) - 1) < 0.03)
    resp = np.tile([[0.2], [0.0], [0.8]], n)
    drawn = _routing.draw_experts(resp, u)
    assert not np.any(drawn == 1)
    assert abs(np.mean(drawn == 2) - 0.8) < 0.01


@pytest.mark.parametrize("targets", [None, [0.1, 0.2, 0.3, 0.4]])
def test_balanced_posterior_is_the_kl_projection_onto_the_targets(targets):
    rng = np.random.RandomState(0)
    n, k = 500, 4
    # A lopsided, nearly hard posterior.
    logits = rng.randn(k, n) * 4 + np.array([[3], [0], [0], [-2]])
    resp = np.exp(logits - logits.max(axis=0))
    resp /= resp.sum(axis=0)
    w = rng.uniform(0.5, 2, n)
    t = np.full(k, 1 / k) if targets is None else np.asarray(targets)
    q, b, _ = _routing_balance.balance_posterior(resp, w, t)
    assert_allclose(q.sum(axis=0), 1.0)
    assert_allclose(q @ w / w.sum(), t, atol=1e-6)
    # softmax(log r + b): log q - log r - b is the same for every expert of a sample.
    gap = np.log(q) - np.log(resp) - b[:, None]
    assert_allclose(gap - gap[0], 0.0, atol=1e-8)


def test_capped_posterior_is_the_kl_projection_onto_shares_at_most_the_capacities():
    rng = np.random.RandomState(0)
    n, k = 800, 5
    logits = rng.randn(k, n) * 3 + np.array([[3], [1], [0], [-1], [-3]])
    resp = np.exp(logits - logits.max(axis=0))
    resp /= resp.sum(axis=0)
    w = rng.uniform(0.5, 2, n)
    for factor in (1.0, 1.25, 2.0):
        caps = np.full(k, factor / k)
        q, b, _ = _routing_balance.cap_posterior(resp, w, caps, tol=1e-10)
        share = q @ w / w.sum()
        assert_allclose(q.sum(axis=0), 1.0)
        assert np.all(share <= caps + 1e-9) and np.all(b <= 0)
        # KKT: an expert with a negative offset is at its capacity, the others
        # keep the posterior's ratios (b = 0).
        assert_allclose(share[b < -1e-9], caps[b < -1e-9], atol=1e-9)
        gap = np.log(q) - np.log(resp) - b[:, None]
        assert_allclose(gap - gap[0], 0.0, atol=1e-8)
    assert np.any(b == 0) and np.any(b < 0)  # at factor 2 only the largest expert is capped


def test_top_k_indices_keep_the_largest_entries_ties_to_the_lowest_index():
    with np.errstate(divide="ignore"):
        log_gate = np.log(np.array([[0.4, 0.25, 0.2], [0.4, 0.25, 0.0], [0.2, 0.5, 0.8]]))
    assert_array_equal(_routing.top_k_indices(log_gate, 1), [[0, 2, 2]])
    assert_array_equal(_routing.top_k_indices(log_gate, 2), [[0, 2, 2], [1, 0, 0]])
    # An expert with no gate mass (-inf) is kept only when nothing else is left.
    assert_array_equal(np.sort(_routing.top_k_indices(log_gate, 3), axis=0), [[0, 0, 0], [1, 1, 1], [2, 2, 2]])


def test_top_k_router_picks_by_the_gate_and_fits_the_gate_to_the_posterior():
    rng = np.random.RandomState(0)
    n_experts, n = 5, 300
    log_gate = np.log(rng.dirichlet(np.ones(n_experts), size=n).T)
    log_lik = rng.randn(n_experts, n) * 3
    log_lik[:, :5] = -2000.0  # the full posterior underflows on some picks
    log_lik[4, :5] = 0.0
    router = _routers.TopKRouter(2)
    resp, log_prob = router.posterior(log_gate, log_lik.copy())
    full = np.exp(log_gate + log_lik - np.logaddexp.reduce(log_gate + log_lik, axis=0))
    assert_allclose(resp, full, atol=1e-12)
    # Each sample picks its two largest gate outputs, as at prediction.
    picks = np.argsort(-log_gate, axis=0, kind="stable")[:2]
    assert_array_equal(np.sort(router.choice_, axis=0), np.sort(picks, axis=0))
    # The objective is the log-likelihood of the top-k model, exact where
    # the full posterior underflows.
    gate_k = np.take_along_axis(log_gate, picks, axis=0)
    joint_k = gate_k + np.take_along_axis(log_lik, picks, axis=0)
    expected = np.logaddexp.reduce(joint_k, axis=0) - np.logaddexp.reduce(gate_k, axis=0)
    assert_allclose(log_prob, expected, rtol=1e-12)
    routing = router.route(resp, log_prob, np.ones(n), None)
    assert_array_equal(routing.gate_T, resp)
    experts = routing.experts_T
    assert_allclose(experts.sum(axis=0), 1.0)
    assert np.all(np.count_nonzero(experts, axis=0) <= 2)
    # On the picks, the posterior renormalised (the top-k model's posterior).
    ok = np.flatnonzero(np.take_along_axis(resp, picks, axis=0).sum(axis=0) > 0)
    kept = np.take_along_axis(resp, picks, axis=0)[:, ok]
    assert_allclose(np.take_along_axis(experts[:, ok], picks[:, ok], axis=0), kept / kept.sum(axis=0))
    # Removing an expert renumbers the picks; its picks are dropped.
    router.remove_experts(np.array([0, 1, 2, 4]))
    assert router.choice_.max() <= 3 and np.all(router.choice_ >= -1)
    assert np.all(router.choice_[picks == 3] == -1) and np.all(router.choice_[picks == 4] == 3)


def test_removed_experts_targets_go_to_the_others_in_proportion():
    router = _routers.BalancedRouter(_routers.SoftRouter(), np.array([0.1, 0.2, 0.3, 0.4]))
    rng = np.random.RandomState(0)
    resp = rng.dirichlet(np.ones(3), size=400).T
    router.route(rng.dirichlet(np.ones(4), size=400).T, None, np.ones(400), rng)  # a new run
    router.remove_experts(np.array([0, 2, 3]))
    routing = router.route(resp, np.zeros(400), np.ones(400), rng)
    assert_allclose(routing.experts_T.mean(axis=1), np.array([0.1, 0.3, 0.4]) / 0.8, atol=1e-6)
    # The next run starts with every expert's target again.
    router.route(rng.dirichlet(np.ones(4), size=400).T, None, np.ones(400), rng)
    assert_allclose(router._run_targets, [0.1, 0.2, 0.3, 0.4])


def _slots(resp, k):
    top = np.argsort(-resp, axis=0, kind="stable")[:k]
    slots = np.zeros_like(resp)
    np.put_along_axis(slots, top, 1.0, axis=0)
    values = slots * resp
    return slots, values / values.sum(axis=0)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("max_rounds", [None, 0])
def test_capacity_is_never_exceeded_and_no_sample_is_dropped(k, max_rounds):
    rng = np.random.RandomState(k)
    n, n_experts = 400, 5
    # Most samples prefer expert 0: its capacity binds.
    resp = rng.dirichlet(np.r_[8.0, np.ones(n_experts - 1)], size=n).T
    w = rng.randint(1, 4, n).astype(float)
    slots, values = _slots(resp, k)
    capacity = 1.25 * k / n_experts * w.sum()
    rank = _routing.tie_break_rank(None, _routing.content_keys(resp))
    S, V = _routing_capacity.limit_capacity(slots, values, resp, w, capacity, rank, max_rounds=max_rounds)
    assert np.all(S @ w <= capacity * (1 + 1e-9))
    assert_allclose(S.sum(axis=0), k)  # every slot of every sample is placed
    assert_allclose(V.sum(axis=0), 1.0)  # and carries all its weight
    assert np.all((S >= 0) & (V >= 0))
    if max_rounds is None and k == 2:
        # Overflow goes to experts not holding the sample: still k experts per sample.
        assert np.all(np.count_nonzero(S, axis=0) <= k + 1)


def test_capacity_keeps_the_most_responsible_samples():
    resp = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    slots = np.array([[1.0, 1, 1, 1], [0, 0, 0, 0]])
    rank = np.arange(4)
    S, _ = _routing_capacity.limit_capacity(slots, slots.copy(), resp, np.ones(4), 2.0, rank)
    assert_array_equal(S, [[1, 1, 0, 0], [0, 0, 1, 1]])
    # The boundary row is split: a weight of 2 behaves as two rows.
    S, _ = _routing_capacity.limit_capacity(slots, slots.copy(), resp, np.array([1.0, 2, 1, 1]), 2.5, rank)
    assert_allclose(S[0], [1, 0.75, 0, 0])


def test_expert_choice_gives_each_expert_its_capacity_plus_fallbacks():
    rng = np.random.RandomState(0)
    n, n_experts = 300, 4
    resp = rng.dirichlet(np.r_[6.0, 1, 1, 1], size=n).T
    w = rng.randint(1, 4, n).astype(float)
    capacity = 0.2 * w.sum()
    rank = _routing.tie_break_rank(None, _routing.content_keys(resp))
    picks = _routing_capacity.expert_choice_picks(resp, w, capacity, rank)
    assert_allclose(picks @ w, capacity)
    weights = _routing_capacity.expert_choice_weights(picks, resp)
    assert_allclose(weights.sum(axis=0), 1.0)
    unpicked = picks.max(axis=0) == 0
    assert unpicked.any()
    best = np.argmax(resp, axis=0)
    assert_array_equal(weights[best[unpicked], np.flatnonzero(unpicked)], 1.0)
    # Each expert picked its most responsible samples.
    for k in range(n_experts):
        taken = picks[k] == 1
        assert resp[k, taken].min() >= resp[k, picks[k] == 0].max()


@pytest.mark.parametrize("router_kind", ["capacity", "capacity_top_k", "expert_choice", "sem"])
def test_routing_a_row_of_weight_two_as_two_copies(router_kind):
    # The check scikit-learn runs: integer weights == repeated rows, rows shuffled.
    rng = np.random.RandomState(0)
    n, n_experts = 60, 3
    resp = rng.dirichlet(np.ones(n_experts) * 0.7, size=n).T
    log_prob = rng.randn(n)
    w = rng.randint(1, 4, n).astype(float)
    rep = np.repeat(np.arange(n), w.astype(int))
    order = rng.permutation(n)

    def fit_weights(resp, log_prob, sw):
        rng_ = np.random.RandomState(0)
        if router_kind == "capacity":
            router = _routers.CapacityRouter(_routers.ClassificationRouter(), 1.0, 1)
        elif router_kind == "capacity_top_k":
            # Rows split at one expert's boundary move on over several rounds:
            # copies of a row are refused and held as the row is.
            router = _routers.CapacityRouter(_routers.TopKRouter(2), 1.0, 2)
        elif router_kind == "expert_choice":
            router = _routers.ExpertChoiceRouter(1.0)
        else:
            router = _routers.StochasticRouter()
        return router.route(resp, log_prob, sw, rng_).experts_T * sw

    weighted = fit_weights(resp[:, order], log_prob[order], w[order])
    repeated = fit_weights(resp[:, rep], log_prob[rep], np.ones(rep.size))
    # Total fit weight per original row and expert.
    per_row = np.zeros((n_experts, n))
    np.add.at(per_row.T, rep, repeated.T)
    assert_allclose(weighted, per_row[:, order], atol=1e-9)


# ----------------------------------------------------------------------
# The estimators


def _cem_partition(moe, X, y):
    """Argmax of the fitted model's responsibilities (ties to the lowest index)."""
    means = np.column_stack([e.predict(X) for e in moe.experts_])
    log_joint = np.log(moe.predict_gate(X)) - 0.5 * (y[:, None] - means) ** 2 / moe.noise_variance_
    log_joint -= 0.5 * np.log(moe.noise_variance_)
    return np.argmax(log_joint, axis=1)


def _matching_group(expert, X, y, partition):
    """The group of ``partition`` whose ordinary fit is ``expert`` (the fit orders its experts), or None."""
    for k in np.unique(partition):
        reference = LinearRegression().fit(X[partition == k], y[partition == k])
        if np.allclose(reference.coef_, expert.coef_, rtol=1e-8, atol=1e-10) and np.isclose(
            reference.intercept_, expert.intercept_, rtol=1e-8, atol=1e-10
        ):
            return k
    return None


def _assert_ordinary_fits(moe, X, y, partition):
    for j, expert in enumerate(moe.experts_):
        k = _matching_group(expert, X, y, partition)
        assert k is not None, f"expert {j} is not an ordinary fit of a group of the partition"
        rows = partition == k
        residual = y[rows] - expert.predict(X[rows])
        assert_allclose(moe.noise_variance_[j], np.mean(residual**2), rtol=1e-8)


def test_cem_weights_are_hard_and_experts_are_ordinary_fits_of_a_partition(spy):
    X, y = _regression()
    moe = MixtureOfExpertsRegressor(4, algorithm="cem", random_state=0, max_iter=50).fit(X, y)
    for _, _, experts_T, gate_T in spy[0].calls[1:]:
        assert set(np.unique(experts_T)) <= {0.0, 1.0}
        assert_array_equal(experts_T.sum(axis=0), 1.0)
        assert_array_equal(gate_T, experts_T)
    assert moe.converged_ and moe.n_iter_ < 50  # the partition stopped changing
    partitions = [np.argmax(call[2], axis=0) for call in spy[0].calls]
    assert_array_equal(partitions[-1], partitions[-2])
    # The returned experts are ordinary fits of one of the iterations' partitions.
    fitted_on = [
        p for p in partitions if all(_matching_group(e, X, y, p) is not None for e in moe.experts_)
    ]
    assert fitted_on
    _assert_ordinary_fits(moe, X, y, fitted_on[-1])


def test_cem_experts_are_ordinary_fits_of_the_final_partition():
    X, y = _regression()
    moe = MixtureOfExpertsRegressor(4, algorithm="cem", random_state=0, max_iter=50).fit(X, y)
    _assert_ordinary_fits(moe, X, y, _cem_partition(moe, X, y))


def test_cem_ties_go_to_the_lowest_index():
    resp = np.array([[0.5, 0.2, 0.1, 0.4], [0.5, 0.4, 0.1, 0.2], [0.0, 0.4, 0.8, 0.4]])
    routing = _routers.ClassificationRouter().route(resp, np.zeros(4), np.ones(4), None)
    assert_array_equal(routing.experts_T, _routing.one_hot(np.array([0, 1, 2, 0]), 3))


def test_hard_routers_never_leave_an_expert_empty():
    # Expert 2 is nobody's most responsible expert: it takes the samples it
    # is most responsible for, up to its soft share (here exactly one row).
    resp = np.array([[0.6, 0.5, 0.2, 0.45], [0.1, 0.4, 0.6, 0.15], [0.3, 0.1, 0.2, 0.4]])
    routing = _routers.ClassificationRouter().route(resp, np.zeros(4), np.ones(4), None)
    assert_array_equal(routing.experts_T, _routing.one_hot(np.array([0, 0, 1, 2]), 3))


def test_sem_is_reproducible_with_a_seed_and_differs_between_seeds(spy):
    X, y = _regression()
    fits = [
        MixtureOfExpertsRegressor(4, algorithm="sem", random_state=seed, max_iter=8).fit(X, y)
        for seed in (0, 0, 1)
    ]
    assert_array_equal(fits[0].predict(X), fits[1].predict(X))
    assert not np.allclose(fits[0].predict(X), fits[2].predict(X))
    assert fits[0].n_iter_ == 8  # SEM runs its budget
    for _, _, experts_T, _ in spy[0].calls[1:]:
        assert set(np.unique(experts_T)) <= {0.0, 1.0}
    # The draws follow the responsibilities: over the iterations, a sample's
    # drawn expert is not always its most responsible one.
    drawn = np.array([np.argmax(c[2], axis=0) for c in spy[0].calls[1:]])
    best = np.array([np.argmax(c[0], axis=0) for c in spy[0].calls[1:]])
    assert 0 < np.mean(drawn != best) < 0.5


@pytest.mark.parametrize("params", [{"top_k": 1}, {"top_k": 2}, {"top_k": 2, "capacity_factor": 1.0}])
def test_top_k_experts_fit_at_most_k_experts_rows_per_sample(monkeypatch, params):
    from skmoe import _solvers

    seen = []
    fit = _solvers.BatchedLinearSolver.fit

    def spy_fit(self, templates, X, y, weights_T, sample_weight=None, **kwargs):
        seen.append(np.count_nonzero(weights_T, axis=0).max())
        routed = kwargs.get("routed")
        # The router lists exactly the non-zero weights for the solver.
        seen_routed.append(routed is not None and np.array_equal(routed_to_dense(routed), weights_T))
        return fit(self, templates, X, y, weights_T, sample_weight, **kwargs)

    seen_routed = []
    monkeypatch.setattr(_solvers.BatchedLinearSolver, "fit", spy_fit)
    X, y = _regression()
    moe = MixtureOfExpertsRegressor(4, random_state=0, max_iter=10, **params).fit(X, y)
    assert max(seen[1:]) <= params["top_k"]  # after the initial partition
    assert all(seen_routed[1:])
    assert moe.expert_load_.sum() <= params["top_k"] + 1e-12


@pytest.mark.parametrize("params", [{"top_k": 1}, {"top_k": 2}, {"top_k": 1, "capacity_factor": 1.25}])
def test_top_k_training_picks_by_the_gate_and_the_gate_learns_the_posterior(spy, params):
    # The driver's E-step is the router's (posterior); top_k picks each
    # sample's experts by its gate there, before the target is seen.
    X, y = _regression()
    MixtureOfExpertsRegressor(4, random_state=0, max_iter=8, **params).fit(X, y)
    router = spy[0].router
    while not isinstance(router, _routers.TopKRouter):
        router = router.inner
    assert router.choice_ is not None, "the driver's E-step must call router.posterior"
    k = params["top_k"]
    for resp_T, _, experts_T, gate_T in spy[0].calls[1:]:
        assert np.all(np.count_nonzero(experts_T, axis=0) <= k + 1)  # + 1: a split boundary row
        # The gate's target is the full posterior, capped at the capacities.
        if "capacity_factor" not in params:
            assert_array_equal(gate_T, resp_T)
        else:
            assert np.all(gate_T.mean(axis=1) <= params["capacity_factor"] / 4 + 1e-6)
            # softmax_k(log r + b_k): log q - log r differs between experts by b.
            ok = np.all(resp_T > 1e-200, axis=0)
            gap = np.log(gate_T[:, ok]) - np.log(resp_T[:, ok])
            gap -= gap[0]
            assert_allclose(gap, gap[:, :1] * np.ones_like(gap), atol=1e-6)
    # The experts are fitted on the gate's picks (capacity moves some rows on).
    for (_, _, experts_T, _), choice in zip(spy[0].calls[1:], spy[0].choices[1:]):
        picked = np.zeros(experts_T.shape, dtype=bool)
        np.put_along_axis(picked, choice, True, axis=0)
        on_picks = np.mean(np.all(picked | (experts_T == 0), axis=0))
        assert on_picks > (0.8 if "capacity_factor" in params else 0.99)


@pytest.mark.parametrize("params, k", [
    ({"top_k": 1, "capacity_factor": 1.0}, 1),
    ({"top_k": 2, "capacity_factor": 1.1}, 2),
    ({"algorithm": "cem", "capacity_factor": 1.0}, 1),
    ({"algorithm": "sem", "capacity_factor": 1.2}, 1),
])
def test_capacity_is_never_exceeded_in_a_fit(spy, params, k):
    # A collapsing fit: one region holds most samples.
    X, y = _regression(n=500)
    X = np.r_[X, X[:300] * 0.1]
    y = np.r_[y, y[:300] * 0.1]
    w = np.random.RandomState(0).randint(1, 4, X.shape[0]).astype(float)
    moe = MixtureOfExpertsRegressor(4, random_state=0, max_iter=10, **params)
    moe.fit(X, y, sample_weight=w)
    cap = params["capacity_factor"] * k / 4
    router = spy[0].router
    while not isinstance(router, _routers.CapacityRouter):
        router = router.inner
    assert router.load_ is not None and np.all(router.load_ <= cap * (1 + 1e-9))
    for _, _, experts_T, _ in spy[0].calls[1:]:
        assert_allclose(experts_T.sum(axis=0), 1.0)  # no sample dropped
        if k == 1:  # one slot per sample: the M-step weights are the slots
            assert np.all(experts_T @ w / w.sum() <= cap * (1 + 1e-9))
    # expert_load_ counts a split boundary row in full: a few rows more at most.
    assert np.all(moe.expert_load_ <= cap + 5 * w.max() / w.sum())


def test_expert_choice_fit(spy):
    X, y = _regression()
    moe = MixtureOfExpertsRegressor(4, routing="expert_choice", capacity_factor=1.5, random_state=0,
                                    max_iter=10).fit(X, y)
    c = int(np.ceil(1.5 * X.shape[0] / 4))
    for resp_T, _, experts_T, _ in spy[0].calls[1:]:
        assert_allclose(experts_T.sum(axis=0), 1.0)
        # Every expert holds at least its c rows; the rest are fallbacks.
        assert np.all(np.count_nonzero(experts_T, axis=1) >= c)
    assert np.all(moe.expert_load_ >= c / X.shape[0] - 1e-12)


@pytest.mark.parametrize("balance", ["uniform", [0.1, 0.2, 0.3, 0.4]])
def test_balanced_shares_match_the_targets(spy, balance):
    X, y = _regression()
    moe = MixtureOfExpertsRegressor(4, balance=balance, random_state=0, max_iter=20).fit(X, y)
    targets = np.full(4, 0.25) if balance == "uniform" else np.asarray(balance)
    for _, _, experts_T, gate_T in spy[0].calls[1:]:
        assert_allclose(experts_T.mean(axis=1), targets, atol=1e-3)
        assert_allclose(gate_T, experts_T)
    # Prediction uses the plain gate.
    gate = np.exp(moe.gate_.predict_log_proba(X))
    assert_allclose(moe.predict_gate(X), gate)


def test_balanced_shares_are_sample_weighted(spy):
    X, y = _regression()
    w = np.random.RandomState(1).randint(1, 5, X.shape[0]).astype(float)
    MixtureOfExpertsRegressor(4, balance="uniform", random_state=0, max_iter=5).fit(X, y, sample_weight=w)
    for _, _, experts_T, _ in spy[0].calls[1:]:
        assert_allclose(experts_T @ w / w.sum(), 0.25, atol=1e-3)


def test_noise_changes_training_only():
    X, y = _regression()
    plain = MixtureOfExpertsRegressor(4, random_state=0, max_iter=10).fit(X, y)
    noisy = MixtureOfExpertsRegressor(4, gate_noise=1.0, random_state=0, max_iter=10).fit(X, y)
    assert not np.allclose(plain.predict(X), noisy.predict(X))
    assert noisy.n_iter_ == 10
    # No noise at prediction: deterministic, the gate as fitted.
    assert_array_equal(noisy.predict_gate(X), noisy.predict_gate(X))
    assert_allclose(noisy.predict_gate(X), np.exp(noisy.gate_.predict_log_proba(X)))
    again = MixtureOfExpertsRegressor(4, gate_noise=1.0, random_state=0, max_iter=10).fit(X, y)
    assert_array_equal(again.predict(X), noisy.predict(X))


def test_noisy_router_perturbs_the_gate_with_normal_noise():
    rng = np.random.RandomState(0)
    log_gate = np.log(rng.dirichlet(np.ones(3), size=4000).T)
    noisy = _routers.NoisyRouter(_routers.SoftRouter(), 0.5).perturb_log_gate(log_gate, rng)
    assert_allclose(np.exp(noisy).sum(axis=0), 1.0)
    # Noise on the logits: differences between experts move by N(0, 2 * 0.25).
    diff = (noisy[0] - noisy[1]) - (log_gate[0] - log_gate[1])
    assert abs(diff.std() - 0.5 * np.sqrt(2)) < 0.03
    # Masked (top_k) experts stay masked.
    log_gate[2, :10] = -np.inf
    assert np.all(np.isneginf(_routers.NoisyRouter(_routers.SoftRouter(), 0.5).perturb_log_gate(log_gate, rng)[2, :10]))


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option_is_reproducible_and_weight_equivalent(name):
    X, y = _regression(n=200)
    w = np.random.RandomState(3).randint(1, 4, X.shape[0])
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w)
    Xs, ys, ws = shuffle(X, y, w, random_state=0)
    params = dict(random_state=0, max_iter=6, **OPTIONS[name])
    weighted = MixtureOfExpertsRegressor(4, **params).fit(Xs, ys, sample_weight=ws)
    repeated = MixtureOfExpertsRegressor(4, **params).fit(Xr, yr)
    assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-6, atol=1e-8)
    again = MixtureOfExpertsRegressor(4, **params).fit(Xs, ys, sample_weight=ws)
    assert_array_equal(again.predict(X), weighted.predict(X))


@pytest.mark.parametrize("name, stopping", [
    ("em", "objective"), ("balanced", "objective"), ("cem", "partition"), ("cem-capacity", "partition"),
    ("sem", "budget"), ("noisy", "budget"), ("top1-capacity", "objective"),
    ("expert-choice", "objective"),
])
def test_stopping_rule_of_each_option(name, stopping):
    router = _routers.make_router(MixtureOfExpertsRegressor(4, **OPTIONS[name]))
    assert router.stopping == stopping
    assert router.exact == (name == "em")
    assert router.name in ROUTERS


@pytest.mark.parametrize("params, match", [
    ({"capacity_factor": 1.5}, "capacity_factor=1.5 has no effect with soft EM"),
    ({"top_k": 2, "routing": "expert_choice"}, "top_k=2 does not apply with routing='expert_choice'"),
    ({"algorithm": "cem", "routing": "expert_choice"}, "algorithm='cem' does not apply"),
    ({"balance": [0.5, 0.5, 0.5]}, r"balance=.* has shape \(3,\) but n_experts=4"),
    ({"balance": [0.5, -0.1, 0.3, 0.3]}, "balance=.* has negative shares"),
    ({"balance": [0.0, 0.0, 0.0, 0.0]}, "balance=.* sums to zero"),
    ({"balance": [0.0, 0.2, 0.3, 0.5]}, "balance=.* gives an expert a zero share"),
    ({"balance": "uniform", "top_k": 2}, "balance='uniform' cannot be combined with top_k"),
])
def test_refused_combinations_name_the_parameter_and_the_fix(params, match):
    X, y = _regression(n=50)
    moe = MixtureOfExpertsRegressor(4, **params)
    with pytest.raises(ValueError, match=match):
        moe.fit(X, y)
    assert not hasattr(moe, "experts_")


@pytest.mark.parametrize("params", [{"capacity_factor": 0.9, "top_k": 1}, {"gate_noise": -1.0}])
def test_out_of_range_values_are_refused(params):
    X, y = _regression(n=50)
    with pytest.raises(ValueError, match=next(iter(params)) if "gate_noise" in params else "capacity_factor"):
        MixtureOfExpertsRegressor(4, **params).fit(X, y)
    # make_router refuses them too (estimators built around validation).
    est = MixtureOfExpertsRegressor(4)
    est.__dict__.update(params)
    with pytest.raises(ValueError, match="capacity_factor" if "capacity_factor" in params else "gate_noise"):
        _routers.make_router(est)


def test_grid_search_reaches_every_option():
    X, y = _regression(n=160)
    grid = [{key: [value] for key, value in params.items()} for params in OPTIONS.values()]
    search = GridSearchCV(
        MixtureOfExpertsRegressor(4, max_iter=3, random_state=0), grid, cv=2, error_score="raise"
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == len(OPTIONS)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_the_classifier_supports_every_option(name):
    X, y = make_xor_blobs(n_samples=120, random_state=0)
    clf = MixtureOfExpertsClassifier(4, max_iter=3, random_state=0, **OPTIONS[name]).fit(X, y)
    proba = clf.predict_proba(X)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X, y) > 0.5


def test_capacity_router_starts_each_restart_afresh():
    """The gate's capped targets of one restart do not carry into the next."""
    rng = np.random.RandomState(0)
    n_experts, n = 4, 200
    resp = rng.dirichlet(np.ones(n_experts) * 0.3, size=n).T.copy()
    router = _routers.CapacityRouter(_routers.TopKRouter(2), capacity_factor=1.0, experts_per_sample=2)
    log_gate = np.log(resp)
    resp_post, log_prob = router.posterior(log_gate, np.zeros((n_experts, n)))
    router.route(resp_post, log_prob, np.ones(n), None)
    assert router.gate_offsets_ is not None
    router.route(resp, None, np.ones(n), None)  # the first routing of the next restart
    assert router.gate_offsets_ is None and router.load_ is None
