"""Data sets: synthetic generators with a known mixture structure and small real data."""

from ._base import load_motorcycle
from ._families import (
    make_contaminated_regression,
    make_count_regression,
    make_positive_regression,
)
from ._samples_generator import (
    gated_regression_mean,
    make_gated_regression,
    make_xor_blobs,
)

__all__ = [
    "gated_regression_mean",
    "load_motorcycle",
    "make_contaminated_regression",
    "make_count_regression",
    "make_gated_regression",
    "make_positive_regression",
    "make_xor_blobs",
]
