"""Benchmark of skmoe's EM with linear experts against scikit-learn baselines.

Usage::

    python benchmarks/run.py                 # n in {1e4, 1e5, 1e6}, d in {10, 50}, k in {4, 16}
    python benchmarks/run.py --quick         # n in {1e4, 1e5} only
    python benchmarks/run.py --sizes 1e4 --features 10 --experts 4 --repeat 5
    python benchmarks/run.py --quick --memory --output results.md
    python benchmarks/run.py --threads       # the measurement behind the thread rule

For every configuration ``(n, d, k)`` (samples, features, experts) one data
set is drawn (:mod:`perf.data`) and every measurement (:mod:`perf.pieces`,
one function each, calling the functions the estimator runs) is taken on it,
in one process, size by size under a time budget (:mod:`perf.schedule`).
The tables of times and ratios and the summary against the performance
issue's targets come from :mod:`perf.targets`; ``--memory`` adds the peak
memory of a fit (:mod:`perf.memory`); a correctness check closes the report
(:mod:`perf.correctness`). ``--threads`` instead measures what a second
thread costs and gains on a pass of the EM loop (:mod:`perf.threads`).
Every module's docstring says exactly what it measures; ``benchmarks/README.md``
collects them.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the perf package beside this file

from perf.correctness import correctness_rows, report_correctness
from perf.memory import measure_memory, memory_child, report_memory
from perf.report import Report, fmt_n, report_environment
from perf.schedule import run_size
from perf.targets import report_size, report_summary
from sklearn.exceptions import ConvergenceWarning

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
DEFAULT_FEATURES = (10, 50)
DEFAULT_EXPERTS = (4, 16)
DEFAULT_BUDGET = 540.0  # seconds
LARGE_N = 1_000_000  # from here on the default repeat count is 1


def report_header(report, args, sizes, budget):
    report_environment(report)
    repeat = args.repeat if args.repeat is not None else f"3 (1 for n >= {fmt_n(LARGE_N)})"
    report.line(
        f"sizes {[fmt_n(n) for n in sizes]}, features {args.features}, experts {args.experts}, "
        f"repeat {repeat}, budget {'none' if budget is None else f'{budget:g} s'}"
    )


def parse_ints(text):
    return [int(float(v)) for v in text.split(",") if v.strip()]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_ints, default=None,
                        help="comma-separated sample counts (default 1e4,1e5,1e6)")
    parser.add_argument("--features", type=parse_ints, default=list(DEFAULT_FEATURES),
                        help="comma-separated feature counts (default 10,50)")
    parser.add_argument("--experts", type=parse_ints, default=list(DEFAULT_EXPERTS),
                        help="comma-separated expert counts (default 4,16)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="best-of repeat count (default 3, and 1 for n >= 1e6)")
    parser.add_argument("--quick", action="store_true", help="n in {1e4, 1e5} only")
    parser.add_argument("--memory", action="store_true",
                        help="also measure the peak memory of fit (subprocesses)")
    parser.add_argument("--output", metavar="FILE.md", help="also write the tables as markdown")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                        help="seconds; skip measurements predicted to overrun it (0: no limit)")
    parser.add_argument("--threads", action="store_true",
                        help="measure the thread rule (perf.threads) instead of the EM benchmark")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the time of each measurement to stderr as it ends")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    return parser


def repeat_for(n, args):
    if args.repeat is not None:
        return max(1, args.repeat)
    return 1 if n >= LARGE_N else 3


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    if args.threads:
        from perf.threads import main as threads_main

        return threads_main(output=args.output)
    start = time.perf_counter()
    sizes = sorted(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
    if args.quick:
        sizes = [n for n in sizes if n <= max(QUICK_SIZES)]
    budget = args.budget if args.budget > 0 else None
    report = Report()
    report_header(report, args, sizes, budget)

    memory = None
    if args.memory:  # first, while this process is small; outside the budget
        memory = measure_memory(max(sizes), max(args.features), max(args.experts))
        report_memory(report, memory)
    budget_start = time.perf_counter()
    checks = correctness_rows()  # printed last

    deadline = None if budget is None else budget_start + budget
    configs = [(d, k) for d in args.features for k in args.experts]
    results, previous = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for n in sizes:
            cases = run_size(n, configs, repeat_for(n, args), deadline, previous, args.verbose)
            report_size(report, n, cases)
            results += [c.results for c in cases]
            previous = {(c.d, c.k): c for c in cases}

    report_summary(report, results, memory)
    report_correctness(report, checks)
    report.line()
    report.line(f"total wall time {time.perf_counter() - start:.1f} s")
    report.write(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
