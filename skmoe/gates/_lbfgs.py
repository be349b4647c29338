"""L-BFGS whose curvature pairs outlive a call: the optimiser of the neural gates.

The EM loop fits a gate once per iteration, each time to slightly different
targets and from the previous solution (generalised EM: a few iterations per
M-step, each lowering the gate's objective). SciPy's L-BFGS-B starts every
call with an empty memory, so each M-step spends its first iterations
rebuilding a curvature model it had a moment before. :func:`minimise_lbfgs`
takes the memory (:class:`LBFGSMemory`) of the previous call and returns it
updated: the first step of a warm M-step is then already a quasi-Newton step.
The line search is the strong-Wolfe search of Nocedal & Wright (Algorithms
3.5 and 3.6, cubic interpolation), so every accepted step lowers the
objective and every stored pair has positive curvature.

The driver works on NumPy vectors and calls an objective returning
``(loss, gradient)``; the NumPy and PyTorch gates only differ in that
objective, so the two backends take the same path.
"""

import math

import numpy as np

# Sufficient decrease (Armijo) and curvature constants of the strong-Wolfe
# conditions: the usual quasi-Newton values (Nocedal & Wright, section 3.1).
_C1 = 1e-4
_C2 = 0.9
# Function evaluations per line search.
_MAX_LINE_SEARCH = 25


class LBFGSMemory:
    """The last curvature pairs ``(s, y)`` of L-BFGS, oldest first.

    Parameters
    ----------
    size : int, default=10
        Most pairs kept.

    Attributes
    ----------
    s, y : list of ndarray
        Steps and gradient changes.
    """

    def __init__(self, size=10):
        self.size = size
        self.s = []
        self.y = []

    def __len__(self):
        return len(self.s)

    def add(self, s, y):
        """Store a pair when its curvature ``s . y`` is safely positive; return whether stored."""
        sy = float(s @ y)
        if not sy > 1e-10 * float(y @ y):
            return False
        if len(self.s) == self.size:
            self.s.pop(0)
            self.y.pop(0)
        self.s.append(s)
        self.y.append(y)
        return True

    def clear(self):
        """Forget every pair."""
        self.s.clear()
        self.y.clear()

    def direction(self, grad):
        """``-H grad`` by the two-loop recursion (``-grad`` without pairs)."""
        q = -grad
        if not self.s:
            return q
        alphas = []
        rhos = [1.0 / float(s @ y) for s, y in zip(self.s, self.y)]
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(rhos)):
            a = rho * float(s @ q)
            alphas.append(a)
            q -= a * y
        s, y = self.s[-1], self.y[-1]
        q *= float(s @ y) / float(y @ y)
        for s, y, rho, a in zip(self.s, self.y, rhos, reversed(alphas)):
            q += (a - rho * float(y @ q)) * s
        return q


def _cubic_minimiser(t1, f1, g1, t2, f2, g2, lo, hi):
    """Minimiser in ``[lo, hi]`` of the cubic through two points and slopes (midpoint if none)."""
    d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
    square = d1 * d1 - g1 * g2
    if square >= 0 and math.isfinite(square):
        d2 = math.copysign(math.sqrt(square), t2 - t1)
        denominator = g2 - g1 + 2 * d2
        if denominator != 0:
            t = t2 - (t2 - t1) * (g2 + d2 - d1) / denominator
            if math.isfinite(t):
                return min(max(t, lo), hi)
    return 0.5 * (lo + hi)


def _strong_wolfe(fun, theta, direction, step, loss, grad, slope):
    """A step along ``direction`` satisfying the strong-Wolfe conditions.

    Returns ``(step, loss, grad, n_eval)`` of the accepted point, or
    ``(0.0, loss, grad, n_eval)`` when no step lowered the objective.
    """

    def evaluate(t):
        new_loss, new_grad = fun(theta + t * direction)
        new_loss = float(new_loss)
        if not math.isfinite(new_loss):
            return new_loss, new_grad, math.nan
        return new_loss, new_grad, float(new_grad @ direction)

    def sufficient(t, f):
        return f <= loss + _C1 * t * slope and math.isfinite(f)

    # Bracketing (Nocedal & Wright, Algorithm 3.5): lo satisfies sufficient
    # decrease with the lowest loss seen; a bracket [lo, hi] contains a point
    # satisfying both conditions.
    lo = (0.0, loss, grad, slope)
    hi = None
    n_eval = 0
    t = step
    while n_eval < _MAX_LINE_SEARCH:
        f, g, d = evaluate(t)
        n_eval += 1
        if not sufficient(t, f) or f >= lo[1]:
            hi = (t, f, g, d)
            break
        if abs(d) <= -_C2 * slope:
            return t, f, g, n_eval
        if d >= 0:
            hi, lo = lo, (t, f, g, d)
            break
        previous, lo = lo, (t, f, g, d)
        t = _cubic_minimiser(previous[0], previous[1], previous[3], t, f, d,
                             t + 0.01 * (t - previous[0]), 10 * t)
    else:
        return (lo[0], lo[1], lo[2], n_eval) if lo[0] > 0 else (0.0, loss, grad, n_eval)
    # Zoom (Algorithm 3.6): shrink the bracket by safeguarded cubic interpolation.
    while n_eval < _MAX_LINE_SEARCH:
        width = abs(hi[0] - lo[0])
        if width * np.max(np.abs(direction)) < 1e-12 * max(1.0, np.max(np.abs(theta))):
            break
        left, right = min(lo[0], hi[0]), max(lo[0], hi[0])
        if math.isfinite(hi[1]) and math.isfinite(hi[3]):
            t = _cubic_minimiser(lo[0], lo[1], lo[3], hi[0], hi[1], hi[3], left, right)
        else:
            t = 0.5 * (left + right)
        # Stay off the ends of the bracket, where interpolation stalls.
        margin = 0.1 * width
        if t - left < margin or right - t < margin:
            t = 0.5 * (left + right)
        f, g, d = evaluate(t)
        n_eval += 1
        if not sufficient(t, f) or f >= lo[1]:
            hi = (t, f, g, d)
            continue
        if abs(d) <= -_C2 * slope:
            return t, f, g, n_eval
        if d * (hi[0] - lo[0]) >= 0:
            hi = lo
        lo = (t, f, g, d)
    if lo[0] > 0:  # sufficient decrease without the curvature condition
        return lo[0], lo[1], lo[2], n_eval
    return 0.0, loss, grad, n_eval


def minimise_lbfgs(fun, theta, *, max_iter, gtol, memory=None, ftol=1e-12):
    """Minimise ``fun`` from ``theta`` by L-BFGS, continuing ``memory``.

    Every accepted step satisfies the strong-Wolfe conditions, so the
    returned loss is never above the loss at ``theta``.

    Parameters
    ----------
    fun : callable
        ``fun(theta) -> (loss, grad)``, ``grad`` a float64 array of the shape
        of ``theta``.
    theta : ndarray of shape (n_params,)
        Starting point (not modified).
    max_iter : int
        Most iterations (line searches).
    gtol : float
        Stop when the largest absolute gradient entry is at most this.
    memory : LBFGSMemory, default=None
        Curvature pairs of an earlier call (updated in place); None starts
        with an empty memory.
    ftol : float, default=1e-12
        Stop when an iteration lowers the loss by at most ``ftol`` times
        ``max(|loss|, |previous loss|, 1)``.

    Returns
    -------
    theta : ndarray of shape (n_params,)
        The last iterate.
    loss : float
        Its loss.
    n_iter : int
        Iterations performed.
    n_eval : int
        Evaluations of ``fun``.
    """
    memory = LBFGSMemory() if memory is None else memory
    theta = np.array(theta, dtype=np.float64)
    loss, grad = fun(theta)
    loss, grad = float(loss), np.asarray(grad, dtype=np.float64)
    n_eval, n_iter = 1, 0
    if not math.isfinite(loss):
        raise ValueError("The gate's objective is not finite at its starting point.")
    while n_iter < max_iter and np.max(np.abs(grad), initial=0.0) > gtol:
        direction = memory.direction(grad)
        slope = float(grad @ direction)
        if not slope < 0:  # not a descent direction: forget the pairs
            memory.clear()
            direction = -grad
            slope = float(grad @ direction)
        # Without pairs the step is scaled to the gradient (its first entries
        # would otherwise be of the gradient's units); with pairs, 1.
        step = 1.0 if len(memory) else min(1.0, 1.0 / np.sum(np.abs(grad)))
        step, new_loss, new_grad, used = _strong_wolfe(
            fun, theta, direction, step, loss, grad, slope
        )
        n_eval += used
        n_iter += 1
        if step == 0.0:
            if not len(memory):
                break
            memory.clear()  # a stale curvature model: retry along the gradient
            continue
        s = step * direction
        new_grad = np.asarray(new_grad, dtype=np.float64)
        memory.add(s, new_grad - grad)
        theta = theta + s
        change = loss - new_loss
        loss, grad = new_loss, new_grad
        if change <= ftol * max(abs(loss), abs(loss + change), 1.0):
            break
    return theta, loss, n_iter, n_eval
