"""Entra ID overhead and export cost, measured in one run against the fake OpenAI server.

    PYTHONPATH=src python benchmarks/entra_export.py [--rows 300] [--concurrency 16] [--latency 0.05]

Part 1: the same run (one variant, ``--rows`` rows, no cache) against an Azure OpenAI target with an API key
and with Entra ID (a token credential module, through azure-identity's bearer-token provider), in the order
key, entra, entra, key; the ratio of the best times. Part 2: ``promptgauge export foundry`` and
``promptgauge export mlflow`` (a sqlite store: its first export creates the database) of that run, against
the run's own time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

from promptgauge import api
from promptgauge.testing.fake_server import FakeOpenAIServer

CRED = '''
import time
from azure.core.credentials import AccessToken


class Credential:
    def get_token(self, *scopes, **kwargs):
        return AccessToken("bench-token", int(time.time() + 3600))
'''


def suite(root: Path, server: FakeOpenAIServer, rows: int, concurrency: int, auth: str) -> Path:
    target = {"type": "azure", "azure_endpoint": server.root_url, "api_version": "2024-06-01"}
    target.update({"api_key_env": "BENCH_AZURE_KEY", "auth": "key"} if auth == "key"
                  else {"credential": "benchcred:Credential"})
    (root / "benchcred.py").write_text(CRED)
    (root / "q.prompty").write_text("---\nmodel:\n  parameters: {temperature: 0, max_tokens: 16}\n---\nuser:\n{{q}}\n")
    with (root / "data.jsonl").open("w") as f:
        for i in range(rows):
            f.write(json.dumps({"id": f"r{i}", "q": f"question {i}", "ground_truth": "x"}) + "\n")
    doc = {"name": f"bench-{auth}", "dataset": "data.jsonl", "targets": {"az": target},
           "variants": [{"name": "v", "prompt": "q.prompty", "target": "az:dep"}],
           "evaluators": [{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}],
           "gate": {"rules": []}, "runner": {"concurrency": concurrency, "cache": False, "retries": 0, "timeout": 30}}
    path = root / "promptgauge.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()
    os.environ["BENCH_AZURE_KEY"] = "bench-key"
    times: dict[str, list[float]] = {"key": [], "entra": []}
    with FakeOpenAIServer(latency=args.latency, api_key="bench-key", bearer_tokens={"bench-token"}) as server, \
            tempfile.TemporaryDirectory() as tmp:
        last: dict[str, tuple[Path, str]] = {}
        for auth in ("key", "entra", "entra", "key"):
            root = Path(tmp) / f"{auth}{len(times[auth])}"
            root.mkdir()
            path = suite(root, server, args.rows, args.concurrency, auth)
            server.reset_stats()
            t0 = time.perf_counter()
            report = api.run(path)
            times[auth].append(time.perf_counter() - t0)
            assert server.request_count == args.rows and report.summary["variants"]["v"]["calls"]["errors"] == 0
            bearer = sum(1 for a in server.authorizations if a == "Bearer bench-token")
            assert bearer == (args.rows if auth == "entra" else 0), bearer
            last[auth] = (path, report.run_id)
        key, entra = min(times["key"]), min(times["entra"])
        print(f"run of {args.rows} rows, concurrency {args.concurrency}, {args.latency * 1000:.0f} ms latency:")
        print(f"  api key   {key:6.2f} s  ({args.rows / key:6.1f} calls/s)   runs: {', '.join(f'{t:.2f}' for t in times['key'])}")
        print(f"  Entra ID  {entra:6.2f} s  ({args.rows / entra:6.1f} calls/s)   runs: {', '.join(f'{t:.2f}' for t in times['entra'])}")
        print(f"  Entra ID / key time: {entra / key:.3f}")
        path, run_id = last["entra"]
        cwd = os.getcwd()
        os.chdir(path.parent)  # MLflow's sqlite store puts artifacts in ./mlruns
        try:
            out = {}
            for name, call in (
                ("foundry", lambda: api.export("foundry", run_id, suite=path, out=path.parent / "f.json")),
                ("mlflow (new sqlite store)", lambda: api.export("mlflow", run_id, suite=path, tracking_uri="sqlite:///m.db")),
                ("mlflow (again, same store)", lambda: api.export("mlflow", run_id, suite=path, tracking_uri="sqlite:///m.db")),
            ):
                t0 = time.perf_counter()
                call()
                out[name] = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
        print(f"exports of that run (its run took {entra:.2f} s):")
        for name, t in out.items():
            print(f"  {name:28s} {t:6.2f} s  ({t / entra:.2f}x the run)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
