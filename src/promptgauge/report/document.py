"""The report document (``report.json``, schema ``promptgauge.report/1``): what every format renders.

The JSON Schema is generated from these models (``docs/report.schema.json``); a change that
breaks readers bumps the version in :data:`REPORT_SCHEMA`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..compare import Comparison
from ..results.side import judge_hashes

REPORT_SCHEMA = "promptgauge.report/2"



def _with_outcome(data: Any) -> Any:
    """A verdict or rule written before the third outcome: pass or fail, from ``passed``."""
    if isinstance(data, dict) and not data.get("outcome"):
        data = {**data, "outcome": "pass" if data.get("passed") else "fail"}
    return data

class RuleVerdict(BaseModel):
    """One gate rule checked for one variant."""

    rule: str = Field(description="the rule as written in the policy")
    kind: Literal["threshold", "no_regression", "required"]
    variant: str = Field(description="the gated variant")
    metric: str
    op: str
    threshold: float | None = Field(description="the rule's number (max_drop for no_regression)")
    value: float | None = Field(description="the measured value (the delta for no_regression); null if unmeasurable")
    passed: bool
    reason: str = Field(description="why it passed or failed, with the numbers")
    p_value: float | None = Field(None, description="one-sided p-value that the candidate is worse, Holm-adjusted "
                                  "over the variant's no_regression rules (no_regression only)")
    outcome: Literal["pass", "fail", "inconclusive"] = Field(
        "pass", description="inconclusive: a no_regression rule whose test could not have seen a drop of max_drop "
        "(MDE > max_drop); passed then follows the verdict's on_inconclusive")
    mde: float | None = Field(None, description="no_regression: the minimum detectable effect, the smallest drop its "
                              "test detects at the rule's alpha (over the Holm family) and power, at this n and noise")
    rows_needed: int | None = Field(None, description="inconclusive: the rows (at the same noise) that would decide "
                                    "it; null when no number of rows would (see reason)")

    @model_validator(mode="before")
    @classmethod
    def _outcome(cls, data: Any) -> Any:
        return _with_outcome(data)


class Verdict(BaseModel):
    passed: bool = Field(description="what the exit code says: the outcome, with inconclusive read by on_inconclusive")
    outcome: Literal["pass", "fail", "inconclusive"] = Field(
        "pass", description="fail if a rule failed, else inconclusive if a rule was, else pass")
    on_inconclusive: Literal["fail", "pass", "warn"] = Field(
        "fail", description="what an inconclusive outcome means for passed and the exit code (warn: passes, loudly)")
    variants: list[str] = Field(description="the gated variants: those the gate judges")
    baseline: str | None = Field(description="what the gated variants were compared with, if anything")
    policy: dict[str, Any] | None = Field(description="the policy file and its sha256, when not in the suite")
    rules: list[RuleVerdict]

    @model_validator(mode="before")
    @classmethod
    def _outcome(cls, data: Any) -> Any:
        return _with_outcome(data)

    @property
    def inconclusive(self) -> list[RuleVerdict]:
        return [r for r in self.rules if r.outcome == "inconclusive"]


class ReportDoc(BaseModel):
    """A run's or a comparison's report: verdict, aggregates, comparisons with statistics, hashes."""

    model_config = ConfigDict(populate_by_name=True)

    schema_: Literal["promptgauge.report/2"] = Field(REPORT_SCHEMA, alias="schema")
    kind: Literal["run", "compare"]
    title: str
    generated_at: str = Field(description="ISO 8601, UTC")
    suite: str | None
    run_id: str | None = Field(description="the run reported on (kind=run) or the candidate's run")
    status: str | None = Field(None, description="the run's status (kind=run)")
    verdict: Verdict | None
    variants: dict[str, dict[str, Any]] = Field(
        description="aggregates per variant: {calls: {...}, metrics: {evaluator: {n, mean, pass_rate, ...}}}")
    comparisons: list[Comparison] = Field(description="each gated variant vs. the baseline")
    hashes: dict[str, Any] = Field(description="what the verdict rests on: dataset, suite, prompts, models, "
                                   "parameters, evaluators (sha256), per variant")
    order_balanced: bool = Field(False, description="the compared variants ran in one run whose calls came, row by "
                                 "row, in a seeded shuffled order: no variant was systematically called first, so "
                                 "latency comparisons are not biased by call order")


def build_document(*, kind: Literal["run", "compare"], title: str, suite: str | None, run_id: str | None,
                   variants: dict[str, dict[str, Any]], comparisons: list[Comparison],
                   verdict: dict[str, Any] | None, hashes: dict[str, Any], status: str | None = None,
                   order_balanced: bool = False) -> ReportDoc:
    return ReportDoc(kind=kind, title=title, generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                     suite=suite, run_id=run_id, status=status, verdict=verdict, variants=variants,
                     comparisons=comparisons, hashes=hashes, order_balanced=order_balanced)


def run_hashes(manifest: dict[str, Any]) -> dict[str, Any]:
    """The hashes of a run's manifest, in the report's shape."""
    return {
        "suite": manifest.get("suite", {}).get("sha256"),
        "dataset": manifest.get("dataset"),
        "variants": {
            name: {"prompt": v.get("prompt"), "prompt_sha256": v.get("prompt_sha256"),
                   "model": v.get("target_info") or {"target": v.get("target")}, "parameters": v.get("parameters")}
            for name, v in manifest.get("variants", {}).items()
        },
        "evaluators": {k: e.get("sha256") or e.get("source") for k, e in manifest.get("evaluators", {}).items()},
        "judges": {k: {"model": j.get("model"), "parameters": j.get("parameters"), "prompt_sha256": j.get("prompt_sha256")}
                   for k, j in judge_hashes(manifest).items()},
        "promptgauge": manifest.get("promptgauge"),
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``report.json``."""
    return ReportDoc.model_json_schema(by_alias=True)
