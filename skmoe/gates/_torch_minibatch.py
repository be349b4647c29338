"""Mini-batch Adam for :class:`~skmoe.gates.TorchGate`: a fixed budget per M-step, the best iterate kept.

For data too large for full-batch L-BFGS. Each M-step runs a fixed number
of epochs over batches shuffled by a :class:`torch.Generator`, whose seed
comes from the cold start's seed and the number of the fit (reproducible
on CPU, no generator kept between fits), and keeps the best of the
iterates at its start and after each epoch, so it never raises the
objective.
"""

import numpy as np


def shuffle_seed(rng):
    """The seed of the mini-batch orders of a cold start, drawn from ``rng``."""
    return int(rng.randint(np.iinfo(np.int32).max))


def fit_generator(torch, seed, n_fit):
    """The CPU :class:`torch.Generator` of the ``n_fit``-th fit from the cold start's ``seed``.

    One seed per fit from the two numbers: a restart of the same fit
    shuffles the same way.
    """
    sequence = np.random.SeedSequence([seed, n_fit])
    generator = torch.Generator(device="cpu")
    generator.manual_seed(int(sequence.generate_state(1)[0]))
    return generator


def adam(torch, problem, *, batch_size, learning_rate, epochs, generator, state):
    """``epochs`` epochs of mini-batch Adam; the best iterate of the epochs' ends (and the start).

    Parameters
    ----------
    torch : module
        The :mod:`torch` module.
    problem : TorchProblem
        The objective; its parameters are updated in place.
    batch_size : int
        Rows per batch.
    learning_rate : float
        Adam's learning rate.
    epochs : int
        Passes over the rows.
    generator : torch.Generator
        Draws the order of the rows of each epoch.
    state : dict or None
        Adam's ``state_dict`` of the previous M-step of the run, or None.

    Returns
    -------
    loss : float
        The loss of the kept iterate.
    n_steps : int
        Adam steps taken.
    state : dict
        Adam's state (for the next M-step).
    """
    optimiser = torch.optim.Adam(problem.params, lr=learning_rate)
    if state is not None:
        optimiser.load_state_dict(state)
    best_loss, best = problem.full_loss(), problem.snapshot()
    n_rows = problem.X.shape[0]
    device = problem.X.device
    n_steps = 0
    for _ in range(epochs):
        order = torch.randperm(n_rows, generator=generator).to(device)
        for start in range(0, n_rows, batch_size):
            _, grads = problem.evaluate(order[start : start + batch_size])
            for p, g in zip(problem.params, grads):
                p.grad = g
            optimiser.step()
            n_steps += 1
        loss = problem.full_loss()
        if loss < best_loss:
            best_loss, best = loss, problem.snapshot()
    problem.restore(best)
    for p in problem.params:
        p.grad = None
    return best_loss, n_steps, optimiser.state_dict()
