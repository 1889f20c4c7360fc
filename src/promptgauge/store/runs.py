"""The run store: one SQLite file (WAL) with runs, results, scores and run manifests.

Each result and each score is committed the moment it exists, so a run that
is interrupted, killed or crashes keeps everything it finished, and can be
resumed. Nothing secret is ever written here: targets are described by kind,
model and endpoint only.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..files import check_output

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    suite       TEXT NOT NULL,
    suite_path  TEXT,
    status      TEXT NOT NULL,          -- running | finished | interrupted | failed
    created_at  REAL NOT NULL,
    finished_at REAL,
    manifest    TEXT NOT NULL,          -- JSON: hashes of dataset, prompts, suite, versions
    config      TEXT NOT NULL           -- JSON: the suite as run (no secrets)
);
CREATE TABLE IF NOT EXISTS results (
    run_id            TEXT NOT NULL,
    row_id            TEXT NOT NULL,
    variant           TEXT NOT NULL,
    repeat            INTEGER NOT NULL DEFAULT 0,
    row_index         INTEGER NOT NULL,
    inputs            TEXT NOT NULL,    -- JSON: the row's data
    output            TEXT,             -- the target's response text
    outputs           TEXT,             -- JSON: every target output (${target.*})
    error             TEXT,             -- why there is no output
    latency_ms        REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 1,
    created_at        REAL NOT NULL,
    PRIMARY KEY (run_id, row_id, variant, repeat)
);
CREATE TABLE IF NOT EXISTS scores (
    run_id    TEXT NOT NULL,
    row_id    TEXT NOT NULL,
    variant   TEXT NOT NULL,
    repeat    INTEGER NOT NULL DEFAULT 0,
    evaluator TEXT NOT NULL,
    score     REAL,                     -- the evaluator's primary number
    passed    INTEGER,                  -- 1 / 0 / NULL when the evaluator has no pass/fail
    error     TEXT,                     -- evaluator failure on this row
    details   TEXT,                     -- JSON: the evaluator's whole output
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, row_id, variant, repeat, evaluator)
);
CREATE INDEX IF NOT EXISTS scores_by_run ON scores (run_id, variant, evaluator);
"""


def foreign_database(db: sqlite3.Connection, path: Path, what: str, marker: str) -> None:
    """Refuse, before writing anything, a SQLite file that holds tables but not *marker* (another
    program's database, or promptgauge's cache given as a store): it is left untouched."""
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    if tables and marker not in tables:
        db.close()
        shown = ", ".join(sorted(tables)[:5]) + (" ..." if len(tables) > 5 else "")
        raise StoreError(f"{what}: a SQLite database, but not a promptgauge {what} (its tables: {shown})",
                         file=path, hint="point it at a promptgauge file or a new file name; this one was left untouched")


@dataclass
class RunInfo:
    run_id: str
    suite: str
    suite_path: str | None
    status: str
    created_at: float
    finished_at: float | None
    manifest: dict[str, Any]
    config: dict[str, Any]


class Store:
    """A SQLite run store. Safe for several processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_output(path, "sqlite", "store")  # a wrong path is exit 2, the file left untouched
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._batched = False
        self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            foreign_database(self.db, self.path, "store", "meta")
            self._init_schema()
        except sqlite3.DatabaseError as exc:  # a damaged file with a SQLite header, or a read-only one
            self.db.close()
            raise StoreError(f"store: cannot be used as a SQLite store: {exc}", file=self.path) from None

    def _init_schema(self) -> None:
        # Two processes creating a new store at once: switching to WAL can report "locked"
        # without waiting on the busy handler, so that step is retried.
        for attempt in range(100):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=30000")
        self.apply_schema(SCHEMA, "schema_version", SCHEMA_VERSION, "store schema")

    def apply_schema(self, schema: str, key: str, version: int, what: str) -> None:
        """Create *schema*'s tables and record *version* under *key* in ``meta``; refuse a newer one."""
        with self.transaction():
            for stmt in filter(str.strip, schema.split(";")):
                self.db.execute(stmt)
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES (?, ?)", (key, str(version)))
            elif int(row[0]) > version:
                raise StoreError(
                    f"{what} version {row[0]} is newer than this promptgauge understands ({version})",
                    file=self.path, hint="upgrade promptgauge",
                )

    def transaction(self) -> _Tx | contextlib.nullcontext:
        return contextlib.nullcontext(self.db) if self._batched else _Tx(self.db)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make every write inside one commit (the runner groups results written within a few ms)."""
        with self.transaction():
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    def close(self) -> None:
        self.db.close()

    # -- runs -------------------------------------------------------------------------------
    def create_run(self, run_id: str, suite: str, suite_path: str | None, manifest: dict, config: dict) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO runs (run_id, suite, suite_path, status, created_at, manifest, config) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (run_id, suite, suite_path, time.time(), json.dumps(manifest), json.dumps(config)),
            )

    def set_status(self, run_id: str, status: str) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET status=?, finished_at=? WHERE run_id=?",
                (status, time.time() if status != "running" else None, run_id),
            )

    def run(self, run_id: str | None = None, *, suite: str | None = None) -> RunInfo:
        """A run by id, or the latest run (of *suite*, if given)."""
        if run_id:
            row = self.db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                row = self.db.execute(
                    "SELECT * FROM runs WHERE run_id LIKE ? ORDER BY created_at DESC", (run_id + "%",)
                ).fetchone()
        elif suite:
            row = self.db.execute("SELECT * FROM runs WHERE suite=? ORDER BY created_at DESC LIMIT 1", (suite,)).fetchone()
        else:
            row = self.db.execute("SELECT * FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()
        if row is None:
            what = f"run '{run_id}'" if run_id else "any run" + (f" of suite '{suite}'" if suite else "")
            raise StoreError(f"no {what} in the store", file=self.path, hint="list runs with: promptgauge runs")
        return _run_info(row)

    def update_manifest(self, run_id: str, section: str, entries: dict[str, Any]) -> None:
        """Add *entries* to one section of a run's manifest (atomic: several processes may add)."""
        with self.transaction():
            row = self.db.execute("SELECT manifest FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"no run '{run_id}' in the store", file=self.path)
            manifest = json.loads(row[0])
            manifest.setdefault(section, {}).update(entries)
            self.db.execute("UPDATE runs SET manifest=? WHERE run_id=?", (json.dumps(manifest), run_id))

    def variants(self, run_id: str) -> list[str]:
        """The variants that have results in a run, by name."""
        return [v for (v,) in self.db.execute("SELECT DISTINCT variant FROM results WHERE run_id=? ORDER BY variant",
                                              (run_id,))]

    def runs(self, *, suite: str | None = None, limit: int = 50) -> list[RunInfo]:
        sql = "SELECT * FROM runs" + (" WHERE suite=?" if suite else "") + " ORDER BY created_at DESC LIMIT ?"
        args: tuple[Any, ...] = (suite, limit) if suite else (limit,)
        return [_run_info(r) for r in self.db.execute(sql, args)]

    # -- results and scores -----------------------------------------------------------------
    def put_result(self, run_id: str, row_id: str, variant: str, repeat: int, *, row_index: int,
                   inputs: dict, output: str | None, outputs: dict | None, error: str | None,
                   latency_ms: float | None, prompt_tokens: int | None, completion_tokens: int | None,
                   attempts: int, scores: list[dict[str, Any]] | None = None) -> None:
        """Store one result (replacing an older one and its scores), with its *scores* in the same commit."""
        with self.transaction():
            # A retried result replaces the old one and its (stale) scores.
            self.db.execute(
                "DELETE FROM scores WHERE run_id=? AND row_id=? AND variant=? AND repeat=?",
                (run_id, row_id, variant, repeat),
            )
            self.db.execute(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, row_id, variant, repeat, row_index, to_json(inputs),
                 output, to_json(outputs) if outputs is not None else None,
                 error, latency_ms, prompt_tokens, completion_tokens, attempts, time.time()),
            )
            for sc in scores or ():
                self._insert_score(run_id, row_id, variant, repeat, **sc)

    def copy_results(self, src: str, dst: str, variant: str) -> int:
        """Copy *variant*'s successful results and their scores from run *src* into run *dst*.

        The copies are marked ``cached`` at no cost in their outputs; errors are never copied.
        """
        now = time.time()
        with self.transaction():
            n = self.db.execute(
                "INSERT OR REPLACE INTO results SELECT ?, row_id, variant, repeat, row_index, inputs, output, "
                "json_set(outputs, '$.cached', json('true'), '$.cost_usd', 0), error, latency_ms, prompt_tokens, "
                "completion_tokens, attempts, ? FROM results WHERE run_id=? AND variant=? AND error IS NULL",
                (dst, now, src, variant),
            ).rowcount
            self.db.execute(
                "INSERT OR REPLACE INTO scores SELECT ?, s.row_id, s.variant, s.repeat, s.evaluator, s.score, "
                "s.passed, s.error, s.details, ? FROM scores s JOIN results r USING (run_id, row_id, variant, repeat) "
                "WHERE s.run_id=? AND s.variant=? AND r.error IS NULL", (dst, now, src, variant),
            )
        return n

    def put_score(self, run_id: str, row_id: str, variant: str, repeat: int, evaluator: str, *,
                  score: float | None, passed: bool | None, error: str | None, details: dict | None) -> None:
        with self.transaction():
            self._insert_score(run_id, row_id, variant, repeat, evaluator, score=score, passed=passed, error=error,
                               details=details)

    def _insert_score(self, run_id: str, row_id: str, variant: str, repeat: int, evaluator: str, *,
                      score: float | None, passed: bool | None, error: str | None, details: dict | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?,?,?,?)",
            (run_id, row_id, variant, repeat, evaluator, score,
             None if passed is None else int(bool(passed)), error,
             to_json(details) if details is not None else None, time.time()),
        )

    def completed(self, run_id: str, evaluators: list[str]) -> set[tuple[str, str, int]]:
        """(row_id, variant, repeat) that have an output and a score from every evaluator."""
        done = set()
        need = set(evaluators)
        have: dict[tuple[str, str, int], set[str]] = {}
        for row_id, variant, repeat, evaluator in self.db.execute(
            "SELECT s.row_id, s.variant, s.repeat, s.evaluator FROM scores s JOIN results r "
            "USING (run_id, row_id, variant, repeat) WHERE s.run_id=? AND r.error IS NULL", (run_id,)
        ):
            have.setdefault((row_id, variant, repeat), set()).add(evaluator)
        for key, evs in have.items():
            if need <= evs:
                done.add(key)
        if not need:
            done = {tuple(r) for r in self.db.execute(  # type: ignore[misc]
                "SELECT row_id, variant, repeat FROM results WHERE run_id=? AND error IS NULL", (run_id,))}
        return done

    def call_counts(self, run_id: str, variant: str) -> tuple[int, int]:
        """(results, failed calls) of one variant of a run."""
        n, failed = self.db.execute("SELECT COUNT(*), COUNT(error) FROM results WHERE run_id=? AND variant=?",
                                    (run_id, variant)).fetchone()
        return n, failed

    def score_records(self, run_id: str, variant: str) -> Iterator[tuple[str, float | None, int | None, str | None]]:
        """(evaluator, score, passed, error) of every score of one variant of a run, streamed."""
        yield from self.db.execute("SELECT evaluator, score, passed, error FROM scores WHERE run_id=? AND variant=?",
                                   (run_id, variant))

    def failures(self, run_id: str, limit: int = 50) -> tuple[int, list[tuple[str, str, int, str]]]:
        """How many of a run's results failed, and the first *limit* as (row_id, variant, repeat, error)."""
        count = self.db.execute("SELECT COUNT(*) FROM results WHERE run_id=? AND error IS NOT NULL", (run_id,)).fetchone()[0]
        rows = self.db.execute("SELECT row_id, variant, repeat, error FROM results WHERE run_id=? AND error IS NOT NULL "
                               "ORDER BY row_index, variant, repeat LIMIT ?", (run_id, limit)).fetchall()
        return count, [tuple(r) for r in rows]

    def score_details(self, run_id: str, variant: str, evaluator: str) -> Iterator[dict[str, Any]]:
        """The details of an evaluator's successful scores of one variant, in dataset order, streamed."""
        for (d,) in self.db.execute(
                "SELECT s.details FROM scores s JOIN results r ON r.run_id=s.run_id AND r.row_id=s.row_id AND "
                "r.variant=s.variant AND r.repeat=s.repeat WHERE s.run_id=? AND s.variant=? AND s.evaluator=? "
                "AND s.error IS NULL AND s.details IS NOT NULL ORDER BY r.row_index, r.repeat",
                (run_id, variant, evaluator)):
            yield json.loads(d)

    def iter_results(self, run_id: str, *, row_id: str | None = None, variant: str | None = None,
                     ) -> Iterator[dict[str, Any]]:
        """Results of a run (optionally of one row and/or variant) with their scores, in dataset order.

        Streamed, not loaded at once.
        """
        where = "run_id=?" + (" AND row_id=?" if row_id is not None else "") + (" AND variant=?" if variant else "")
        args = (run_id,) + ((row_id,) if row_id is not None else ()) + ((variant,) if variant else ())
        cur = self.db.execute(
            "SELECT row_id, variant, repeat, row_index, inputs, output, outputs, error, latency_ms, "
            f"prompt_tokens, completion_tokens, attempts FROM results WHERE {where} "
            "ORDER BY row_index, variant, repeat", args
        )
        cols = [d[0] for d in cur.description]
        for rec in cur:
            item = dict(zip(cols, rec))
            item["inputs"] = json.loads(item["inputs"])
            item["outputs"] = json.loads(item["outputs"]) if item["outputs"] else None
            item["scores"] = {
                ev: {"score": s, "passed": None if p is None else bool(p), "error": e,
                     "details": json.loads(d) if d else None}
                for ev, s, p, e, d in self.db.execute(
                    "SELECT evaluator, score, passed, error, details FROM scores "
                    "WHERE run_id=? AND row_id=? AND variant=? AND repeat=? ORDER BY evaluator",
                    (run_id, item["row_id"], item["variant"], item["repeat"]),
                )
            }
            yield item


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def to_json(obj: Any) -> str:
    """How the store writes inputs, outputs and details (JSON text)."""
    return json.dumps(obj, ensure_ascii=False, default=str)


def variant_frames(db: sqlite3.Connection, run_id: str, variant: str):  # -> tuple[pd.DataFrame, pd.DataFrame]
    """Results (with inputs and outputs, JSON text) and scores (with details) of one variant, whole."""
    import pandas as pd

    results = pd.read_sql_query(
        "SELECT row_id, repeat, row_index, inputs, output, outputs, error, latency_ms, prompt_tokens, "
        "completion_tokens, attempts FROM results WHERE run_id=? AND variant=? ORDER BY row_index, repeat",
        db, params=(run_id, variant),
    )
    scores = pd.read_sql_query(
        "SELECT row_id, repeat, evaluator, score, passed, error, details FROM scores "
        "WHERE run_id=? AND variant=? ORDER BY row_id, repeat, evaluator", db, params=(run_id, variant),
    )
    return results, scores


@contextlib.contextmanager
def reader(path: Path) -> Iterator[sqlite3.Connection]:
    """A short-lived connection for reading a store, closed on exit (reads that outlive a :class:`Store`)."""
    db = sqlite3.connect(path, timeout=30.0)
    try:
        yield db
    finally:
        db.close()


def _run_info(row: tuple) -> RunInfo:
    run_id, suite, suite_path, status, created, finished, manifest, config = row
    return RunInfo(run_id, suite, suite_path, status, created, finished, json.loads(manifest), json.loads(config))
