"""The thread rule and the row threads of the EM loop (``skmoe.utils._threads``).

The rule's application to each part of a whole fit (experts, initialisers,
joblib workers) is pinned in ``tests/test_fit_threads.py``.
"""

import sys
import types

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from threadpoolctl import threadpool_info, threadpool_limits

from skmoe.utils import _threads
from skmoe.utils._threads import (
    MIN_WORK_PER_THREAD,
    RowPool,
    active_row_pool,
    fit_threads,
    limit_threads,
    matmul_rows_T,
    row_parallel,
    thread_budget,
    threads_for,
)
from tests._tolerances import tol


def _counts(user_api):
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == user_api]


def _budget_under(limit):
    """The budget ``threadpool_limits(limit)`` leaves on this machine."""
    return max(1, min(limit, _threads._cpu_count()))


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
    with threadpool_limits(limits=2):
        before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        with row_parallel() as pool:
            assert active_row_pool() is pool and pool.n_threads == _budget_under(2)
            assert thread_budget() == pool.n_threads
            assert all(t == 1 for t in _counts("openmp"))
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


def test_the_rule_gives_one_thread_per_unit_of_work_up_to_the_budget():
    assert threads_for(0) == threads_for(1) == 1
    assert threads_for(2_000, 5) == 1  # small data: one thread, the budget is not even read
    assert threads_for(MIN_WORK_PER_THREAD, 2, budget=8) == 2
    assert threads_for(10 * MIN_WORK_PER_THREAD, 1, budget=3) == 3
    assert threads_for(10**12, 1, budget=1) == 1
    counts = [threads_for(n, 7, budget=4) for n in np.geomspace(1, 1e9, 60).astype(int)]
    assert counts == sorted(counts) and max(counts) == 4


def test_budget_is_the_smallest_limit_in_force():
    with threadpool_limits(limits=1):
        assert thread_budget() == 1
        assert threads_for(10**12) == 1
    with threadpool_limits(limits=2):
        assert thread_budget() == _budget_under(2)
        assert threads_for(10**12) == _budget_under(2)


def test_limit_threads_lowers_only_and_restores():
    with threadpool_limits(limits={"blas": 1, "openmp": 2} if _counts("openmp") else {"blas": 1}):
        blas, openmp = _counts("blas"), _counts("openmp")
        with limit_threads(2) as n:  # never raises BLAS from 1 to 2
            assert n == 2 and _counts("blas") == blas and _counts("openmp") == openmp
        with limit_threads(1):
            assert all(t == 1 for t in _counts("blas") + _counts("openmp"))
        assert _counts("blas") == blas and _counts("openmp") == openmp


def test_fit_threads_follows_the_rule(monkeypatch):
    with threadpool_limits(limits=2):
        with fit_threads(100, 5) as n:
            assert n == 1 and all(t == 1 for t in _counts("blas") + _counts("openmp"))
        monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)
        with fit_threads(100, 5) as n:
            assert n == _budget_under(2)
            assert all(t <= n for t in _counts("blas") + _counts("openmp"))


def test_row_parallel_sizes_its_pool_by_the_rule(monkeypatch):
    with threadpool_limits(limits=2):
        with row_parallel(n_rows=2_000, n_cols=5) as pool:
            assert pool.n_threads == 1 and pool._executor is None
        monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)
        with row_parallel(n_rows=2_000, n_cols=5) as pool:
            assert pool.n_threads == _budget_under(2)


def test_bounds_with_the_work_per_row_follow_the_rule(monkeypatch):
    pool = RowPool(4, None)
    n = 8 * 4096
    assert len(pool.bounds(n)) == 4  # rows only: MIN_ROWS_PER_THREAD
    assert len(pool.bounds(n, n_cols=1)) == 1  # 32,768 multiply-adds: one thread
    assert len(pool.bounds(n, n_cols=MIN_WORK_PER_THREAD // 4096)) == 4


def test_matmul_rows_T_split_by_the_rule_equals_one_product(monkeypatch):
    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)
    rng = np.random.RandomState(0)
    X = rng.randn(20_011, 7)
    A = rng.randn(5, 7)
    with threadpool_limits(limits=2), row_parallel() as pool:
        got = matmul_rows_T(A, X)
        assert len(pool.bounds(X.shape[0], n_cols=35)) == pool.n_threads
    np.testing.assert_allclose(got, A @ X.T, rtol=0, atol=1e-12 * np.abs(A @ X.T).max())


def test_controller_is_rebuilt_after_new_imports(monkeypatch):
    first = _threads._controller()
    assert _threads._controller() is first  # no new module: the cached look
    monkeypatch.setitem(sys.modules, "skmoe_probe_module", types.ModuleType("skmoe_probe_module"))
    assert _threads._controller() is not first
