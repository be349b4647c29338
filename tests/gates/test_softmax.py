"""Tests of the shared softmax-network objective (:mod:`skmoe.gates._softmax`).

Tolerances derive from the precision of the data: central differences with
step ``h = eps ** (1/3)`` are accurate to ``O(eps ** (2/3))``.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from threadpoolctl import threadpool_limits

from skmoe.gates._network import (
    initial_parameters,
    layer_shapes,
    pack,
    unpack,
    weighted_standardisation,
)
from skmoe.gates._softmax import SoftmaxObjective
from skmoe.utils._threads import row_parallel

SHAPES = [((), "tanh"), ((5,), "tanh"), ((5,), "relu"), ((5,), "logistic"), ((4, 3), "tanh")]


def _problem(n=60, d=3, k=4, hidden=(), activation="tanh", dtype=np.float64, seed=0):
    """Badly scaled, shifted features, soft targets, weights and a parameter vector."""
    rng = np.random.RandomState(seed)
    X = (rng.randn(n, d) * [1.0, 10.0, 0.1][:d] + [5.0, -3.0, 2.0][:d]).astype(dtype)
    resp_T = rng.dirichlet(np.ones(k), n).T.copy()
    weight = rng.rand(n)
    weight /= weight.sum()
    mean, scale = weighted_standardisation(X, weight)
    shapes = layer_shapes(d, hidden, k)
    theta = pack(*initial_parameters(shapes, activation, rng, resp_T @ weight))
    theta += 0.3 * rng.randn(theta.size)
    return X, resp_T, weight, mean, scale, shapes, theta, rng


def _directional_errors(objective, theta, eps, rng, n_directions=6):
    """``|central difference - grad . v|`` along random unit directions, and the scale."""
    loss, grad = objective(theta)
    h = eps ** (1 / 3)
    errors = []
    for _ in range(n_directions):
        v = rng.randn(theta.size)
        v /= np.linalg.norm(v)
        difference = (objective(theta + h * v)[0] - objective(theta - h * v)[0]) / (2 * h)
        errors.append(abs(difference - grad @ v))
    return max(errors), max(1.0, abs(loss), np.linalg.norm(grad))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden, activation", SHAPES)
def test_gradient_matches_central_differences(hidden, activation, dtype):
    X, resp_T, weight, mean, scale, shapes, theta, rng = _problem(
        hidden=hidden, activation=activation, dtype=dtype
    )
    objective = SoftmaxObjective(X, resp_T, weight, mean, scale, 0.1, shapes, activation)
    error, size = _directional_errors(objective, theta, np.finfo(dtype).eps, rng)
    # O(eps^(2/3)) for the step; 10x for the third derivative and (float32)
    # the rounding of the loss, which sums terms larger than itself.
    assert error <= 10 * np.finfo(dtype).eps ** (2 / 3) * size


@pytest.mark.parametrize("hidden, activation", SHAPES)
def test_float32_objective_is_the_float64_one_to_single_precision(hidden, activation):
    X, resp_T, weight, mean, scale, shapes, theta, _ = _problem(
        n=500, hidden=hidden, activation=activation
    )
    X32 = X.astype(np.float32)
    mean32, scale32 = weighted_standardisation(X32, weight)
    loss64, grad64 = SoftmaxObjective(
        X, resp_T, weight, mean, scale, 0.1, shapes, activation
    )(theta)
    loss32, grad32 = SoftmaxObjective(
        X32, resp_T, weight, mean32, scale32, 0.1, shapes, activation
    )(theta)
    # Products of float32 rows: a few eps32 per term, and the raw features are
    # up to 10x their standardised size here (measured: up to 10 eps32).
    tol = 1e2 * np.finfo(np.float32).eps
    assert abs(loss32 - loss64) <= tol * max(1.0, abs(loss64))
    assert_allclose(grad32, grad64, atol=tol * np.abs(grad64).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden, activation", [((), "tanh"), ((64,), "tanh"), ((32, 16), "relu")])
def test_blocks_and_row_threads_do_not_change_the_objective(hidden, activation, dtype):
    # Many blocks per chunk and two chunks in two threads, against one block
    # (hidden layers wide enough for the thread rule to split 9,001 rows).
    X, resp_T, weight, mean, scale, shapes, theta, _ = _problem(
        n=9001, d=3, k=3, hidden=hidden, activation=activation, dtype=dtype, seed=2
    )
    whole = SoftmaxObjective(X, resp_T, weight, mean, scale, 0.05, shapes, activation, block=9001)
    loss, grad = whole(theta)
    with threadpool_limits(limits=2, user_api="blas"), row_parallel() as pool:
        blocked = SoftmaxObjective(
            X, resp_T, weight, mean, scale, 0.05, shapes, activation, pool, block=1000
        )
        assert len(blocked.bounds) == pool.n_threads
        got_loss, got_grad = blocked(theta)
    # Only the order of the sums changes: a few eps per term.
    tol = 1e2 * np.finfo(dtype).eps
    assert abs(got_loss - loss) <= tol * max(1.0, abs(loss))
    assert_allclose(got_grad, grad, atol=tol * np.abs(grad).max())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_objective_matches_dense_formula(dtype):
    # Several blocks per chunk (d=200: 1,310-row blocks) and two chunks in two
    # threads, against the loss and gradient written densely in a few lines.
    rng = np.random.RandomState(1)
    n, d, k, alpha = 9001, 200, 3, 0.05
    X = (rng.randn(n, d) + rng.randn(d)).astype(dtype)
    resp_T = rng.dirichlet(np.ones(k), n).T.copy()
    weight = rng.rand(n)
    weight /= weight.sum()
    mean, scale = weighted_standardisation(X, weight)
    theta = 0.1 * rng.randn(k * d + k)
    Ws, b = theta[: k * d].reshape(k, d), theta[k * d :]
    Z = (X.astype(np.float64) - mean) / scale @ Ws.T + b
    shift = Z.max(axis=1, keepdims=True)
    log_p = Z - shift - np.log(np.exp(Z - shift).sum(axis=1, keepdims=True))
    loss = -np.sum(weight[:, None] * resp_T.T * log_p) + 0.5 * alpha * np.sum(Ws**2)
    G = weight[:, None] * (np.exp(log_p) - resp_T.T)
    grad = np.concatenate([(G.T @ ((X - mean) / scale) + alpha * Ws).ravel(), G.sum(axis=0)])
    with threadpool_limits(limits=2, user_api="blas"), row_parallel() as pool:
        objective = SoftmaxObjective(X, resp_T, weight, mean, scale, alpha, pool=pool)
        assert len(objective.bounds) == pool.n_threads and objective.block < n / 4
        got_loss, got_grad = objective(theta)
    # float32: products over d=200 features of O(1) values, a few eps32 each.
    tol = 1e2 * np.finfo(dtype).eps if dtype == np.float64 else 1e3 * np.finfo(dtype).eps
    assert abs(got_loss - loss) <= tol * abs(loss)
    assert_allclose(got_grad, grad, atol=tol * np.abs(grad).max())


@pytest.mark.parametrize("hidden, activation", SHAPES)
def test_torch_objective_is_the_numpy_objective(hidden, activation):
    torch = pytest.importorskip("torch")
    from skmoe.gates._torch import torch_objective

    X, resp_T, weight, mean, scale, shapes, theta, _ = _problem(
        n=200, hidden=hidden, activation=activation
    )
    loss, grad = SoftmaxObjective(X, resp_T, weight, mean, scale, 0.1, shapes, activation)(theta)

    def tensor(array):
        return torch.as_tensor(np.asarray(array), dtype=torch.float64)

    coefs, intercepts = unpack(theta, shapes)
    params_W = [tensor(c).clone().requires_grad_(True) for c in coefs]
    params_b = [tensor(b).clone().requires_grad_(True) for b in intercepts]
    torch_loss = torch_objective(
        torch, tensor(X), tensor(resp_T), tensor(weight), tensor(mean), tensor(scale), 0.1,
        params_W, params_b, activation,
    )
    torch_loss.backward()
    torch_grad = pack([W.grad.numpy() for W in params_W], [b.grad.numpy() for b in params_b])
    # Two float64 implementations of the same sums, in other orders (measured:
    # up to 25 eps of the largest gradient entry).
    tol = 1e3 * np.finfo(np.float64).eps
    assert abs(torch_loss.item() - loss) <= tol * max(1.0, abs(loss))
    assert_allclose(torch_grad, grad, atol=tol * np.abs(grad).max())


@pytest.mark.parametrize("hidden, activation", SHAPES[1:])
def test_hidden_layer_objective_matches_dense_formula(hidden, activation):
    # One formula for every network: the cross-entropy of the log-softmax,
    # written densely here, for the networks with hidden layers too.
    from scipy.special import expit, logsumexp

    X, resp_T, weight, mean, scale, shapes, theta, _ = _problem(
        n=300, hidden=hidden, activation=activation
    )
    loss, _ = SoftmaxObjective(X, resp_T, weight, mean, scale, 0.1, shapes, activation)(theta)
    coefs, intercepts = unpack(theta, shapes)
    f = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0), "logistic": expit}[activation]
    A = (X - mean) / scale
    for layer, (W, b) in enumerate(zip(coefs, intercepts)):
        A = A @ W.T + b
        if layer < len(coefs) - 1:
            A = f(A)
    log_p = A - logsumexp(A, axis=1, keepdims=True)
    expected = -np.sum(weight[:, None] * resp_T.T * log_p)
    expected += 0.05 * sum(np.sum(W**2) for W in coefs)
    assert abs(loss - expected) <= 1e2 * np.finfo(np.float64).eps * abs(expected)
