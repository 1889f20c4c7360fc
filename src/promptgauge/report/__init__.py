"""Reports: ``report.json`` (versioned schema), ``report.html``, ``report.md``, ``junit.xml``, ``rows.csv``.

A run also writes ``summary.json`` and ``results.jsonl`` (every result, from the store). ``rows.csv``
and ``results.jsonl`` are streamed (every row, in flat memory); the others render the document,
whose per-row view is capped for huge runs (:data:`promptgauge.compare.MAX_ROWS`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..store import Store
from .csv import write_csv
from .document import REPORT_SCHEMA, ReportDoc, build_document, json_schema, run_hashes
from .html import render_html
from .junit import render_junit
from .markdown import render_markdown

__all__ = ["REPORT_SCHEMA", "ReportDoc", "build_document", "json_schema", "render_html", "render_junit",
           "render_markdown", "run_hashes", "write_csv", "write_reports"]


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[TextIO]:
    """A text file written under a temporary name and renamed into place once complete."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        yield f
    os.replace(tmp, path)


def _atomic_write(path: Path, text: str) -> None:
    with _atomic(path) as f:
        f.write(text)


def write_reports(doc: ReportDoc, out_dir: Path, *, summary: dict[str, Any] | None = None,
                  store: Store | None = None) -> dict[str, Path]:
    """Write every format of *doc* into *out_dir* (and a run's summary and results); return format -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "html": out_dir / "report.html", "markdown": out_dir / "report.md",
             "junit": out_dir / "junit.xml", "csv": out_dir / "rows.csv"}
    _atomic_write(paths["json"], doc.model_dump_json(indent=2, by_alias=True) + "\n")
    _atomic_write(paths["html"], render_html(doc))
    _atomic_write(paths["markdown"], render_markdown(doc))
    _atomic_write(paths["junit"], render_junit(doc))
    with _atomic(paths["csv"]) as f:
        write_csv(doc, f)
    if summary is not None:
        paths["summary"] = out_dir / "summary.json"
        _atomic_write(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    if store is not None and doc.run_id:
        paths["jsonl"] = out_dir / "results.jsonl"
        with _atomic(paths["jsonl"]) as f:
            for item in store.iter_results(doc.run_id):
                f.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
    return paths
