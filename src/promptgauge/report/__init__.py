"""Reports of a run: ``summary.json``, ``results.jsonl``, ``report.md`` under ``reports/<run-id>/``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..store import Store
from .markdown import render_markdown

__all__ = ["write_reports", "render_markdown"]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_reports(summary: dict[str, Any], store: Store, out_dir: Path) -> dict[str, Path]:
    """Write every report of the run into *out_dir*; return format -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "summary.json", "jsonl": out_dir / "results.jsonl", "markdown": out_dir / "report.md"}
    _atomic_write(paths["json"], json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    tmp = paths["jsonl"].with_name("results.jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for item in store.iter_results(summary["run_id"]):
            f.write(json.dumps(item, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, paths["jsonl"])
    _atomic_write(paths["markdown"], render_markdown(summary))
    return paths
