"""Process wall of the example suite's warm re-run, as a user times the command (issue 13, part a).

    PYTHONPATH=src python benchmarks/process.py [--dir .] [--runs 7] [--profile]

In ``--dir`` (default: the repository root, whose ``promptgauge.yaml`` is the shipped example) it runs
``python -m promptgauge run --no-progress`` once to warm the cache (cold: the embedded model answers every
call; slow on a busy machine), then ``--runs`` more times with every model call a cache hit, and prints
each run's process wall, their median and best (``PYTHONDONTWRITEBYTECODE`` is unset, as for an installed
package whose bytecode pip compiled). Alongside, the floor a run cannot go under: a bare
``python -c pass`` and ``python -c "import promptgauge.api"`` (best of ``--runs``), so the share of the
wall spent importing is visible. ``--profile`` adds the top 25 functions of one warm run by cumulative
time (cProfile, in process). The machine is shared: the median and the best are both printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wall(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode not in (0, 1):  # 1: the example's gate may fail; anything else is a broken run
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=REPO)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    # As a user runs it: an installed package has its bytecode compiled (pip does it); with
    # PYTHONDONTWRITEBYTECODE set, every process would compile promptgauge's ~90 modules again (~0.3 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    run = ["-m", "promptgauge", "run", "--no-progress"]
    print(f"warming the cache in {a.dir} ...", flush=True)
    cold = wall(run, a.dir, env)
    warm = [wall(run, a.dir, env) for _ in range(a.runs)]
    bare = min(wall(["-c", "pass"], a.dir, env) for _ in range(a.runs))
    imports = min(wall(["-c", "import promptgauge.api"], a.dir, env) for _ in range(a.runs))
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"first run (warms the cache):   {cold:7.2f} s")
    print("warm re-runs:                  " + "  ".join(f"{w:.2f}" for w in warm) + " s")
    print(f"warm re-run median / best:     {statistics.median(warm):7.2f} s / {min(warm):.2f} s   (target <= 0.5 s)")
    print(f"python -c pass (best):         {bare:7.2f} s")
    print(f"import promptgauge.api (best): {imports:7.2f} s   ({imports / min(warm):.0%} of the best warm run)")
    if a.profile:
        out = a.dir / ".promptgauge" / "warm.prof"
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "promptgauge", "run", "--no-progress"],
                       cwd=a.dir, env=env, capture_output=True)
        import pstats

        pstats.Stats(str(out)).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
