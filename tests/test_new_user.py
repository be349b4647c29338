"""What a new user hit first: degenerate experts, convergence, parameters, estimator kinds, warnings.

Each test reproduces a reported stumble (it failed before the fix).
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe._base import _converged
from skmoe.datasets import make_gated_regression
from skmoe.exceptions import DegenerateExpertWarning


def _small_linear_data(n=32, d=7, seed=0):
    # Like statsmodels' scotland data: 32 rows, 7 standardised features, one linear regime.
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    y = X @ rng.uniform(-2, 2, d) + 3.0 * rng.randn(n)
    return X, y


def test_degenerate_experts_do_not_win_bic_on_small_data():
    X, y = _small_linear_data()
    with pytest.warns(DegenerateExpertWarning):
        four = MixtureOfExpertsRegressor(4, n_init=3, random_state=0).fit(X, y)
    one = MixtureOfExpertsRegressor(1, random_state=0).fit(X, y)
    # Before: four experts, three interpolating 8 rows each at the variance
    # floor, BIC about half of one expert's.
    assert four.bic(X, y) >= one.bic(X, y) - 1e-6
    floor = 1e-6 * np.var(y)
    assert np.all(four.noise_variance_ > 100 * floor)


def test_degenerate_expert_is_removed_and_model_stays_consistent():
    X, y = _small_linear_data(n=60, d=7, seed=1)
    with pytest.warns(DegenerateExpertWarning, match="removed expert"):
        moe = MixtureOfExpertsRegressor(4, random_state=0).fit(X, y)
    assert moe.n_experts_ < 4
    assert moe.predict_gate(X).shape == (60, moe.n_experts_)
    assert moe.noise_variance_.shape == (moe.n_experts_,)
    assert np.all(np.isfinite(moe.predict(X)))


def test_too_few_samples_for_the_experts_warns_once():
    X = np.arange(5.0).reshape(-1, 1)
    y = np.array([0.0, 1.0, 0.5, 2.0, 1.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MixtureOfExpertsRegressor(4, random_state=0).fit(X, y)
    degenerate = [w for w in caught if issubclass(w.category, DegenerateExpertWarning)]
    assert len(degenerate) == 1
    assert "effective samples" in str(degenerate[0].message)


def test_stopping_rule_never_stops_on_a_decrease():
    assert not _converged(-1e-6, -5.0, n_iter=10, tol=1e-4)
    assert _converged(1e-7, -5.0, n_iter=10, tol=1e-4)
    assert _converged(-1e-15, -5.0, n_iter=10, tol=1e-4)  # rounding at a fixed point
    assert not _converged(1e-7, -5.0, n_iter=1, tol=1e-4)  # a few iterations at least
    # Relative to the objective's scale (flexmix's rule), per sample.
    assert _converged(4e-4, -5.0, n_iter=5, tol=1e-4)
    assert not _converged(4e-4, -0.5, n_iter=5, tol=1e-4)


def test_generalised_em_does_not_stop_on_a_tiny_first_step():
    # Before: diabetes, gate="mlp", 2 experts stopped after 1 iteration at
    # -5.3463 where running on reached -5.031.
    X, y = load_diabetes(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe = MixtureOfExpertsRegressor(2, gate="mlp", max_iter=30, random_state=0).fit(X, y)
    assert moe.n_iter_ >= 3
    curve = moe.log_likelihood_curve_
    assert moe.log_likelihood_ >= curve[1]


def test_uniform_initial_responsibilities_break_the_symmetry():
    X, y, _ = make_gated_regression(300, 2, 2, return_labels=True, random_state=0)
    uniform = np.full((300, 2), 0.5)
    with pytest.warns(UserWarning, match="symmetry"):
        moe = MixtureOfExpertsRegressor(2, init=uniform, random_state=0).fit(X, y)
    coef = np.array([e.coef_ for e in moe.experts_])
    assert not np.allclose(coef[0], coef[1])


def test_default_expert_parameters_need_an_explicit_expert():
    X, y = _small_linear_data(n=80, d=2)
    search = GridSearchCV(MixtureOfExpertsRegressor(2, random_state=0), {"expert__alpha": [0.1, 1.0]})
    with pytest.raises(ValueError, match="Pass the expert explicitly"):
        search.fit(X, y)
    ok = GridSearchCV(
        MixtureOfExpertsRegressor(2, expert=Ridge(), max_iter=5, random_state=0),
        {"expert__alpha": [0.1, 1.0]}, cv=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ok.fit(X, y)
    assert ok.best_params_["expert__alpha"] in (0.1, 1.0)


def test_named_experts_follow_the_composition_convention():
    experts = [("lin", LinearRegression()), ("tree", DecisionTreeRegressor(max_depth=2))]
    moe = MixtureOfExpertsRegressor(2, expert=experts, max_iter=5, random_state=0)
    params = moe.get_params()
    assert params["tree__max_depth"] == 2 and "lin__fit_intercept" in params
    moe.set_params(tree__max_depth=3)
    assert moe.expert[1][1].max_depth == 3
    X, y = _small_linear_data(n=200, d=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(moe, {"tree__max_depth": [1, 2]}, cv=2).fit(X, y)
    assert search.best_params_["tree__max_depth"] in (1, 2)
    fitted = search.best_estimator_
    assert isinstance(fitted.experts_[1], DecisionTreeRegressor)
    # Plain lists keep working; names must be unique and free of "__".
    MixtureOfExpertsRegressor(2, expert=[LinearRegression(), Ridge()], max_iter=2).get_params()
    with pytest.raises(ValueError, match="not unique"):
        MixtureOfExpertsRegressor(2, expert=[("a", Ridge()), ("a", Ridge())]).fit(X, y)


def test_warm_start_with_changed_n_experts_starts_fresh():
    X, y, _ = make_gated_regression(400, 2, 3, return_labels=True, random_state=0)
    moe = MixtureOfExpertsRegressor(2, warm_start=True, random_state=0).fit(X, y)
    moe.set_params(n_experts=3)
    with pytest.warns(UserWarning, match="n_experts changed from 2 to 3"):
        moe.fit(X, y)
    assert moe.n_experts_ == 3


def test_warm_start_steps_do_not_warn_about_convergence():
    X, y, _ = make_gated_regression(400, 2, 3, return_labels=True, random_state=0)
    moe = MixtureOfExpertsRegressor(3, max_iter=1, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe.fit(X, y)  # the first fit may warn
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        for _ in range(3):
            moe.fit(X, y)


def test_estimators_of_the_wrong_kind_are_refused_up_front():
    X, y = _small_linear_data(n=50, d=2)
    with pytest.raises(TypeError, match="is a classifier.*MixtureOfExpertsClassifier"):
        MixtureOfExpertsRegressor(2, expert=LogisticRegression()).fit(X, y)
    labels = (y > 0).astype(int)
    with pytest.raises(TypeError, match="is a regressor.*MixtureOfExpertsRegressor"):
        MixtureOfExpertsClassifier(2, expert=LinearRegression()).fit(X, labels)
    with pytest.raises(TypeError, match="soft targets"):
        MixtureOfExpertsRegressor(2, gate=LogisticRegression()).fit(X, y)


def test_classifier_expert_without_proba_recommends_calibration():
    from sklearn.svm import SVC

    X, y = _small_linear_data(n=50, d=2)
    with pytest.raises(TypeError, match="CalibratedClassifierCV"):
        MixtureOfExpertsClassifier(2, expert=SVC()).fit(X, (y > 0).astype(int))


def test_one_warning_per_fit_about_the_returned_model():
    # Many experts for few regions: restarts re-seed starved experts. Before,
    # every restart warned, discarded ones included.
    X, y, _ = make_gated_regression(300, 1, 2, noise=0.05, return_labels=True, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MixtureOfExpertsRegressor(8, n_init=5, max_iter=30, random_state=0).fit(X, y)
    expert_warnings = [w for w in caught if issubclass(w.category, DegenerateExpertWarning)]
    assert len(expert_warnings) <= 1
    assert issubclass(DegenerateExpertWarning, ConvergenceWarning)


def test_removed_experts_keep_predictions_consistent_with_the_gate():
    X, y, _ = make_gated_regression(300, 1, 2, noise=0.05, return_labels=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        moe = MixtureOfExpertsRegressor(8, max_iter=50, random_state=0).fit(X, y)
    gate = moe.predict_gate(X)
    experts = moe.predict_experts(X)
    assert gate.shape == experts.shape == (300, moe.n_experts_)
    assert_allclose(moe.predict(X), np.sum(gate * experts, axis=1), rtol=1e-10, atol=1e-10)
    assert_allclose(moe.expert_share_.sum(), 1.0)
