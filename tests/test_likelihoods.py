"""The Poisson, Gamma and Student-t likelihoods, the predictive distributions, and flexmix.

Recovery of known parameters on data drawn from each family; Student-t
against outliers; quantiles, intervals and draws of the predictive mixture;
fits started from R flexmix's final posterior on its ``NPreg`` data reach
flexmix's log-likelihood and coefficients (numbers stored in
``tests/data/flexmix_npreg.json`` by ``tests/data/flexmix_npreg.R``, so R is
not needed here).
"""

import itertools
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from sklearn.linear_model import GammaRegressor, LinearRegression, PoissonRegressor

from skmoe import MixtureOfExpertsRegressor, _predictive
from skmoe.datasets import (
    make_contaminated_regression,
    make_count_regression,
    make_gated_regression,
    make_positive_regression,
)
from skmoe.likelihoods import (
    GammaLikelihood,
    GaussianLikelihood,
    PoissonLikelihood,
    StudentTLikelihood,
)
from skmoe.likelihoods._gamma import gamma_shape_mle
from tests._em_steps import assert_never_decreases, stepped_objectives

DATA = Path(__file__).parent / "data"
# Newton-Cholesky GLM experts: the same fits as the default lbfgs, faster on 2 cores.
POISSON = PoissonRegressor(alpha=0.0, solver="newton-cholesky")
GAMMA = GammaRegressor(alpha=0.0, solver="newton-cholesky")


def _coef(moe):
    return np.array([np.r_[e.intercept_, np.ravel(e.coef_)] for e in moe.experts_])


def _matched_error(estimated, true):
    """Largest absolute error of the rows of ``estimated`` under the best permutation."""
    return min(
        np.abs(estimated[list(perm)] - true).max()
        for perm in itertools.permutations(range(len(true)))
    )


# Short fits (max_iter of a few iterations) need not converge.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
_fit = MixtureOfExpertsRegressor


# ----------------------------------------------------------------------
# Recovery of known parameters


def test_poisson_recovers_log_linear_experts():
    X, y, params = make_count_regression(1500, return_params=True, random_state=0)
    moe = _fit(2, likelihood="poisson", expert=POISSON, random_state=0).fit(X, y)
    true = np.c_[params["expert_intercept"], params["expert_coef"]]
    assert _matched_error(_coef(moe), true) < 0.15
    assert moe.likelihood_.params_ is None
    # The experts' coefficients and the gate are all the parameters.
    assert moe._n_parameters() == 2 * 3 + 3


def test_poisson_default_expert_is_unpenalised_poisson_regressor():
    X, y = make_count_regression(100, random_state=0)
    moe = _fit(2, likelihood="poisson", max_iter=1, random_state=0).fit(X, y)
    assert all(type(e) is PoissonRegressor and e.alpha == 0 for e in moe.experts_)
    moe = _fit(2, likelihood="gamma", max_iter=1, random_state=0).fit(X, y + 1)
    assert all(type(e) is GammaRegressor and e.alpha == 0 for e in moe.experts_)
    moe = _fit(2, likelihood="student_t", max_iter=1, random_state=0).fit(X, y)
    assert all(type(e) is LinearRegression for e in moe.experts_)


def test_gamma_recovers_means_and_shapes():
    X, y, params = make_positive_regression(1500, shape=[3.0, 10.0], return_params=True, random_state=0)
    moe = _fit(2, likelihood="gamma", expert=GAMMA, random_state=0).fit(X, y)
    true = np.c_[params["expert_intercept"], params["expert_coef"]]
    assert _matched_error(_coef(moe), true) < 0.1
    assert_allclose(np.sort(moe.gamma_shape_), [3.0, 10.0], rtol=0.2)
    assert moe._n_parameters() == 2 * 3 + 3 + 2


def test_gamma_shape_newton_solves_the_score_equation():
    deviance = np.array([1e-8, 1e-3, 0.1, 0.5, 2.0, 50.0])
    nu = gamma_shape_mle(deviance)
    from scipy.special import digamma

    assert_allclose((np.log(nu) - digamma(nu))[1:], deviance[1:], rtol=1e-10)
    assert_allclose(nu[0], 1e6)  # an interpolating expert: the shape is capped
    # The shape of Gamma draws with a known mean.
    rng = np.random.RandomState(0)
    y = rng.gamma(2.5, 4.0 / 2.5, size=50_000)
    d = np.mean(y / 4.0 - np.log(y / 4.0) - 1.0)
    assert_allclose(gamma_shape_mle(np.array([d])), 2.5, rtol=0.02)


def test_student_t_recovers_scale_and_degrees_of_freedom():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(3000, 1))
    left = X[:, 0] < 0
    noise = np.where(left, 0.1, 0.3) * rng.standard_t(4.0, size=3000)
    y = np.where(left, -2 * X[:, 0], 3 * X[:, 0] + 1) + noise
    moe = _fit(2, likelihood="student_t", random_state=0).fit(X, y)
    order = np.argsort(moe.noise_scale_)
    assert_allclose(moe.noise_scale_[order], [0.1, 0.3], rtol=0.1)
    assert np.all((moe.df_ > 2.5) & (moe.df_ < 7))
    assert moe._n_parameters() == 2 * 2 + 2 + 2 * 2


def test_student_t_ecm_never_decreases_the_log_likelihood():
    X, y = make_contaminated_regression(600, n_features=1, random_state=0)
    moe = MixtureOfExpertsRegressor(
        2, likelihood="student_t", max_iter=1, warm_start=True, gate_alpha=0.0, random_state=0
    )
    assert_never_decreases(stepped_objectives(moe, X, y, 15), rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_student_t_beats_gaussian_with_gross_outliers(seed):
    X, y, params = make_contaminated_regression(
        2400, outlier_fraction=0.05, return_params=True, random_state=seed
    )
    train, test = slice(0, 1600), slice(1600, None)
    true = np.c_[params["expert_intercept"], params["expert_coef"]]
    clean = ~params["outliers"][test]
    errors = {}
    for likelihood in ("gaussian", "student_t"):
        moe = _fit(2, likelihood=likelihood, random_state=0).fit(X[train], y[train])
        errors[likelihood] = (
            _matched_error(_coef(moe), true),
            np.mean((moe.predict(X[test][clean]) - y[test][clean]) ** 2),
        )
    assert errors["student_t"][0] < 0.05 < errors["gaussian"][0]
    assert errors["student_t"][1] < errors["gaussian"][1]


# ----------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    "likelihood, y, match",
    [
        ("poisson", -1.0, "likelihood='poisson' needs non-negative counts"),
        ("gamma", 0.0, "likelihood='gamma' needs a positive target"),
        ("gamma", -2.0, "likelihood='gamma' needs a positive target"),
    ],
)
def test_bad_target_is_refused_naming_the_likelihood(likelihood, y, match):
    X = np.arange(20.0).reshape(-1, 1)
    target = np.ones(20)
    target[3] = y
    moe = MixtureOfExpertsRegressor(2, likelihood=likelihood)
    with pytest.raises(ValueError, match=match):
        moe.fit(X, target)


def test_log_prob_refuses_a_target_outside_the_support():
    X, y = make_count_regression(200, random_state=0)
    moe = _fit(2, likelihood="poisson", expert=POISSON, max_iter=3, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="likelihood='poisson'"):
        moe.log_prob(X[:2], [-1.0, 2.0])


@pytest.mark.parametrize("likelihood", ["poisson", "gamma"])
def test_expert_leaving_the_support_gets_a_clear_error(likelihood):
    rng = np.random.RandomState(0)
    X = rng.uniform(-3, 3, size=(200, 1))
    y = np.exp(X[:, 0]) + 0.5  # positive, but linear experts go negative
    moe = MixtureOfExpertsRegressor(2, likelihood=likelihood, expert=LinearRegression(), random_state=0)
    with pytest.raises(ValueError, match=r"outside the support .* log\s+link"):
        moe.fit(X, y)


def test_unknown_likelihood_name_is_refused():
    with pytest.raises(ValueError, match="likelihood"):  # InvalidParameterError
        MixtureOfExpertsRegressor(likelihood="laplace").fit(np.ones((4, 1)), np.ones(4))


def test_classifier_expert_is_refused_naming_the_likelihood():
    from sklearn.linear_model import LogisticRegression

    moe = MixtureOfExpertsRegressor(2, likelihood="poisson", expert=LogisticRegression())
    with pytest.raises(TypeError, match="likelihood='poisson'"):
        moe.fit(np.arange(10.0).reshape(-1, 1), np.arange(10.0))


def test_poisson_accepts_rates_with_exposure_as_sample_weight():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(400, 1))
    exposure = rng.uniform(0.5, 2.0, size=400)
    rate = rng.poisson(np.exp(1 + X[:, 0]) * exposure) / exposure
    moe = _fit(1, likelihood="poisson", expert=POISSON).fit(X, rate, sample_weight=exposure)
    glm = PoissonRegressor(alpha=0.0, solver="newton-cholesky").fit(X, rate, sample_weight=exposure)
    assert_allclose(moe.experts_[0].coef_, glm.coef_, rtol=1e-6)


# ----------------------------------------------------------------------
# log_prob, return_std and the predictive distribution follow the likelihood


@pytest.fixture(scope="module")
def fitted():
    """One fitted mixture per likelihood, with its data."""
    models = {}
    X, y = make_count_regression(600, random_state=1)
    models["poisson"] = (_fit(2, likelihood="poisson", expert=POISSON, random_state=0).fit(X, y), X, y)
    X, y = make_positive_regression(600, shape=[2.0, 8.0], random_state=1)
    models["gamma"] = (_fit(2, likelihood="gamma", expert=GAMMA, random_state=0).fit(X, y), X, y)
    X, y = make_gated_regression(600, 2, 2, noise=[0.2, 1.0], return_labels=False, random_state=1)
    models["gaussian"] = (_fit(2, random_state=0).fit(X, y), X, y)
    models["student_t"] = (
        _fit(2, likelihood=StudentTLikelihood(df=6.0), random_state=0).fit(X, y), X, y
    )
    return models


def _expert_distributions(moe, X):
    """scipy.stats distributions of every expert at ``X`` (rows: experts)."""
    mean_T = np.vstack([e.predict(X) for e in moe.experts_])
    lik = moe.likelihood_
    if isinstance(lik, PoissonLikelihood):
        return stats.poisson(mean_T)
    if isinstance(lik, GammaLikelihood):
        shape = moe.gamma_shape_[:, None]
        return stats.gamma(shape, scale=mean_T / shape)
    if isinstance(lik, StudentTLikelihood):
        return stats.t(moe.df_[:, None], loc=mean_T, scale=moe.noise_scale_[:, None])
    return stats.norm(mean_T, np.sqrt(moe.noise_variance_)[:, None])


@pytest.mark.parametrize("name", ["poisson", "gamma", "gaussian", "student_t"])
def test_log_prob_is_the_mixture_density(fitted, name):
    moe, X, y = fitted[name]
    dist = _expert_distributions(moe, X[:50])
    logpdf = dist.logpmf(y[:50]) if name == "poisson" else dist.logpdf(y[:50])
    gate = moe.predict_gate(X[:50]).T
    expected = np.log(np.sum(gate * np.exp(logpdf), axis=0))
    assert_allclose(moe.log_prob(X[:50], y[:50]), expected, rtol=1e-9, atol=1e-12)
    n = 50
    assert_allclose(moe.bic(X[:n], y[:n]), -2 * expected.sum() + moe._n_parameters() * np.log(n))


@pytest.mark.parametrize("name", ["poisson", "gamma", "gaussian", "student_t"])
def test_return_std_is_the_mixture_standard_deviation(fitted, name):
    moe, X, _ = fitted[name]
    dist = _expert_distributions(moe, X[:30])
    gate = moe.predict_gate(X[:30]).T
    mean = np.sum(gate * dist.mean(), axis=0)
    var = np.sum(gate * (dist.var() + (dist.mean() - mean) ** 2), axis=0)
    got_mean, got_std = moe.predict(X[:30], return_std=True)
    assert_allclose(got_mean, mean, rtol=1e-10)
    assert_allclose(got_std, np.sqrt(var), rtol=1e-10)


@pytest.mark.parametrize("name", ["poisson", "gamma", "gaussian", "student_t"])
def test_sample_y_moments_match_return_std(fitted, name):
    moe, X, _ = fitted[name]
    n_draws = 20_000
    draws = moe.sample_y(X[:20], n_samples=n_draws, random_state=0)
    assert draws.shape == (20, n_draws)
    mean, std = moe.predict(X[:20], return_std=True)
    # Within 5 standard errors of the sample mean and variance; the variance's
    # from the mixture's fourth central moment (heavy when a small component
    # lies far away).
    gate = moe.predict_gate(X[:20]).T
    m, v, skew, kurt = _expert_distributions(moe, X[:20]).stats(moments="mvsk")
    delta = m - mean
    mu4 = np.sum(gate * ((kurt + 3) * v**2 + 4 * skew * v**1.5 * delta + 6 * v * delta**2 + delta**4), axis=0)
    assert np.all(np.abs(draws.mean(axis=1) - mean) < 5 * std / np.sqrt(n_draws))
    assert np.all(np.abs(draws.var(axis=1) - std**2) < 5 * np.sqrt((mu4 - std**4) / n_draws))
    if name == "poisson":
        assert np.all(draws == np.round(draws)) and np.all(draws >= 0)
    assert_allclose(moe.sample_y(X[:3], 4, random_state=1), moe.sample_y(X[:3], 4, random_state=1))


@pytest.mark.parametrize("name", ["poisson", "gamma", "gaussian", "student_t"])
def test_quantiles_invert_the_mixture_cdf(fitted, name):
    moe, X, _ = fitted[name]
    alpha = np.array([0.01, 0.25, 0.5, 0.9, 0.999])
    q = moe.predict_quantiles(X[:40], alpha)
    assert q.shape == (40, 5)
    assert np.all(np.diff(q, axis=1) >= 0)
    dist = _expert_distributions(moe, X[:40])
    gate = moe.predict_gate(X[:40]).T
    for j, level in enumerate(alpha):
        cdf = np.sum(gate * dist.cdf(q[:, j]), axis=0)
        if name == "poisson":
            # The smallest integer with F(q) >= alpha.
            assert np.all(q[:, j] == np.round(q[:, j]))
            below = np.sum(gate * dist.cdf(q[:, j] - 1), axis=0)
            assert np.all(cdf >= level) and np.all(below < level)
        else:
            assert_allclose(cdf, level, rtol=1e-9)


def test_interval_is_the_pair_of_central_quantiles(fitted):
    moe, X, _ = fitted["gamma"]
    intervals = moe.predict_interval(X[:10], coverage=[0.5, 0.9])
    assert intervals.shape == (10, 4)
    assert_allclose(intervals, moe.predict_quantiles(X[:10], [0.25, 0.75, 0.05, 0.95]))
    assert moe.predict_interval(X[:10]).shape == (10, 2)
    assert moe.predict_quantiles(X[:10]).shape == (10, 2)  # [0.05, 0.95]


def test_argmax_pooling_gives_the_chosen_experts_quantiles(fitted):
    _, X, y = fitted["gaussian"]
    argmax = _fit(2, pooling="argmax", random_state=0).fit(X, y)
    chosen = argmax.predict_expert(X[:20])
    mean = argmax.predict_experts(X[:20])[np.arange(20), chosen]
    sd = np.sqrt(argmax.noise_variance_[chosen])
    assert_allclose(argmax.predict_quantiles(X[:20], 0.8)[:, 0], mean + sd * stats.norm.ppf(0.8), rtol=1e-9)


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, [], [[0.5]], "0.5", True])
def test_quantile_levels_are_validated(fitted, bad):
    moe, X, _ = fitted["gaussian"]
    with pytest.raises(ValueError, match="alpha"):
        moe.predict_quantiles(X[:2], bad)
    with pytest.raises(ValueError, match="coverage"):
        moe.predict_interval(X[:2], bad)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_sample_y_n_samples_is_validated(fitted, bad):
    moe, X, _ = fitted["gaussian"]
    with pytest.raises(ValueError, match="n_samples"):
        moe.sample_y(X[:2], bad)


def test_quantile_and_interval_coverage_on_heteroscedastic_data():
    X, y = make_gated_regression(6000, 2, 2, noise=[0.2, 1.0], return_labels=False, random_state=3)
    train, test = slice(0, 2000), slice(2000, None)
    moe = _fit(2, random_state=0).fit(X[train], y[train])
    alpha = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    q = moe.predict_quantiles(X[test], alpha)
    assert_allclose((y[test][:, None] <= q).mean(axis=0), alpha, atol=0.03)
    for coverage in (0.5, 0.8, 0.9):
        lower, upper = moe.predict_interval(X[test], coverage).T
        inside = np.mean((y[test] >= lower) & (y[test] <= upper))
        assert abs(inside - coverage) < 0.03


def test_student_t_without_finite_variance_says_so():
    X, y = make_contaminated_regression(400, n_features=1, random_state=0)
    moe = _fit(2, likelihood=StudentTLikelihood(df=1.5), random_state=0).fit(X, y)
    assert_allclose(moe.df_, 1.5)
    with pytest.warns(UserWarning, match="no finite variance"):
        _, std = moe.predict(X[:5], return_std=True)
    assert np.all(np.isinf(std))
    lower, upper = moe.predict_interval(X[:5]).T
    assert np.all(np.isfinite(lower) & np.isfinite(upper) & (lower < upper))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moe.predict(X[:5])  # no warning without return_std


def test_mixture_quantiles_match_root_finding_per_row():
    # The vectorised bisection against scipy's brentq, row by row.
    rng = np.random.RandomState(0)
    n = 30
    weights_T = rng.dirichlet([1.0, 1.0, 1.0], size=n).T
    mean_T = rng.normal(scale=5.0, size=(3, n))
    variance = np.array([0.1, 1.0, 4.0])
    lik = GaussianLikelihood()
    q = _predictive.mixture_quantiles(weights_T, mean_T, lik, variance, np.array([0.1, 0.5, 0.97]))
    from scipy.optimize import brentq

    for i in range(n):
        for j, level in enumerate([0.1, 0.5, 0.97]):
            def f(t, i=i, level=level):
                return np.dot(weights_T[:, i], stats.norm.cdf(t, mean_T[:, i], np.sqrt(variance))) - level

            assert_allclose(q[i, j], brentq(f, -100, 100, xtol=1e-14), rtol=1e-10, atol=1e-10)


# ----------------------------------------------------------------------
# R flexmix on NPreg: two components, constant gate, no penalty


@pytest.fixture(scope="module")
def npreg():
    data = np.genfromtxt(DATA / "npreg.csv", delimiter=",", names=True)
    reference = json.loads((DATA / "flexmix_npreg.json").read_text())
    return data, reference


class FlexmixGaussianLikelihood(GaussianLikelihood):
    """flexmix's Gaussian M-step: ``sigma^2 = n sum(w r^2) / (sum(w) (n - rank))``.

    flexmix (``FLXMRglm``) divides the weighted residual sum of squares by
    the weights' mean times ``n - rank``, not by the weights' sum (the
    maximum-likelihood estimate); with this M-step EM has flexmix's fixed
    point.
    """

    def m_step(self, y, outputs_T, resp_T, sample_weight, params):
        variance = super().m_step(y, outputs_T, resp_T, sample_weight, params)
        n = y.shape[0]
        return variance * n / (n - 3)


def _constant_gate_fit(likelihood, expert, X, y, posterior):
    return MixtureOfExpertsRegressor(
        2, likelihood=likelihood, expert=expert, gate_features=[], gate_alpha=0.0,
        init=posterior, tol=1e-12, max_iter=500,
    ).fit(X, y)


def _check_against_flexmix(moe, X, y, ref):
    log_likelihood = moe.log_prob(X, y).sum()
    assert_allclose(log_likelihood, ref["log_likelihood"], rtol=1e-3)
    assert_allclose(_coef(moe), np.array(ref["coef"]), rtol=1e-3)
    assert_allclose(moe.predict_gate(X[:1])[0], ref["prior"], rtol=1e-3)


def test_flexmix_npreg_poisson(npreg):
    data, reference = npreg
    ref = reference["poisson"]
    X = data["x"][:, None]
    expert = PoissonRegressor(alpha=0.0, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    moe = _constant_gate_fit("poisson", expert, X, data["yp"], np.array(ref["posterior"]))
    _check_against_flexmix(moe, X, data["yp"], ref)
    assert moe.gate_.n_parameters_ == 1  # one mixing proportion


def test_flexmix_npreg_gaussian(npreg):
    data, reference = npreg
    ref = reference["gaussian"]
    X = np.c_[data["x"], data["x"] ** 2]
    posterior = np.array(ref["posterior"])
    # With flexmix's variance estimate: flexmix's fit.
    moe = _constant_gate_fit(FlexmixGaussianLikelihood(), LinearRegression(), X, data["yn"], posterior)
    _check_against_flexmix(moe, X, data["yn"], ref)
    assert_allclose(np.sqrt(moe.noise_variance_), ref["sigma"], rtol=1e-3)
    # Maximum likelihood (skmoe's Gaussian likelihood) from the same start:
    # a higher log-likelihood and nearly the same coefficients.
    ml = _constant_gate_fit("gaussian", LinearRegression(), X, data["yn"], posterior)
    assert ml.log_prob(X, data["yn"]).sum() > ref["log_likelihood"]
    assert_allclose(_coef(ml), np.array(ref["coef"]), rtol=0.01, atol=1e-3)


# ----------------------------------------------------------------------
# Generators


@pytest.mark.parametrize(
    "make", [make_count_regression, make_positive_regression, make_contaminated_regression]
)
def test_generators_follow_the_return_convention(make):
    X, y = make(200, n_features=3, n_experts=3, random_state=0)
    assert X.shape == (200, 3) and y.shape == (200,)
    X2, y2, labels = make(200, n_features=3, n_experts=3, return_labels=True, random_state=0)
    assert_allclose(X2, X) and assert_allclose(y2, y)
    assert set(np.unique(labels)) <= {0, 1, 2} and labels.shape == (200,)
    *_, params = make(200, n_features=3, n_experts=3, return_params=True, random_state=0)
    assert params["expert_coef"].shape == (3, 3) and params["gate_coef"].shape == (3, 3)
    with pytest.raises(ValueError, match="return_labels"):
        make(10, return_labels="yes")
    with pytest.raises(ValueError, match="n_samples"):
        make(0)


def test_generators_draw_from_their_families():
    X, y, labels, params = make_count_regression(20000, n_features=1, return_labels=True,
                                                 return_params=True, random_state=0)
    rate = np.exp(params["expert_intercept"][labels] + params["expert_coef"][labels, 0] * X[:, 0])
    assert np.all(y == np.round(y)) and abs(np.mean(y - rate)) < 0.05
    X, y, labels, params = make_positive_regression(20000, n_features=1, shape=[2.0, 20.0],
                                                    return_labels=True, return_params=True, random_state=0)
    mean = np.exp(params["expert_intercept"][labels] + params["expert_coef"][labels, 0] * X[:, 0])
    for k, shape in enumerate([2.0, 20.0]):
        ratio = y[labels == k] / mean[labels == k]
        assert_allclose([ratio.mean(), ratio.var()], [1.0, 1.0 / shape], rtol=0.05)
    with pytest.raises(ValueError, match="shape"):
        make_positive_regression(10, shape=[1.0, -1.0])
    _, y, params = make_contaminated_regression(1000, outlier_fraction=0.1, return_params=True, random_state=0)
    assert params["outliers"].sum() == 100
    with pytest.raises(ValueError, match="outlier_fraction"):
        make_contaminated_regression(10, outlier_fraction=1.0)
