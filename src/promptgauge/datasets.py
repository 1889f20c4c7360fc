"""Datasets: JSONL, CSV and Parquet files -> rows with stable ids and a content hash.

A row's id is its ``id`` column (or the suite's ``id_column``) when present,
else a hash of its content, so that rows match across runs and files.
Every problem names the file and the line (JSONL) or row (CSV/Parquet).

Rows are streamed: :func:`load_dataset` makes one light pass that checks every
row and keeps only ids, columns and the hash; iterating a :class:`Dataset`
reads the file again, so memory stays flat however many rows there are.
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

from .errors import DatasetError

CHUNK_ROWS = 5000


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
    return f"{path}:{row.line}" if fmt in ("jsonl", "ndjson") else f"{path} row {row.line}"


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
        raise DatasetError("dataset path is a directory, expected a .jsonl, .csv or .parquet file", file=path)
    fmt = format or path.suffix.lower().lstrip(".")
    if fmt not in ("jsonl", "ndjson", "csv", "parquet"):
        raise DatasetError(f"unknown dataset format '{fmt}'", file=path, hint="use .jsonl, .csv or .parquet")
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


def sample_dataset(samples: dict[Path, dict[str, Any]], *, check: RowCheck | None = None) -> Dataset:
    """One row per distinct prompty ``sample`` (keyed by the prompt file it came from)."""
    records, seen = [], set()
    for sample in samples.values():
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
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: pip install pyarrow", file=path) from None
    except Exception as exc:  # pyarrow raises many types for a broken file
        raise DatasetError(f"unreadable Parquet file: {exc}", file=path) from None
    yield from _frame_records(df, 1)


def _rows(path: Path, records: Iterator[tuple[int, dict[str, Any]]], id_column: str | None, *,
          check: bool = False) -> Iterator[Row]:
    """Rows with their ids; *check* (the loading pass) also rejects duplicate ids."""
    id_col = id_column or "id"
    seen: dict[str, int] = {}
    for index, (line, data) in enumerate(records):
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
