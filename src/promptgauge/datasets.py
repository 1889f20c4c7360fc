"""Datasets: JSONL, CSV and Parquet files -> rows with stable ids and a content hash.

A row's id is its ``id`` column (or the suite's ``id_column``) when present,
else a hash of its content, so that rows match across runs and files.
Every problem names the file and the line (JSONL) or row (CSV/Parquet).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DatasetError


@dataclass(frozen=True)
class Row:
    """One dataset row. ``line`` is the 1-based file line (JSONL) or data row number (CSV)."""

    id: str
    index: int
    line: int
    data: dict[str, Any] = field(repr=False)


@dataclass
class Dataset:
    path: Path
    rows: list[Row]
    columns: list[str]
    sha256: str

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, row: Row) -> str:
        """'file:line' (JSONL) or 'file row N' (CSV) for messages about *row*."""
        return f"{self.path}:{row.line}" if self.path.suffix == ".jsonl" else f"{self.path} row {row.line}"


def content_id(data: dict[str, Any]) -> str:
    """A stable id for a row without an id column: hash of its canonical JSON."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_dataset(path: str | Path, *, id_column: str | None = None, format: str | None = None) -> Dataset:
    """Read a dataset file; raise :class:`DatasetError` naming file and line/row on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError("dataset file not found", file=path, hint="check 'dataset:' in the suite") from None
    except IsADirectoryError:
        raise DatasetError("dataset path is a directory, expected a .jsonl, .csv or .parquet file", file=path) from None
    fmt = format or path.suffix.lower().lstrip(".")
    if fmt in ("jsonl", "ndjson"):
        records = _read_jsonl(path, raw)
    elif fmt == "csv":
        records = _read_csv(path, raw)
    elif fmt == "parquet":
        records = _read_parquet(path, raw)
    else:
        raise DatasetError(f"unknown dataset format '{fmt}'", file=path, hint="use .jsonl, .csv or .parquet")
    rows = _to_rows(path, records, id_column)
    if not rows:
        raise DatasetError("dataset is empty: no rows to evaluate", file=path)
    columns: list[str] = []
    for row in rows:
        for key in row.data:
            if key not in columns:
                columns.append(key)
    return Dataset(path=path, rows=rows, columns=columns, sha256=hashlib.sha256(raw).hexdigest())


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"not valid UTF-8 (byte offset {exc.start})", file=path, line=line, hint="re-save the file as UTF-8"
        ) from None


def _read_jsonl(path: Path, raw: bytes) -> Iterable[tuple[int, dict[str, Any]]]:
    text = _decode(path, raw)
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
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
        out.append((lineno, obj))
    return out


def _frame_records(df: Any) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for i, rec in enumerate(df.to_dict(orient="records")):
        clean = {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        out.append((i + 1, clean))
    return out


def _read_csv(path: Path, raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    import pandas as pd

    text = _decode(path, raw)
    if not text.strip():
        return []
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as exc:
        raise DatasetError(f"malformed CSV: {exc}", file=path) from None
    return _frame_records(df)


def _read_parquet(path: Path, raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    import pandas as pd

    try:
        df = pd.read_parquet(io.BytesIO(raw))
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: pip install pyarrow", file=path) from None
    except Exception as exc:  # pyarrow raises many types for a broken file
        raise DatasetError(f"unreadable Parquet file: {exc}", file=path) from None
    return _frame_records(df)


def _to_rows(path: Path, records: Iterable[tuple[int, dict[str, Any]]], id_column: str | None) -> list[Row]:
    rows: list[Row] = []
    seen: dict[str, int] = {}
    id_col = id_column or "id"
    for index, (line, data) in enumerate(records):
        if id_col in data and data[id_col] not in (None, ""):
            rid = str(data[id_col])
        elif id_column:
            raise DatasetError(f"row has no value in id column '{id_column}'", file=path, line=line, field=id_column)
        else:
            rid = content_id(data)
        if rid in seen:
            raise DatasetError(
                f"duplicate row id '{rid}' (first at line {seen[rid]})", file=path, line=line, field=id_col,
                hint="row ids must be unique so results match across runs",
            )
        seen[rid] = line
        rows.append(Row(id=rid, index=index, line=line, data=data))
    return rows
