"""What the pytest plugin costs: load time in every pytest session, and time per row against `promptgauge run`.

Both on the fake OpenAI server (no latency), in one run of this script:

1. plugin load: ``pytest --collect-only`` of a plain test file, with the plugin and with
   ``-p no:promptgauge`` (median of --repeats runs each, interleaved, byte-code cached);
2. rows: a pytest session with one test per row (``@pytest.mark.promptgauge()``, one variant,
   two builtin evaluators) against ``promptgauge run`` of the same suite and variant at
   concurrency 1 (pytest evaluates one row at a time). Both are whole processes, timed wall-clock.

    PYTHONPATH=src python benchmarks/pytest_plugin.py [--rows 200] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from promptgauge.testing.fake_server import FakeOpenAIServer

#: Byte-code caching on, as on a user's machine (this workplace sets PYTHONDONTWRITEBYTECODE).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    res = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=ENV)
    elapsed = time.perf_counter() - start
    if res.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with FakeOpenAIServer() as srv, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data.jsonl").write_text("".join(
            json.dumps({"id": f"r{i}", "question": f"What is {i} + 1?", "ground_truth": str(i + 1)}) + "\n"
            for i in range(args.rows)))
        (root / "q.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\nuser:\n{{question}}\n")
        (root / "promptgauge.yaml").write_text(yaml.safe_dump({
            "name": "bench", "dataset": "data.jsonl",
            "targets": {"fake": {"type": "openai", "base_url": srv.base_url, "model": "gpt-4o-mini"}},
            "variants": [{"name": "v", "prompt": "q.prompty", "target": "fake"}],
            "evaluators": [{"name": "contains"}, {"name": "exact_match"}],
        }))
        (root / "test_plain.py").write_text("def test_nothing():\n    pass\n")
        (root / "test_rows.py").write_text(
            "import pytest\n\n@pytest.mark.promptgauge()\ndef test_row(row, evaluate):\n    evaluate(row)\n")

        with_plugin, without = [], []
        for _ in range(args.repeats + 1):  # the first round writes the byte-code caches; it is not counted
            with_plugin.append(timed(["-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                                      "test_plain.py"], root))
            without.append(timed(["-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "-p",
                                  "no:promptgauge", "test_plain.py"], root))
        load_with, load_without = statistics.median(with_plugin[1:]), statistics.median(without[1:])

        srv.reset_stats()
        session = timed(["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_rows.py"], root)
        session_calls = srv.request_count
        srv.reset_stats()
        cli = timed(["-m", "promptgauge", "run", "--no-progress", "--concurrency", "1"], root)
        cli_calls = srv.request_count

    print(f"plugin load: pytest --collect-only {load_with * 1000:.0f} ms with the plugin, "
          f"{load_without * 1000:.0f} ms without (+{(load_with - load_without) * 1000:.0f} ms, median of "
          f"{args.repeats})")
    print(f"{args.rows} rows: pytest session {session:.2f} s ({session_calls} calls), promptgauge run "
          f"{cli:.2f} s ({cli_calls} calls); pytest / run = {session / cli:.2f}x; "
          f"per row {session / args.rows * 1000:.1f} ms vs {cli / args.rows * 1000:.1f} ms")


if __name__ == "__main__":
    main()
