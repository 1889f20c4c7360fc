"""The statistics of the example suite's comparison: before (scipy) vs. after (numpy), in one run.

    PYTHONPATH=src python benchmarks/stats.py [--repeat 5] [--before 3fff2b7]

"Before" is ``src/promptgauge/stats.py`` as of commit ``--before`` (read with ``git show``, loaded
as its own module); "after" is the working tree's. Both compute what ``promptgauge.compare`` asks
of them for the shipped example (``benchmarks/stats_example.json``: 7 metrics of 32 paired rows;
2 score metrics have 11 and 12 nonzero differences with ties, which sent scipy's ``wilcoxon`` to
its Python-level permutation test): ``compare_paired`` for each metric (a two-sided and a
one-sided test, a CI; 10,000 bootstrap resamples, seed 0), then Holm over the 7 p-values.
Printed: best and median wall of ``--repeat`` interleaved repetitions of each side and their
ratio; the best wall of the six signed-rank tests alone (two per score metric, timed separately);
the cost of importing each module in a fresh process (numpy already imported, as pandas imports
it anyway; best of ``--repeat``); and the largest difference between the two sides' p-values,
CIs and effect sizes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).with_name("stats_example.json")
FIELDS = ("mean_a", "mean_b", "delta", "ci_low", "ci_high", "pvalue", "pvalue_regression", "effect_size")


def before_source(commit: str, into: Path) -> Path:
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:src/promptgauge/stats.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = into / "stats_before.py"
    path.write_text(text)
    return path


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def comparison(stats, data: dict) -> tuple[list, list]:
    """What promptgauge.compare computes with `stats` for the example's two variants."""
    import numpy as np

    kwargs = data["kwargs"]
    out = [
        stats.compare_paired(np.asarray(m["a"]), np.asarray(m["b"]), kind=m["kind"], **kwargs) for m in data["metrics"]
    ]
    return out, list(stats.holm([c.pvalue for c in out]))


def wilcoxon_only(stats, data: dict) -> None:
    """The signed-rank tests alone: a two-sided and a one-sided one per score metric, as compare_paired runs them."""
    for m in data["metrics"]:
        if m["kind"] == "score":
            for alternative in ("two-sided", "less"):
                stats.paired_score_test(m["a"], m["b"], alternative=alternative)


def import_seconds(module_dir: Path, module: str, repeat: int) -> float:
    code = "import time, numpy; t = time.perf_counter(); import " + module + "; print(time.perf_counter() - t)"
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env={"PYTHONPATH": str(module_dir), "PATH": ""},
            ).stdout
        )
        for _ in range(repeat)
    ]
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", default="3fff2b7", help="commit whose stats.py is 'before'")
    args = parser.parse_args()
    data = json.loads(DATA.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        old = load(before_source(args.before, Path(tmp)))
        from promptgauge import stats as new

        results, walls, tests = {}, {"before": [], "after": []}, {"before": [], "after": []}
        for _ in range(args.repeat):  # interleaved, so both sides see the same machine load
            for side, module in (("before", old), ("after", new)):
                t = time.perf_counter()
                results[side] = comparison(module, data)
                walls[side].append(time.perf_counter() - t)
                t = time.perf_counter()
                wilcoxon_only(module, data)
                tests[side].append(time.perf_counter() - t)
        imports = {
            "before": import_seconds(Path(tmp), "stats_before", args.repeat),
            "after": import_seconds(Path(new.__file__).parent.parent, "promptgauge.stats", args.repeat),
        }

    print(
        f"example comparison: {len(data['metrics'])} metrics x {len(data['metrics'][0]['a'])} rows, "
        f"{args.repeat} interleaved repetitions"
    )
    for side in ("before", "after"):
        print(
            f"  {side:7s} best {min(walls[side]) * 1e3:8.1f} ms   median {statistics.median(walls[side]) * 1e3:8.1f} ms"
            f"   Wilcoxon tests alone {min(tests[side]) * 1e3:8.2f} ms"
            f"   import (numpy loaded) {imports[side] * 1e3:6.0f} ms"
        )
    print(f"  speed-up, Wilcoxon tests (best / best): {min(tests['before']) / min(tests['after']):6.0f}x")
    print(f"  speed-up, comparison (best / best)    : {min(walls['before']) / min(walls['after']):6.1f}x")
    print(
        f"  speed-up, comparison + import         : "
        f"{(min(walls['before']) + imports['before']) / (min(walls['after']) + imports['after']):6.1f}x"
    )
    worst_abs = worst_rel = 0.0
    (old_cmp, old_holm), (new_cmp, new_holm) = results["before"], results["after"]
    pairs = [(getattr(o, f), getattr(n, f)) for o, n in zip(old_cmp, new_cmp) for f in FIELDS]
    for o, n in pairs + list(zip(old_holm, new_holm)):
        if o == n or (math.isnan(o) and math.isnan(n)):
            continue
        worst_abs = max(worst_abs, abs(o - n))
        worst_rel = max(worst_rel, abs(o - n) / abs(o) if o else abs(n))
    print(
        f"  largest difference before vs after (p-values, Holm, CIs, effects): "
        f"{worst_abs:.2g} absolute, {worst_rel:.2g} relative"
    )


if __name__ == "__main__":
    main()
