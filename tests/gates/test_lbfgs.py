"""Tests of the L-BFGS driver of the neural gates (:mod:`skmoe.gates._lbfgs`)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import rosen, rosen_der

from skmoe.gates._lbfgs import LBFGSMemory, _strong_wolfe, minimise_lbfgs


class _Counted:
    """``(loss, grad)`` of a function, counting the evaluations and keeping the losses."""

    def __init__(self, fun, grad):
        self.fun, self.grad = fun, grad
        self.losses = []

    def __call__(self, theta):
        loss = float(self.fun(theta))
        self.losses.append(loss)
        return loss, self.grad(theta)


def _quadratic(seed=0, n=20):
    rng = np.random.RandomState(seed)
    A = rng.randn(n, n)
    H = A @ A.T + n * np.eye(n)
    b = rng.randn(n)
    return H, b, _Counted(lambda t: 0.5 * t @ H @ t - b @ t, lambda t: H @ t - b)


def test_rosenbrock_converges():
    objective = _Counted(rosen, rosen_der)
    theta, loss, n_iter, n_eval = minimise_lbfgs(
        objective, np.array([-1.2, 1.0, -0.5, 0.8]), max_iter=500, gtol=1e-10
    )
    assert_allclose(theta, 1.0, atol=1e-6)
    assert loss < 1e-12 and n_iter < 200 and n_eval == len(objective.losses)


def test_accepted_steps_lower_the_loss_and_the_budget_is_kept():
    objective = _Counted(rosen, rosen_der)
    start = np.zeros(6)
    losses = [rosen(start)]
    theta, memory = start, LBFGSMemory()
    for _ in range(8):  # M-steps of 3 iterations, the memory kept in between
        theta, loss, n_iter, _ = minimise_lbfgs(objective, theta, max_iter=3, gtol=0, memory=memory)
        assert n_iter <= 3
        assert loss < losses[-1]
        assert loss == rosen(theta)
        losses.append(loss)


def test_kept_memory_makes_the_next_call_a_quasi_newton_step():
    H, b, objective = _quadratic()
    solution = np.linalg.solve(H, b)
    memory = LBFGSMemory(size=20)
    minimise_lbfgs(objective, np.zeros(len(b)), max_iter=25, gtol=0, memory=memory)
    assert len(memory) > 0
    # A new start on the same problem: with the pairs, few iterations reach
    # the solution; without them, the first steps are gradient steps.
    start = solution + 0.1
    with_pairs = minimise_lbfgs(objective, start, max_iter=3, gtol=0, memory=memory)
    without = minimise_lbfgs(objective, start, max_iter=3, gtol=0)
    assert with_pairs[1] < without[1]


def test_memory_keeps_only_positive_curvature_and_its_size():
    memory = LBFGSMemory(size=2)
    assert not memory.add(np.array([1.0, 0.0]), np.array([-1.0, 0.0]))
    for i in range(3):
        assert memory.add(np.array([1.0, i]), np.array([1.0, 0.0]))
    assert len(memory) == 2 and memory.s[0][1] == 1.0
    assert_allclose(LBFGSMemory().direction(np.array([1.0, -2.0])), [-1.0, 2.0])
    memory.clear()
    assert len(memory) == 0


def test_strong_wolfe_conditions_hold():
    _, b, objective = _quadratic(seed=1)
    theta = np.ones(len(b))
    loss, grad = objective(theta)
    direction = -grad
    slope = grad @ direction
    for step in (1e-6, 1.0, 1e3):  # too short (extrapolate), too long (zoom)
        t, new_loss, new_grad, _ = _strong_wolfe(objective, theta, direction, step, loss, grad, slope)
        assert t > 0
        assert new_loss <= loss + 1e-4 * t * slope
        assert abs(new_grad @ direction) <= 0.9 * abs(slope)


def test_no_descent_gives_up_without_moving():
    objective = _Counted(lambda t: float(t @ t), lambda t: -2 * t)  # a wrong gradient
    theta, loss, n_iter, _ = minimise_lbfgs(objective, np.ones(3), max_iter=10, gtol=0)
    assert_allclose(theta, 1.0)
    assert loss == 3.0 and n_iter == 1


def test_non_finite_start_raises():
    with pytest.raises(ValueError, match="not finite"):
        minimise_lbfgs(lambda t: (np.nan, t), np.ones(2), max_iter=5, gtol=0)
