"""A variant's results in azure-ai-evaluation's ``evaluate()`` output shape, for where az-eval results go.

``{"rows": [...], "metrics": {...}, "studio_url": null}``, one row per result as az-eval's
``evaluate(data=..., target=..., evaluators=...)`` gives it:

- ``inputs.<column>`` -- the dataset row, and ``inputs.line_number`` (its index in the dataset);
- ``outputs.<key>`` -- what the target returned (``outputs.response``, and any other output of a flow or
  function target), without promptgauge's call bookkeeping (latency, tokens, cost);
- ``outputs.<evaluator>.<key>`` -- each evaluator's output dict as it returned it (a number or a bool:
  ``outputs.<evaluator>.output``); a key another row has and this row lacks is null, as in az-eval's table.

``metrics`` aggregate as az-eval does: the mean of every numeric (and all-bool) evaluator output column
but ``*_threshold``, ``*_result`` and token counts, keyed ``<evaluator>.<key>``; and, per evaluator with a
``*_result`` column, ``<evaluator>.binary_aggregate``: the share of rows whose result is ``pass``
(rounded to 2 places). promptgauge's own aggregates (with CIs) stay in ``summary.json`` and MLflow.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..files import atomic_write
from . import Exported, ExportError, RunData

#: Outputs the engine adds to a target's own (``${target.latency_ms}``...): not the target's, so not exported.
BOOKKEEPING = frozenset({"latency_ms", "prompt_tokens", "completion_tokens", "cost_usd", "cached", "ttft_ms",
                         "tokens_per_s"})
#: Keys the engine adds to an evaluator's output when it repeats it.
ENGINE_DETAILS = frozenset({"repeat_scores", "repeat_errors"})
_TOKEN_SUFFIXES = ("_prompt_tokens", "_completion_tokens", "_total_tokens")


def foundry_rows(data: RunData, variant: str) -> list[dict[str, Any]]:
    """The variant's results as az-eval's ``rows`` (every row with the same keys)."""
    rows = []
    for item in data.store.iter_results(data.run_id, variant=variant):
        row: dict[str, Any] = {f"inputs.{k}": v for k, v in item["inputs"].items()}
        row["inputs.line_number"] = item["row_index"]
        outputs = item["outputs"] or {}
        if item["error"] is None or outputs:
            row["outputs.response"] = item["output"]
            for key, value in outputs.items():
                if key != "response" and key not in BOOKKEEPING and key != "trajectory":
                    row[f"outputs.{key}"] = value
        for ev, s in item["scores"].items():
            details = s.get("details")
            if isinstance(details, dict) and details:
                for key, value in details.items():
                    if key not in ENGINE_DETAILS:
                        row[f"outputs.{ev}.{key}"] = value
            elif s.get("error") is None and s.get("score") is not None:
                row[f"outputs.{ev}.output"] = s["score"]
        rows.append(row)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return [{k: _json_value(row.get(k)) for k in keys} for row in rows]


def _json_value(value: Any) -> Any:
    return None if isinstance(value, float) and (math.isnan(value) or math.isinf(value)) else value


def foundry_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """az-eval's aggregation of evaluator output columns (see the module's docstring)."""
    columns = [k for k in (rows[0] if rows else {}) if k.startswith("outputs.") and k.count(".") >= 2]
    if not columns:
        return {}
    df = pd.DataFrame([{k: row[k] for k in columns} for row in rows], columns=columns)
    binary = {}
    for col in (c for c in columns if c.endswith("_result")):
        try:
            passed = int((df[col] == "pass").sum())
        except TypeError:
            continue
        binary[f"{col.split('.')[1]}.binary_aggregate"] = round(passed / len(df), 2) if len(df) else 0.0
    keep = [c for c in columns if not c.endswith(("_threshold", "_result", *_TOKEN_SUFFIXES))]
    means = df[keep].rename(columns=lambda c: c[len("outputs."):]).mean(numeric_only=True).to_dict()
    metrics = {k: float(v) for k, v in means.items() if pd.notna(v)}
    metrics.update(binary)
    return metrics


def foundry_document(data: RunData, variant: str) -> dict[str, Any]:
    rows = foundry_rows(data, variant)
    return {"rows": rows, "metrics": foundry_metrics(rows), "studio_url": None}


def output_paths(data: RunData, path: str | Path | None) -> dict[str, Path]:
    """Variant -> file: *path* for one variant; for several, ``<stem>.<variant><suffix>`` beside it
    (default: ``foundry.json`` in the run's report folder)."""
    base = Path(path) if path else data.out_dir / "foundry.json"
    if base.is_dir():
        raise ExportError("the foundry export is a file, and this path is a folder", file=base,
                          hint="name a .json file, e.g. -o results/foundry.json")
    if len(data.variants) == 1 and path:
        return {data.variants[0]: base}
    return {v: base.with_name(f"{base.stem}.{v}{base.suffix or '.json'}") for v in data.variants}


def write_foundry(data: RunData, path: str | Path | None = None) -> Exported:
    """Write each variant's document; return variant -> file."""
    items = {}
    for variant, out in output_paths(data, path).items():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(out, json.dumps(foundry_document(data, variant), ensure_ascii=False, indent=2, default=str))
        except OSError as exc:
            raise ExportError(f"cannot write the foundry export: {exc.strerror or exc}", file=out) from None
        items[variant] = str(out)
    return Exported("foundry", str(Path(path) if path else data.out_dir), items)
