"""The per-row view of a variant's results: a row's first result with its scores and reasons.

What a report shows of a row (:class:`RowView`), read for a few rows at a time -- from a
results file's frames (:func:`frame_rows`) or from the store (:func:`store_rows`) -- so the
texts of a huge run are never all in memory.
"""

from __future__ import annotations

import json
import math
import sqlite3
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from .trajectory import load_trajectory

if TYPE_CHECKING:
    import pandas as pd


class RowView(NamedTuple):
    """A row of one variant as the per-row view shows it: its first result, with its scores and reasons."""

    index: int
    inputs: dict[str, Any]
    output: str | None
    error: str | None
    latency_ms: float | None
    scores: dict[str, dict[str, Any]]  # evaluator -> {score, passed, error, reason}
    trajectory: dict[str, Any] | None = None  # the result's outputs["trajectory"], when it has one


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


#: Turns of a conversation the per-row view keeps per evaluator (a simulated user talks 50 turns at most).
MAX_TURNS = 50


def _passed(passed: Any) -> bool | None:
    return None if passed is None or passed != passed else bool(passed)  # noqa: PLR0124 - NaN


def _score_view(score: Any, passed: Any, error: Any, details: Any) -> dict[str, Any]:
    """One evaluator's record in the per-row view, with the evaluator's reason; an evaluator with
    ``per_turn: true`` on a conversation adds ``turns``: each turn's ``{turn, score, passed, error}``."""
    if isinstance(details, str):  # JSON text from the store: parsed only when it may hold a reason, a flag or turns
        details = json.loads(details) if ("reason" in details or "judge_injection" in details
                                          or '"per_turn"' in details) else None
    if not isinstance(details, dict):
        details = None
    reason = next((str(v) for k, v in details.items() if k.endswith("reason") and v), None) if details else None
    view = {"score": _num(score), "passed": _passed(passed), "error": error if isinstance(error, str) else None,
            "reason": reason}
    flagged = details.get("judge_injection") if details else None
    if isinstance(flagged, dict) and flagged.get("flagged"):
        view["injection"] = sorted({str(s.get("kind")) for s in flagged.get("signals") or [] if isinstance(s, dict)})
    turns = details.get("per_turn") if details else None
    if isinstance(turns, list) and turns:
        view["turns"] = [{"turn": t["turn"] if isinstance(t.get("turn"), int) else None,
                          "score": _num(t["score"]) if isinstance(t.get("score"), (int, float)) else None,
                          "passed": _passed(t.get("passed")),
                          "error": t["error"] if isinstance(t.get("error"), str) else None}
                         for t in turns[:MAX_TURNS] if isinstance(t, dict)]
    return view


def _row_view(index: Any, inputs: dict[str, Any], output: Any, error: Any, latency_ms: Any,
              scores: dict[str, dict[str, Any]], trajectory: Any = None) -> RowView:
    return RowView(int(index), inputs, output if isinstance(output, str) else None,
                   error if isinstance(error, str) else None, _num(latency_ms), scores, load_trajectory(trajectory))


def frame_rows(results: pd.DataFrame, scores: pd.DataFrame, row_ids: Any) -> dict[str, RowView]:
    """Each row's first result with its scores, from a variant's frames."""
    first = results[results["row_id"].isin(row_ids)].drop_duplicates("row_id")
    keys = set(zip(first["row_id"], first["repeat"]))
    per_row: dict[str, dict[str, dict[str, Any]]] = {}
    for rec in scores[scores["row_id"].isin(row_ids)].to_dict(orient="records"):
        if (rec["row_id"], rec["repeat"]) in keys:
            per_row.setdefault(rec["row_id"], {})[rec["evaluator"]] = _score_view(
                rec["score"], rec["passed"], rec["error"], rec["details"])
    return {rec["row_id"]: _row_view(rec["row_index"], rec["inputs"], rec["output"], rec["error"], rec["latency_ms"],
                                     per_row.get(rec["row_id"], {}), rec.get("trajectory"))
            for rec in first.to_dict(orient="records")}


def store_rows(db: sqlite3.Connection, run_id: str, variant: str, row_ids: list[str]) -> dict[str, RowView]:
    """Each row's first result with its scores, read from the store (for these rows only)."""
    out: dict[str, RowView] = {}
    for start in range(0, len(row_ids), 500):  # well under SQLite's limit of bound parameters
        chunk = row_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        first = {rec[0]: rec for rec in db.execute(  # SQLite takes bare columns from the row with the MIN()
            f"SELECT row_id, MIN(repeat), row_index, inputs, output, error, latency_ms, "
            f"json_extract(outputs, '$.trajectory') FROM results "
            f"WHERE run_id=? AND variant=? AND row_id IN ({marks}) GROUP BY row_id", (run_id, variant, *chunk))}
        per_row: dict[str, dict[str, dict[str, Any]]] = {}
        for row_id, repeat, ev, score, passed, error, details in sorted(db.execute(  # by evaluator, as the frames
                f"SELECT row_id, repeat, evaluator, score, passed, error, details FROM scores "  # (an ORDER BY would
                f"WHERE run_id=? AND variant=? AND row_id IN ({marks})", (run_id, variant, *chunk)),  # scan the run)
                key=itemgetter(2)):
            if repeat == first[row_id][1]:
                per_row.setdefault(row_id, {})[ev] = _score_view(score, passed, error, details)
        for row_id, _, index, inputs, output, error, latency_ms, trajectory in first.values():
            out[row_id] = _row_view(index, json.loads(inputs), output, error, latency_ms, per_row.get(row_id, {}),
                                    trajectory)
    return out


def store_input_names(db: sqlite3.Connection, run_id: str, variant: str) -> list[str]:
    """The rows' input names in the store, in order of first appearance."""
    return [k for k, _, _ in db.execute(  # SQLite takes a bare column from the row with the MIN()
        "SELECT j.key, MIN(r.row_index) AS first, j.id FROM results r, json_each(r.inputs) j "
        "WHERE r.run_id=? AND r.variant=? GROUP BY j.key ORDER BY first, j.id", (run_id, variant))]
