"""Responsibilities of a Dask fit: recipes evaluated in the tasks, and a bounded cache per process.

No dask array of responsibilities is kept between passes. A :class:`Recipe`
says how to compute a row block's responsibilities from the block itself: a
chain of block functions, such as the E-step from the current parameters
or an initialisation, then the re-seeding or removal of experts. Every pass
that needs them ships the recipe (a few kB) and each task evaluates it on
its own block (:class:`Block`), so that no process holds responsibilities
beyond the blocks it is working on.

What a task derives from its block's responsibilities and a later pass of
the same recipe needs again (the gate's objective, evaluated several times
per M-step) goes to a cache of its process (:meth:`Block.cache`), while the
fit's entries there and the block's responsibilities being turned into a
new one stay within ``FitSpec.budget`` bytes. A block the cache has no room
for is evaluated again by each pass, piece by piece (:meth:`Block.pieces`),
with temporaries of a few MB: results never depend on what is cached. A
fit's entries for other recipes are dropped as soon as one of its tasks
evaluates a new recipe, and all of them at its end (:func:`release`).
"""

import functools
import itertools
import threading
import uuid
from typing import NamedTuple

from ._blocks import import_dask, row_pieces, rowwise_task, run_tasks


class FitSpec(NamedTuple):
    """What the tasks of one fit share: its cache and the gate's constants."""

    fit_id: str  # unique per fit: the cache's namespace
    budget: float  # bytes a process may cache for the fit
    gate_columns: object  # ndarray of int or None (every column)
    mean: object  # (n_gate_features,) weighted mean of the gate's columns
    scale: object  # (n_gate_features,) their weighted standard deviation
    weight_total: float  # sum of the sample weights

    @classmethod
    def new(cls, budget, gate_columns, mean, scale, weight_total):
        return cls(uuid.uuid4().hex, float(budget), gate_columns, mean, scale, float(weight_total))


_KEYS = itertools.count()


class Recipe:
    """How to compute the responsibilities of any row block: a chain of block functions.

    Each step is ``func(X, y, sw, *inputs, *params) -> E`` with ``E`` of
    shape ``(n_experts + 1, rows)``: the responsibilities, then the per-row
    log-likelihood (zeros for an initialisation). The first step's
    ``inputs`` are the blocks of ``arrays`` (dask arrays aligned with the
    rows, e.g. a user's initial labels); a later step's, the previous
    step's ``E``.

    Parameters
    ----------
    n_experts : int
        Experts after the last step.
    steps : sequence of (callable, tuple)
        Block functions and their parameters.
    arrays : sequence of dask.array.Array, default=()
        ``(k, n_samples)`` arrays chunked ``((k,), rows)`` for the first step.
    """

    def __init__(self, n_experts, steps, arrays=()):
        self.n_experts = n_experts
        self.steps = tuple(steps)
        self.arrays = tuple(arrays)
        self.key = next(_KEYS)

    @classmethod
    def of_rows(cls, func, n_experts, *params, arrays=()):
        """A first step that is a row-wise function, run piece by piece (:func:`rowwise_task`)."""
        step = functools.partial(rowwise_task, func, n_experts + 1, 3 + len(arrays))
        return cls(n_experts, [(step, params)], arrays)

    def then(self, func, *params, n_experts=None, by_pieces=True):
        """This recipe followed by ``func(X, y, sw, E, *params)`` (row-wise unless ``by_pieces=False``)."""
        n_experts = self.n_experts if n_experts is None else n_experts
        step = functools.partial(rowwise_task, func, n_experts + 1, 4) if by_pieces else func
        return Recipe(n_experts, self.steps + ((step, params),), self.arrays)

    def shipped(self):
        """What the tasks receive: key, experts and steps (the arrays are inputs of the tasks)."""
        return (self.key, self.n_experts, self.steps)


class Block:
    """A row block as a task sees it: its rows, and its responsibilities on demand.

    Attributes
    ----------
    X, y, sw : ndarray or None
        The block's rows (``sw`` None for unit weights).
    index : int
        Its position among the row blocks.
    n_experts : int
        Experts of the recipe.
    spec : FitSpec
        The fit's constants.
    """

    def __init__(self, index, recipe, spec, X, y, sw, arrays):
        self.index = index
        self.key, self.n_experts, self.steps = recipe
        self.spec = spec
        self.X, self.y, self.sw = X, y, sw
        self.n_rows = X.shape[0]
        self.arrays = arrays
        self._E = None
        # A task of the fit evaluates this recipe: the fit has moved on from the others.
        _drop(lambda key: key[0] == spec.fit_id and key[1] != self.key)

    def responsibilities(self, lo=0, hi=None):
        """``(n_experts + 1, hi - lo)``: the responsibilities of rows ``lo:hi``, then their log-likelihood.

        Every step of a recipe is row-wise, so any rows can be evaluated on
        their own; the whole block's result is kept for the rest of the task.
        """
        hi = self.n_rows if hi is None else hi
        whole = lo == 0 and hi == self.n_rows
        if whole and self._E is not None:
            return self._E
        rows = slice(lo, hi)
        X, y = self.X[rows], self.y[rows]
        sw = None if self.sw is None else self.sw[rows]
        E = None
        for i, (func, params) in enumerate(self.steps):
            inputs = [a[:, rows] for a in self.arrays] if i == 0 else [E]
            E = func(X, y, sw, *inputs, *params)
        if whole:
            self._E = E
        return E

    def pieces(self, whole):
        """``(lo, hi)`` row ranges to evaluate: the block at once, or pieces of bounded memory."""
        return [(0, self.n_rows)] if whole else row_pieces(self.n_rows)

    def cached(self):
        """The block's object for this recipe in the cache, or None."""
        with _LOCK:
            entry = _CACHE.get((self.spec.fit_id, self.key, self.index))
        return None if entry is None else entry[1]

    def has_room(self, nbytes):
        """Whether the cache can take ``nbytes`` more, with the block's whole responsibilities alive meanwhile."""
        nbytes += (self.n_experts + 1) * self.n_rows * 8
        with _LOCK:
            used = sum(n for key, (n, _) in _CACHE.items() if key[0] == self.spec.fit_id)
        return used + nbytes <= self.spec.budget

    def cache(self, value, nbytes):
        """Keep ``value`` as the block's object for this recipe (if it fits in the budget)."""
        _store((self.spec.fit_id, self.key, self.index), value, nbytes, self.spec.budget)


def _run_block(func, index, n_arrays, X, y, sw, *rest):
    arrays, (recipe, spec, *params) = rest[:n_arrays], rest[n_arrays:]
    return func(Block(index, recipe, spec, X, y, sw, arrays), *params)


def reduce_resp(func, data, recipe, spec, *params, per_block=None):
    """``func(block, *params)`` on every row block, ``block`` a :class:`Block` of ``recipe``.

    :func:`~skmoe._dask._blocks.reduce_blocks` for passes that need the
    responsibilities: the same ``data``, ``params``, ``per_block`` and
    result (one small result per block, in row order); the tasks also
    receive the recipe, the blocks of its arrays and the fit's ``spec``.
    """
    rows = [
        (func, index, len(recipe.arrays), *columns)
        for index, columns in enumerate(data.blocks(*recipe.arrays))
    ]
    return run_tasks(_run_block, rows, (recipe.shipped(), spec, *params), per_block)


# ----------------------------------------------------------------------
# The cache of each process (the client's too, under a local scheduler)

_CACHE = {}  # (fit_id, recipe key, block index) -> (nbytes, object)
_LOCK = threading.Lock()


def _drop(condition):
    with _LOCK:
        for key in [key for key in _CACHE if condition(key)]:
            del _CACHE[key]


def _store(key, value, nbytes, budget):
    """Keep ``value`` if it fits in ``budget`` bytes, after dropping what other fits left."""
    with _LOCK:
        used = sum(entry[0] for entry in _CACHE.values())
        for other in [k for k in _CACHE if k[0] != key[0]]:
            if used + nbytes <= budget:
                break
            used -= _CACHE.pop(other)[0]
        if used + nbytes <= budget:
            _CACHE[key] = (nbytes, value)


def cached_bytes(fit_id=None):
    """Bytes this process caches (for ``fit_id``, or for every fit)."""
    with _LOCK:
        return sum(n for key, (n, _) in _CACHE.items() if fit_id is None or key[0] == fit_id)


def _drop_fit(fit_id):
    _drop(lambda key: key[0] == fit_id)


def release(fit_id):
    """Drop a fit's cache entries, in this process and on the workers of a distributed client."""
    _drop_fit(fit_id)
    dask, _ = import_dask()
    client = getattr(dask.base.get_scheduler(), "__self__", None)
    if type(client).__name__ == "Client" and type(client).__module__.startswith("distributed"):
        client.run(_drop_fit, fit_id)
