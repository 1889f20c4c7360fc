"""Agent suites for the tests: a prompt declaring tools, a tools module, a dataset, on the fake server."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import yaml

LOOKUP = {"type": "function", "function": {
    "name": "lookup_order", "description": "Look up an order by its number.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}
REFUND = {"type": "function", "function": {
    "name": "refund_order", "description": "Refund an order.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}, "reason": {"type": "string"}},
                   "required": ["order_id"]}}}

TOOLS_PY = '''
import asyncio

ORDERS = {1: "shipped", 2: "delivered", 42: "shipped"}


def lookup_order(order_id):
    return {"order_id": order_id, "status": ORDERS.get(order_id, "unknown")}


def refund_order(order_id, reason=""):
    if order_id == 1:
        raise ValueError("order 1 cannot be refunded")
    return "refunded order %d" % order_id


async def slow_lookup(order_id):
    await asyncio.sleep(0.1 * order_id)   # the first call of a parallel pair finishes last
    return {"order_id": order_id, "status": ORDERS.get(order_id, "unknown")}
'''


class AgentSuite:
    """Writes an agent suite into *root*: ``agent.prompty`` (tools in its front matter), a tools module, rows."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url
        # A module name of its own per test: imported modules are cached per process.
        self.module = "tools_" + root.name.replace("-", "_").replace(".", "_")
        (root / f"{self.module}.py").write_text(TOOLS_PY, encoding="utf-8")

    def prompt(self, body: str = "system:\nYou are a support agent.\n\nuser:\n{{question}}\n",
               tools: list[dict[str, Any]] | None = None, name: str = "agent.prompty",
               parameters: dict[str, Any] | None = None) -> Path:
        front = {"model": {"parameters": {"temperature": 0, **(parameters or {}),
                                          "tools": tools if tools is not None else [LOOKUP, REFUND]}}}
        path = self.root / name
        path.write_text("---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + body, encoding="utf-8")
        return path

    def rows(self, rows: list[dict[str, Any]]) -> None:
        (self.root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def suite(self, **overrides: Any) -> Path:
        doc: dict[str, Any] = {
            "name": "agents",
            "dataset": "data.jsonl",
            "targets": {"fake": {"type": "openai", "base_url": self.base_url, "model": "gpt-4o-mini"}},
            "tools": {"lookup_order": f"{self.module}:lookup_order", "refund_order": f"{self.module}:refund_order"},
            "variants": [{"name": "agent", "prompt": "agent.prompty", "target": "fake"}],
            "evaluators": [],
            "runner": {"concurrency": 2, "timeout": 5, "retries": 1, "backoff_base": 0.01, "backoff_max": 0.05},
        }
        doc.update(overrides)
        path = self.root / "promptgauge.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path


def results(db: Path, run_id: str | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """``(row_id, variant) -> {output, error, latency_ms, prompt_tokens, completion_tokens, attempts, outputs}``."""
    con = sqlite3.connect(db)
    if run_id is None:
        run_id = con.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    out = {}
    for row in con.execute("SELECT row_id, variant, output, error, latency_ms, prompt_tokens, completion_tokens, "
                           "attempts, outputs FROM results WHERE run_id=?", (run_id,)):
        out[(row[0], row[1])] = {"output": row[2], "error": row[3], "latency_ms": row[4], "prompt_tokens": row[5],
                                 "completion_tokens": row[6], "attempts": row[7],
                                 "outputs": json.loads(row[8]) if row[8] else None}
    con.close()
    return out


def scores(db: Path, run_id: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``(row_id, variant, evaluator) -> {score, passed, error, details}`` of a run."""
    con = sqlite3.connect(db)
    out = {(r, v, e): {"score": s, "passed": p, "error": err, "details": json.loads(d) if d else None}
           for r, v, e, s, p, err, d in con.execute(
               "SELECT row_id, variant, evaluator, score, passed, error, details FROM scores WHERE run_id=?", (run_id,))}
    con.close()
    return out


def without_timings(trajectory: dict[str, Any]) -> dict[str, Any]:
    """A trajectory without what differs between equal runs: latencies and the cached flags."""
    return {**trajectory,
            "steps": [{k: v for k, v in s.items() if k not in ("latency_ms", "cached")} for s in trajectory["steps"]],
            "tool_calls": [{k: v for k, v in c.items() if k != "latency_ms"} for c in trajectory["tool_calls"]]}
