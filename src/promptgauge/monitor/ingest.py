"""One pass over the sources: read what is new, sample, redact, score, store -- exactly once.

Files are read from their checkpoint in batches; each batch (its records, their
scores, its malformed lines and the advanced checkpoint) is committed in one
transaction. A pass that is killed loses at most the batch in flight, which
the next pass reads again; a record already stored (an overlapping or rotated
file, a re-read batch) is recognised by its id and skipped. A pass stopped by
its cost budget commits the batch up to its first record left unscored.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine import Caller, current_row
from ..errors import BadRecord
from ..evaluators.registry import BoundEvaluator
from ..store import Checkpoint, MonitorStore
from .config import MonitorConfig, SourceSpec
from .redact import Found, Redactor
from .sampling import Sampler, window_start
from .sources import Reader, Record

HEAD_BYTES = 4096


@dataclass
class Doc:
    """One document read from a file: its first line, the byte offset after it, the value or why not."""

    line: int
    end: int
    value: Any = None
    error: str | None = None


@dataclass
class PassStats:
    """What one pass did, per source and in total (reported and stored with the pass)."""

    files: int = 0
    documents: int = 0
    records: int = 0  # new records stored
    duplicates: int = 0  # records already stored (overlapping files, re-read batches)
    sampled: int = 0
    scored: int = 0
    failed: int = 0  # production calls that had failed
    malformed: int = 0
    redactions: Counter[str] = field(default_factory=Counter)

    def add(self, other: PassStats) -> None:
        for k, v in other.__dict__.items():
            if k == "redactions":
                self.redactions.update(v)
            else:
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "redactions"}, "redactions": dict(self.redactions)}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_jsonl(path: Path, cp: Checkpoint) -> tuple[Iterator[Doc], Checkpoint]:
    """Documents after the checkpoint, and the checkpoint to start from (reset if the file was replaced).

    A last line without a newline is taken only if it parses as JSON (a writer
    may be in the middle of it); otherwise it waits for the next pass.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(min(cp.head_len, HEAD_BYTES) if cp.head_len else 0)
    if cp.offset > size or (cp.head_len and _sha(head) != cp.head_sha):
        cp = Checkpoint()  # truncated or replaced (log rotation): read it again; ids skip what was seen

    def docs() -> Iterator[Doc]:
        offset, line = cp.offset, cp.line
        with path.open("rb") as f:
            f.seek(offset)
            for raw in f:
                text = raw.strip()
                try:
                    value = json.loads(text) if text else None
                    error = None
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    if not raw.endswith(b"\n"):
                        return  # an unfinished last line
                    value, error = None, f"not valid JSON: {getattr(exc, 'msg', exc)}"
                offset += len(raw)
                line += 1
                if text:
                    yield Doc(line, offset, value, error)
                else:
                    yield Doc(line, offset)  # blank: only moves the checkpoint

    return docs(), cp


def read_json(path: Path) -> Iterator[Doc]:
    """Documents of a whole-file JSON source: one value, or several concatenated (pretty-printed) ones."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield Doc(exc.lineno, len(text), error=f"not valid JSON: {exc.msg} (column {exc.colno})")
            return
        yield Doc(line, pos, value)


class Ingestor:
    """Reads every source of a monitor into the store for one pass."""

    def __init__(self, cfg: MonitorConfig, mstore: MonitorStore, evaluators: list[BoundEvaluator],
                 readers: dict[str, Reader], pass_id: str, *, batch_size: int = 64,
                 caller: Caller | None = None) -> None:
        self.cfg = cfg
        self.mstore = mstore
        self.evaluators = evaluators
        self.readers = readers
        self.pass_id = pass_id
        self.batch_size = batch_size
        self.redactor = Redactor(tuple(cfg.redaction.kinds),
                                 {n: re.compile(p) for n, p in cfg.redaction.patterns.items()})
        self.sampler = Sampler(cfg.sampling, mstore.sampled_count)
        self.window = cfg.window_seconds
        self.stats: dict[str, PassStats] = {}
        self._sem = asyncio.Semaphore(cfg.runner.concurrency)
        self.caller = caller

    @property
    def stopped(self) -> str | None:
        """Why scoring stopped before the end ("budget": the caller's cost budget), or None."""
        return self.caller.stop_reason if self.caller else None

    def files(self, source: SourceSpec) -> list[Path]:
        pattern = str(self.cfg.resolve(source.path))
        return sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())

    async def run(self) -> dict[str, PassStats]:
        for source in self.cfg.sources:
            stats = self.stats.setdefault(source.name, PassStats())
            for path in self.files(source):
                if self.stopped:
                    return self.stats
                stats.files += 1
                await self.read_file(source, path, stats)
        return self.stats

    async def read_file(self, source: SourceSpec, path: Path, stats: PassStats) -> None:
        reader = self.readers[source.name]
        fmt = source.format or reader.default_format
        key = str(path.resolve())
        cp = self.mstore.checkpoint(source.name, key)
        if fmt == "json":
            file_sha = _sha(path.read_bytes())
            if cp.file_sha == file_sha:
                return
            docs: Iterator[Doc] = read_json(path)
            final = Checkpoint(file_sha=file_sha)
        else:
            docs, cp = read_jsonl(path, cp)
            final = None
        batch: list[Doc] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= self.batch_size:
                cp = await self._flush(source, key, path, batch, cp, Checkpoint() if final else None, stats)
                batch = []
                if self.stopped:
                    return
        await self._flush(source, key, path, batch, cp, final, stats)

    async def _flush(self, source: SourceSpec, key: str, path: Path, batch: list[Doc], cp: Checkpoint,
                     done: Checkpoint | None, stats: PassStats) -> Checkpoint:
        """Score and commit one batch; the checkpoint moves past it (*done*: a whole-file checkpoint).

        When the cost budget stops scoring, only the documents before the first one
        with a record left unscored are committed, and the checkpoint moves past
        those alone: the next pass scores the rest.
        """
        reader = self.readers[source.name]
        malformed: list[tuple[int, str]] = []
        found: list[tuple[Doc, Record]] = []
        for doc in batch:
            if doc.value is None and doc.error is None:
                continue
            if doc.error is not None:
                malformed.append((doc.line, doc.error))
                continue
            try:
                recs = list(reader.records(doc.value))
                for r in recs:
                    self._map_columns(source, r)
                    if not r.id:
                        raise BadRecord("record has an empty id")
            except BadRecord as exc:
                malformed.append((doc.line, str(exc)))
                continue
            except Exception as exc:  # noqa: BLE001 - a reader's bug on one document must not stop the pass
                malformed.append((doc.line, f"reader failed: {type(exc).__name__}: {exc}"))
                continue
            found += [(doc, r) for r in recs]
        malformed = [(line, self.redactor.text(reason, Found())) for line, reason in malformed]  # they quote fields
        rows, dupes = self._prepare(found)
        await asyncio.gather(*(self._score(row) for row in rows if row["sampled"] and not row["failed"]))
        cut = min((row["line"] for row in rows if row.get("cut")), default=None)
        if cut is not None:
            batch = [d for d in batch if d.line < cut]
            rows = [r for r in rows if r["line"] < cut]
            malformed = [m for m in malformed if m[0] < cut]
            dupes = [line for line in dupes if line < cut]
            done = None if done is None else Checkpoint()  # a whole file: read again, ids skip what is stored
        if done is not None:
            new_cp = done
        else:
            end = batch[-1].end if batch else cp.offset
            line = batch[-1].line if batch else cp.line
            with path.open("rb") as f:
                head = f.read(min(end, HEAD_BYTES))
            new_cp = Checkpoint(end, line, len(head), _sha(head))
        new = self.mstore.commit_batch(self.pass_id, source.name, key, rows, malformed, new_cp)
        stats.documents += sum(d.value is not None or d.error is not None for d in batch)
        stats.malformed += len(malformed)
        stats.records += new
        stats.duplicates += len(rows) - new + len(dupes)
        for row in rows:
            stats.sampled += row["sampled"]
            stats.failed += row["failed"]
            stats.scored += bool(row["scores"])
            stats.redactions.update(row["redactions"])
        return new_cp

    @staticmethod
    def _map_columns(source: SourceSpec, r: Record) -> None:
        for column, name in source.columns.items():
            value = r.lookup(name)
            if value is not None:
                (r.outputs if column == "response" else r.data)[column] = value

    def _prepare(self, records: list[tuple[Doc, Record]]) -> tuple[list[dict[str, Any]], list[int]]:
        """Drop what is stored already, decide sampling (in log order), redact -> (new rows, duplicates' lines).

        Only what is stored is redacted: the id and stratum of every record, the
        text of sampled ones (records not sampled keep no text).
        """
        pending: list[tuple[dict[str, Any], Record, Found]] = []
        dupes: list[int] = []
        ids: set[str] = set()
        strat = self.cfg.sampling.stratify_by
        for doc, r in records:
            found = Found()
            rid = self.redactor.text(r.id, found)
            if rid != r.id:  # an id that holds personal data is stored as its hash
                rid = "sha256:" + _sha(r.id.encode())[:32]
            if rid in ids:
                dupes.append(doc.line)
                continue
            ids.add(rid)
            value = r.lookup(strat) if strat else None
            row = {"id": rid, "line": doc.line, "ts": r.ts, "win": window_start(r.ts, self.window),
                   "failed": r.error is not None,
                   "stratum": None if value is None else self.redactor.text(str(value), found), "scores": {},
                   "data": None, "outputs": None, "error": None}
            pending.append((row, r, found))
        already = self.mstore.seen([row["id"] for row, _, _ in pending])
        fresh = []
        for row, r, found in pending:
            if row["id"] in already:
                dupes.append(row["line"])
                continue
            row["sampled"] = self.sampler.take(row["id"], row["win"], row["stratum"])
            if row["sampled"]:
                row["data"] = self.redactor.value(r.data, found)
                row["outputs"] = self.redactor.value(r.outputs, found)
                row["error"] = self.redactor.text(r.error, found) if r.error else None
            row["redactions"] = found.counts()
            fresh.append(row)
        return fresh, dupes

    async def _score(self, row: dict[str, Any]) -> None:
        """Every evaluator on one record.

        A record is ``cut`` (left for the next pass) when the budget stopped calls
        before it was scored, or while it was: then any error may be a refused call.
        """
        async with self._sem:
            current_row.set(row["id"])  # a judge's calls get this record's seeds (this task's context only)
            for ev in self.evaluators:
                if self.stopped:
                    row["cut"] = True
                    return
                try:
                    ev.arguments(row["data"], row["outputs"])
                except KeyError:
                    continue  # this record lacks what the evaluator reads (e.g. no logged context)
                outcome = await ev.evaluate(row["data"], row["outputs"])
                found = Found()  # an error or a judge's reason may quote what it read: stored redacted too
                outcome.error = self.redactor.text(outcome.error, found) if outcome.error else outcome.error
                outcome.details = self.redactor.value(outcome.details, found) if outcome.details else outcome.details
                row["scores"][ev.name] = outcome
            row["cut"] = self.stopped is not None and any(
                o.error is not None or "repeat_errors" in (o.details or {}) for o in row["scores"].values())
