"""Agent-run overhead per model call: promptgauge's tool loop vs. a bare AsyncOpenAI tool loop.

One fake OpenAI server (a child process, 50 ms per reply) scripts every row's loop in-band: each
row's system message makes the model call ``lookup_order`` at its first ``--tool-steps`` steps, then
answer -- ``tool_steps + 1`` model calls per row. Both loops do the same steps against it, each in a
child process of its own, with the same concurrency (rows in flight):

- ``bare``: ``AsyncOpenAI`` + ``asyncio.gather`` behind a semaphore; per row: call, parse the
  arguments, call the tool, append its result, call again -- what a hand-written agent loop does;
- ``promptgauge``: ``api.run`` of a suite whose variant declares the tool (a cold run: empty response
  cache and store), with ``tool_trajectory`` scoring each row -- the whole run as a user times it
  (dataset, loop, cache writes, store, summary, gate, reports); its engine part is shown too.

The ratio is seconds per model call, promptgauge's engine (from the checked suite to the last
stored row) / bare, of the best and of the median of ``--repeats`` alternated runs of each (as many
of each, which one goes first alternating too), measured in one run; the whole ``api.run`` and the
CPU time per call of each are shown too (on a shared machine the CPU ratio is the steadier figure:
wall time there follows the CPU the client and the server take).

    python benchmarks/agent.py [--rows 400] [--concurrency 16] [--tool-steps 2] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOOL = {"type": "function", "function": {
    "name": "lookup_order", "description": "Look up an order by its number.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}

TOOLS_PY = '''
def lookup_order(order_id):
    return {"order_id": order_id, "status": "shipped" if order_id % 2 else "delivered"}
'''


def lookup_order(order_id: int) -> dict:
    """The same tool as the suite's, for the bare loop."""
    return {"order_id": order_id, "status": "shipped" if order_id % 2 else "delivered"}


def system_message(i: int, steps: int) -> str:
    lines = [f'TOOL{"@" + str(s) if s else ""}: lookup_order {{"order_id": {i + s}}}' for s in range(steps)]
    return "You are a support agent.\n" + "\n".join(lines) + "\nREPLY: Orders: {tool_results}"


def question(i: int) -> str:
    return f"Where are my orders, starting with order {i}?"


# -- parts (each runs in its own child process) ----------------------------------------------

def part_bare(url: str, n: int, concurrency: int, steps: int) -> dict:
    import openai

    async def main() -> tuple[float, int]:
        client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
        sem = asyncio.Semaphore(concurrency)
        calls = 0

        async def one(i: int) -> str:
            nonlocal calls
            async with sem:
                messages = [{"role": "system", "content": system_message(i, steps)},
                            {"role": "user", "content": question(i)}]
                while True:
                    r = await client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0,
                                                             tools=[TOOL])
                    calls += 1
                    message = r.choices[0].message
                    if not message.tool_calls:
                        return message.content
                    messages.append({"role": "assistant", "content": message.content, "tool_calls": [
                        {"id": c.id, "type": "function",
                         "function": {"name": c.function.name, "arguments": c.function.arguments}}
                        for c in message.tool_calls]})
                    for c in message.tool_calls:
                        result = lookup_order(**json.loads(c.function.arguments))
                        messages.append({"role": "tool", "tool_call_id": c.id, "content": json.dumps(result)})

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
        await client.close()
        return elapsed, calls

    cpu = _cpu()
    seconds, calls = asyncio.run(main())
    return {"seconds": seconds, "cpu_seconds": _cpu() - cpu, "calls": calls}


def _cpu() -> float:
    """CPU seconds (user + system) this process used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def part_promptgauge(url: str, n: int, concurrency: int, steps: int, root: str) -> dict:
    import openai  # noqa: F401 - imported before the clock starts, as in the bare loop
    import pandas  # noqa: F401
    import yaml

    import promptgauge.report  # noqa: F401
    from promptgauge import api

    folder = Path(root)
    (folder / "bench_tools.py").write_text(TOOLS_PY)
    with (folder / "data.jsonl").open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i}", "system": system_message(i, steps), "question": question(i),
                                "expected_tool_calls": [{"name": "lookup_order", "arguments": {"order_id": i + s}}
                                                        for s in range(steps)]}) + "\n")
    front = {"model": {"parameters": {"temperature": 0, "tools": [TOOL]}}}
    (folder / "agent.prompty").write_text("---\n" + yaml.safe_dump(front) + "---\nsystem:\n{{system}}\n\n"
                                          "user:\n{{question}}\n")
    doc = {"name": "bench-agent", "dataset": "data.jsonl",
           "targets": {"fake": {"type": "openai", "base_url": url, "model": "gpt-4o-mini"}},
           "tools": {"lookup_order": "bench_tools:lookup_order"},
           "variants": [{"name": "agent", "prompt": "agent.prompty", "target": "fake"}],
           "evaluators": [{"name": "tool_trajectory"}],
           "runner": {"concurrency": concurrency, "timeout": 30, "retries": 2}}
    (folder / "promptgauge.yaml").write_text(yaml.safe_dump(doc))
    engine: dict = {}

    def started(run_id: str, total: int) -> None:  # the suite is loaded and checked: the engine starts
        engine.update(start=time.perf_counter(), cpu=_cpu())

    def progress(p) -> None:  # noqa: ANN001
        if p.done == p.total:
            engine.update(end=time.perf_counter(), cpu=_cpu() - engine["cpu"])

    start = time.perf_counter()
    report = api.run(folder / "promptgauge.yaml", on_start=started, on_progress=progress)
    seconds = time.perf_counter() - start
    metrics = report.summary["variants"]["agent"]
    return {"seconds": seconds, "engine_seconds": engine["end"] - engine["start"], "cpu_seconds": engine["cpu"],
            "calls": n * (steps + 1), "pass_rate": metrics["metrics"]["tool_trajectory"]["pass_rate"],
            "errors": metrics["calls"]["errors"]}


# -- the driver ------------------------------------------------------------------------------

def child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--part", *args], capture_output=True, text=True,
                         env=os.environ, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"part {args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--tool-steps", type=int, default=2, help="model calls per row that ask for the tool")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each loop, alternated")
    ap.add_argument("--part", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part:
        name, *rest = args.part
        func = {"bare": part_bare, "promptgauge": part_promptgauge}[name]
        print(json.dumps(func(*[int(x) if x.isdigit() else x for x in rest])))
        return
    server = subprocess.Popen([sys.executable, "-m", "promptgauge.testing.fake_server", "--port", "0",
                               "--latency", str(args.latency)], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split(" at ")[1].split()[0]
        n, c, s = str(args.rows), str(args.concurrency), str(args.tool_steps)
        print(f"server {url}, latency {args.latency * 1000:.0f} ms, {n} rows x {args.tool_steps + 1} model calls, "
              f"concurrency {c}", flush=True)
        results: dict[str, list[dict]] = {"bare": [], "promptgauge": []}
        for i in range(args.repeats):  # as many runs of each, alternated (and which goes first too), so
            for name in (("bare", "promptgauge") if i % 2 == 0 else ("promptgauge", "bare")):  # that a busy
                if name == "bare":  # spell of the machine hits both alike
                    results["bare"].append(child("bare", url, n, c, s))
                    continue
                with tempfile.TemporaryDirectory() as root:
                    results["promptgauge"].append(child("promptgauge", url, n, c, s, root))
    finally:
        server.terminate()
        server.wait()
    for name, runs in results.items():
        for r in runs:
            extra = (f"  engine {r['engine_seconds']:.2f} s; tool_trajectory pass rate {r['pass_rate']:.2f}, "
                     f"errors {r['errors']}") if name == "promptgauge" else ""
            print(f"{name:12s} {r['seconds']:7.2f} s  {r['calls']:5d} calls  {r['seconds'] / r['calls'] * 1000:6.2f} "
                  f"ms/call  CPU {r['cpu_seconds'] / r['calls'] * 1000:5.2f} ms/call{extra}")
    bare = min(results["bare"], key=lambda r: r["seconds"])
    ours = min(results["promptgauge"], key=lambda r: r["engine_seconds"])
    per_call = bare["seconds"] / bare["calls"]
    print(f"promptgauge / bare, wall time per model call (best runs): engine {ours['engine_seconds'] / ours['calls'] / per_call:.3f}, "
          f"whole run {ours['seconds'] / ours['calls'] / per_call:.3f}")
    med = {name: statistics.median(r["engine_seconds" if name == "promptgauge" else "seconds"] / r["calls"]
                                   for r in runs) for name, runs in results.items()}
    print(f"promptgauge / bare, wall time per model call (medians): engine {med['promptgauge'] / med['bare']:.3f}")
    pairs = [(o["engine_seconds"] / o["calls"]) / (b["seconds"] / b["calls"])
             for o, b in zip(results["promptgauge"], results["bare"], strict=True)]  # run back to back
    print(f"promptgauge / bare, wall time per model call (median of the back-to-back pairs' ratios): "
          f"engine {statistics.median(pairs):.3f}  ({', '.join(f'{p:.2f}' for p in pairs)})")
    cpu = {name: statistics.median(r["cpu_seconds"] / r["calls"] for r in runs) for name, runs in results.items()}
    print(f"promptgauge / bare, CPU time per model call (medians): {cpu['promptgauge'] / cpu['bare']:.3f} "
          f"({cpu['promptgauge'] * 1000:.2f} vs {cpu['bare'] * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
