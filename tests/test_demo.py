"""Tests of the command line ``python -m skmoe demo``."""

import io
import subprocess
import sys

import numpy as np
import pytest

from skmoe.__main__ import main, run_demo

MODELS = [
    "LinearRegression",
    "DecisionTree(max_depth=4)",
    "HistGradientBoosting",
]


@pytest.fixture(scope="module")
def demo():
    out = io.StringIO()
    results = run_demo(n_splits=3, max_experts=3, random_state=0, file=out)
    return results, out.getvalue()


def test_run_demo_results(demo):
    results, _ = demo
    assert set(results) == {"bic", "n_experts", "mse", "ratio"}
    assert list(results["bic"]) == [1, 2, 3]
    assert all(np.isfinite(v) for v in results["bic"].values())
    best = results["n_experts"]
    assert results["bic"][best] == min(results["bic"].values())

    mixture = f"MixtureOfExperts(n_experts={best})"
    assert list(results["mse"]) == [mixture, *MODELS]
    assert list(results["ratio"]) == [mixture, *MODELS]
    for scores in results["mse"].values():
        assert scores.shape == (3,)
        assert np.all(scores > 0)
    assert results["ratio"][mixture] == pytest.approx(1.0)
    for name in MODELS:
        expected = results["mse"][name].mean() / results["mse"][mixture].mean()
        assert results["ratio"][name] == pytest.approx(expected)


def test_run_demo_mixture_beats_one_line(demo):
    # The motorcycle curve swings: one line is far worse than several experts.
    results, _ = demo
    assert results["n_experts"] > 1
    assert results["ratio"]["LinearRegression"] > 2


def test_run_demo_table_text(demo):
    results, text = demo
    assert "133 samples" in text
    assert "BIC" in text
    for k in (1, 2, 3):
        assert f"n_experts={k}" in text
    assert "<- chosen" in text
    assert "3-fold cross-validated mean squared error" in text
    for column in ("MSE mean", "MSE std", "/ mixture"):
        assert column in text
    table = text.split("mean squared error:")[1].strip().splitlines()
    rows = table[2:]
    assert len(rows) == 4
    for row, name in zip(rows, results["mse"]):
        assert row.split()[0] == name.split()[0]
        mean, std, ratio = (float(v) for v in row.split()[-3:])
        assert mean == pytest.approx(results["mse"][name].mean(), abs=0.06)
        assert std == pytest.approx(results["mse"][name].std(), abs=0.06)
        assert ratio == pytest.approx(results["ratio"][name], abs=0.006)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_splits": 1}, "n_splits"), ({"max_experts": 0}, "max_experts")],
)
def test_run_demo_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_demo(file=io.StringIO(), **kwargs)


def test_main_without_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_main_rejects_bad_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--n-splits", "1"])
    assert exc.value.code == 2
    assert "--n-splits" in capsys.readouterr().err


def test_python_dash_m_without_command_exits_2():
    proc = subprocess.run(
        [sys.executable, "-m", "skmoe"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert "usage:" in proc.stdout and "demo" in proc.stdout


def test_run_demo_docstring_example():
    # pytest's --doctest-modules never collects __main__.py; run it here.
    import doctest

    import skmoe.__main__

    result = doctest.testmod(skmoe.__main__, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
