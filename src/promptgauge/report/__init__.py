"""Reports: ``report.json`` (versioned schema), ``report.html``, ``report.md``, ``junit.xml``, ``rows.csv``.

A run also writes ``summary.json`` and ``results.jsonl`` (every result, from the store).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..store import Store
from .csv import render_csv
from .document import REPORT_SCHEMA, ReportDoc, build_document, json_schema, run_hashes
from .html import render_html
from .junit import render_junit
from .markdown import render_markdown

__all__ = ["REPORT_SCHEMA", "ReportDoc", "build_document", "json_schema", "render_csv", "render_html",
           "render_junit", "render_markdown", "run_hashes", "write_reports"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
    _atomic_write(paths["csv"], render_csv(doc))
    if summary is not None:
        paths["summary"] = out_dir / "summary.json"
        _atomic_write(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    if store is not None and doc.run_id:
        paths["jsonl"] = out_dir / "results.jsonl"
        tmp = paths["jsonl"].with_name("results.jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for item in store.iter_results(doc.run_id):
                f.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
        os.replace(tmp, paths["jsonl"])
    return paths
