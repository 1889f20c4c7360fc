"""Exports: a finished run's results, where other tools read them.

- :mod:`.mlflow` -- each variant as an MLflow run (params: what the verdict rests on; metrics: every
  aggregate with its CI bounds; tags: verdict, suite; artifacts: the reports and the variant's rows);
- :mod:`.foundry` -- azure-ai-evaluation's ``evaluate()`` output (``rows`` with ``inputs.*`` /
  ``outputs.<evaluator>.*``, ``metrics``), one file per variant, for where az-eval results go.

The verb (``promptgauge export``, :func:`promptgauge.api.export`) and a suite's ``export:`` section
gather a run into a :class:`RunData` (summary, verdict, results, reports: read through
:mod:`promptgauge.results`) and hand it to :func:`export_run`. No SQL here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compare import Comparison
from ..errors import UserError
from ..gate import metric_ci
from ..public import public_parameters
from ..results import Results
from ..store import Store

__all__ = ["EXPORTERS", "ExportError", "Exported", "RunData", "check_export", "export_run", "flat_metrics",
           "flat_params", "verdict_of"]

#: What ``promptgauge export`` can write to.
EXPORTERS = ("mlflow", "foundry")


class ExportError(UserError):
    """An export cannot be done: a missing extra, an unreachable tracking server, an unwritable path."""


@dataclass
class RunData:
    """One run, as an exporter needs it: read from the store through :mod:`promptgauge.results`."""

    run_id: str
    suite: str
    status: str
    summary: dict[str, Any]  # results.summarize() plus "gate" (the verdict)
    sides: dict[str, Results]  # variant -> its results (frameless)
    comparisons: list[Comparison]
    confidence: float
    reports: dict[str, Path]  # format -> the run's report files (report.html, report.json, ...)
    store: Store
    out_dir: Path  # the run's report folder: where a file export goes by default
    variants: list[str] = field(default_factory=list)  # the variants to export (default: all)

    def __post_init__(self) -> None:
        self.variants = self.variants or list(self.sides)

    def comparison(self, variant: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.candidate.variant == variant), None)


@dataclass
class Exported:
    """What one export wrote: per variant, where (an MLflow run id, a file)."""

    to: str
    where: str  # the tracking URI or the output file / folder
    items: dict[str, str]  # variant -> MLflow run id or file path
    notes: list[str] = field(default_factory=list)


def export_run(data: RunData, to: str, *, tracking_uri: str | None = None, experiment: str | None = None,
               path: str | Path | None = None) -> Exported:
    """Export *data* to *to* (``mlflow`` or ``foundry``)."""
    if to == "mlflow":
        from .mlflow import log_run

        return log_run(data, tracking_uri=tracking_uri, experiment=experiment)
    if to == "foundry":
        from .foundry import write_foundry

        return write_foundry(data, path)
    raise ExportError(f"unknown export target '{to}'", hint="valid: " + ", ".join(EXPORTERS))


def check_export(to: str, *, tracking_uri: str | None = None) -> None:
    """What can be checked before a run: the extra is installed, the tracking server answers (http URIs)."""
    if to == "mlflow":
        from .mlflow import check_tracking

        check_tracking(tracking_uri)
    elif to not in EXPORTERS:
        raise ExportError(f"unknown export target '{to}'", hint="valid: " + ", ".join(EXPORTERS))


def verdict_of(summary: Mapping[str, Any], variant: str) -> str:
    """``passed`` / ``failed`` (the gate's rules for this variant), or ``not gated``."""
    gate = summary.get("gate") or {}
    if variant not in (gate.get("variants") or []):
        return "not gated"
    rules = [r for r in gate.get("rules") or [] if r.get("variant") == variant]
    return "passed" if all(r.get("passed") for r in rules) else "failed"


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from _flatten(f"{prefix}.{k}" if prefix else str(k), v)
    else:
        yield prefix, value


def flat_params(results: Results) -> dict[str, Any]:
    """What a variant's numbers rest on (:meth:`Results.hashes`), flat: ``dataset.sha256``, ``prompt.path``,
    ``model.model``, ``parameters.temperature``, ``evaluators.f1``... Secrets masked."""
    hashes = dict(results.hashes())
    hashes["parameters"] = public_parameters(hashes.get("parameters") or {})
    out = {k: v for k, v in _flatten("", hashes) if v is not None and v != {}}
    out["run_id"], out["variant"], out["suite"] = results.run_id, results.variant, results.suite
    return out


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def flat_metrics(data: RunData, variant: str) -> dict[str, float]:
    """Every aggregate of *variant* (its summary: calls, evaluators, agreement), the CI bounds of each per-row
    metric at the gate's confidence (``f1.mean.ci_low``, ``contains.pass_rate.ci_high``, ``error_rate.ci_low``,
    ``latency_ms.mean.ci_low``), and, for a compared variant, each change vs. the baseline with its CI
    (``f1.mean.delta``, ``f1.mean.delta.ci_low``) and Holm-adjusted p-value."""
    v = data.summary["variants"][variant]
    out: dict[str, float] = {}
    for key, value in _flatten("", v.get("calls") or {}):
        if (x := _num(value)) is not None:
            out[key] = x
    for key, value in _flatten("", v.get("metrics") or {}):
        if (x := _num(value)) is not None:
            out[key] = x
    side = data.sides[variant]
    for metric in side.table().columns:
        ci = metric_ci(side, metric, data.confidence)
        if ci is not None:
            for name, bound in zip(("ci_low", "ci_high"), ci):
                if (x := _num(bound)) is not None:
                    out[f"{metric}.{name}"] = x
    comp = data.comparison(variant)
    if comp is not None:
        for m in comp.metrics:
            for name, value in (("delta", m.delta), ("delta.ci_low", m.ci_low), ("delta.ci_high", m.ci_high),
                                ("p_holm", m.p_holm)):
                if (x := _num(value)) is not None:
                    out[f"{m.metric}.{name}"] = x
    return out
