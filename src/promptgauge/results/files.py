"""Results files (``promptgauge.results/1``): one variant's results as self-contained JSON.

What ``promote`` writes as the suite's baseline (``baselines/<suite>.json``) and the pytest
plugin as its snapshots: the run's manifest, and every row's inputs, output, call statistics
and scores (and a tool loop's ``trajectory``: messages, steps, tool calls, whole), meant to be committed
next to the prompts so a baseline lives in git.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import CompareError
from ..files import atomic_write
from .side import Results

RESULTS_SCHEMA = "promptgauge.results/1"


def results_to_json(results: Results) -> dict[str, Any]:
    """*results* as a results file (``promptgauge.results/1``): self-contained, diff-friendly JSON."""
    frame, scores = results.frames()
    scores = scores.astype(object).where(scores.notna(), None)
    by_row: dict[tuple[str, int], dict[str, Any]] = {}
    for rec in scores.to_dict(orient="records"):
        by_row.setdefault((rec["row_id"], int(rec["repeat"])), {})[rec["evaluator"]] = {
            "score": rec["score"], "passed": None if rec["passed"] is None else bool(rec["passed"]),
            "error": rec["error"], "details": rec["details"]}
    rows = []
    frame = frame.astype(object).where(frame.notna(), None)
    for rec in frame.to_dict(orient="records"):
        key = (rec["row_id"], int(rec["repeat"]))
        trajectory = rec.get("trajectory")
        rows.append({**{k: rec[k] for k in ("row_id", "repeat", "row_index", "inputs", "output", "error",
                                           "latency_ms", "prompt_tokens", "completion_tokens")},
                     **({"trajectory": trajectory} if isinstance(trajectory, dict) else {}),
                     "scores": by_row.get(key, {})})
    return {"schema": RESULTS_SCHEMA, "suite": results.suite, "run_id": results.run_id, "variant": results.variant,
            "created_at": results.created_at, "manifest": results.manifest,
            "evaluator_kinds": results.evaluator_kinds, "rows": rows}


def results_text(results: Results) -> str:
    """The results file of *results*, as text."""
    return json.dumps(results_to_json(results), indent=1, ensure_ascii=False, default=str) + "\n"


def write_results_file(results: Results, path: Path, text: str | None = None) -> Path:
    """Write *results* (or its already rendered *text*) as a results file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text if text is not None else results_text(results))
    return path


def load_results_file(path: str | Path) -> Results:
    """Read a results file written by :func:`write_results_file` (a promoted baseline, say)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompareError("results file not found", file=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CompareError(f"not a JSON results file: {exc}", file=path) from None
    if not isinstance(doc, dict) or doc.get("schema") != RESULTS_SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise CompareError(f"not a promptgauge results file (schema {found!r})", file=path,
                           hint=f"expected schema '{RESULTS_SCHEMA}', written by 'promptgauge promote' or export")
    try:
        import pandas as pd  # a results file is read into frames; a run does not load pandas

        rows = doc["rows"]
        results = pd.DataFrame([{k: v for k, v in r.items() if k != "scores"} for r in rows],
                               columns=["row_id", "repeat", "row_index", "inputs", "output", "error", "latency_ms",
                                        "prompt_tokens", "completion_tokens", "trajectory"])
        results["trajectory"] = results["trajectory"].map(lambda t: t if isinstance(t, dict) else None)
        scores = pd.DataFrame(
            [{"row_id": r["row_id"], "repeat": r["repeat"], "evaluator": ev, **s}
             for r in rows for ev, s in r["scores"].items()],
            columns=["row_id", "repeat", "evaluator", "score", "passed", "error", "details"])
        return Results(doc["run_id"], doc["variant"], doc["suite"], doc["created_at"], doc["manifest"],
                       doc.get("evaluator_kinds", {}), results, scores, source=str(path))
    except (KeyError, TypeError, AttributeError) as exc:
        raise CompareError(f"results file is incomplete or malformed near {exc}", file=path) from None
