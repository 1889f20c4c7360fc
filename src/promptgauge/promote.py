"""Promotion: after a passing gate, the record a deployment pipeline consumes, and the baseline moved.

The record (JSON, ``promptgauge.promotion/2``) says what was promoted -- prompt file,
model, parameters, each with its hash -- on which dataset (hash), on what evidence (the
run, the baseline it beat, the comparison's headline numbers and report) and the verdict
with every rule. It is written to ``<promotions_dir>/<suite>/<time>-<variant>.json`` and
copied to ``latest.json`` there. The baseline pointer is the suite's baseline file: the
promoted variant's results (``promptgauge.results/1``), meant to be committed, so later
comparisons default to it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CompareError
from .files import atomic_write, relative
from .outcomes import CompareReport, PromotionResult
from .results import load_results_file, results_text, write_results_file

if TYPE_CHECKING:
    from .suite import Suite

PROMOTION_SCHEMA = "promptgauge.promotion/2"


def _sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_promotion(suite: Suite, evidence: CompareReport, pointer: Path) -> PromotionResult:
    """Write the promotion record and move the baseline pointer to the candidate (gate already passed)."""
    cand, base, comp = evidence.candidate, evidence.baseline, evidence.comparison
    if not evidence.passed:
        raise CompareError("refusing to promote: the gate did not pass")
    previous = None
    if pointer.is_file():
        old = load_results_file(pointer)
        previous = {"run_id": old.run_id, "variant": old.variant, "sha256": _sha_file(pointer)}
    text = results_text(cand)
    now = dt.datetime.now(dt.UTC)
    h = cand.hashes()
    record = {
        "schema": PROMOTION_SCHEMA,
        "promoted_at": now.isoformat(timespec="seconds"),
        "suite": {"name": suite.name, "path": relative(suite.path, suite.root) if suite.path else None,
                  "sha256": suite.sha256},
        "promoted": {"variant": cand.variant, "run_id": cand.run_id, "prompt": h["prompt"], "model": h["model"],
                     "target": cand.manifest["variants"][cand.variant].get("target"),
                     "parameters": h["parameters"], "parameters_sha256": h["parameters_sha256"]},
        "dataset": h["dataset"],
        "evaluators": h["evaluators"],
        "evidence": {
            "run_id": cand.run_id,
            "baseline": {"label": base.label, "run_id": base.run_id, "variant": base.variant,
                         "source": base.source if base.source == "store" else relative(Path(base.source), suite.root),
                         "hashes": base.hashes()},
            "rows_compared": comp.rows.matched,
            "metrics": [{k: getattr(m, k) for k in ("metric", "baseline", "candidate", "delta", "ci_low", "ci_high",
                                                    "p_holm", "change")} for m in comp.metrics],
            "warnings": comp.warnings,
            "report": relative(evidence.reports["json"], suite.root),
        },
        "verdict": evidence.verdict,
        "baseline_file": {"path": relative(pointer, suite.root), "sha256": hashlib.sha256(text.encode()).hexdigest()},
        "previous_baseline": previous,
    }
    folder = suite.resolve(suite.gate.promotions_dir) / suite.name
    path = folder / f"{now.strftime('%Y%m%d-%H%M%S')}-{cand.variant}.json"
    _write_json(path, record)
    _write_json(folder / "latest.json", record)
    write_results_file(cand, pointer, text)  # last: the pointer moves only once the record exists
    return PromotionResult(True, evidence, record, path, pointer)
