"""Running the measurements size by size under a time budget.

Time budget (``--budget``, default 540 s): measurements run size by size; at
each size the measurements are taken one kind at a time over all
configurations, largest configuration first, in the order of the columns
below (the full fit last). Before each measurement its time is predicted from
the same measurement at the previous size (linear in ``n``, scaled by the
repeat count); when the prediction, times 1.5, would overrun the budget the
measurement is skipped and shown as ``skip``. Measurements at the first size
are always taken. ``--budget 0`` turns this off.
"""

import sys
import time

from .data import Case
from .pieces import MEASUREMENTS
from .report import fmt_n
from .targets import ratios

BUDGET_SAFETY = 1.5  # predicted times are multiplied by this before the budget check


def predict_seconds(case, previous, key, extra, once):
    """Time of measurement ``key`` on ``case`` predicted from the same (d, k) at a smaller n."""
    before = previous.get((case.d, case.k))
    if before is None:
        return None
    seconds = before.spent.get(key, before.skipped.get(key))  # skipped there: its prediction
    calls_now = 1 if once else case.repeat + extra
    calls_before = 1 if once else before.repeat + extra
    return seconds * (case.n / before.n) * calls_now / calls_before


def run_size(n, configs, repeat, deadline, previous, verbose=False):
    """Every measurement of every (d, k) at one n; returns the Cases (data released)."""
    cases = [Case(n, d, k, repeat) for d, k in configs]
    largest_first = sorted(cases, key=lambda c: (c.d * c.k, c.d), reverse=True)
    for key, func, extra, once in MEASUREMENTS:
        for case in largest_first:
            predicted = predict_seconds(case, previous, key, extra, once)
            if (deadline is not None and predicted is not None
                    and time.perf_counter() + BUDGET_SAFETY * predicted > deadline):
                case.skipped[key] = predicted
                case.results[key] = None
                continue
            start = time.perf_counter()
            case.results.update(func(case, repeat))
            case.spent[key] = time.perf_counter() - start
            if verbose:
                print(f"  [n={fmt_n(n)} d={case.d} k={case.k} {key}: {case.spent[key]:.1f} s]",
                      file=sys.stderr, flush=True)
    for case in cases:
        case.results.update(ratios(case.results))
        case.release()
    return cases
