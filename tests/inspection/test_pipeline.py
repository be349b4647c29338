"""The displays accept a fitted Pipeline ending in a mixture of experts.

The model sees ``X`` through the steps before it; the axes, the grid, the
scatter and ``fixed_values`` stay in the units of the ``X`` the user passes
(as scikit-learn's DecisionBoundaryDisplay and PartialDependenceDisplay do).
Anything else gets a TypeError naming what was passed.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.inspection import ConvergenceDisplay, ExpertsDisplay, GateDisplay

ALL_DISPLAYS = [GateDisplay, ExpertsDisplay, ConvergenceDisplay]


def _args(Display, X):
    return () if Display is ConvergenceDisplay else (X,)


@pytest.fixture(scope="module")
def data():
    # Features on very different scales and offsets: a scaler matters, and a
    # grid built in the scaled space would be far from the data's units.
    rng = np.random.RandomState(0)
    Z = rng.uniform(-2, 2, size=(160, 3))
    y = np.where(Z[:, 0] < 0, 2 * Z[:, 2], -Z[:, 2]) + 0.1 * rng.randn(160)
    X = Z * [100.0, 0.01, 5.0] + [1000.0, 0.0, -20.0]
    return X, y


@pytest.fixture(scope="module")
def pipe(data):
    X, y = data
    moe = MixtureOfExpertsRegressor(n_experts=2, n_init=2, random_state=0)
    return make_pipeline(StandardScaler(), moe).fit(X, y)


@pytest.fixture(scope="module")
def clf_pipe():
    rng = np.random.RandomState(0)
    Z = rng.uniform(-2, 2, size=(200, 2))
    y = np.where((Z[:, 0] > 0) == (Z[:, 1] > 0), "a", "b")
    X = Z * [50.0, 0.02] + [300.0, 1.0]
    clf = MixtureOfExpertsClassifier(n_experts=2, random_state=0)
    return make_pipeline(StandardScaler(), clf).fit(X, y), X, y


def test_gate_display_pipeline_grid_in_input_units(pipe, data):
    X, _ = data
    scaler, moe = pipe[0], pipe[-1]
    disp = GateDisplay.from_estimator(pipe, X, features=(0, 2), grid_resolution=15)

    # the grid and the scatter are in the units of X, not of the scaled space
    span = np.ptp(X, axis=0)
    assert_allclose(disp.xx0.min(), X[:, 0].min() - 0.05 * span[0])
    assert_allclose(disp.xx1.max(), X[:, 2].max() + 0.05 * span[2])
    assert_allclose(disp.scatter_.get_offsets(), X[:, [0, 2]])
    assert_allclose(disp.ax_.get_xlim(), (disp.xx0.min(), disp.xx0.max()))

    # the gate is the mixture's on the scaled grid (other feature at its mean)
    grid = np.tile(X.mean(axis=0), (disp.xx0.size, 1))
    grid[:, 0], grid[:, 2] = disp.xx0.ravel(), disp.xx1.ravel()
    gate = moe.predict_gate(scaler.transform(grid))
    assert_array_equal(disp.expert_.ravel(), gate.argmax(axis=1))
    assert_allclose(disp.gate_max_.ravel(), gate.max(axis=1))
    # the points are coloured by the expert of their scaled values
    expert = moe.predict_expert(scaler.transform(X))
    assert_allclose(disp.scatter_.get_facecolors(), disp.colors_[expert])
    assert disp.ax_.get_xlabel() == "x0" and disp.ax_.get_ylabel() == "x2"


def test_experts_display_pipeline_regressor(pipe, data):
    X, y = data
    scaler, moe = pipe[0], pipe[-1]
    disp = ExpertsDisplay.from_estimator(
        pipe, X, y, feature=2, fixed_values={0: 1050.0}, grid_resolution=30
    )
    grid = np.tile(X.mean(axis=0), (30, 1))
    grid[:, 0] = 1050.0
    grid[:, 2] = np.linspace(X[:, 2].min(), X[:, 2].max(), 30)

    assert_allclose(disp.pooled_line_.get_xdata(), grid[:, 2])
    assert_allclose(disp.pooled_line_.get_ydata(), pipe.predict(grid))
    Xt = scaler.transform(grid)
    assert_allclose(
        np.column_stack([line.get_ydata() for line in disp.gate_lines_]), moe.predict_gate(Xt)
    )
    preds = moe.predict_experts(Xt)
    for k, line in enumerate(disp.expert_lines_):
        shown = ~np.ma.getmaskarray(line.get_ydata())
        assert_allclose(line.get_ydata().compressed(), preds[shown, k])
    assert_allclose(disp.scatter_.get_offsets(), np.c_[X[:, 2], y])


def test_experts_display_pipeline_classifier(clf_pipe):
    pipe, X, y = clf_pipe
    scaler, clf = pipe[0], pipe[-1]
    disp = ExpertsDisplay.from_estimator(pipe, X, y, feature=1, grid_resolution=25)
    grid = np.tile(X.mean(axis=0), (25, 1))
    grid[:, 1] = np.linspace(X[:, 1].min(), X[:, 1].max(), 25)
    assert_allclose(disp.pooled_line_.get_xdata(), grid[:, 1])
    assert_allclose(disp.pooled_line_.get_ydata(), pipe.predict_proba(grid)[:, 1])
    proba = clf.predict_experts_proba(scaler.transform(grid))
    gate = clf.predict_gate(scaler.transform(grid))
    for k, line in enumerate(disp.expert_lines_):
        shown = gate[:, k] > 0.2
        assert_allclose(line.get_ydata().compressed(), proba[shown, k, 1])
    assert disp.ax_.get_ylabel() == "P(y = b)"


def test_gate_display_pipeline_classifier_points_by_class(clf_pipe):
    pipe, X, y = clf_pipe
    disp = GateDisplay.from_estimator(pipe, X, y, grid_resolution=12)
    assert_allclose(disp.scatter_.get_offsets(), X)
    texts = [t.get_text() for t in disp.legend_.get_texts()]
    assert texts[-2:] == ["class a", "class b"]


def test_convergence_display_pipeline(pipe):
    disp = ConvergenceDisplay.from_estimator(pipe)
    moe = pipe[-1]
    assert len(disp.lines_) == len(moe.log_likelihood_curves_) == 2
    assert_allclose(disp.best_line_.get_ydata(), moe.log_likelihood_curve_)


def test_pipeline_fitted_on_dataframe_uses_names(data):
    pd = pytest.importorskip("pandas")
    X, y = data
    df = pd.DataFrame(X, columns=["speed", "mass", "angle"])
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0)
    pipe = make_pipeline(StandardScaler(), moe).fit(df, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "feature names" warning
        disp = GateDisplay.from_estimator(
            pipe, df, features=("angle", "speed"), fixed_values={"mass": 0.0},
            grid_resolution=8,
        )
        exp = ExpertsDisplay.from_estimator(pipe, df, feature="mass", grid_resolution=8)
    assert disp.ax_.get_xlabel() == "angle" and disp.ax_.get_ylabel() == "speed"
    assert_allclose(disp.scatter_.get_offsets(), X[:, [2, 0]])
    assert exp.gate_ax_.get_xlabel() == "mass"


def test_nested_pipeline_and_passthrough(data):
    X, y = data
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0)
    inner = Pipeline([("scale", StandardScaler()), ("moe", moe)])
    outer = Pipeline(
        [("log", FunctionTransformer(lambda A: A * 2.0)), ("skip", "passthrough"), ("inner", inner)]
    ).fit(X, y)
    disp = ExpertsDisplay.from_estimator(outer, X, feature=0, grid_resolution=10)
    grid = np.tile(X.mean(axis=0), (10, 1))
    grid[:, 0] = np.linspace(X[:, 0].min(), X[:, 0].max(), 10)
    assert_allclose(disp.pooled_line_.get_ydata(), outer.predict(grid))
    assert_allclose(disp.pooled_line_.get_xdata(), grid[:, 0])


@pytest.mark.parametrize("Display", ALL_DISPLAYS)
def test_pipeline_not_ending_in_a_mixture(Display, data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), LinearRegression()).fit(X, y)
    with pytest.raises(TypeError, match=r"Pipeline whose last step 'linearregression' is "
                                        r"LinearRegression, which has no predict_gate"):
        Display.from_estimator(pipe, *_args(Display, X))


@pytest.mark.parametrize("Display", ALL_DISPLAYS)
def test_unfitted_pipeline(Display, data):
    X, _ = data
    pipe = make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(n_experts=2))
    with pytest.raises(NotFittedError, match="Pipeline"):
        Display.from_estimator(pipe, *_args(Display, X))


@pytest.mark.parametrize("Display", ALL_DISPLAYS)
@pytest.mark.parametrize(
    "estimator, match",
    [
        (None, r"or a fitted Pipeline whose last step is one; got None\."),
        (MixtureOfExpertsRegressor, r"got the class MixtureOfExpertsRegressor \(not an instance\)"),
        ("moe", r"; got str\."),
        (Pipeline([]), "got an empty Pipeline"),
    ],
)
def test_not_a_mixture_is_named(Display, estimator, match, data):
    X, _ = data
    with pytest.raises(TypeError, match=match):
        Display.from_estimator(estimator, *_args(Display, X))


def test_search_gets_a_hint(data):
    X, y = data
    search = GridSearchCV(
        MixtureOfExpertsRegressor(n_experts=2, max_iter=3, random_state=0),
        {"n_experts": [2]}, cv=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    with pytest.raises(TypeError, match=r"got GridSearchCV\. Pass its fitted best_estimator_"):
        GateDisplay.from_estimator(search, X, features=(0, 1))
    # and the hint works
    disp = GateDisplay.from_estimator(search.best_estimator_, X, features=(0, 1), grid_resolution=5)
    assert disp.expert_.shape == (5, 5)
