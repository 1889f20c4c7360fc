"""False-regression rate and power of promptgauge's pass/fail regression gate.

Every cell simulates paired pass/fail rows with ``simulate_paired_binary``
(rows vary in difficulty; the two variants agree on a given fraction of rows
when there is no real difference) and counts how often
``no_regression(compare_paired(a, b, kind="binary"))`` flags a regression:
under A/A (drop 0) that is the false-regression rate, which must stay <= alpha;
under a real drop (b fails `drop * n` more rows, all rows a passed) it is the
power.

    PYTHONPATH=src python benchmarks/stats_power.py [--sims 2000] [--seed 20240601]
"""

import argparse
import time

import numpy as np

from promptgauge.stats import compare_paired, no_regression, simulate_paired_binary

SIZES = (100, 200, 400, 1000)
AGREEMENTS = (0.95, 0.90, 0.85, 0.80)
DROPS = (0.0, 0.02, 0.05, 0.10)


def flag_rate(n, agreement, drop, *, sims, pass_rate, alpha, max_drop, rng) -> float:
    flagged = 0
    for _ in range(sims):
        a, b = simulate_paired_binary(n, pass_rate=pass_rate, agreement=agreement, drop=drop, seed=rng)
        flagged += not no_regression(compare_paired(a, b, kind="binary"), max_drop=max_drop, alpha=alpha)
    return flagged / sims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulations per cell")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--max-drop", type=float, default=0.0)
    parser.add_argument("--pass-rate", type=float, default=0.75)
    args = parser.parse_args()

    print(
        f"seed={args.seed} sims/cell={args.sims} alpha={args.alpha} max_drop={args.max_drop} "
        f"pass_rate={args.pass_rate} test=mcnemar-exact"
    )
    se = np.sqrt(args.alpha * (1 - args.alpha) / args.sims)
    print(f"Monte Carlo standard error: {se:.4f} at rate alpha, <= {0.5 / np.sqrt(args.sims):.4f} anywhere")
    header = f"{'agreement':>9} {'n':>5} | {'A/A false regr.':>15} | " + " ".join(
        f"{f'drop {d:.0%}':>9}" for d in DROPS[1:]
    )
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    for i, agreement in enumerate(AGREEMENTS):
        for j, n in enumerate(SIZES):
            rates = [
                flag_rate(
                    n,
                    agreement,
                    drop,
                    sims=args.sims,
                    pass_rate=args.pass_rate,
                    alpha=args.alpha,
                    max_drop=args.max_drop,
                    rng=np.random.default_rng([args.seed, i, j, k]),
                )
                for k, drop in enumerate(DROPS)
            ]
            print(f"{agreement:>9.0%} {n:>5} | {rates[0]:>15.4f} | " + " ".join(f"{r:>9.3f}" for r in rates[1:]))
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
