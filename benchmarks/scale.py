"""Scaling past one process: ``runner.executor: ray`` with 1 vs 2 workers, model replicas, Ray's fixed cost.

Four measurements, each configuration in a fresh process (so each starts its own local Ray cluster):

1. **CPU-bound evaluator**: METEOR over ``--rows`` generated response/ground-truth pairs (a Python
   target echoes the row's response, so scoring is the work). In process, then on Ray with
   ``num_cpus=1`` and ``num_cpus=2`` (one and two worker processes scoring batches). Ratio: Ray 2 / Ray 1.
2. **The driver's serial part**: the same rows scored by ``exact_match`` (next to nothing) on Ray with
   two workers: what the driver spends per item (plan, target call, batching, store commit) whatever
   the cluster does -- the ceiling of items/s however many machines there are.
3. **Ray's fixed cost**: ``ray.init`` (a local cluster), then a first run of 512 rows (worker processes
   start, import promptgauge and NLTK, build the evaluators); the timed runs come after it, warm.
4. **Local-model generation**: ``--gen-rows`` questions to the embedded model (SmolLM2, greedy,
   ``max_tokens`` 24) with 1 replica (2 threads) vs 2 replicas (1 thread each), and in process.

    PYTHONPATH=src python benchmarks/scale.py [--rows 20000] [--gen-rows 24] [--skip-generation]
    PYTHONPATH=src python benchmarks/scale.py --cpu-only --rows 2000 --text-scale 6   # heavier rows
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

APP = "def echo(response, **_):\n    return response\n"


def write_cpu_suite(folder: Path, rows: int, evaluator: str, text_scale: int = 1) -> Path:
    from nlp_metrics import make_rows

    with (folder / "data.jsonl").open("w", encoding="utf-8") as f:
        for i, (response, truth) in enumerate(make_rows(rows)):
            response, truth = " ".join([response] * text_scale), " ".join([truth] * text_scale)
            f.write(json.dumps({"id": f"r{i}", "response": response, "ground_truth": truth}) + "\n")
    (folder / "app.py").write_text(APP)
    mapping = {"response": "${target.response}", "ground_truth": "${data.ground_truth}"}
    suite = {"name": "scale", "dataset": "data.jsonl", "targets": {"echo": {"type": "python", "function": "app:echo"}},
             "variants": [{"name": "echo", "target": "echo"}],
             "evaluators": [{"name": evaluator, "column_mapping": mapping}],
             "runner": {"concurrency": 8, "ray": {"batch_size": 128}}}
    path = folder / "promptgauge.yaml"
    path.write_text(json.dumps(suite))
    return path


def write_generation_suite(folder: Path, rows: int) -> Path:
    topics = ["France", "Japan", "Italy", "Spain", "Peru", "Kenya", "Canada", "Norway", "Chile", "Egypt", "India", "Mexico"]
    with (folder / "data.jsonl").open("w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"id": f"g{i}", "question": f"Say one fact about {topics[i % len(topics)]} ({i})."}) + "\n")
    (folder / "q.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n    max_tokens: 24\n---\n"
                                      "system:\nAnswer in one sentence.\n\nuser:\n{{question}}\n")
    suite = {"name": "gen", "dataset": "data.jsonl", "variants": [{"name": "v", "prompt": "q.prompty",
                                                                    "target": "local:smollm2"}],
             "evaluators": [{"name": "length", "params": {"max": 400}}], "runner": {"concurrency": 4, "timeout": 600, "cache": False}}
    path = folder / "promptgauge.yaml"
    path.write_text(json.dumps(suite))
    return path


def child(args: argparse.Namespace) -> None:
    """One configuration, in this fresh process: print one JSON line."""
    from promptgauge import api
    from promptgauge.engine.ray_executor import NO_TELEMETRY

    os.environ.update(NO_TELEMETRY)
    out: dict = {"config": args.child}
    options = api.Options(cache=False)
    if args.cpus:
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, configure_logging=False, log_to_driver=False,
                 runtime_env={"env_vars": dict(NO_TELEMETRY)})
        out["ray_init_s"] = time.perf_counter() - t
        options = api.Options(cache=False, executor="ray")
    suite = Path(args.suite)
    if args.replicas:
        spec = json.loads(suite.read_text())
        spec["runner"]["ray"] = {"replicas": args.replicas, "replica_cpus": 2 // args.replicas}
        suite.write_text(json.dumps(spec))
    if args.warmup:  # the same run on a few rows first: worker processes start, import and build the evaluators
        t = time.perf_counter()
        api.run(suite, limit=args.warmup, store=Path(args.store + ".warm"), reports_dir=Path(args.store).parent / "reports",
                options=options)
        out["warmup_s"] = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    report = api.run(suite, store=Path(args.store), reports_dir=Path(args.store).parent / "reports", options=options)
    out["run_s"] = time.perf_counter() - t
    out["driver_cpu_s"] = time.process_time() - c
    out["items"] = report.progress.done
    out["errors"] = report.progress.errors
    out["status"] = report.status
    print(json.dumps(out), flush=True)


def run_child(name: str, suite: Path, cpus: int = 0, replicas: int = 0, warmup: int = 512) -> dict:
    store = suite.parent / f"{name}.db"
    cmd = [sys.executable, __file__, "--child", name, "--suite", str(suite), "--store", str(store),
           "--cpus", str(cpus), "--replicas", str(replicas), "--warmup", str(warmup)]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode or not lines:
        raise SystemExit(f"{name} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    row = json.loads(lines[-1])
    print(f"  {name:<22} run {row['run_s']:7.2f} s  ({row['items']} items, {row['errors']} errors"
          + (f"; ray.init {row['ray_init_s']:.2f} s" if "ray_init_s" in row else "")
          + (f"; warm-up run {row['warmup_s']:.2f} s" if "warmup_s" in row else "") + ")", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--gen-rows", type=int, default=24)
    p.add_argument("--skip-generation", action="store_true")
    p.add_argument("--text-scale", type=int, default=1, help="repeat each text this often (a heavier METEOR row)")
    p.add_argument("--cpu-only", action="store_true", help="only the METEOR part (1)")
    p.add_argument("--child")
    p.add_argument("--suite")
    p.add_argument("--store")
    p.add_argument("--cpus", type=int, default=0)
    p.add_argument("--replicas", type=int, default=0)
    p.add_argument("--warmup", type=int, default=0)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        cpu = Path(tmp, "cpu")
        cpu.mkdir()
        suite = write_cpu_suite(cpu, args.rows, "meteor", args.text_scale)
        print(f"1. METEOR over {args.rows} rows" + (f" (texts x{args.text_scale})" if args.text_scale > 1 else ""))
        local = run_child("in process", suite)
        one = run_child("ray, 1 worker", suite, cpus=1)
        two = run_child("ray, 2 workers", suite, cpus=2)
        if args.cpu_only:
            print(f"\n  speed-up 2 workers / 1 worker: {one['run_s'] / two['run_s']:.2f}x; ray 1 worker / in process: "
                  f"{local['run_s'] / one['run_s']:.2f}x; load average at the end: {os.getloadavg()[0]:.1f}")
            return
        light = Path(tmp, "light")
        light.mkdir()
        print(f"2. the driver's serial part: exact_match over {args.rows} rows")
        serial = run_child("ray, 2 workers, light", write_cpu_suite(light, args.rows, "exact_match"), cpus=2)
        light_local = run_child("in process, light", light / "promptgauge.yaml")
        gen = None
        if not args.skip_generation:
            g = Path(tmp, "gen")
            g.mkdir()
            gsuite = write_generation_suite(g, args.gen_rows)
            print(f"4. local-model generation: {args.gen_rows} questions to SmolLM2 (max_tokens 24)")
            gen = {"in process": run_child("in process (2 threads)", gsuite, warmup=1),
                   "1 replica": run_child("ray, 1 replica x 2 thr", gsuite, cpus=2, replicas=1, warmup=1),
                   "2 replicas": run_child("ray, 2 replicas x 1 thr", gsuite, cpus=2, replicas=2, warmup=1)}
    per_row_ms = serial["run_s"] / serial["items"] * 1000
    startup = sum(r["ray_init_s"] for r in (one, two, serial)) / 3
    print("\nresults")
    print(f"  METEOR rows/s: in process {args.rows / local['run_s']:.0f}, ray 1 worker {args.rows / one['run_s']:.0f}, "
          f"ray 2 workers {args.rows / two['run_s']:.0f}")
    print(f"  speed-up 2 workers / 1 worker: {one['run_s'] / two['run_s']:.2f}x "
          f"(2 workers / in process: {local['run_s'] / two['run_s']:.2f}x)")
    first = sum(r["warmup_s"] for r in (one, two, serial)) / 3
    print(f"  Ray fixed cost: ray.init {startup:.2f} s, then a first run of 512 rows {first:.2f} s (workers start, import, "
          f"build the evaluators; in process: {local['warmup_s']:.2f} s) -- means of 3")
    print(f"  driver serial part on Ray: {per_row_ms:.3f} ms/item wall, "
          f"{serial['driver_cpu_s'] / serial['items'] * 1000:.3f} ms/item driver CPU "
          f"(in process, light evaluator: {light_local['run_s'] / light_local['items'] * 1000:.3f} ms/item)")
    print(f"  ceiling of the driver: ~{1000 / per_row_ms:.0f} items/s whatever the number of workers")
    if gen:
        base = gen["1 replica"]["run_s"]
        print(f"  generation: 2 replicas / 1 replica: {base / gen['2 replicas']['run_s']:.2f}x; "
              f"in process {gen['in process']['run_s']:.1f} s, 1 replica {base:.1f} s, "
              f"2 replicas {gen['2 replicas']['run_s']:.1f} s")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
