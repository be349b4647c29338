"""Tests of the displays in :mod:`skmoe.inspection`: what is drawn, and errors."""

import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")
import matplotlib.pyplot as plt

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
from skmoe.inspection import ConvergenceDisplay, ExpertsDisplay, GateDisplay

ALL_DISPLAYS = [GateDisplay, ExpertsDisplay, ConvergenceDisplay]


# ----------------------------------------------------------------------
# Data and fitted estimators, shared by the module (fits are the slow part)


def _data_fixture(seed, n_features, width, left, right, noise, shift=0.0):
    """A fixture of 150 samples, uniform on ``[-width, width]`` (plus ``shift``).

    ``y`` is ``left(X)`` where the first feature is negative, else ``right(X)``,
    plus Gaussian noise of standard deviation ``noise``.
    """

    @pytest.fixture(scope="module")
    def data():
        rng = np.random.RandomState(seed)
        X = rng.uniform(-width, width, size=(150, n_features)) + shift
        return X, np.where(X[:, 0] < 0, left(X), right(X)) + noise * rng.randn(150)

    return data


def _regressor_fixture(data_name, n_experts):
    """A fixture of a regressor fitted on the data of the fixture ``data_name``."""

    @pytest.fixture(scope="module")
    def regressor(request):
        X, y = request.getfixturevalue(data_name)
        return MixtureOfExpertsRegressor(n_experts=n_experts, random_state=0).fit(X, y)

    return regressor


data_1d = _data_fixture(0, 1, 3, lambda X: -2 * X[:, 0], lambda X: 3 * X[:, 0], noise=0.2)
data_2d = _data_fixture(0, 2, 2, lambda X: X[:, 1], lambda X: -X[:, 1], noise=0.1)
# An offset feature (x1 around 10) that moves y: the grid must hold it at its mean.
data_3d = _data_fixture(
    1, 3, 2, lambda X: 2 * X[:, 2] + 0.5 * X[:, 1], lambda X: -X[:, 2] + 0.5 * X[:, 1],
    noise=0.1, shift=[0.0, 10.0, 0.0],
)
reg_1d = _regressor_fixture("data_1d", n_experts=2)
reg_2d = _regressor_fixture("data_2d", n_experts=2)
reg_3d = _regressor_fixture("data_3d", n_experts=3)


@pytest.fixture(scope="module")
def clf_2d():
    rng = np.random.RandomState(0)
    X = rng.uniform(-2, 2, size=(200, 2))
    y = np.where((X[:, 0] > 0) == (X[:, 1] > 0), "a", "b")
    clf = MixtureOfExpertsClassifier(n_experts=2, random_state=0).fit(X, y)
    return clf, X, y


def _tab10(n):
    return np.asarray(mpl.colormaps["tab10"](np.arange(n)))


# ----------------------------------------------------------------------
# Optional matplotlib


def test_import_without_matplotlib_and_clear_error():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import skmoe.inspection as ins\n"
        "try:\n"
        "    ins.ConvergenceDisplay(curves=[[0.0, 1.0]]).plot()\n"
        "except ImportError as e:\n"
        "    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ERR ConvergenceDisplay.plot requires matplotlib" in out.stdout
    assert "skmoe[plot]" in out.stdout


def test_missing_matplotlib_in_from_estimator(monkeypatch, reg_1d, data_1d):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"ExpertsDisplay.from_estimator requires matplotlib"):
        ExpertsDisplay.from_estimator(reg_1d, data_1d[0])


@pytest.mark.parametrize("Display", ALL_DISPLAYS)
def test_unfitted_estimator_raises(Display, data_2d):
    X, _ = data_2d
    args = () if Display is ConvergenceDisplay else (X,)
    with pytest.raises(NotFittedError):
        Display.from_estimator(MixtureOfExpertsRegressor(n_experts=2), *args)


@pytest.mark.parametrize("Display", ALL_DISPLAYS)
def test_not_a_mixture_raises(Display, data_2d):
    from sklearn.linear_model import LinearRegression

    X, y = data_2d
    args = () if Display is ConvergenceDisplay else (X,)
    with pytest.raises(TypeError, match="predict_gate"):
        Display.from_estimator(LinearRegression().fit(X, y), *args)


# ----------------------------------------------------------------------
# GateDisplay


def test_gate_display_2d(reg_2d, data_2d):
    X, _ = data_2d
    disp = GateDisplay.from_estimator(reg_2d, X, grid_resolution=30)
    n = reg_2d.n_experts_

    assert disp.xx0.shape == disp.xx1.shape == disp.expert_.shape == (30, 30)
    # default margin: 5 % of each feature's range, on both sides
    span = np.ptp(X, axis=0)
    assert_allclose(disp.xx0.min(), X[:, 0].min() - 0.05 * span[0])
    assert_allclose(disp.xx1.max(), X[:, 1].max() + 0.05 * span[1])
    # the grid arrays are the gate's argmax / max on the grid
    gate = reg_2d.predict_gate(np.c_[disp.xx0.ravel(), disp.xx1.ravel()])
    assert_array_equal(disp.expert_.ravel(), gate.argmax(axis=1))
    assert_allclose(disp.gate_max_.ravel(), gate.max(axis=1))
    assert np.all(disp.gate_max_ >= 1.0 / n - 1e-12) and np.all(disp.gate_max_ <= 1.0)

    # the surface holds expert indices, shaded by the gate's confidence
    values = np.asarray(disp.surface_.get_array())
    assert set(np.unique(values)) <= set(range(n))
    alpha = np.asarray(disp.surface_.get_alpha())
    assert alpha.shape == disp.gate_max_.shape
    order = np.argsort(disp.gate_max_.ravel())
    assert np.all(np.diff(alpha.ravel()[order]) >= -1e-12)  # more confident = more opaque

    # one colour per expert, tab10 by default; points coloured by their expert
    assert_allclose(disp.colors_, _tab10(n))
    assert_allclose(disp.scatter_.get_facecolors(), disp.colors_[reg_2d.predict_expert(X)])
    assert_allclose(disp.scatter_.get_offsets(), X)
    legend_texts = [t.get_text() for t in disp.legend_.get_texts()]
    assert legend_texts == [f"expert {k}" for k in range(n)]

    assert disp.ax_.get_xlabel() == "x0"
    assert disp.ax_.get_ylabel() == "x1"
    assert disp.figure_ is disp.ax_.figure


def test_gate_display_draws_on_given_ax_and_replots(reg_2d, data_2d):
    X, _ = data_2d
    fig, ax = plt.subplots()
    disp = GateDisplay.from_estimator(
        reg_2d, X, grid_resolution=10, ax=ax, xlabel="a", ylabel="b", colors=["red", "blue"]
    )
    assert disp.ax_ is ax and disp.figure_ is fig
    assert disp.surface_ in ax.collections
    assert ax.get_xlabel() == "a" and ax.get_ylabel() == "b"
    assert_allclose(disp.colors_, mpl.colors.to_rgba_array(["red", "blue"]))

    # plot again, restyled, without recomputing
    _, ax2 = plt.subplots()
    disp.plot(ax=ax2, shade=False, legend=False, scatter_kw={"s": 3})
    assert disp.ax_ is ax2 and disp.legend_ is None
    assert np.ndim(disp.surface_.get_alpha()) == 0
    assert_allclose(disp.scatter_.get_sizes(), [3])


def test_gate_display_features_and_fixed_values_on_3d(reg_3d, data_3d):
    X, _ = data_3d
    disp = GateDisplay.from_estimator(reg_3d, X, features=(0, 2), grid_resolution=12)
    assert disp.ax_.get_xlabel() == "x0" and disp.ax_.get_ylabel() == "x2"
    # the feature not plotted is held at the mean of X
    grid = np.tile(X.mean(axis=0), (disp.xx0.size, 1))
    grid[:, 0], grid[:, 2] = disp.xx0.ravel(), disp.xx1.ravel()
    assert_array_equal(disp.expert_.ravel(), reg_3d.predict_expert(grid))
    assert_allclose(disp.scatter_.get_offsets(), X[:, [0, 2]])

    # dict and array forms of fixed_values
    disp_dict = GateDisplay.from_estimator(
        reg_3d, X, features=(0, 2), fixed_values={1: 8.0}, grid_resolution=12
    )
    grid[:, 1] = 8.0
    assert_allclose(disp_dict.gate_max_.ravel(), reg_3d.predict_gate(grid).max(axis=1))
    disp_arr = GateDisplay.from_estimator(
        reg_3d, X, features=(0, 2), fixed_values=[0.0, 8.0, 0.0], grid_resolution=12
    )
    assert_allclose(disp_arr.gate_max_, disp_dict.gate_max_)

    # negative indices are allowed
    disp_neg = GateDisplay.from_estimator(reg_3d, X, features=(0, -1), grid_resolution=12)
    assert disp_neg.ax_.get_ylabel() == "x2"


def test_feature_names_from_dataframe(data_2d):
    pd = pytest.importorskip("pandas")
    X, y = data_2d
    df = pd.DataFrame(X, columns=["speed", "angle"])
    moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0, max_iter=5)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning with max_iter=5
        moe.fit(df, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "feature names" warning
        disp = GateDisplay.from_estimator(moe, df, features=("angle", "speed"), grid_resolution=10)
    assert disp.ax_.get_xlabel() == "angle" and disp.ax_.get_ylabel() == "speed"
    with pytest.raises(ValueError, match="not a feature name"):
        GateDisplay.from_estimator(moe, df, features=("angle", "nope"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        disp = ExpertsDisplay.from_estimator(
            moe, df, pd.Series(y, name="accel"), feature="angle", fixed_values={"speed": 1.0},
            grid_resolution=10,
        )
    assert disp.gate_ax_.get_xlabel() == "angle" and disp.ax_.get_ylabel() == "accel"
    grid = np.c_[np.full(10, 1.0), np.linspace(X[:, 1].min(), X[:, 1].max(), 10)]
    assert_allclose(disp.pooled_line_.get_ydata(), moe.predict(pd.DataFrame(grid, columns=df.columns)))


def test_gate_display_classifier_colours_points_by_class(clf_2d):
    clf, X, y = clf_2d
    disp = GateDisplay.from_estimator(clf, X, y, grid_resolution=20)
    faces = disp.scatter_.get_facecolors()
    # two classes -> white and black points
    is_a = y == "a"
    assert_allclose(faces[is_a], np.tile(mpl.colormaps["Greys"](0.0), (is_a.sum(), 1)))
    assert_allclose(faces[~is_a], np.tile(mpl.colormaps["Greys"](1.0), ((~is_a).sum(), 1)))
    texts = [t.get_text() for t in disp.legend_.get_texts()]
    assert texts[-2:] == ["class a", "class b"]
    assert set(np.unique(disp.surface_.get_array())) <= set(range(clf.n_experts_))
    # without y the points are coloured by expert
    disp = GateDisplay.from_estimator(clf, X, grid_resolution=20)
    assert_allclose(disp.scatter_.get_facecolors(), disp.colors_[clf.predict_expert(X)])


def test_gate_display_errors(reg_1d, data_1d, reg_3d, data_3d, clf_2d):
    X1, _ = data_1d
    with pytest.raises(ValueError, match=r"two input features.*1 feature.*ExpertsDisplay"):
        GateDisplay.from_estimator(reg_1d, X1)
    X3, _ = data_3d
    with pytest.raises(ValueError, match=r"3 feature\(s\). Pass features=\(i, j\)"):
        GateDisplay.from_estimator(reg_3d, X3)
    with pytest.raises(ValueError, match=r"features\[1\]=3 is out of range"):
        GateDisplay.from_estimator(reg_3d, X3, features=(0, 3))
    with pytest.raises(ValueError, match="two different features"):
        GateDisplay.from_estimator(reg_3d, X3, features=(1, 1))
    with pytest.raises(ValueError, match="exactly two"):
        GateDisplay.from_estimator(reg_3d, X3, features=(0, 1, 2))
    with pytest.raises(ValueError, match="fixed_values has 2 values"):
        GateDisplay.from_estimator(reg_3d, X3, features=(0, 1), fixed_values=[0, 1])
    with pytest.raises(ValueError, match="grid_resolution"):
        GateDisplay.from_estimator(reg_3d, X3, features=(0, 1), grid_resolution=1)
    with pytest.raises(ValueError, match="eps"):
        GateDisplay.from_estimator(reg_3d, X3, features=(0, 1), eps=-1)
    with pytest.raises(ValueError, match="X has 2 features"):
        GateDisplay.from_estimator(reg_3d, X3[:, :2])
    clf, X, y = clf_2d
    with pytest.raises(ValueError, match="not seen in fit"):
        GateDisplay.from_estimator(clf, X, np.where(y == "a", "a", "c"))


# ----------------------------------------------------------------------
# ExpertsDisplay


def test_experts_display_regressor(reg_1d, data_1d):
    X, y = data_1d
    disp = ExpertsDisplay.from_estimator(reg_1d, X, y, grid_resolution=80)
    n = reg_1d.n_experts_
    x = np.linspace(X.min(), X.max(), 80)
    gate = reg_1d.predict_gate(x[:, None])
    preds = reg_1d.predict_experts(x[:, None])
    mean, std = reg_1d.predict(x[:, None], return_std=True)

    # one curve per expert, in the expert's colour, masked where the gate is low
    assert len(disp.expert_lines_) == n
    assert_allclose(disp.colors_, _tab10(n))
    for k, line in enumerate(disp.expert_lines_):
        assert_allclose(mpl.colors.to_rgba(line.get_color()), disp.colors_[k])
        ydata = line.get_ydata()
        assert_array_equal(np.ma.getmaskarray(ydata), gate[:, k] <= 0.2)
        assert_allclose(np.ma.filled(ydata, np.nan), np.where(gate[:, k] <= 0.2, np.nan, preds[:, k]))
        assert line.get_label() == f"expert {k}"
    # each expert is visible somewhere on this problem
    assert all(np.any(~np.ma.getmaskarray(line.get_ydata())) for line in disp.expert_lines_)

    # pooled prediction and its +-2 sigma band
    assert_allclose(disp.pooled_line_.get_xdata(), x)
    assert_allclose(disp.pooled_line_.get_ydata(), mean)
    vertices = np.concatenate([p.vertices for p in disp.band_.get_paths()])
    assert_allclose([vertices[:, 0].min(), vertices[:, 0].max()], [x[0], x[-1]])
    assert_allclose(vertices[:, 1].min(), np.min(mean - 2 * std))
    assert_allclose(vertices[:, 1].max(), np.max(mean + 2 * std))
    # every vertex lies on one of the two band edges at its x
    lower = np.interp(vertices[:, 0], x, mean - 2 * std)
    upper = np.interp(vertices[:, 0], x, mean + 2 * std)
    on_edge = np.isclose(vertices[:, 1], lower) | np.isclose(vertices[:, 1], upper)
    assert on_edge.all()

    # gate panel: one line per expert in the same colours, below, sharing x
    assert len(disp.gate_lines_) == n
    for k, line in enumerate(disp.gate_lines_):
        assert_allclose(mpl.colors.to_rgba(line.get_color()), disp.colors_[k])
        assert_allclose(line.get_ydata(), gate[:, k])
        assert line in disp.gate_ax_.lines
    assert disp.ax_.get_shared_x_axes().joined(disp.ax_, disp.gate_ax_)
    top, bottom = disp.ax_.get_position(), disp.gate_ax_.get_position()
    assert top.y0 > bottom.y0
    assert_allclose(top.height / bottom.height, 3.0, rtol=0.05)

    # data and labels
    assert_allclose(disp.scatter_.get_offsets(), np.c_[X[:, 0], y])
    assert disp.gate_ax_.get_xlabel() == "x0"
    assert disp.ax_.get_ylabel() == "y"
    assert disp.gate_ax_.get_ylabel() == "gate"
    assert disp.figure_ is disp.ax_.figure is disp.gate_ax_.figure
    texts = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert {"data", "pooled", "expert 0", "expert 1", "\u00b12\u03c3"} <= set(texts)


def test_experts_and_gate_displays_share_colours(reg_3d, data_3d):
    X, y = data_3d
    gate_disp = GateDisplay.from_estimator(reg_3d, X, features=(0, 2), grid_resolution=10)
    exp_disp = ExpertsDisplay.from_estimator(reg_3d, X, y, feature=0, grid_resolution=20)
    assert_allclose(gate_disp.colors_, exp_disp.colors_)
    assert len(exp_disp.expert_lines_) == reg_3d.n_experts_ == 3


def test_experts_display_on_given_axes_without_y(reg_1d, data_1d):
    X, _ = data_1d
    fig, (top, bottom) = plt.subplots(2, 1)
    disp = ExpertsDisplay.from_estimator(
        reg_1d, X, ax=(top, bottom), grid_resolution=20, gate_threshold=0.0, n_std=1.0,
        legend=False, linewidth=4,
    )
    assert disp.ax_ is top and disp.gate_ax_ is bottom and disp.figure_ is fig
    assert disp.scatter_ is None
    assert all(line in top.lines for line in disp.expert_lines_)
    assert all(line.get_linewidth() == 4 for line in disp.expert_lines_)
    # threshold 0: nothing masked
    assert not any(np.ma.getmaskarray(line.get_ydata()).any() for line in disp.expert_lines_)
    assert top.get_legend() is None
    _, axes3 = plt.subplots(3, 1)
    with pytest.raises(ValueError, match="one matplotlib Axes .* or two Axes"):
        disp.plot(ax=axes3)


def test_experts_display_feature_and_fixed_values_on_3d(reg_3d, data_3d):
    X, y = data_3d
    disp = ExpertsDisplay.from_estimator(
        reg_3d, X, y, feature=2, fixed_values={1: 9.0}, grid_resolution=25
    )
    grid = np.tile(X.mean(axis=0), (25, 1))
    grid[:, 1] = 9.0
    grid[:, 2] = np.linspace(X[:, 2].min(), X[:, 2].max(), 25)
    assert_allclose(disp.pooled_line_.get_ydata(), reg_3d.predict(grid))
    assert_allclose(
        np.column_stack([line.get_ydata() for line in disp.gate_lines_]),
        reg_3d.predict_gate(grid),
    )
    assert disp.gate_ax_.get_xlabel() == "x2"
    assert_allclose(disp.scatter_.get_offsets(), np.c_[X[:, 2], y])


def test_experts_display_classifier(clf_2d):
    clf, X, y = clf_2d
    disp = ExpertsDisplay.from_estimator(clf, X, y, feature=1, grid_resolution=30)
    grid = np.tile(X.mean(axis=0), (30, 1))
    grid[:, 1] = np.linspace(X[:, 1].min(), X[:, 1].max(), 30)
    assert_allclose(disp.pooled_line_.get_ydata(), clf.predict_proba(grid)[:, 1])
    assert disp.band_ is None
    assert len(disp.expert_lines_) == len(disp.gate_lines_) == clf.n_experts_
    for line in disp.expert_lines_:
        values = line.get_ydata().compressed()
        assert np.all((values >= 0) & (values <= 1))
    assert disp.ax_.get_ylabel() == "P(y = b)"
    assert_array_equal(disp.scatter_.get_offsets()[:, 1], (y == "b").astype(float))

    disp = ExpertsDisplay.from_estimator(clf, X, y, target_class="a", grid_resolution=30)
    assert_allclose(disp.pooled_line_.get_ydata(), clf.predict_proba(np.c_[
        np.linspace(X[:, 0].min(), X[:, 0].max(), 30), np.full(30, X[:, 1].mean())
    ])[:, 0])
    assert disp.ax_.get_ylabel() == "P(y = a)"
    with pytest.raises(ValueError, match="target_class='c' is not one of the classes"):
        ExpertsDisplay.from_estimator(clf, X, target_class="c")


def test_experts_display_errors(reg_1d, data_1d, reg_3d, data_3d):
    X1, y1 = data_1d
    with pytest.raises(ValueError, match=r"feature=1 is out of range.*1 feature"):
        ExpertsDisplay.from_estimator(reg_1d, X1, feature=1)
    X3, _ = data_3d
    with pytest.raises(ValueError, match=r"feature=-4 is out of range"):
        ExpertsDisplay.from_estimator(reg_3d, X3, feature=-4)
    with pytest.raises(TypeError, match="column index or a feature name"):
        ExpertsDisplay.from_estimator(reg_3d, X3, feature=1.5)
    with pytest.raises(ValueError, match="not fitted on data with feature names"):
        ExpertsDisplay.from_estimator(reg_3d, X3, feature="x0")
    with pytest.raises(ValueError, match="X has 150 samples but y has 10"):
        ExpertsDisplay.from_estimator(reg_1d, X1, y1[:10])
    with pytest.raises(ValueError, match="classifiers only"):
        ExpertsDisplay.from_estimator(reg_1d, X1, target_class=1)
    with pytest.raises(ValueError, match="gate_threshold"):
        ExpertsDisplay.from_estimator(reg_1d, X1, gate_threshold=1.5)


# ----------------------------------------------------------------------
# ConvergenceDisplay


def test_convergence_display_restarts(data_1d):
    X, y = data_1d
    moe = MixtureOfExpertsRegressor(n_experts=2, n_init=3, init="random", random_state=0)
    moe.fit(X, y)
    disp = ConvergenceDisplay.from_estimator(moe)
    assert len(disp.lines_) == 3 == len(moe.log_likelihood_curves_)
    best = disp.best_line_
    assert best in disp.lines_
    assert best.get_label().startswith("best")
    assert_allclose(best.get_ydata(), moe.log_likelihood_curve_)
    assert_allclose(best.get_xdata(), np.arange(moe.log_likelihood_curve_.shape[0]))
    others = [line for line in disp.lines_ if line is not best]
    assert all(best.get_linewidth() > line.get_linewidth() for line in others)
    assert [line.get_label() for line in others] == [
        f"restart {r}" for r in range(3) if disp.lines_[r] is not best
    ]
    assert disp.ax_.get_xlabel() == "EM iteration"
    assert disp.ax_.get_ylabel() == "log-likelihood per sample"


def test_convergence_display_on_given_ax(reg_1d):
    fig, ax = plt.subplots()
    disp = ConvergenceDisplay.from_estimator(reg_1d, ax=ax, legend=False)
    assert disp.ax_ is ax and disp.figure_ is fig
    assert len(ax.get_lines()) == len(disp.lines_) == 1
    assert disp.best_line_.get_label() == "best"
    assert ax.get_legend() is None


def test_convergence_display_from_arrays():
    curves = [np.array([-3.0, -2.0, -1.9]), np.array([-2.5, -1.0]), np.array([-4.0, -3.0])]
    disp = ConvergenceDisplay(curves=curves).plot(color="0.5")
    assert disp.best_line_ is disp.lines_[1]  # highest final value
    assert mpl.colors.to_hex(disp.lines_[0].get_color()) == "#808080"
    disp = ConvergenceDisplay(curves=curves, best_index=2).plot()
    assert disp.best_line_ is disp.lines_[2]
    with pytest.raises(ValueError, match="empty"):
        ConvergenceDisplay(curves=[]).plot()


# ----------------------------------------------------------------------
# GateDisplay's margin: relative to the data by default


def test_gate_display_default_margin_fits_small_scale_data():
    # diabetes: features scaled to about +-0.1; an absolute margin of 1 made
    # the data a dot in the middle of the map.
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = X[:, [2, 8]]
    moe = MixtureOfExpertsRegressor(n_experts=2, max_iter=10, random_state=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        moe.fit(X, y)
    disp = GateDisplay.from_estimator(moe, X, grid_resolution=20)
    span = np.ptp(X, axis=0)
    assert_allclose(disp.ax_.get_xlim(), (X[:, 0].min() - 0.05 * span[0],
                                          X[:, 0].max() + 0.05 * span[0]))
    assert_allclose(disp.ax_.get_ylim(), (X[:, 1].min() - 0.05 * span[1],
                                          X[:, 1].max() + 0.05 * span[1]))
    # the data fill the axes (over 90 % of each axis), whatever their scale
    for lim, s in ((disp.ax_.get_xlim(), span[0]), (disp.ax_.get_ylim(), span[1])):
        assert s / (lim[1] - lim[0]) > 0.9


def test_gate_display_eps_float_is_in_data_units(reg_2d, data_2d):
    X, _ = data_2d
    disp = GateDisplay.from_estimator(reg_2d, X, grid_resolution=10, eps=0.3)
    assert_allclose(disp.xx0.min(), X[:, 0].min() - 0.3)
    assert_allclose(disp.xx1.max(), X[:, 1].max() + 0.3)
    disp = GateDisplay.from_estimator(reg_2d, X, grid_resolution=10, eps=0)
    assert_allclose([disp.xx0.min(), disp.xx0.max()], [X[:, 0].min(), X[:, 0].max()])


def test_gate_display_eps_constant_feature(reg_3d, data_3d):
    X, _ = data_3d
    X = X.copy()
    X[:, 2] = 1.5
    disp = GateDisplay.from_estimator(reg_3d, X, features=(0, 2), grid_resolution=6)
    assert_allclose([disp.xx1.min(), disp.xx1.max()], [1.0, 2.0])


@pytest.mark.parametrize(
    "eps, err, match",
    [(-1, ValueError, "eps must be None or a finite float >= 0"),
     (np.inf, ValueError, "eps"),
     ("5%", TypeError, "eps must be None or a float"),
     (True, TypeError, "eps")],
)
def test_gate_display_bad_eps(reg_2d, data_2d, eps, err, match):
    X, _ = data_2d
    with pytest.raises(err, match=match):
        GateDisplay.from_estimator(reg_2d, X, eps=eps)


# ----------------------------------------------------------------------
# ExpertsDisplay: one Axes or an array of them


def test_experts_display_single_axes_is_split(reg_1d, data_1d):
    X, y = data_1d
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    disp = ExpertsDisplay.from_estimator(reg_1d, X, y, ax=right, grid_resolution=20)
    assert disp.bounding_ax_ is right and not right.axison
    assert disp.ax_ is not right and disp.gate_ax_ is not right
    assert disp.ax_.figure is fig and disp.gate_ax_.figure is fig and disp.figure_ is fig
    assert disp.ax_.get_shared_x_axes().joined(disp.ax_, disp.gate_ax_)
    # both inside the given Axes' area, the predictions on top, 3:1
    box = right.get_position()
    top, bottom = disp.ax_.get_position(), disp.gate_ax_.get_position()
    for p in (top, bottom):
        assert box.x0 - 1e-9 <= p.x0 and p.x1 <= box.x1 + 1e-9
        assert box.y0 - 1e-9 <= p.y0 and p.y1 <= box.y1 + 1e-9
    assert top.y0 > bottom.y1
    assert_allclose(top.height / bottom.height, 3.0, rtol=0.05)
    assert left.axison  # the other Axes is untouched
    assert all(line in disp.ax_.lines for line in disp.expert_lines_)
    assert all(line in disp.gate_ax_.lines for line in disp.gate_lines_)


def test_experts_display_single_axes_without_subplotspec(reg_1d, data_1d):
    X, _ = data_1d
    fig = plt.figure()
    ax = fig.add_axes([0.1, 0.1, 0.8, 0.8])
    disp = ExpertsDisplay.from_estimator(reg_1d, X, ax=ax, grid_resolution=10)
    assert disp.bounding_ax_ is ax and not ax.axison
    assert disp.ax_.get_shared_x_axes().joined(disp.ax_, disp.gate_ax_)
    assert disp.ax_.get_position().y0 > disp.gate_ax_.get_position().y0


@pytest.mark.parametrize("shape", [(2, 1), (1, 2)])
def test_experts_display_array_of_axes(reg_1d, data_1d, shape):
    X, _ = data_1d
    _, axes = plt.subplots(*shape)
    assert isinstance(axes, np.ndarray)
    disp = ExpertsDisplay.from_estimator(reg_1d, X, ax=axes, grid_resolution=10)
    assert disp.ax_ is axes.ravel()[0] and disp.gate_ax_ is axes.ravel()[1]
    assert disp.bounding_ax_ is None
    # also a 2-D array of two
    _, axes = plt.subplots(2, 1, squeeze=False)
    disp = disp.plot(ax=axes)
    assert disp.ax_ is axes[0, 0] and disp.gate_ax_ is axes[1, 0]


@pytest.mark.parametrize("bad", ["top", [None, None], 3])
def test_experts_display_bad_ax(reg_1d, data_1d, bad):
    X, _ = data_1d
    with pytest.raises(ValueError, match="one matplotlib Axes"):
        ExpertsDisplay.from_estimator(reg_1d, X, ax=bad, grid_resolution=10)


# ----------------------------------------------------------------------
# ExpertsDisplay uses the classifier's public per-expert probabilities


def test_experts_display_uses_predict_experts_proba(clf_2d, monkeypatch):
    clf, X, _ = clf_2d
    calls = []

    def fake(X_in):
        calls.append(np.asarray(X_in).shape)
        n = np.asarray(X_in).shape[0]
        proba = np.empty((n, clf.n_experts_, 2))
        for k in range(clf.n_experts_):
            proba[:, k] = [0.9 - 0.1 * k, 0.1 + 0.1 * k]
        return proba

    monkeypatch.setattr(clf, "predict_experts_proba", fake)
    disp = ExpertsDisplay.from_estimator(
        clf, X, feature=0, grid_resolution=12, gate_threshold=0.0
    )
    assert calls == [(12, 2)]
    for k, line in enumerate(disp.expert_lines_):
        assert_allclose(line.get_ydata(), np.full(12, 0.1 + 0.1 * k))


def test_experts_display_classifier_matches_predict_experts_proba(clf_2d):
    clf, X, _ = clf_2d
    disp = ExpertsDisplay.from_estimator(
        clf, X, feature=0, grid_resolution=15, gate_threshold=0.0, target_class="a"
    )
    grid = np.c_[np.linspace(X[:, 0].min(), X[:, 0].max(), 15), np.full(15, X[:, 1].mean())]
    proba = clf.predict_experts_proba(grid)
    assert_allclose(
        np.column_stack([line.get_ydata() for line in disp.expert_lines_]), proba[:, :, 0]
    )


def test_inspection_imports_no_private_skmoe_expert_helpers():
    import ast
    import pathlib

    import skmoe.inspection

    root = pathlib.Path(skmoe.inspection.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                names = {alias.name for alias in node.names}
                assert module.split(".")[-1] != "_experts", (path.name, module)
                assert "aligned_proba" not in names, path.name


# ----------------------------------------------------------------------
# ConvergenceDisplay: identical restarts stay distinguishable


def _styles(lines):
    return [(str(line.get_linestyle()), line.get_marker()) for line in lines]


def test_convergence_display_identical_curves_are_distinguishable():
    curve = np.array([-3.0, -2.0, -1.5, -1.4, -1.4])
    disp = ConvergenceDisplay(curves=[curve, curve.copy(), curve.copy()], best_index=0).plot()
    best, others = disp.best_line_, disp.lines_[1:]
    # every restart its own (line style, marker) and colour
    styles = _styles(disp.lines_)
    assert len(set(styles)) == 3
    assert len({mpl.colors.to_hex(line.get_color()) for line in disp.lines_}) == 3
    # the other restarts are drawn over the (thicker) best one, hollow markers
    assert all(line.get_zorder() > best.get_zorder() for line in others)
    assert all(line.get_linewidth() < best.get_linewidth() for line in others)
    assert all(line.get_markerfacecolor() == "none" for line in others)
    assert all(line.get_linestyle() != "-" for line in others)
    # one legend entry per restart, saying which coincide
    texts = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert texts == [
        "best (restart 0 = restart 1, 2)",
        "restart 1 = restart 0, 2",
        "restart 2 = restart 0, 1",
    ]
    assert disp.same_curves_ == [[1, 2], [0, 2], [0, 1]]


def test_convergence_display_long_identical_curves_offset_markers():
    curve = -1.0 / np.arange(1, 61)
    disp = ConvergenceDisplay(curves=[curve, curve, curve], best_index=2).plot()
    first, second = disp.lines_[0].get_markevery(), disp.lines_[1].get_markevery()
    assert first != second  # markers of coinciding curves do not overlap
    assert disp.best_line_.get_marker() in (None, "None", "")


def test_convergence_display_identical_restarts_from_estimator(data_1d):
    X, y = data_1d
    labels = (X[:, 0] < 0).astype(int)  # one fixed init: every restart the same
    moe = MixtureOfExpertsRegressor(n_experts=2, n_init=3, init=labels, random_state=0)
    moe.fit(X, y)
    curves = moe.log_likelihood_curves_
    if not all(np.array_equal(curves[0], c) for c in curves):
        pytest.skip("the restarts from one init differ in this build")
    disp = ConvergenceDisplay.from_estimator(moe)
    assert len(set(_styles(disp.lines_))) == 3
    assert len(disp.ax_.get_legend().get_texts()) == 3


def test_convergence_display_distinct_curves_unlabelled_as_same():
    curves = [np.array([-3.0, -2.0]), np.array([-2.5, -1.0]), np.array([-4.0, -3.0])]
    disp = ConvergenceDisplay(curves=curves).plot()
    assert [line.get_label() for line in disp.lines_] == [
        "restart 0", "best (restart 1)", "restart 2"
    ]


# ----------------------------------------------------------------------
# Users' matplotlib keywords replace the defaults under any alias


def test_experts_display_short_aliases(reg_1d, data_1d):
    X, y = data_1d
    disp = ExpertsDisplay.from_estimator(
        reg_1d, X, y, grid_resolution=10, lw=4, c="red",
        scatter_kw={"c": "blue", "s": 5}, pooled_kw={"lw": 3, "ls": ":"},
        gate_kw={"c": "k"}, band_kw={"fc": "green"},
    )
    for line in disp.expert_lines_:
        assert line.get_linewidth() == 4
        assert mpl.colors.to_hex(line.get_color()) == "#ff0000"
    assert_allclose(disp.scatter_.get_facecolors(), [mpl.colors.to_rgba("blue", 0.7)])
    assert disp.pooled_line_.get_linewidth() == 3
    assert disp.pooled_line_.get_linestyle() == ":"
    assert all(mpl.colors.to_hex(line.get_color()) == "#000000" for line in disp.gate_lines_)
    assert_allclose(disp.band_.get_facecolor()[0][:3], mpl.colors.to_rgb("green"))


def test_gate_display_scatter_color_alias(reg_2d, data_2d):
    X, _ = data_2d
    disp = GateDisplay.from_estimator(
        reg_2d, X, grid_resolution=8, scatter_kw={"color": "red", "lw": 2, "ec": "blue"}
    )
    assert_allclose(disp.scatter_.get_facecolors(), [mpl.colors.to_rgba("red")])
    assert_allclose(disp.scatter_.get_linewidths(), [2])
    assert_allclose(disp.scatter_.get_edgecolors(), [mpl.colors.to_rgba("blue")])


def test_convergence_display_short_aliases():
    curves = [np.array([-3.0, -2.0, -1.9]), np.array([-2.5, -1.0])]
    disp = ConvergenceDisplay(curves=curves).plot(
        lw=3, c="0.5", ls="-", best_kw={"lw": 5, "c": "r"}
    )
    other, best = disp.lines_
    assert other.get_linewidth() == 3 and other.get_linestyle() == "-"
    assert mpl.colors.to_hex(other.get_color()) == "#808080"
    assert best.get_linewidth() == 5 and mpl.colors.to_hex(best.get_color()) == "#ff0000"


def test_both_alias_and_full_name_is_an_error(reg_1d, data_1d, reg_2d, data_2d):
    X, _ = data_1d
    with pytest.raises(TypeError, match="got both 'linewidth' and 'lw'"):
        ExpertsDisplay.from_estimator(reg_1d, X, grid_resolution=10, lw=1, linewidth=2)
    X2, _ = data_2d
    with pytest.raises(TypeError, match="scatter_kw got both 'c' and 'color'"):
        GateDisplay.from_estimator(
            reg_2d, X2, grid_resolution=10, scatter_kw={"c": "r", "color": "b"}
        )
    with pytest.raises(TypeError, match="pooled_kw must be a dict"):
        ExpertsDisplay.from_estimator(reg_1d, X, grid_resolution=10, pooled_kw="k--")


@pytest.mark.parametrize("Display", [GateDisplay, ExpertsDisplay])
@pytest.mark.parametrize("grid_resolution", [1, 0, 2.5, True, "10", None])
def test_grid_resolution_checked_alike(Display, grid_resolution, reg_2d, data_2d):
    X, _ = data_2d
    with pytest.raises(ValueError, match=r"grid_resolution must be an integer greater than 1; "
                                         rf"got {grid_resolution!r}\."):
        Display.from_estimator(reg_2d, X, grid_resolution=grid_resolution)


@pytest.mark.parametrize("Display", [GateDisplay, ExpertsDisplay])
def test_grid_resolution_numpy_integer(Display, reg_2d, data_2d):
    X, _ = data_2d
    Display.from_estimator(reg_2d, X, grid_resolution=np.int64(4))
