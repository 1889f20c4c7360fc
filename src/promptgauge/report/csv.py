"""CSV of the compared rows (pandas): one line per row, inputs, both outputs, per-evaluator scores."""

from __future__ import annotations

import pandas as pd

from .document import ReportDoc


def rows_frame(doc: ReportDoc) -> pd.DataFrame:
    """One line per matched row and judged variant; empty when nothing was compared."""
    records = []
    for c in doc.comparisons:
        b, k = c.baseline.hashes, c.candidate.hashes
        provenance = {  # what each line rests on
            "baseline_run": c.baseline.run_id, "candidate_run": c.candidate.run_id,
            "dataset_sha256": k["dataset"]["sha256"], "baseline_prompt_sha256": b["prompt"]["sha256"],
            "candidate_prompt_sha256": k["prompt"]["sha256"], "baseline_model": b["model"].get("model"),
            "candidate_model": k["model"].get("model")}
        for r in c.row_diffs:
            rec = {**provenance, "candidate": c.candidate.variant, "baseline": c.baseline.variant, "row_id": r.row_id,
                   "status": r.status, **{f"data.{k}": v for k, v in r.inputs.items()},
                   "baseline_output": r.baseline.output, "candidate_output": r.candidate.output,
                   "baseline_error": r.baseline.error, "candidate_error": r.candidate.error}
            for side, rs in (("baseline", r.baseline), ("candidate", r.candidate)):
                for ev, s in rs.scores.items():
                    rec[f"{side}.{ev}.score"] = s.get("score")
                    rec[f"{side}.{ev}.passed"] = s.get("passed")
            records.append(rec)
    return pd.DataFrame.from_records(records)


def render_csv(doc: ReportDoc) -> str:
    return rows_frame(doc).to_csv(index=False)
