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

    The pairs are rows of two arrays, with their products ``s_i . y_j``
    kept up to date as pairs come and go, so that :meth:`direction` costs
    four matrix-vector products and a few scalar loops over the pairs
    instead of the two-loop recursion's ``4 m`` vector operations (measured
    25 against 50 us at 10 pairs of 147 parameters: at 800 rows a quarter
    of a gate M-step was the optimiser's own).

    Parameters
    ----------
    size : int, default=10
        Most pairs kept.

    Attributes
    ----------
    s, y : list of ndarray
        Steps and gradient changes (views of the stored rows).
    """

    def __init__(self, size=10):
        self.size = size
        self._S = self._Y = None  # (size, n_params) rows, the first len(self) used
        self._SY = np.zeros((size, size))  # s_i . y_j of the stored pairs
        self._yy = 0.0  # y . y of the newest pair
        self._n = 0

    def __len__(self):
        return self._n

    @property
    def s(self):
        return [self._S[i] for i in range(self._n)]

    @property
    def y(self):
        return [self._Y[i] for i in range(self._n)]

    def add(self, s, y):
        """Store a pair when its curvature ``s . y`` is safely positive; return whether stored."""
        sy, yy = float(s @ y), float(y @ y)
        if not sy > 1e-10 * yy:
            return False
        if self._S is None or self._S.shape[1] != s.shape[0]:
            self._S, self._Y = np.empty((self.size, s.shape[0])), np.empty((self.size, s.shape[0]))
            self._n = 0
        n = self._n
        if n == self.size:  # drop the oldest pair
            self._S[:-1], self._Y[:-1] = self._S[1:].copy(), self._Y[1:].copy()
            self._SY[:-1, :-1] = self._SY[1:, 1:].copy()
            n -= 1
        self._S[n], self._Y[n] = s, y
        self._SY[n, :n] = self._Y[:n] @ s  # s_new . y_j
        self._SY[:n, n] = self._S[:n] @ y  # s_i . y_new
        self._SY[n, n] = sy
        self._yy = yy
        self._n = n + 1
        return True

    def clear(self):
        """Forget every pair."""
        self._n = 0

    def direction(self, grad):
        """``-H grad``: the two-loop recursion of L-BFGS (``-grad`` without pairs).

        The same recursion (Nocedal & Wright, Algorithm 7.4), its vector
        updates gathered into matrix products: the first loop's
        ``alpha_i = rho_i s_i . q_i``, with ``q_i = -grad - sum_{j>i} alpha_j
        y_j``, is a triangular system in the products ``s_i . y_j``; so is
        the second loop's ``beta_i``.
        """
        m = self._n
        if m == 0:
            return -grad
        S, Y = self._S[:m], self._Y[:m]
        SY = self._SY[:m, :m].tolist()
        rho = [1.0 / SY[i][i] for i in range(m)]
        Sg = (S @ grad).tolist()
        alpha = [0.0] * m
        for i in range(m - 1, -1, -1):
            row, value = SY[i], -Sg[i]
            for j in range(i + 1, m):
                value -= alpha[j] * row[j]
            alpha[i] = rho[i] * value
        r = (-grad - np.array(alpha) @ Y) * (SY[m - 1][m - 1] / self._yy)
        Yr = (Y @ r).tolist()
        coef = [0.0] * m  # alpha_i - beta_i
        for i in range(m):
            value = Yr[i]
            for j in range(i):
                value += coef[j] * SY[j][i]
            coef[i] = alpha[i] - rho[i] * value
        return r + np.array(coef) @ S


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

    Nocedal & Wright's Algorithms 3.5 (bracketing) and 3.6 (zoom) in one
    loop: ``lo`` is the point of lowest loss satisfying sufficient decrease,
    and once ``hi`` is set, ``[lo, hi]`` brackets a point satisfying both
    conditions, shrunk by safeguarded cubic interpolation.

    Returns ``(step, loss, grad, n_eval)`` of the accepted point, or
    ``(0.0, loss, grad, n_eval)`` when no step lowered the objective.
    """
    lo, hi = (0.0, loss, grad, slope), None
    largest = np.abs(direction).max(initial=0.0)
    t, n_eval = step, 0
    while n_eval < _MAX_LINE_SEARCH:
        new_loss, new_grad = fun(theta + t * direction)
        new_loss = float(new_loss)
        n_eval += 1
        finite = math.isfinite(new_loss)
        point = (t, new_loss, new_grad, float(new_grad @ direction) if finite else math.nan)
        if not (finite and new_loss <= loss + _C1 * t * slope) or new_loss >= lo[1]:
            hi = point
        elif abs(point[3]) <= -_C2 * slope:
            return t, new_loss, new_grad, n_eval
        elif hi is None and point[3] < 0:  # still descending: extrapolate
            previous, lo = lo, point
            t = _cubic_minimiser(previous[0], previous[1], previous[3], t, new_loss, point[3],
                                 t + 0.01 * (t - previous[0]), 10 * t)
            continue
        else:
            if hi is None or point[3] * (hi[0] - lo[0]) >= 0:
                hi = lo
            lo = point
        width = abs(hi[0] - lo[0])
        if width * largest < 1e-12 * max(1.0, np.abs(theta).max(initial=0.0)):
            break
        left, right = min(lo[0], hi[0]), max(lo[0], hi[0])
        if math.isfinite(hi[1]) and math.isfinite(hi[3]):
            t = _cubic_minimiser(lo[0], lo[1], lo[3], hi[0], hi[1], hi[3], left, right)
        else:
            t = 0.5 * (left + right)
        # Stay off the ends of the bracket, where interpolation stalls.
        if min(t - left, right - t) < 0.1 * width:
            t = 0.5 * (left + right)
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
    while n_iter < max_iter and np.abs(grad).max(initial=0.0) > gtol:
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
