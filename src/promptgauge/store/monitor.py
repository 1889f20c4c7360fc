"""Monitoring tables in the run store: records seen, their scores (the time series), checkpoints, alerts.

The monitor's only SQL (:class:`MonitorStore`, one monitor name). Added to the same SQLite file as runs (``CREATE TABLE IF NOT EXISTS``; the
run store's schema is untouched). Only redacted text is ever written here;
records that were not sampled keep no text at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .runs import Store

MONITOR_SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS monitor_records (
    monitor    TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    source     TEXT NOT NULL,
    ts         REAL NOT NULL,           -- when the production call happened (epoch seconds)
    win        INTEGER NOT NULL,        -- start of its window
    stratum    TEXT,
    sampled    INTEGER NOT NULL,
    failed     INTEGER NOT NULL,        -- the production call itself failed
    data       TEXT,                    -- JSON, redacted, sampled records only
    outputs    TEXT,                    -- JSON, redacted, sampled records only
    error      TEXT,                    -- redacted, sampled records only
    redactions TEXT,                    -- JSON: kind -> count (never what was matched)
    pass_id    TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (monitor, record_id)
);
CREATE INDEX IF NOT EXISTS monitor_records_by_win ON monitor_records (monitor, win);
CREATE TABLE IF NOT EXISTS monitor_scores (
    monitor   TEXT NOT NULL,
    record_id TEXT NOT NULL,
    evaluator TEXT NOT NULL,
    ts        REAL NOT NULL,
    win       INTEGER NOT NULL,
    score     REAL,
    passed    INTEGER,
    error     TEXT,
    details   TEXT,
    PRIMARY KEY (monitor, record_id, evaluator)
);
CREATE INDEX IF NOT EXISTS monitor_scores_by_win ON monitor_scores (monitor, evaluator, win);
CREATE TABLE IF NOT EXISTS monitor_checkpoints (
    monitor    TEXT NOT NULL,
    source     TEXT NOT NULL,
    file       TEXT NOT NULL,
    byte_offset INTEGER NOT NULL,       -- jsonl: bytes consumed
    line       INTEGER NOT NULL,        -- jsonl: lines consumed
    head_len   INTEGER NOT NULL,        -- fingerprint of the file's first bytes (rotation check)
    head_sha   TEXT NOT NULL,
    file_sha   TEXT,                    -- json: sha256 of the whole file when done
    updated_at REAL NOT NULL,
    PRIMARY KEY (monitor, source, file)
);
CREATE TABLE IF NOT EXISTS monitor_malformed (
    monitor TEXT NOT NULL,
    source  TEXT NOT NULL,
    file    TEXT NOT NULL,
    line    INTEGER NOT NULL,
    reason  TEXT NOT NULL,              -- never the line's content
    pass_id TEXT NOT NULL,
    PRIMARY KEY (monitor, source, file, line)
);
CREATE TABLE IF NOT EXISTS monitor_passes (
    pass_id     TEXT PRIMARY KEY,
    monitor     TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    status      TEXT NOT NULL,          -- running | finished | interrupted
    stats       TEXT                    -- JSON
);
CREATE TABLE IF NOT EXISTS monitor_alerts (
    monitor      TEXT NOT NULL,
    rule         TEXT NOT NULL,
    win          INTEGER NOT NULL,
    pass_id      TEXT NOT NULL,         -- the pass that first raised it
    details      TEXT NOT NULL,         -- JSON
    delivered_at REAL,                  -- webhook accepted it
    PRIMARY KEY (monitor, rule, win)
)
"""


@dataclass
class Checkpoint:
    offset: int = 0
    line: int = 0
    head_len: int = 0
    head_sha: str = ""
    file_sha: str | None = None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


class MonitorStore:
    """The monitoring side of a :class:`~promptgauge.store.Store`, for one monitor name."""

    def __init__(self, store: Store, monitor: str) -> None:
        self.store = store
        self.db = store.db
        self.monitor = monitor
        store.apply_schema(SCHEMA, "monitor_schema_version", MONITOR_SCHEMA_VERSION, "monitor tables")

    # -- passes --------------------------------------------------------------------------------
    def start_pass(self, pass_id: str) -> None:
        with self.store.transaction():
            self.db.execute("INSERT INTO monitor_passes VALUES (?,?,?,NULL,'running',NULL)",
                            (pass_id, self.monitor, time.time()))

    def finish_pass(self, pass_id: str, status: str, stats: dict[str, Any]) -> None:
        with self.store.transaction():
            self.db.execute("UPDATE monitor_passes SET finished_at=?, status=?, stats=? WHERE pass_id=?",
                            (time.time(), status, _dumps(stats), pass_id))

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint(self, source: str, file: str) -> Checkpoint:
        row = self.db.execute(
            "SELECT byte_offset, line, head_len, head_sha, file_sha FROM monitor_checkpoints "
            "WHERE monitor=? AND source=? AND file=?", (self.monitor, source, file)).fetchone()
        return Checkpoint(*row) if row else Checkpoint()

    def _put_checkpoint(self, source: str, file: str, cp: Checkpoint) -> None:
        self.db.execute("INSERT OR REPLACE INTO monitor_checkpoints VALUES (?,?,?,?,?,?,?,?,?)",
                        (self.monitor, source, file, cp.offset, cp.line, cp.head_len, cp.head_sha, cp.file_sha,
                         time.time()))

    # -- records -------------------------------------------------------------------------------
    def seen(self, record_ids: list[str]) -> set[str]:
        """Which of these record ids are stored already."""
        out: set[str] = set()
        for i in range(0, len(record_ids), 500):
            chunk = record_ids[i:i + 500]
            out.update(r[0] for r in self.db.execute(
                f"SELECT record_id FROM monitor_records WHERE monitor=? AND record_id IN ({','.join('?' * len(chunk))})",
                (self.monitor, *chunk)))
        return out

    def sampled_count(self, win: int, stratum: str | None) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM monitor_records WHERE monitor=? AND win=? AND stratum IS ? AND sampled=1",
            (self.monitor, win, stratum)).fetchone()[0]

    def commit_batch(self, pass_id: str, source: str, file: str, records: list[dict[str, Any]],
                     malformed: list[tuple[int, str]], cp: Checkpoint) -> int:
        """Records with their scores, malformed lines and the checkpoint, in one transaction.

        A record already stored (another file held it too) is ignored with its
        scores. Returns how many records were new.
        """
        new = 0
        now = time.time()
        with self.store.transaction():
            for r in records:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO monitor_records VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (self.monitor, r["id"], source, r["ts"], r["win"], r["stratum"], int(r["sampled"]),
                     int(r["failed"]), _dumps(r["data"]) if r["sampled"] else None,
                     _dumps(r["outputs"]) if r["sampled"] else None, r["error"] if r["sampled"] else None,
                     _dumps(r["redactions"]) if r["redactions"] else None, pass_id, now))
                if cur.rowcount == 0:
                    continue
                new += 1
                for ev, o in r["scores"].items():
                    self.db.execute(
                        "INSERT INTO monitor_scores VALUES (?,?,?,?,?,?,?,?,?)",
                        (self.monitor, r["id"], ev, r["ts"], r["win"], o.score,
                         None if o.passed is None else int(o.passed), o.error,
                         _dumps(o.details) if o.details is not None else None))
            for line, reason in malformed:
                self.db.execute("INSERT OR REPLACE INTO monitor_malformed VALUES (?,?,?,?,?,?)",
                                (self.monitor, source, file, line, reason, pass_id))
            self._put_checkpoint(source, file, cp)
        return new

    def malformed(self, pass_id: str) -> list[dict[str, Any]]:
        """The documents a pass skipped: where, and why (never their content)."""
        return [dict(zip(("source", "file", "line", "reason"), r)) for r in self.db.execute(
            "SELECT source, file, line, reason FROM monitor_malformed WHERE monitor=? AND pass_id=? "
            "ORDER BY source, file, line", (self.monitor, pass_id))]

    # -- time series ---------------------------------------------------------------------------
    def traffic(self, last: int) -> list[tuple[int, int, int, int]]:
        """(win, records, sampled, failed) of the *last* windows that have records, oldest first."""
        rows = self.db.execute(
            "SELECT win, COUNT(*), SUM(sampled), SUM(failed) FROM monitor_records WHERE monitor=? "
            "GROUP BY win ORDER BY win DESC LIMIT ?", (self.monitor, last)).fetchall()
        return rows[::-1]

    def scores_between(self, start: float, end: float, *, by: str = "win") -> list[tuple]:
        """(win or ts, evaluator, score, passed, error) of scores with ``start <= by < end``."""
        column = "win" if by == "win" else "ts"
        return self.db.execute(
            f"SELECT win, evaluator, score, passed, error FROM monitor_scores WHERE monitor=? "
            f"AND {column}>=? AND {column}<?", (self.monitor, start, end)).fetchall()

    def failures_between(self, start: float, end: float) -> tuple[int, int]:
        """(failed, records) with ``start <= ts < end``."""
        row = self.db.execute("SELECT COALESCE(SUM(failed), 0), COUNT(*) FROM monitor_records "
                              "WHERE monitor=? AND ts>=? AND ts<?", (self.monitor, start, end)).fetchone()
        return int(row[0]), int(row[1])

    def examples(self, win: int, evaluator: str | None, limit: int, *, highest_first: bool = False
                 ) -> list[dict[str, Any]]:
        """The worst-scored sampled records of a window (or its failed calls when *evaluator* is None).

        Worst: evaluator errors, then failures, then the lowest scores (highest with *highest_first*).
        """
        if evaluator is None:
            rows = self.db.execute(
                "SELECT record_id, ts, data, outputs, error, NULL, NULL FROM monitor_records WHERE monitor=? "
                "AND win=? AND failed=1 AND sampled=1 ORDER BY ts LIMIT ?", (self.monitor, win, limit)).fetchall()
        else:
            rows = self.db.execute(
                "SELECT r.record_id, r.ts, r.data, r.outputs, COALESCE(s.error, r.error), s.score, s.passed "
                "FROM monitor_scores s JOIN monitor_records r USING (monitor, record_id) "
                "WHERE s.monitor=? AND s.win=? AND s.evaluator=? "
                f"ORDER BY s.error IS NULL, COALESCE(s.passed, 1), s.score {'DESC' if highest_first else 'ASC'}, "
                "r.ts LIMIT ?",
                (self.monitor, win, evaluator, limit)).fetchall()
        out = []
        for rid, ts, data, outputs, error, score, passed in rows:
            d = json.loads(data) if data else {}
            o = json.loads(outputs) if outputs else {}
            out.append({"record_id": rid, "ts": ts, "query": d.get("query"), "response": o.get("response"),
                        "error": error, "score": score, "passed": None if passed is None else bool(passed)})
        return out

    # -- alerts --------------------------------------------------------------------------------
    def record_alert(self, rule: str, win: int, pass_id: str, details: dict[str, Any]) -> bool:
        """Remember an alert; True when it is new (never raised for this rule and window before)."""
        with self.store.transaction():
            cur = self.db.execute("INSERT OR IGNORE INTO monitor_alerts VALUES (?,?,?,?,?,NULL)",
                                  (self.monitor, rule, win, pass_id, _dumps(details)))
        return cur.rowcount == 1

    def undelivered(self, win: int) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT rule FROM monitor_alerts WHERE monitor=? AND win=? AND delivered_at IS NULL", (self.monitor, win))]

    def mark_delivered(self, rules: list[str], win: int) -> None:
        with self.store.transaction():
            for rule in rules:
                self.db.execute("UPDATE monitor_alerts SET delivered_at=? WHERE monitor=? AND rule=? AND win=?",
                                (time.time(), self.monitor, rule, win))
