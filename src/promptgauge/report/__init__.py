"""Reports: ``report.json`` (versioned schema), ``report.html``, ``report.md``, ``junit.xml``, ``rows.csv``.

A run also writes ``summary.json`` and ``results.jsonl`` (every result, from the store). ``rows.csv``
and ``results.jsonl`` are streamed (every row, in flat memory); the others render the document,
whose per-row view is capped for huge runs (:data:`promptgauge.compare.MAX_ROWS`).

Every number in them is written by :mod:`.format`; every file is written atomically
(:func:`promptgauge.files.atomic_write`). A monitor's trend report: :mod:`.monitor`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..files import atomic_open, atomic_write
from ..store import Store
from .csv import write_csv
from .document import REPORT_SCHEMA, ReportDoc, build_document, json_schema, run_hashes
from .format import compact, fmt, sig, signed
from .html import render_html
from .junit import render_junit
from .markdown import render_markdown

__all__ = ["REPORT_SCHEMA", "ReportDoc", "atomic_write", "build_document", "compact", "fmt", "json_schema",
           "render_html", "render_junit", "render_markdown", "run_hashes", "sig", "signed", "write_csv", "write_monitor_reports",
           "write_reports"]


def write_reports(doc: ReportDoc, out_dir: Path, *, summary: dict[str, Any] | None = None,
                  store: Store | None = None) -> dict[str, Path]:
    """Write every format of *doc* into *out_dir* (and a run's summary and results); return format -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "html": out_dir / "report.html", "markdown": out_dir / "report.md",
             "junit": out_dir / "junit.xml", "csv": out_dir / "rows.csv"}
    atomic_write(paths["json"], doc.model_dump_json(indent=2, by_alias=True) + "\n")
    atomic_write(paths["html"], render_html(doc))
    atomic_write(paths["markdown"], render_markdown(doc))
    atomic_write(paths["junit"], render_junit(doc))
    with atomic_open(paths["csv"]) as f:
        write_csv(doc, f)
    if summary is not None:
        paths["summary"] = out_dir / "summary.json"
        atomic_write(paths["summary"], json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    if store is not None and doc.run_id:
        paths["jsonl"] = out_dir / "results.jsonl"
        with atomic_open(paths["jsonl"]) as f:
            for item in store.iter_results(doc.run_id):
                f.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
    return paths


def write_monitor_reports(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write a monitor pass's three reports into *out_dir*; return format -> path."""
    from .monitor import render_monitor_markdown
    from .monitor_html import render_monitor_html

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "monitor.json", "markdown": out_dir / "monitor.md", "html": out_dir / "monitor.html"}
    atomic_write(paths["json"], json.dumps(report, indent=2, ensure_ascii=False, default=str))
    atomic_write(paths["markdown"], render_monitor_markdown(report))
    atomic_write(paths["html"], render_monitor_html(report))
    return paths
