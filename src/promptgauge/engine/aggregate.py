"""Run-level metrics of evaluators that aggregate: promptflow evaluation flows' aggregation nodes.

After a run's rows are scored, each evaluator with an ``aggregate`` method (a
:class:`~promptgauge.evaluators.flow.FlowEvaluator` whose flow has aggregation nodes)
runs once per variant over the rows it scored, read back from the store -- so a resumed
run aggregates every row, old and new. What it logs goes into the run's manifest
(``aggregates: {variant: {evaluator: {metric: value}}}``), where the summary, the
reports and the gate read it.
"""

from __future__ import annotations

import math
from typing import Any

from ..evaluators.flow import FLOW_KEY
from ..store import Store
from .plan import Plan


def aggregate(plan: Plan, store: Store, run_id: str, *, variants: list[str] | None = None,
              evaluators: list[Any] | None = None) -> list[str]:
    """Aggregate every aggregating evaluator (of *evaluators*, default the plan's) for every variant (of
    *variants*, default the plan's); returns notes (a failed aggregation, a metric that is not a number)
    for the run's warnings. Other evaluators' aggregates in the manifest are kept."""
    notes: list[str] = []
    for variant in variants if variants is not None else [v.name for v in plan.variants]:
        found: dict[str, dict[str, float]] = {}
        for ev in evaluators if evaluators is not None else plan.evaluators:
            func = ev.func
            if not getattr(func, "aggregates", False) or not callable(getattr(func, "aggregate", None)):
                continue
            lines = [d[FLOW_KEY] for d in store.score_details(run_id, variant, ev.name)
                     if isinstance(d, dict) and isinstance(d.get(FLOW_KEY), dict)]
            try:
                metrics = func.aggregate(lines)
            except Exception as exc:  # noqa: BLE001 - the user's aggregation code: a note, not a crash
                notes.append(f"evaluator '{ev.name}': the flow's aggregation failed for variant '{variant}': "
                             f"{type(exc).__name__}: {exc}")
                continue
            found[ev.name] = {}
            for metric, value in metrics.items():
                number = _number(value)
                if number is None:
                    notes.append(f"evaluator '{ev.name}': logged metric '{metric}' is not a number ({value!r:.40}); "
                                 "left out")
                else:
                    found[ev.name][str(metric)] = number
        if found:
            kept = (store.run(run_id).manifest.get("aggregates") or {}).get(variant) or {}
            store.update_manifest(run_id, "aggregates", {variant: {**kept, **found}})
    return notes


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
