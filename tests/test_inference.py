"""Tests of skmoe.inference: standard errors, likelihood-ratio and bootstrap tests, expert order."""

import json
import pathlib
import sys
import warnings

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.linear_model import PoissonRegressor, Ridge
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.gates import MLPGate
from skmoe.inference import (
    BootstrapResult,
    LikelihoodRatioResult,
    ParameterTable,
    bootstrap_n_experts,
    likelihood_ratio_test,
    order_experts,
    standard_errors,
)
from skmoe.inference._derivatives import (
    GammaDerivatives,
    GaussianDerivatives,
    PoissonDerivatives,
    StudentTDerivatives,
    derivatives_for,
)
from skmoe.inference._model import MixtureModel

DATA = pathlib.Path(__file__).parent / "data"


def _gated_data(n=300, n_features=1, seed=0, noise=0.5):
    """Two linear regimes behind a soft logistic gate on the first feature (no separation)."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, (n, n_features))
    second = rng.uniform(size=n) < 1 / (1 + np.exp(-1.5 * X[:, 0]))
    y = np.where(second, 4 + 2 * X[:, 0], 1 - 2 * X[:, 0]) + noise * rng.randn(n)
    return X, y


def _fit(X, y, n_experts=2, **params):
    params = {"gate_alpha": 0, "random_state": 0, "tol": 1e-10, "max_iter": 500, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at tol=1e-10: irrelevant here
        return MixtureOfExpertsRegressor(n_experts, **params).fit(X, y)


def _fd_hessian(f, theta, eps=1e-4):
    """Central second differences of a scalar function."""
    P = theta.size
    H = np.empty((P, P))
    E = np.eye(P) * eps
    for i in range(P):
        for j in range(i, P):
            H[i, j] = H[j, i] = (
                f(theta + E[i] + E[j]) - f(theta + E[i] - E[j])
                - f(theta - E[i] + E[j]) + f(theta - E[i] - E[j])
            ) / (4 * eps * eps)
    return H


# ---------------------------------------------------------------------------
# Derivatives and the observed information


@pytest.mark.parametrize(
    "derivatives, y, tau",
    [
        (GaussianDerivatives(), None, np.log([[0.7], [1.3]])),
        (StudentTDerivatives(), None, np.log([[0.7, 3.0], [1.3, 10.0]])),
        (StudentTDerivatives(4.0), None, np.log([[0.7], [1.3]])),
        (PoissonDerivatives(), "counts", np.zeros((2, 0))),
        (GammaDerivatives(), "positive", np.log([[0.7], [3.0]])),
    ],
    ids=["gaussian", "student_t", "student_t_fixed_df", "poisson", "gamma"],
)
def test_log_density_derivatives_match_differences(derivatives, y, tau):
    rng = np.random.RandomState(0)
    mu = rng.uniform(1, 5, (2, 25))
    if y is None:
        y = 3 * rng.randn(25)
    elif y == "counts":
        y = rng.poisson(3, 25).astype(float)
    else:
        y = rng.gamma(2.0, 1.0, 25)
    f = derivatives.log_density_derivatives
    _, d_mu, d2_mu, d_tau, d2_mu_tau, d2_tau = f(y, mu, tau)
    eps = 1e-6
    assert_allclose((f(y, mu + eps, tau)[0] - f(y, mu - eps, tau)[0]) / (2 * eps), d_mu, atol=1e-6)
    assert_allclose((f(y, mu + eps, tau)[1] - f(y, mu - eps, tau)[1]) / (2 * eps), d2_mu, atol=1e-6)
    for j in range(tau.shape[1]):
        step = np.zeros_like(tau)
        step[:, j] = eps
        up, down = f(y, mu, tau + step), f(y, mu, tau - step)
        assert_allclose((up[0] - down[0]) / (2 * eps), d_tau[..., j], atol=1e-6)
        assert_allclose((up[1] - down[1]) / (2 * eps), d2_mu_tau[..., j], atol=1e-6)
        assert_allclose((up[3] - down[3]) / (2 * eps), d2_tau[..., :, j], atol=1e-6)


@pytest.mark.parametrize("n_experts, reference, weighted", [(2, 0, False), (3, 1, True)])
def test_score_and_hessian_match_differences(n_experts, reference, weighted):
    X, y = _gated_data(n=150, n_features=2)
    moe = _fit(X, y, n_experts, max_iter=30)
    sample_weight = np.random.RandomState(1).uniform(0.5, 2, y.size) if weighted else None
    model = MixtureModel(moe, X, y, sample_weight=sample_weight, reference=reference)
    theta = model.theta + 0.05 * np.random.RandomState(2).randn(model.n_parameters)
    score, hessian = model.score_hessian(theta)
    eps = 1e-5
    steps = np.eye(theta.size) * eps
    numeric_score = [(model.log_likelihood(theta + e) - model.log_likelihood(theta - e)) / (2 * eps) for e in steps]
    numeric_hessian = [(model.score_hessian(theta + e)[0] - model.score_hessian(theta - e)[0]) / (2 * eps) for e in steps]
    assert_allclose(score, numeric_score, rtol=1e-6, atol=1e-6 * np.abs(score).max())
    assert_allclose(hessian, numeric_hessian, rtol=1e-6, atol=1e-7 * np.abs(hessian).max())


@pytest.mark.parametrize("features", [{}, {"gate_features": [1], "expert_features": [0]}])
def test_standard_errors_match_finite_difference_information(features):
    """Inverse of a second-difference Hessian of the log-likelihood alone (no analytic derivative)."""
    X, y = _gated_data(n=120, n_features=2, seed=3)
    moe = _fit(X, y, **features)
    table = standard_errors(moe, X, y)
    model = MixtureModel(moe, X, y)
    numeric = np.linalg.inv(-_fd_hessian(model.log_likelihood, model.theta))
    assert_allclose(np.sqrt(np.diag(table.covariance)), np.sqrt(np.diag(numeric)), rtol=1e-4)
    # The table on the natural scale: sigma by the delta method, a positive interval.
    sigma = [i for i, t in enumerate(table.term) if t == "sigma"]
    assert_allclose(table.estimate[sigma], np.sqrt(moe.noise_variance_))
    assert np.all(np.isnan(table.z[sigma])) and np.all(table.ci_low[sigma] > 0)
    others = [i for i in range(len(table)) if i not in sigma]
    assert_allclose(table.z[others], table.estimate[others] / table.std_err[others])
    assert_allclose(table.ci_high[others] - table.estimate[others], 1.959964 * table.std_err[others], rtol=1e-6)


def test_weights_are_frequency_weights():
    X, y = _gated_data(n=100, seed=4)
    weight = np.r_[np.full(50, 2.0), np.ones(50)]
    moe = _fit(X, y, max_iter=50)
    repeated = standard_errors(moe, np.r_[X, X[:50]], np.r_[y, y[:50]])
    weighted = standard_errors(moe, X, y, sample_weight=weight)
    assert_allclose(weighted.std_err, repeated.std_err, rtol=1e-10)


def test_poisson_experts():
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, (200, 1))
    second = rng.uniform(size=200) < 1 / (1 + np.exp(-2 * X[:, 0]))
    y = rng.poisson(np.where(second, np.exp(1 + 0.5 * X[:, 0]), np.exp(2 - 0.5 * X[:, 0]))).astype(float)
    moe = _fit(X, y, likelihood="poisson", expert=PoissonRegressor(alpha=0), max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged: the Hessian is checked all the same
        table = standard_errors(moe, X, y)
    assert "sigma" not in table.term and len(table) == 6
    model = MixtureModel(moe, X, y)
    numeric = np.linalg.inv(-_fd_hessian(model.log_likelihood, model.theta))
    assert_allclose(table.std_err, np.sqrt(np.diag(numeric)), rtol=1e-4)


# ---------------------------------------------------------------------------
# The reference expert of the gate


def test_gate_identified_by_reference_expert():
    X, y = _gated_data(n=200)
    moe = _fit(X, y)
    first = standard_errors(moe, X, y)
    second = standard_errors(moe, X, y, reference=1)
    assert [c for c in first.component if c.startswith("gate")] == ["gate 1", "gate 1"]
    assert [c for c in second.component if c.startswith("gate")] == ["gate 0", "gate 0"]
    gate = moe.gate_
    contrast = np.r_[gate.intercept_[1] - gate.intercept_[0], gate.coef_[1] - gate.coef_[0]]
    assert_allclose(first.estimate[-2:], contrast)
    # Swapping the reference negates the log-odds and keeps every error.
    assert_allclose(second.estimate[-2:], -first.estimate[-2:])
    assert_allclose(second.std_err, first.std_err, rtol=1e-10)
    assert_allclose(second.estimate[:-2], first.estimate[:-2])


def test_gate_contrasts_of_three_experts_are_consistent():
    """The log-odds of expert 2 against 1 is the difference of their log-odds against 0."""
    X, y = _gated_data(n=240, seed=5)
    moe = _fit(X, y, 3, max_iter=200)
    against_0 = standard_errors(moe, X, y)
    against_1 = standard_errors(moe, X, y, reference=1)
    gate_0 = [i for i, c in enumerate(against_0.component) if c.startswith("gate")]
    (g1, g1x, g2, g2x) = gate_0  # gate 1 and gate 2 against 0: intercept and slope
    row = [i for i, c in enumerate(against_1.component) if c == "gate 2"]
    assert_allclose(against_1.estimate[row], against_0.estimate[[g2, g2x]] - against_0.estimate[[g1, g1x]])
    cov = against_0.covariance
    var = cov[g2, g2] + cov[g1, g1] - 2 * cov[g1, g2]
    assert_allclose(against_1.std_err[row[0]], np.sqrt(var), rtol=1e-6)


def test_reference_out_of_range():
    X, y = _gated_data(n=100)
    moe = _fit(X, y, max_iter=20)
    with pytest.raises(ValueError, match="reference=2"):
        standard_errors(moe, X, y, reference=2)


# ---------------------------------------------------------------------------
# Penalised and unsupported fits


def test_penalised_gate_warns_and_says_so():
    X, y = _gated_data(n=150)
    moe = _fit(X, y, gate_alpha=1e-2, max_iter=100)
    with pytest.warns(UserWarning, match="not a maximum-likelihood fit.*gate_alpha=0.01"):
        table = standard_errors(moe, X, y)
    assert not table.maximum_likelihood
    assert "gate_alpha=0.01" in table.note
    assert "Not maximum-likelihood errors" in table.summary()


def test_ridge_experts_warn():
    X, y = _gated_data(n=150)
    moe = _fit(X, y, expert=Ridge(alpha=1.0), max_iter=100)
    with pytest.warns(UserWarning, match="Ridge"):
        table = standard_errors(moe, X, y)
    assert not table.maximum_likelihood and "Ridge" in table.note


def test_maximum_likelihood_fit_does_not_warn():
    X, y = _gated_data(n=150)
    moe = _fit(X, y, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = standard_errors(moe, X, y)
    assert table.maximum_likelihood and table.note == ""


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"expert": DecisionTreeRegressor(max_depth=2)}, TypeError, "linear experts"),
        ({"gate": MLPGate(hidden_layer_sizes=(3,), random_state=0)}, TypeError, "linear gate"),
        ({"top_k": 1}, ValueError, "top_k"),
    ],
)
def test_unsupported_models_are_refused(params, error, match):
    X, y = _gated_data(n=120)
    moe = _fit(X, y, max_iter=5, **params)
    with pytest.raises(error, match=match):
        standard_errors(moe, X, y)


def test_singular_information_gives_nan_with_warning():
    X, y = _gated_data(n=150)
    X = np.c_[X, X]  # two identical columns: coefficients not identified
    moe = _fit(X, y, max_iter=50)
    with pytest.warns(UserWarning, match="not positive definite"):
        table = standard_errors(moe, X, y)
    assert np.all(np.isnan(table.std_err))


def test_table_frame_and_text():
    pd = pytest.importorskip("pandas")
    X, y = _gated_data(n=200)
    frame_X = pd.DataFrame(X, columns=["dose"])
    table = standard_errors(_fit(frame_X, y), frame_X, y)
    assert isinstance(table, ParameterTable)
    frame = table.to_frame()
    assert list(frame.columns) == ["estimate", "std_err", "z", "p_value", "ci_low", "ci_high"]
    assert frame.index.names == ["component", "term"]
    assert ("gate 1", "dose") in frame.index and ("expert 0", "sigma") in frame.index
    text = repr(table)
    assert "Expert 0" in text and "Gate: expert 1 vs expert 0" in text and "dose" in text


def test_to_frame_without_pandas(monkeypatch):
    X, y = _gated_data(n=100)
    table = standard_errors(_fit(X, y, max_iter=50), X, y)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="requires pandas"):
        table.to_frame()


# ---------------------------------------------------------------------------
# flexmix's numbers (recorded by benchmarks/flexmix_inference.R)


@pytest.mark.parametrize(
    "name, gate_features",
    [("constant", []), ("concomitant_x", [0]), ("concomitant_x_x2", None)],
)
def test_standard_errors_match_flexmix_on_npreg(name, gate_features):
    reference = json.loads((DATA / "flexmix_npreg_inference.json").read_text())[name]
    data = np.genfromtxt(DATA / "npreg.csv", delimiter=",", names=True)
    X = np.column_stack([data["x"], data["x"] ** 2])
    moe = _fit(X, data["yn"], gate_features=gate_features, init=np.array(reference["posterior"]),
               tol=1e-12, max_iter=5000)
    table = standard_errors(moe, X, data["yn"])
    se = np.sqrt(np.diag(table.covariance))  # log sigma, as flexmix's refit
    theta = np.where([t == "sigma" for t in table.term], np.log(np.abs(table.estimate)), table.estimate)
    flexmix_se = np.array(reference["refit"]["std_err"])
    assert_allclose(se, flexmix_se, rtol=0.02)  # the check
    assert_allclose(se, flexmix_se, rtol=2e-3)  # what it reaches
    # Both at the same maximum: within a hundredth of a standard error.
    assert np.all(np.abs(theta - reference["refit"]["estimate"]) < 0.01 * flexmix_se)


# ---------------------------------------------------------------------------
# Likelihood-ratio test


def test_likelihood_ratio_test_nested_gate():
    X, y = _gated_data(n=200, n_features=2, seed=6)
    full = _fit(X, y, tol=1e-8)
    restricted = _fit(X, y, gate_features=[0], tol=1e-8)
    result = likelihood_ratio_test(restricted, full, X, y)
    assert isinstance(result, LikelihoodRatioResult)
    assert result.df == 1  # the gate's weight of the second feature
    n = X.shape[0]
    assert_allclose(result.statistic, 2 * n * (full.log_likelihood_ - restricted.log_likelihood_), rtol=1e-8)
    assert 0 <= result.p_value <= 1 and "df=1" in repr(result)


def test_likelihood_ratio_test_refuses_different_numbers_of_experts():
    X, y = _gated_data(n=150)
    with pytest.raises(ValueError, match="bootstrap_n_experts"):
        likelihood_ratio_test(_fit(X, y, 1), _fit(X, y, 2, max_iter=20), X, y)


def test_likelihood_ratio_test_refuses_swapped_models():
    X, y = _gated_data(n=150, n_features=2)
    full, restricted = _fit(X, y, max_iter=20), _fit(X, y, gate_features=[0], max_iter=20)
    with pytest.raises(ValueError, match="swapped"):
        likelihood_ratio_test(full, restricted, X, y)


def test_likelihood_ratio_test_warns_on_penalised_fits():
    X, y = _gated_data(n=150, n_features=2)
    full = _fit(X, y, gate_alpha=1e-3, max_iter=50)
    restricted = _fit(X, y, gate_features=[0], max_iter=50)
    with pytest.warns(UserWarning, match="full: the gate has a penalty gate_alpha=0.001"):
        likelihood_ratio_test(restricted, full, X, y)


# ---------------------------------------------------------------------------
# Parametric bootstrap of the number of experts


def test_bootstrap_n_experts_rejects_one_expert_and_is_reproducible():
    X, y = _gated_data(n=80, noise=0.3)
    moe = MixtureOfExpertsRegressor(gate_alpha=0, max_iter=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = bootstrap_n_experts(moe, X, y, n_experts=(1, 2), n_bootstrap=3, significance=0.3,
                                     random_state=0)
        with joblib.parallel_backend("threading"):  # no process start-up in a test
            again = bootstrap_n_experts(moe, X, y, n_experts=(1,), n_bootstrap=3,
                                        significance=0.3, random_state=0, n_jobs=2)
    assert isinstance(result, BootstrapResult)
    assert result.n_experts[0] == 1 and result.p_value[0] == pytest.approx(1 / 4)
    assert result.bootstrap_statistics[0].shape == (3,)
    assert result.statistic[0] > result.bootstrap_statistics[0].max()
    assert result.n_experts_selected == (2 if result.p_value[-1] > 0.3 else 3)
    # The same replicates whatever n_jobs.
    assert_allclose(again.bootstrap_statistics[0], result.bootstrap_statistics[0])
    assert "1 vs 2 experts" in repr(result)
    frame = pytest.importorskip("pandas") and result.to_frame()
    assert list(frame.index) == list(result.n_experts)


def test_bootstrap_n_experts_progress(capsys):
    X, y = _gated_data(n=80)
    moe = MixtureOfExpertsRegressor(gate_alpha=0, max_iter=10)
    bootstrap_n_experts(moe, X, y, n_experts=(1,), n_bootstrap=2, significance=0.5,
                        random_state=0, verbose=1)
    assert "1 vs 2 experts: LR statistic" in capsys.readouterr().out


@pytest.mark.parametrize(
    "params, match",
    [({"n_experts": (0,)}, "positive"), ({"n_bootstrap": 0}, "n_bootstrap"), ({"significance": 1.5}, "significance")],
)
def test_bootstrap_n_experts_checks(params, match):
    X, y = _gated_data(n=50)
    with pytest.raises(ValueError, match=match):
        bootstrap_n_experts(MixtureOfExpertsRegressor(), X, y, **params)


# ---------------------------------------------------------------------------
# A stable order of the experts


def _shuffled_fit(X, y, n_experts=3):
    moe = _fit(X, y, n_experts, max_iter=50, gate_alpha=1e-4)
    return moe


def test_order_experts_keeps_predictions():
    X, y = _gated_data(n=300, seed=7)
    moe = _shuffled_fit(X, y)
    before = {
        "predict": moe.predict(X, return_std=True),
        "log_prob": moe.log_prob(X, y),
        "bic": moe.bic(X, y),
        "gate": moe.predict_gate(X),
        "experts": moe.predict_experts(X),
        "noise": moe.noise_variance_.copy(),
        "share": moe.expert_share_.copy(),
        "load": moe.expert_load_.copy(),
        "params": moe.likelihood_.params_.copy(),
    }
    order = order_experts(moe, by=[2, 0, 1])
    assert_allclose(order, [2, 0, 1])
    assert_allclose(moe.predict(X, return_std=True), before["predict"], rtol=1e-12)
    assert_allclose(moe.log_prob(X, y), before["log_prob"], rtol=1e-12)
    assert_allclose(moe.bic(X, y), before["bic"], rtol=1e-12)
    assert_allclose(moe.predict_gate(X), before["gate"][:, order], rtol=1e-10, atol=1e-14)
    assert_allclose(moe.predict_experts(X), before["experts"][:, order])
    for name, attr in (("noise", "noise_variance_"), ("share", "expert_share_"), ("load", "expert_load_")):
        assert_allclose(getattr(moe, attr), before[name][order])
    assert_allclose(moe.likelihood_.params_, before["params"][order])
    assert_allclose(moe.predict_expert(X), np.argsort(order)[np.argmax(before["gate"], axis=1)])


def test_order_experts_rules():
    X, y = _gated_data(n=300, seed=8)
    moe = _shuffled_fit(X, y)
    order_experts(moe, X)
    means = moe.predict_experts(X).mean(axis=0)
    assert np.all(np.diff(means) >= 0)
    order_experts(moe, by="share")
    assert np.all(np.diff(moe.expert_share_) <= 0)
    order_experts(moe, by="intercept")
    assert np.all(np.diff([e.intercept_ for e in moe.experts_]) >= 0)
    identity = order_experts(moe, by="intercept")
    assert_allclose(identity, np.arange(3))


def test_order_experts_lines_up_refits():
    """Two fits that number the experts differently give the same table once ordered."""
    X, y = _gated_data(n=300, seed=9)
    tables = []
    for seed in range(4):
        moe = _fit(X, y, random_state=seed, init="random", tol=1e-8)
        order_experts(moe, X)
        tables.append(standard_errors(moe, X, y))
    for table in tables[1:]:
        assert_allclose(table.estimate, tables[0].estimate, rtol=1e-3, atol=1e-3)
        assert_allclose(table.std_err, tables[0].std_err, rtol=1e-2)


def test_order_experts_then_warm_start():
    X, y = _gated_data(n=200, seed=10)
    moe = _fit(X, y, 3, max_iter=30, warm_start=True)
    order_experts(moe, by=[1, 2, 0])
    before = moe.predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moe.set_params(max_iter=1).fit(X, y)
    assert_allclose(moe.predict(X), before, rtol=1e-2, atol=1e-2)


def test_order_experts_classifier_by_share():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 2)
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MixtureOfExpertsClassifier(3, random_state=0, max_iter=3).fit(X, y)
    proba = clf.predict_proba(X)
    order_experts(clf, by="share")
    assert np.all(np.diff(clf.expert_share_) <= 0)
    assert_allclose(clf.predict_proba(X), proba, rtol=1e-12)
    with pytest.raises(ValueError, match="by='share'"):
        order_experts(clf, X)


@pytest.mark.parametrize(
    "by, X, match",
    [("mean", None, "needs X"), ("size", None, "one of"), ([0, 0, 1], None, "permutation")],
)
def test_order_experts_checks(by, X, match):
    Xd, y = _gated_data(n=150)
    moe = _shuffled_fit(Xd, y)
    with pytest.raises(ValueError, match=match):
        order_experts(moe, X, by=by)


def test_derivatives_for_unknown_likelihood():
    class Custom:
        name = "custom"

    with pytest.raises(TypeError, match="inference_derivatives"):
        derivatives_for(Custom())
