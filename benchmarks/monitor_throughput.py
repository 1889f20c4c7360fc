"""Throughput of one monitor pass, against the cost of merely parsing the same log.

Generates N OpenAI-chat log lines (with e-mail addresses to redact), then times
(1) ``json.loads`` of every line -- the floor for any reader -- and (2) a full
``promptgauge monitor`` pass in-process: read, sample, redact, score with
json_valid + refusal + latency, store in SQLite, judge windows, write reports.

    PYTHONPATH=src python benchmarks/monitor_throughput.py [--records 20000] [--rate 1.0]
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from monitor_helpers import append, hour_lines, write_config  # noqa: E402

from promptgauge.monitor import load_monitor_config, run_pass  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--rate", type=float, default=1.0, help="sampling rate")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    per_hour = 200
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        cfg = write_config(root, evaluators=["json_valid", "refusal", "latency"], sampling={"rate": args.rate})
        rng = random.Random(0)
        lines = [line for h in range(args.records // per_hour) for line in hour_lines(h, per_hour, p_valid=0.9, rng=rng)]
        for line in lines:
            line["request"]["messages"][-1]["content"] += f" reach me at user{rng.randint(1, 9999)}@example.com"
        log = root / "logs" / "app.jsonl"
        append(log, lines)
        start = time.perf_counter()
        with log.open() as f:
            parsed = sum(1 for raw in f if json.loads(raw))
        parse_s = time.perf_counter() - start
        start = time.perf_counter()
        result = run_pass(load_monitor_config(cfg), reports_dir=root / "reports")
        pass_s = time.perf_counter() - start
        t = result.report["pass"]["total"]
        assert t["records"] == parsed == len(lines)
        print(f"{len(lines)} records, {log.stat().st_size / 1e6:.1f} MB")
        print(f"json.loads only:   {parsed / parse_s:10.0f} records/s")
        print(f"monitor pass:      {t['records'] / pass_s:10.0f} records/s  ({pass_s:.1f} s, "
              f"{t['scored']} scored x 3 evaluators, {t['redactions'].get('email', 0)} e-mails redacted)")
        print(f"ratio pass / parse: {pass_s / parse_s:.0f}x slower than parsing alone")


if __name__ == "__main__":
    main()
