"""Generated production logs for the monitor tests: OpenAI chat request/response lines."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import yaml

T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC).timestamp()
HOUR = 3600


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def chat_line(rid: str | None, ts: float, question: str, answer: str | None, *, route: str = "faq",
              latency_ms: float = 200.0, error: str | None = None, **extra: Any) -> dict[str, Any]:
    """One log line as an app writes it around ``client.chat.completions.create``."""
    line: dict[str, Any] = {
        "timestamp": iso(ts),
        "request": {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Answer in JSON."},
                                                         {"role": "user", "content": question}]},
        "latency_ms": latency_ms,
        "metadata": {"route": route},
        **extra,
    }
    if rid is not None:
        line["id"] = rid
    if error is not None:
        line["error"] = {"message": error}
    else:
        line["response"] = {
            "id": f"chatcmpl-{rid}", "object": "chat.completion", "created": int(ts), "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
        }
    return line


def hour_lines(hour: int, per_hour: int, *, p_valid: float, rng: random.Random, start: float = T0,
               p_error: float = 0.0) -> list[dict[str, Any]]:
    """*per_hour* records in hour *hour*; each answer is valid JSON with probability *p_valid*."""
    out = []
    for j in range(per_hour):
        ts = start + hour * HOUR + (j + rng.random()) * HOUR / per_hour
        rid = f"h{hour}-{j}"
        if rng.random() < p_error:
            out.append(chat_line(rid, ts, f"question {rid}", None, error="HTTP 500: server error"))
            continue
        ok = rng.random() < p_valid
        answer = json.dumps({"answer": f"a{j}"}) if ok else "Sorry, I can't help with that."
        out.append(chat_line(rid, ts, f"question {rid}", answer, route=rng.choice(["faq", "billing"]),
                             latency_ms=rng.uniform(100, 300)))
    return out


def append(path: Path, lines: list[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


def write_config(root: Path, **overrides: Any) -> Path:
    """monitor.yaml with one openai source (logs/*.jsonl) and json_valid, overridable key by key."""
    doc: dict[str, Any] = {
        "name": "bot",
        "sources": [{"name": "app", "type": "openai", "path": "logs/*.jsonl"}],
        "evaluators": ["json_valid"],
        "window": "1h",
        "reference": {"from": iso(T0), "to": iso(T0 + 24 * HOUR)},
        "alerts": [{"metric": "json_valid.pass_rate", "relative_drop": 0.1}],
    }
    doc.update(overrides)
    (root / "logs").mkdir(exist_ok=True)
    path = root / "monitor.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
