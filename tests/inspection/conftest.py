"""Fixtures shared by the tests of the displays."""

import sys

import pytest


@pytest.fixture(autouse=True)
def close_figures():
    """Close the figures each test drew (pyplot only if a test imported it)."""
    yield
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close("all")
