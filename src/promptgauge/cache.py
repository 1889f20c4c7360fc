"""The response cache: one content-addressed SQLite file shared by targets and judges.

A request is normalised (endpoint kind and model, messages or prompt,
parameters -- tools included -- and the repeat index; not the endpoint's URL,
so a replay needs no endpoint configured) and hashed; the hash
keys the stored completion. Only successful completions are stored, so an
error is always retried on the next run. Writes are committed in small
batches: a killed process loses at most the last few entries, never a result.

This is the store layer: completions go in and come out as plain JSON-ready
dicts (``Completion.to_dict()`` plus ``latency_ms``, the latency of the call that
made it, so a hit keeps the original call's latency and tokens; entries written
before it was kept have none); the engine's call path converts them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from .errors import PathError
from .files import check_output
from .public import digest, public_parameters

FLUSH_EVERY = 64
FLUSH_SECONDS = 0.25


def request(info: dict[str, Any], messages: Any, params: dict[str, Any], repeat: int) -> dict[str, Any]:
    """The normalised request to a target (*info* is its ``describe()``): what decides the answer, no secret."""
    return {"kind": info.get("kind"), "model": info.get("model"), "messages": messages,
            "parameters": public_parameters(params, digest),
            "repeat": repeat}


def key_of(req: dict[str, Any]) -> str:
    canonical = json.dumps(req, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Cache:
    """``get``/``put`` completions (as dicts) by request key. ``refresh`` ignores old entries but stores new ones."""

    def __init__(self, path: str | Path, *, refresh: bool = False) -> None:
        self.path = check_output(path, "sqlite", "response cache")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.refresh = refresh
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            tables = [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            if tables and "responses" not in tables:
                self.db.close()
                raise PathError("response cache: a SQLite database, but not a promptgauge response cache",
                                file=self.path, hint="this file was left untouched")
            self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise PathError(f"response cache: cannot be used as a SQLite file: {exc}", file=self.path) from None
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, completion TEXT NOT NULL, "
                        "created_at REAL NOT NULL)")
        self._pending: list[tuple[str, str, float]] = []
        self._last_flush = time.monotonic()
        self.hits = 0

    def get(self, key: str) -> dict[str, Any] | None:
        if self.refresh:
            return None
        row = self.db.execute("SELECT completion FROM responses WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        self.hits += 1
        return json.loads(row[0])

    def __contains__(self, key: str) -> bool:
        return not self.refresh and self.db.execute("SELECT 1 FROM responses WHERE key=?", (key,)).fetchone() is not None

    def put(self, key: str, completion: dict[str, Any]) -> None:
        self._pending.append((key, json.dumps(completion, ensure_ascii=False), time.time()))
        if len(self._pending) >= FLUSH_EVERY or time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO responses VALUES (?,?,?)", self._pending)
            self._pending.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.db.close()
