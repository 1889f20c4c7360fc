"""CSV of the compared rows: one line per row, inputs, both outputs, per-evaluator scores and,
when a side has trajectories, both tool sequences (``lookup_order → refund``) and ``tool_change``
(``sequence`` / ``arguments``).

Written chunk by chunk, every row read from the comparison's sides
(:meth:`~promptgauge.compare.Comparison.iter_rows`): a run of any size, in flat memory.

Every text field (header included) goes through :func:`promptgauge.escaping.csv_cell` (controls made
visible, ``= + - @`` cells prefixed with ``'``) and is quoted, so a bare CR or a newline in an output stays
inside its field.
"""

from __future__ import annotations

import csv
from itertools import islice
from typing import Any, TextIO

from ..compare import ROW_CHUNK, Comparison
from ..escaping import csv_cell
from ..results import RowView, tool_change, tool_sequence, trajectory_digests
from .document import ReportDoc
from .trajectory import turn_marks

PROVENANCE = ("baseline_run", "candidate_run", "dataset_sha256", "baseline_prompt_sha256",
              "candidate_prompt_sha256", "baseline_model", "candidate_model")


def _per_turn(c: Comparison) -> set[str]:
    """The evaluators that scored some of the comparison's rows turn by turn (conversations, ``per_turn: true``)."""
    return {ev for r in c.row_diffs for side in (r.baseline, r.candidate) for ev, s in side.scores.items()
            if s.get("turns")}


def _columns(c: Comparison) -> list[str]:
    inputs, b_evs, c_evs = c.row_fields()
    tools = ["baseline_tools", "candidate_tools", "tool_change"] if c.has_trajectories() else []
    per_turn = _per_turn(c)
    return [*PROVENANCE, "candidate", "baseline", "row_id", "status", *(f"data.{k}" for k in inputs),
            "baseline_output", "candidate_output", "baseline_error", "candidate_error", *tools,
            *(f"{side}.{ev}.{x}" for side, evs in (("baseline", b_evs), ("candidate", c_evs))
              for ev in evs for x in ("score", "passed", *(("turns",) if ev in per_turn else ())))]


def _record(c: Comparison, provenance: dict[str, Any], row: tuple[str, str, RowView, RowView]) -> dict[str, Any]:
    row_id, status, base, cand = row
    rec = {**provenance, "candidate": c.candidate.variant, "baseline": c.baseline.variant, "row_id": row_id,
           "status": status, **{f"data.{k}": v for k, v in cand.inputs.items()},
           "baseline_output": base.output, "candidate_output": cand.output,
           "baseline_error": base.error, "candidate_error": cand.error}
    if base.trajectory is not None or cand.trajectory is not None:
        rec["baseline_tools"], rec["candidate_tools"] = tool_sequence(base.trajectory), tool_sequence(cand.trajectory)
        rec["tool_change"] = tool_change(trajectory_digests(base.trajectory), trajectory_digests(cand.trajectory))
    for side, view in (("baseline", base), ("candidate", cand)):
        for ev, s in view.scores.items():
            rec[f"{side}.{ev}.score"] = s["score"]
            rec[f"{side}.{ev}.passed"] = s["passed"]
            if s.get("turns"):  # a conversation scored per turn: ✓✓✗, one mark per turn
                rec[f"{side}.{ev}.turns"] = turn_marks(s)
    return rec


def write_csv(doc: ReportDoc, out: TextIO, chunk: int = ROW_CHUNK) -> None:
    """One line per matched row and gated variant, *chunk* rows at a time; an empty table when
    nothing was compared."""
    columns = list(dict.fromkeys(col for c in doc.comparisons for col in _columns(c)))
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    if not columns:
        out.write('""\n')
        return
    writer.writerow([csv_cell(col) for col in columns])
    for c in doc.comparisons:
        b, k = c.baseline.hashes, c.candidate.hashes
        provenance = dict(zip(PROVENANCE, (  # what each line rests on
            c.baseline.run_id, c.candidate.run_id, k["dataset"]["sha256"], b["prompt"]["sha256"],
            k["prompt"]["sha256"], b["model"].get("model"), k["model"].get("model"))))
        rows = c.iter_rows(chunk)
        while part := list(islice(rows, chunk)):
            for r in part:
                rec = _record(c, provenance, r)
                writer.writerow([_field(rec.get(col)) for col in columns])


def _field(value: Any) -> Any:
    """A value as its CSV field: numbers and booleans as they are, lists/dicts as JSON-like text, None empty."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return value
    return csv_cell(value if isinstance(value, str) else str(value))
