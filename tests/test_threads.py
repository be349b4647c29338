"""Row threads of the EM loop (``skmoe.utils._threads``)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from threadpoolctl import threadpool_info, threadpool_limits

from skmoe.utils._threads import RowPool, active_row_pool, matmul_rows_T, row_parallel
from tests._tolerances import tol


@given(
    n_threads=st.integers(1, 8),
    n_rows=st.integers(0, 100_000),
    block=st.integers(1, 9000),
    min_rows=st.integers(1, 20_000),
)
def test_bounds_cover_the_rows_in_order_on_block_multiples(n_threads, n_rows, block, min_rows):
    bounds = RowPool(n_threads, None).bounds(n_rows, block=block, min_rows=min_rows)
    assert bounds[0][0] == 0 and bounds[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert len(bounds) <= max(1, min(n_threads, n_rows // min_rows))
    assert all(stop > start for start, stop in bounds) or n_rows == 0
    assert all(start % block == 0 for start, _ in bounds)


def test_region_is_single_blas_threaded_nested_and_restored():
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS loaded")
    with threadpool_limits(limits=2, user_api="blas"):
        before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        with row_parallel() as pool:
            assert active_row_pool() is pool and pool.n_threads == max(before)
            assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
            with row_parallel() as inner:
                assert inner is pool
        assert active_row_pool() is None
        after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        assert after == before


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_rows_T_in_a_region_equals_one_product(dtype):
    rng = np.random.RandomState(0)
    X = rng.randn(20_011, 7).astype(dtype)
    A = rng.randn(5, 7).astype(dtype)
    expected = A @ X.T
    with threadpool_limits(limits=2, user_api="blas"), row_parallel():
        got = matmul_rows_T(A, X)
        out = np.empty_like(expected)
        assert matmul_rows_T(A, X, out=out) is out
    assert got.flags.c_contiguous and got.dtype == dtype
    # Each column is the same dot product computed by a single thread: equal to rounding,
    # which for a dot product of length n is at most n * eps * (|A| @ |X|.T).
    atol = tol(dtype, factor=X.shape[1]) * (np.abs(A) @ np.abs(X).T).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)
    assert_array_equal(got, out)
