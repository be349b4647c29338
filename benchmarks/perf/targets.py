"""Ratios of the EM benchmark, the issue's targets and the tables that judge them.

Columns of the ratio tables
---------------------------
M/GEMM
    expert M / GEMM floor.
LR/M
    k x LR / expert M: the speed-up of the batched M-step.
iter/GEMM
    EM iter / GEMM floor.
iter/GMM
    warm fit / GMM iter (the same work on both sides: 2 E-steps, 1 M-step,
    validation).
gate/LogReg
    gate M / LogReg.

The summary table gives, for each target of the issue, the worst ratio over
the configurations with ``n >= 1e5`` that the target concerns (and how many
of them were measured), and PASS (every one meets the target) or MISS.
"""

from .report import fmt_ms, fmt_n, fmt_ratio

PASS_MIN_N = 100_000  # targets are judged on n >= 1e5 only

TIME_COLUMNS = [
    ("gemm_floor", "GEMM floor"),
    ("expert_m", "expert M"),
    ("e_step", "E-step"),
    ("em_iter", "EM iter"),
    ("warm_fit", "warm fit"),
    ("gmm_iter", "GMM iter"),
    ("gate_m", "gate M"),
    ("logreg", "LogReg"),
    ("separate_lr", "k x LR"),
    ("fit_per_iter", "fit/iter"),
]
RATIO_COLUMNS = [
    ("m_over_gemm", "M/GEMM"),
    ("lr_over_m", "LR/M"),
    ("iter_over_gemm", "iter/GEMM"),
    ("iter_over_gmm", "iter/GMM"),
    ("gate_over_logreg", "gate/LogReg"),
]
# (issue row, measured quantity, target text, ratio key, comparison, bound, applies to (d, k))
TARGETS = [
    ("expert M-step, linear experts", "expert M / GEMM floor", "<= 2", "m_over_gemm", "le", 2.0,
     lambda d, k: True),
    ("expert M-step, linear experts", "k x LR / expert M (speed-up)", ">= 10", "lr_over_m", "ge",
     10.0, lambda d, k: True),
    ("one EM iteration, d=50", "EM iter / GEMM floor", "<= 3", "iter_over_gemm", "le", 3.0,
     lambda d, k: d == 50),
    ("one EM iteration, d=50", "warm fit / GMM iter", "< 1", "iter_over_gmm", "lt", 1.0,
     lambda d, k: d == 50),
    ("one EM iteration, d=10", "warm fit / GMM iter", "<= 1.5", "iter_over_gmm", "le", 1.5,
     lambda d, k: d == 10),
    ("gate M-step, 16 experts", "gate M / LogReg", "<= 0.2", "gate_over_logreg", "le", 0.2,
     lambda d, k: k == 16),
]
MEMORY_TARGET = 3.0


def ratios(r):
    def div(a, b):
        return r[a] / r[b] if r.get(a) is not None and r.get(b) is not None else None

    return {
        "m_over_gemm": div("expert_m", "gemm_floor"),
        "lr_over_m": div("separate_lr", "expert_m"),
        "iter_over_gemm": div("em_iter", "gemm_floor"),
        "iter_over_gmm": div("warm_fit", "gmm_iter"),
        "gate_over_logreg": div("gate_m", "logreg"),
    }


def report_size(report, n, cases):
    repeat = cases[0].repeat
    rows = [c.results for c in cases]
    report.heading(f"n = {fmt_n(n)}: times in ms (best of {repeat}; fit/iter: one fit)")
    report.table(
        ["d", "k"] + [label for _, label in TIME_COLUMNS] + ["gate it", "LR it"],
        [[r["d"], r["k"]] + [fmt_ms(r[key]) for key, _ in TIME_COLUMNS]
         + [r.get("gate_iter", "-"), r.get("logreg_iter", "-")] for r in rows],
    )
    skipped = [f"{key} at d={c.d}, k={c.k} (predicted {s:.0f} s)"
               for c in cases for key, s in c.skipped.items()]
    if skipped:
        report.line("skipped to stay within --budget: " + "; ".join(skipped))
    report.heading(f"n = {fmt_n(n)}: ratios")
    report.table(
        ["d", "k"] + [label for _, label in RATIO_COLUMNS],
        [[r["d"], r["k"]] + [fmt_ratio(r[key]) for key, _ in RATIO_COLUMNS] for r in rows],
    )


def _passes(value, op, bound):
    return {"le": value <= bound, "lt": value < bound, "ge": value >= bound}[op]


def summary_rows(results, memory):
    rows = []
    for what, measured, target, key, op, bound, applies in TARGETS:
        pool = [r for r in results if r["n"] >= PASS_MIN_N and applies(r["d"], r["k"])]
        done = [r for r in pool if r[key] is not None]
        if not done:
            rows.append([what, measured, target, "-", "-", f"0/{len(pool)}", "n/a"])
            continue
        pick = min if op == "ge" else max
        worst = pick(done, key=lambda r: r[key])
        ok = all(_passes(r[key], op, bound) for r in done)
        where = f"n={fmt_n(worst['n'])}, d={worst['d']}, k={worst['k']}"
        rows.append([what, measured, target, fmt_ratio(worst[key]), where,
                     f"{len(done)}/{len(pool)}", "PASS" if ok else "MISS"])
    if memory is None:
        rows.append(["peak memory of fit", "(peak RSS - baseline) / X bytes",
                     f"<= {MEMORY_TARGET:g}", "-", "not run (--memory)", "-", "n/a"])
    else:
        value = memory["rusage"]["ratio"]
        where = f"n={fmt_n(memory['n'])}, d={memory['d']}, k={memory['k']}"
        status = ("PASS" if value <= MEMORY_TARGET else "MISS") if memory["n"] >= PASS_MIN_N else "n/a"
        rows.append(["peak memory of fit", "(peak RSS - baseline) / X bytes",
                     f"<= {MEMORY_TARGET:g}", f"{value:.2f}", where, "1/1", status])
    return rows


def report_summary(report, results, memory):
    report.heading("Summary: worst ratio over n >= 1e5 against the issue's targets")
    report.table(["what", "measured", "target", "worst", "at", "measured/configs", "status"],
                 summary_rows(results, memory))
