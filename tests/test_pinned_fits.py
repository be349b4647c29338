"""Refactors of the EM engine leave whole fits unchanged (see ``tests/_pinned_cases.py``)."""

import json

import numpy as np
import pytest

from tests._pinned_cases import PATH, cases, fit_case, summary

PINNED = json.loads(PATH.read_text())

# float64 throughout. 25 EM iterations amplify the last-bit differences of
# BLAS kernels (Intel vs AMD, thread counts) by at most a few orders of
# magnitude on these well-conditioned problems: 1e-7 relative leaves 8 of
# the 16 digits, far above rounding and far below any change of the model.
RTOL, ATOL = 1e-7, 1e-9


@pytest.mark.parametrize("name", sorted(cases()))
def test_fit_is_pinned(name):
    got = summary(*fit_case(name))
    expected = PINNED[name]
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(
            np.asarray(got[key], dtype=float), np.asarray(value, dtype=float),
            rtol=RTOL, atol=ATOL, err_msg=f"{name}: {key}",
        )
