"""Pass / fail / inconclusive of a pass/fail no_regression rule, and what the MDE costs.

Every cell simulates paired pass/fail rows with ``simulate_paired_binary`` (pass rate 0.75) and decides the
rule as the gate does (``stats.no_regression`` for fail; ``power.detectability`` for pass vs. inconclusive),
under A/A (drop 0) and under a real drop of ``max_drop``. ``rows needed`` is what ``power.rows_needed`` states
at the true agreement. Time: ``power.detectability`` against ``stats.compare_paired`` on the same rows, as a
ratio measured in this run.

    PYTHONPATH=src python benchmarks/gate_outcomes.py [--sims 300] [--max-drop 0.05]
"""

import argparse
import time

from promptgauge import power, stats
from promptgauge.gate import regression_outcome

AGREEMENTS = (0.95, 0.90, 0.80)
FRACTIONS = (0.5, 1.0, 2.0)  # n as a multiple of the rows needed


def cell(n, agreement, drop, sims, max_drop, seed):
    counts = {"pass": 0, "fail": 0, "inconclusive": 0}
    t_test = t_mde = 0.0
    for s in range(sims):
        a, b = stats.simulate_paired_binary(n, agreement=agreement, drop=drop, seed=seed + s)
        t0 = time.perf_counter()
        pc = stats.compare_paired(a, b, kind="binary")
        t1 = time.perf_counter()
        det = power.detectability(a, b, kind="binary")
        t2 = time.perf_counter()
        t_test, t_mde = t_test + t1 - t0, t_mde + t2 - t1
        counts[regression_outcome(stats.no_regression(pc, max_drop=max_drop).ok, det, max_drop)] += 1
    return {k: v / sims for k, v in counts.items()}, t_mde / max(t_test, 1e-12), 1000 * t_mde / sims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=300)
    parser.add_argument("--max-drop", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"sims/cell={args.sims} max_drop={args.max_drop} alpha=0.05 power=0.8 pass_rate=0.75")
    print(f"{'agreement':>9} {'needed':>7} {'n':>6} | {'A/A pass/fail/inc':>19} | {'drop pass/fail/inc':>19} | "
          f"{'MDE / test time':>15} {'MDE ms':>7}")
    for agreement in AGREEMENTS:
        need, _ = power.rows_needed(power.Detectability("binary", 1, 1 - agreement, 0.05, 0.8, None), args.max_drop)
        for f in FRACTIONS:
            n = max(2, round(need * f))
            aa, r1, ms1 = cell(n, agreement, 0.0, args.sims, args.max_drop, args.seed)
            dr, r2, ms2 = cell(n, agreement, args.max_drop, args.sims, args.max_drop, args.seed + 10**6)
            fmt = "{pass:.2f}/{fail:.2f}/{inconclusive:.2f}"
            print(f"{agreement:>9.2f} {need:>7} {n:>6} | {fmt.format(**aa):>19} | {fmt.format(**dr):>19} | "
                  f"{(r1 + r2) / 2:>14.1f}x {(ms1 + ms2) / 2:>7.1f}")


if __name__ == "__main__":
    main()
