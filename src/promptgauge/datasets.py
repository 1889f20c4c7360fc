"""Datasets: JSONL, JSON (an array of objects), CSV and Parquet files -> rows with stable ids and a content hash.

A row's id is its ``id`` column (or the suite's ``id_column``) when present,
else a hash of its content, so that rows match across runs and files.
Every problem names the file and the line (JSONL, JSON) or row (CSV/Parquet).

Rows are streamed: :func:`load_dataset` makes one light pass that checks every
row and keeps only ids, columns and the hash; iterating a :class:`Dataset`
reads the file again, so memory stays flat however many rows there are. A JSON
array is read element by element (:func:`_read_json`), Parquet in record batches.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from .errors import DatasetError, UserError

CHUNK_ROWS = 5000
#: Characters of a JSON array read at a time.
JSON_CHUNK = 1 << 20
#: Dataset formats by name (a file's extension, or ``format:`` in the suite).
FORMATS = ("jsonl", "ndjson", "json", "csv", "parquet")


@dataclass(frozen=True)
class Row:
    """One dataset row. ``line`` is the 1-based file line (JSONL) or data row number (CSV)."""

    id: str
    index: int
    line: int
    data: dict[str, Any] = field(repr=False)


#: ``check(row, where)``: raises a :class:`~promptgauge.errors.UserError` for a bad row; ``where()`` names it.
RowCheck = Callable[[Row, Callable[[], str]], None]


@dataclass
class Dataset:
    """A checked dataset file; iterate it (or :meth:`iter_rows`) to stream its rows."""

    path: Path
    columns: list[str]
    sha256: str
    count: int
    format: str
    id_column: str | None = None
    #: The columns every row has.
    common: frozenset[str] = frozenset()
    #: Rows held in memory (the few ``sample`` rows of prompty files), instead of a file.
    records: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Row]:
        return self.iter_rows()

    def iter_rows(self, limit: int | None = None) -> Iterator[Row]:
        """The rows in file order (the first *limit* only, if given), read lazily."""
        records = enumerate(self.records, start=1) if self.records is not None else _records(self.path, self.format)
        rows = _rows(self.path, records, self.id_column)
        return islice(rows, limit) if limit else rows

    def where(self, row: Row) -> str:
        """'file:line' (JSONL) or 'file row N' (CSV) for messages about *row*."""
        return _where(self.path, "sample" if self.records is not None else self.format, row)


def _where(path: Path, fmt: str, row: Row) -> str:
    if fmt == "sample":
        return f"{path} sample"
    return f"{path}:{row.line}" if fmt in ("jsonl", "ndjson", "json") else f"{path} row {row.line}"


def content_id(data: dict[str, Any]) -> str:
    """A stable id for a row without an id column: hash of its canonical JSON."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_dataset(path: str | Path, *, id_column: str | None = None, format: str | None = None,
                 check: RowCheck | None = None) -> Dataset:
    """Check a dataset file row by row; raise :class:`DatasetError` naming file and line/row on any problem.

    *check* is called with each row and a function naming it ('file:line'), in the same single pass.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError("dataset file not found", file=path, hint="check 'dataset:' in the suite")
    if path.is_dir():
        raise DatasetError("dataset path is a directory, expected a .jsonl, .json, .csv or .parquet file", file=path)
    fmt = format or path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DatasetError(f"unknown dataset format '{fmt}'", file=path, hint="use .jsonl, .json, .csv or .parquet")
    columns: dict[str, None] = {}
    common: set[str] | None = None
    count = 0
    for row in _rows(path, _records(path, fmt), id_column, check=True):
        count += 1
        columns.update(dict.fromkeys(row.data))
        if common is None:
            common = set(row.data)
        else:
            common.intersection_update(row.data)
        if check:
            check(row, lambda row=row: _where(path, fmt, row))
    if not count:
        raise DatasetError("dataset is empty: no rows to evaluate", file=path)
    return Dataset(path=path, columns=list(columns), sha256=file_sha256(path), count=count, format=fmt,
                   id_column=id_column, common=frozenset(common or ()))


#: The most shards a run may be split into (``--shard K/N``).
MAX_SHARDS = 100_000


@dataclass(frozen=True)
class Shard:
    """One of *count* disjoint parts of a dataset (``--shard K/N``, *index* K from 1): the rows whose id
    hashes to it (:func:`shard_of`), so a row's shard depends on its id only -- not on the file's order,
    its other rows or the machine."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, row_id: str) -> bool:
        return shard_of(row_id, self.count) == self.index

    def describe(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}


def shard_of(row_id: str, count: int) -> int:
    """The shard (1..*count*) a row id belongs to: a stable hash (sha256) of the id, not Python's ``hash``."""
    return 1 + int.from_bytes(hashlib.sha256(str(row_id).encode()).digest()[:8], "big") % count


def parse_shard(text: str, *, field: str = "--shard") -> Shard:
    """``K/N`` (1 <= K <= N) -> :class:`Shard`; anything else is a :class:`UserError` saying what is valid."""
    raw = str(text).strip()
    k, sep, n = raw.partition("/")
    hint = "write K/N with whole numbers 1 <= K <= N, e.g. --shard 1/4 (a Kubernetes indexed job: $((JOB_COMPLETION_INDEX+1))/N)"
    if not sep or not k.strip().isdecimal() or not n.strip().isdecimal() or not k.isascii() or not n.isascii():
        raise UserError(f"shard '{raw}' is not K/N", field=field, hint=hint)
    index, count = int(k), int(n)
    if not 1 <= count <= MAX_SHARDS:
        raise UserError(f"shard '{raw}': N must be between 1 and {MAX_SHARDS}", field=field, hint=hint)
    if not 1 <= index <= count:
        raise UserError(f"shard '{raw}': K must be between 1 and N ({count}); shards count from 1", field=field,
                        hint=hint)
    return Shard(index, count)


def sample_dataset(samples: dict[Path, list[dict[str, Any]]], *, check: RowCheck | None = None) -> Dataset:
    """One row per distinct prompty sample (the samples keyed by the prompt file they came from)."""
    records, seen = [], set()
    for sample in (s for rows in samples.values() for s in rows):
        key = content_id(sample)
        if key not in seen:
            seen.add(key)
            records.append(sample)
    columns = list(dict.fromkeys(k for r in records for k in r))
    digest = hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()
    common = frozenset.intersection(*(frozenset(r) for r in records))
    ds = Dataset(path=next(iter(samples)), columns=columns, sha256=digest, count=len(records), format="sample",
                 common=common, records=records)
    for row in ds if check else ():
        check(row, lambda row=row: ds.where(row))
    return ds


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _records(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if fmt in ("jsonl", "ndjson"):
        return _read_jsonl(path)
    if fmt == "json":
        return _read_json(path)
    if fmt == "csv":
        return _read_csv(path)
    return _read_parquet(path)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(
                    f"not valid UTF-8 (byte {exc.start} of the line)", file=path, line=lineno,
                    hint="re-save the file as UTF-8",
                ) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    f"malformed JSON: {exc.msg} at column {exc.colno}", file=path, line=lineno,
                    hint="each line must be one JSON object",
                ) from None
            if not isinstance(obj, dict):
                raise DatasetError(
                    f"expected a JSON object, got {type(obj).__name__}", file=path, line=lineno,
                    hint='each line must look like {"question": "...", "answer": "..."}',
                )
            yield lineno, obj


def _frame_records(df: Any, first: int) -> Iterator[tuple[int, dict[str, Any]]]:
    columns = [str(c) for c in df.columns]
    for i, values in enumerate(df.itertuples(index=False, name=None), start=first):
        yield i, {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in zip(columns, values)}


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    import pandas as pd

    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS, encoding="utf-8-sig")
        first = 1
        for chunk in reader:
            yield from _frame_records(chunk, first)
            first += len(chunk)
    except pd.errors.EmptyDataError:
        return
    except pd.errors.ParserError as exc:
        raise DatasetError(f"malformed CSV: {exc}", file=path) from None
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"not valid UTF-8 (byte offset {exc.start} of a chunk)", file=path, hint="re-save the file as UTF-8"
        ) from None


def _read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A Parquet file's rows, read in record batches of :data:`CHUNK_ROWS` (never the whole file at once)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: pip install pyarrow", file=path) from None
    first = 1
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS)
        for batch in batches:
            for i, record in enumerate(batch.to_pylist(), start=first):
                yield i, {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
            first += batch.num_rows
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a broken file
        raise DatasetError(f"unreadable Parquet file (near row {first}): {type(exc).__name__}: {exc}", file=path,
                           line=first) from None


def _read_json(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The objects of a JSON array, one at a time, with the line each starts on (1-based).

    The file is read in chunks of :data:`JSON_CHUNK` characters; an element is decoded once
    the buffer holds all of it, so memory holds about one element and one chunk.
    """
    try:
        f = path.open("r", encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(f"cannot read the dataset: {exc.strerror or exc}", file=path) from None
    with f:
        yield from _JsonArray(path, f).elements()


class _JsonArray:
    """An incremental reader of one JSON array of objects (see :func:`_read_json`)."""

    def __init__(self, path: Path, f: Any) -> None:
        self.path, self.f = path, f
        self.buf, self.pos, self.eof = "", 0, False
        self.line, self.mark = 1, 0  # the line number at buffer position mark

    def line_at(self, p: int) -> int:
        if p >= self.mark:
            self.line += self.buf.count("\n", self.mark, p)
            self.mark = p
            return self.line
        return self.line - self.buf.count("\n", p, self.mark)

    def fail(self, message: str, at: int, hint: str | None = None) -> DatasetError:
        return DatasetError(message, file=self.path, line=self.line_at(at), hint=hint)

    def more(self) -> bool:
        """Read the next chunk (at least as much as is buffered, so an element's retries stay linear)."""
        if self.eof:
            return False
        try:
            chunk = self.f.read(max(JSON_CHUNK, len(self.buf) - self.pos))
        except UnicodeDecodeError as exc:
            raise DatasetError(f"not valid UTF-8 (byte {exc.start} of a chunk)", file=self.path,
                               hint="re-save the file as UTF-8") from None
        self.line = self.line_at(self.pos)
        self.buf, self.pos, self.mark = self.buf[self.pos:] + chunk, 0, 0
        self.eof = not chunk
        return bool(chunk)

    def peek(self) -> str:
        """The next character that is not white space ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def elements(self) -> Iterator[tuple[int, dict[str, Any]]]:
        decoder = json.JSONDecoder()
        if self.peek() == "{":  # one object (a prompty's sample.json): one row
            yield from self.single(decoder)
            return
        if self.peek() != "[":
            found = "the file is empty" if not self.buf.strip() else f"it starts with {self.buf[self.pos:self.pos + 20]!r}"
            raise self.fail(f"a .json dataset is one JSON array of objects (or one object), but {found}", self.pos,
                            hint='write [{"question": "...", "answer": "..."}, ...], or one object per line as .jsonl')
        self.pos += 1
        index = 0
        while True:
            c = self.peek()
            if c == "]":
                self.pos += 1
                if self.peek():
                    raise self.fail(f"unexpected text after the array: {self.buf[self.pos:self.pos + 20]!r}", self.pos)
                return
            if index:
                if c != ",":
                    raise self.fail(f"expected ',' or ']' after element {index}, found "
                                    + (repr(c) if c else "the end of the file"), self.pos)
                self.pos += 1
                c = self.peek()
            if c != "{":
                raise self.fail(f"element {index + 1} is not a JSON object"
                                + (f" (it starts with {c!r})" if c else ": the array is not closed"), self.pos,
                                hint='each element must look like {"question": "...", "answer": "..."}')
            while True:
                try:
                    obj, end = decoder.raw_decode(self.buf, self.pos)
                    break
                except json.JSONDecodeError as exc:
                    # the buffer may end inside the element: read on; anything else is the file's mistake
                    cut = (len(self.buf) - exc.pos < 10 or not self.buf[exc.pos:].strip()  # a cut literal: nu|ll
                           or exc.msg.startswith("Unterminated string"))
                    at = self.line_at(exc.pos)  # before more() moves the buffer
                    if not (cut and self.more()):
                        raise DatasetError(f"malformed JSON in element {index + 1}: {exc.msg}", file=self.path,
                                           line=at) from None
            index += 1
            start = self.line_at(self.pos)
            self.pos = end
            yield start, obj


    def single(self, decoder: json.JSONDecoder) -> Iterator[tuple[int, dict[str, Any]]]:
        """A file holding one JSON object: that object, as the only row."""
        while not self.eof:
            self.more()
        start = self.line_at(self.pos)
        try:
            obj, end = decoder.raw_decode(self.buf, self.pos)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"malformed JSON: {exc.msg}", file=self.path, line=self.line_at(exc.pos)) from None
        self.pos = end
        if self.peek():
            raise self.fail(f"unexpected text after the object: {self.buf[self.pos:self.pos + 20]!r}", self.pos,
                            hint="a .json dataset is one object or an array of objects")
        yield start, obj


def _check_text(path: Path, line: int, value: Any, field: str | None = None) -> None:
    """Every text in a row is valid Unicode: a JSON ``\\ud800`` escape (a lone surrogate) cannot be stored,
    hashed or written to any report -- a clear error naming the row and field, not a crash later."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = value[exc.start]
                raise DatasetError(f"text holds a lone surrogate \\u{ord(bad):04x}, which is not Unicode text",
                                   file=path, line=line, field=field,
                                   hint="\\ud800-\\udfff escapes are valid only as pairs; fix the writer of this file") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(path, line, k, field)
            _check_text(path, line, v, f"{field}.{k}" if field else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(path, line, v, f"{field}[{i}]" if field else f"[{i}]")


def _rows(path: Path, records: Iterator[tuple[int, dict[str, Any]]], id_column: str | None, *,
          check: bool = False) -> Iterator[Row]:
    """Rows with their ids; *check* (the loading pass) also rejects duplicate ids."""
    id_col = id_column or "id"
    seen: dict[str, int] = {}
    for index, (line, data) in enumerate(records):
        _check_text(path, line, data)
        if id_col in data and data[id_col] not in (None, ""):
            rid = str(data[id_col])
        elif id_column:
            raise DatasetError(f"row has no value in id column '{id_column}'", file=path, line=line, field=id_column)
        else:
            rid = content_id(data)
        if check:
            if rid in seen:
                raise DatasetError(
                    f"duplicate row id '{rid}' (first at line {seen[rid]})", file=path, line=line, field=id_col,
                    hint="row ids must be unique so results match across runs",
                )
            seen[rid] = line
        yield Row(id=rid, index=index, line=line, data=data)
