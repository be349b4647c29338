"""Whole fits against R's flexmix: CPU seconds and held-out log-likelihood, quiet and busy.

Usage::

    python benchmarks/flexmix_speed.py                    # n = 2,000, 20,000, 200,000 (flexmix: minutes)
    python benchmarks/flexmix_speed.py --sizes 2000,20000 --repeat 5
    python benchmarks/flexmix_speed.py --no-flexmix       # skmoe only
    python benchmarks/flexmix_speed.py --write-data DIR   # the data sets as CSV, then exit

Needs ``Rscript`` with flexmix (``apt-get install -y r-base-core
r-cran-flexmix``), never a dependency of skmoe or its CI.

The model and data are in :mod:`perf.flexmix`: flexmix's own model (Gaussian
linear experts, ``FLXPmultinom`` gate on the same 5 columns, 3 restarts each,
best by training log-likelihood, no gate penalty, the same relative stopping
rule with flexmix's default tolerance 1e-6 and 200 iterations at most) on
``make_gated_regression`` data (d=5, 3 experts, noise 0.5), with 20,000
held-out rows. Everything runs twice in one run of the script: on the
machine as it is ("quiet": nothing started by the script) and with one busy
neighbour, a spinning Python loop in a subprocess started before and
stopped after the busy runs (:class:`perf.cpu.BusyNeighbour`). The load
average at each row is printed: on a shared machine "quiet" is only as quiet
as the others let it be.

Columns: flexmix's CPU seconds (R's ``system.time``, user + system, of the
``stepFlexmix`` call; run once: at n=200,000 it takes minutes); skmoe's CPU
seconds (``time.process_time`` of ``fit``, every thread, best of
``--repeat``), with its default threads and inside
``threadpool_limits(1)``; their ratio; the held-out mean log-likelihood of
both. Targets (the performance issue): skmoe >= 50x less CPU than flexmix at
every n, quiet and busy; busy-run CPU within 1.5x of the quiet run; held-out
log-likelihood within 0.001 per sample of flexmix's or better. Last,
``GridSearchCV(n_jobs=2)`` over 8 candidates at n=20,000 against
``n_jobs=1`` (:mod:`perf.nested`): the wall time should not grow.
"""

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the perf package beside this file

from perf.cpu import BusyNeighbour, load_average
from perf.flexmix import N_TEST, flexmix_fit, held_out, make_data, skmoe_fit
from perf.nested import grid_search_wall
from perf.report import Report, report_environment
from perf.rscript import write_csv
from threadpoolctl import threadpool_limits

SIZES = (2_000, 20_000, 200_000)
CPU_TARGET = 50.0
BUSY_TARGET = 1.5
LOGLIK_TARGET = -1e-3


def parse_ints(text):
    return [int(float(v)) for v in text.split(",") if v.strip()]


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=parse_ints, default=list(SIZES))
    parser.add_argument("--repeat", type=int, default=3, help="best-of count of the skmoe fits")
    parser.add_argument("--no-flexmix", action="store_true", help="skmoe only")
    parser.add_argument("--flexmix-busy-max-n", type=int, default=20_000,
                        help="largest n whose flexmix fit is repeated with the busy neighbour "
                             "(larger n reuse the quiet run: flexmix is single-threaded)")
    parser.add_argument("--no-grid", action="store_true", help="skip the GridSearchCV timing")
    parser.add_argument("--grid-repeat", type=int, default=2,
                        help="alternating runs of n_jobs=1 and n_jobs=2 (best of)")
    parser.add_argument("--write-data", metavar="DIR", help="write train/test CSVs and exit")
    parser.add_argument("--output", metavar="FILE.md", help="also write the tables as markdown")
    return parser


def run_condition(busy, sizes, args, flexmix_quiet):
    rows = []
    with BusyNeighbour(active=busy):
        for n in sizes:
            X, y, X_test, y_test = make_data(n)
            theirs = None
            if not args.no_flexmix:
                if busy and n > args.flexmix_busy_max_n and n in flexmix_quiet:
                    theirs = dict(flexmix_quiet[n], reused=True)
                else:
                    theirs = flexmix_fit(X, y)
                    theirs["held_out"] = held_out(theirs["params"], X_test, y_test)
                    if not busy:
                        flexmix_quiet[n] = theirs
            ours = skmoe_fit(X, y, repeat=args.repeat)
            ours["held_out"] = held_out(ours["params"], X_test, y_test)
            check = float(ours["model"].log_prob(X_test, y_test).mean())
            assert abs(check - ours["held_out"]) < 1e-9, (check, ours["held_out"])
            with threadpool_limits(limits=1):
                one = skmoe_fit(X, y, repeat=args.repeat)
            rows.append({"n": n, "busy": busy, "load": load_average(), "flexmix": theirs,
                         "skmoe": ours, "skmoe_1": one})
            print(f"  [{'busy' if busy else 'quiet'} n={n}: skmoe {ours['cpu']:.3f} s"
                  + ("" if theirs is None else f", flexmix {theirs['cpu']:.2f} s") + "]",
                  file=sys.stderr, flush=True)
    return rows


def fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def report_rows(report, rows):
    report.table(
        ["n", "run", "load", "flexmix CPU s", "skmoe CPU s", "skmoe 1-thread CPU s", "flexmix / skmoe",
         "flexmix held-out", "skmoe held-out", "skmoe - flexmix", "iter flexmix / skmoe"],
        [[f"{r['n']:,}", ("busy" if r["busy"] else "quiet"), f"{r['load']:.1f}",
          "-" if r["flexmix"] is None else fmt(r["flexmix"]["cpu"], 2)
          + (" (quiet run)" if r["flexmix"].get("reused") else ""),
          fmt(r["skmoe"]["cpu"]), fmt(r["skmoe_1"]["cpu"]),
          "-" if r["flexmix"] is None else f"{r['flexmix']['cpu'] / r['skmoe']['cpu']:.1f}",
          "-" if r["flexmix"] is None else fmt(r["flexmix"]["held_out"], 5),
          fmt(r["skmoe"]["held_out"], 5),
          "-" if r["flexmix"] is None else f"{r['skmoe']['held_out'] - r['flexmix']['held_out']:+.5f}",
          ("-" if r["flexmix"] is None else str(r["flexmix"]["iter"])) + f" / {r['skmoe']['iter']}"]
         for r in rows],
    )


def report_targets(report, rows):
    quiet = {r["n"]: r for r in rows if not r["busy"]}
    table = []
    for r in rows:
        cond = "busy" if r["busy"] else "quiet"
        if r["flexmix"] is not None:
            ratio = r["flexmix"]["cpu"] / r["skmoe"]["cpu"]
            table.append([f"{r['n']:,}", cond, "flexmix CPU / skmoe CPU", f">= {CPU_TARGET:g}",
                          f"{ratio:.1f}", "PASS" if ratio >= CPU_TARGET else "MISS"])
            diff = r["skmoe"]["held_out"] - r["flexmix"]["held_out"]
            table.append([f"{r['n']:,}", cond, "held-out log-lik, skmoe - flexmix", ">= -0.001",
                          f"{diff:+.5f}", "PASS" if diff >= LOGLIK_TARGET else "MISS"])
        if r["busy"] and r["n"] in quiet:
            ratio = r["skmoe"]["cpu"] / quiet[r["n"]]["skmoe"]["cpu"]
            table.append([f"{r['n']:,}", cond, "skmoe CPU busy / quiet", f"<= {BUSY_TARGET:g}",
                          f"{ratio:.2f}", "PASS" if ratio <= BUSY_TARGET else "MISS"])
    report.table(["n", "run", "measured", "target", "value", "status"], table)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.write_data:
        out = Path(args.write_data)
        out.mkdir(parents=True, exist_ok=True)
        for n in args.sizes:
            X, y, X_test, y_test = make_data(n)
            write_csv(out / f"train_{n}.csv", X, y)
            write_csv(out / f"test_{n}.csv", X_test, y_test)
        print(f"wrote {2 * len(args.sizes)} files to {out}")
        return 0
    if not args.no_flexmix and shutil.which("Rscript") is None:
        print("Rscript not found: install R and flexmix, or pass --no-flexmix", file=sys.stderr)
        return 1
    report = Report()
    report_environment(report)
    report.line(f"sizes {args.sizes}, {N_TEST:,} held-out rows, skmoe best of {args.repeat}")
    flexmix_quiet, rows = {}, []
    for busy in (False, True):
        rows += run_condition(busy, args.sizes, args, flexmix_quiet)
    report.heading("Whole fits: CPU seconds and held-out mean log-likelihood")
    report_rows(report, rows)
    report.heading("Targets")
    report_targets(report, rows)
    if not args.no_grid:
        report.heading("GridSearchCV over 8 candidates, 3-fold, n=20,000: wall seconds")
        walls = {1: [], 2: []}
        for _ in range(max(1, args.grid_repeat)):
            for n_jobs in (1, 2):
                walls[n_jobs].append(grid_search_wall(n_jobs)[0])
        report.table(
            ["n_jobs", "wall s (best)", "wall s (all runs)", "load after"],
            [[j, f"{min(w):.1f}", ", ".join(f"{v:.1f}" for v in w), f"{load_average():.1f}"]
             for j, w in walls.items()],
        )
        ratio = min(walls[2]) / min(walls[1])
        report.line(f"n_jobs=2 / n_jobs=1: {ratio:.2f} (target <= 1: {'PASS' if ratio <= 1 else 'MISS'})")
    report.write(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
