"""Aggregates of one run: per variant, call statistics and per-evaluator metrics.

Metric names, as gate rules and reports use them:

- ``<evaluator>.mean`` / ``.std`` / ``.min`` / ``.max`` / ``.median`` -- of the primary score over scored rows;
- ``<evaluator>.pass_rate`` -- passed / (scored + errors): an error counts as a failure;
- ``<evaluator>.n``, ``<evaluator>.errors``, ``<evaluator>.error_rate``;
- ``<evaluator>.reliability.alpha|exact|within_1`` -- agreement across the repeats of an
  evaluator with ``repeats: n``; ``<evaluator>.human_agreement.alpha|exact|within_1`` --
  agreement with the dataset's ``human_label`` column (see :mod:`.evaluators.reliability`);
- ``error_rate`` -- failed model calls / calls; ``latency_ms.p50|p95|mean|max``;
  ``tokens.prompt|completion|total`` (sums).

Which way each metric is better: :func:`higher_is_better`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .evaluators.reliability import human_agreement, repeat_agreement
from .results import Columns, EvaluatorColumns, read_columns
from .store import Store

SUMMARY_SCHEMA = "promptgauge.summary/1"
EVALUATOR_STATS = ("n", "mean", "std", "min", "median", "max", "pass_rate", "passed", "errors", "error_rate")
AGREEMENT_STATS = {"reliability": ("alpha", "exact", "within_1"), "human_agreement": ("alpha", "exact", "within_1")}
RUN_METRICS = {"error_rate": None, "latency_ms": ("mean", "p50", "p95", "max"), "tokens": ("prompt", "completion", "total")}
#: Statistics of an evaluator's score: they follow the evaluator's direction.
SCORE_STATS = ("mean", "median", "min", "max", "p95")
#: Metric families where less is better, whatever the evaluators say.
LESS_IS_BETTER = ("latency_ms", "tokens", "cost")


def higher_is_better(metric: str, directions: Mapping[str, bool] | None = None) -> bool:
    """Whether a larger value of *metric* is better -- the one place that says so.

    ``EV.mean`` / ``.median`` / ``.min`` / ``.max`` / ``.p95`` follow the evaluator's
    direction in *directions* (evaluator -> higher is better, as the run manifest
    records it; default higher). Error rates, latencies, tokens and costs are better
    lower; pass rates, agreement and everything else higher.
    """
    parts = metric.split(".")
    if parts[-1] in ("error_rate", "errors"):
        return False
    if directions is not None and parts[0] in directions:
        return bool(directions[parts[0]]) if len(parts) == 2 and parts[1] in SCORE_STATS else True
    return parts[0] not in LESS_IS_BETTER


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def summarize(store: Store, run_id: str, evaluators: list[str] | None = None, *,
              columns: Mapping[str, Columns] | None = None) -> dict[str, Any]:
    """The run's summary as plain JSON-ready data (``summary.json``), from each variant's compact columns
    (*columns*, when already read: variant -> its columns with *evaluators*)."""
    info = store.run(run_id)
    variants = list(info.manifest.get("variants", {})) or store.variants(run_id)
    evaluators = evaluators if evaluators is not None else list(info.manifest.get("evaluators", {}))
    configs = info.manifest.get("evaluators", {})
    columns = {v: (columns or {}).get(v) or read_columns(store, run_id, v, evaluators, configs) for v in variants}
    return {
        "schema": SUMMARY_SCHEMA,
        "run_id": run_id,
        "suite": info.suite,
        "status": info.status,
        "created_at": info.created_at,
        "finished_at": info.finished_at,
        "manifest": info.manifest,
        "variants": {v: columns_summary(columns[v], evaluators, configs) for v in variants},
    }


def variant_summary(res: pd.DataFrame, sv: pd.DataFrame, evaluators: list[str],
                    configs: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`columns_summary` of one variant's results and scores frames (a results file's, say).

    *configs* (the manifest's ``evaluators``) adds agreement statistics to evaluators with
    ``repeats`` or a ``human_label``; the frames then need ``details`` and ``inputs`` columns.
    """
    return columns_summary(Columns.from_frames(res, sv, evaluators, configs), evaluators, configs)


def columns_summary(cols: Columns, evaluators: list[str], configs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call statistics and per-evaluator metrics of one variant, from its compact columns."""
    ok = ~cols.error
    lat = cols.latency_ms[ok]
    lat = lat[~np.isnan(lat)]
    n_calls = len(cols)
    n_err = int(cols.error.sum())
    calls = {
        "n": n_calls,
        "errors": n_err,
        "error_rate": n_err / n_calls if n_calls else 0.0,
        "latency_ms": {
            "mean": _f(lat.mean()) if lat.size else None,
            "p50": _f(np.percentile(lat, 50)) if lat.size else None,
            "p95": _f(np.percentile(lat, 95)) if lat.size else None,
            "max": _f(lat.max()) if lat.size else None,
        },
        "tokens": {
            "prompt": int(np.nansum(cols.prompt_tokens[ok])),
            "completion": int(np.nansum(cols.completion_tokens[ok])),
        },
    }
    calls["tokens"]["total"] = calls["tokens"]["prompt"] + calls["tokens"]["completion"]
    metrics = {}
    for ev in evaluators:
        e = cols.evaluators[ev]
        scored = e.present & ~e.error
        values = e.score[scored]
        values = values[~np.isnan(values)]
        passed = e.passed[scored]
        passed = passed[~np.isnan(passed)]
        errors = int((e.present & e.error).sum()) + n_err  # a failed call is an error for every evaluator
        n = int(values.size)
        attempted = int(scored.sum()) + errors
        m: dict[str, Any] = {
            "n": n,
            "mean": _f(values.mean()) if n else None,
            "std": _f(values.std(ddof=1)) if n > 1 else (0.0 if n == 1 else None),
            "min": _f(values.min()) if n else None,
            "median": _f(np.median(values)) if n else None,
            "max": _f(values.max()) if n else None,
            "passed": int(passed.sum()) if passed.size else None,
            "pass_rate": (int(passed.sum()) / (passed.size + errors)) if passed.size else None,
            "errors": errors,
            "error_rate": errors / attempted if attempted else 0.0,
        }
        cfg = (configs or {}).get(ev) or {}
        if _agreement_wanted(cfg):
            m.update(_agreement(cols, e, cfg))
        metrics[ev] = m
    return {"calls": calls, "metrics": metrics}


def _agreement_wanted(cfg: dict[str, Any]) -> bool:
    return (cfg.get("repeats") or 1) > 1 or bool(cfg.get("human_label"))


def _agreement(cols: Columns, e: EvaluatorColumns, cfg: dict[str, Any]) -> dict[str, Any]:
    """``reliability`` (across repeats) and ``human_agreement`` (with the human label column), on scored results."""
    scored = np.flatnonzero(e.present & ~e.error)
    out: dict[str, Any] = {}
    if (cfg.get("repeats") or 1) > 1:
        out["reliability"] = repeat_agreement(e.repeat_scores[i] for i in scored)
    if label := cfg.get("human_label"):
        labels = cols.labels[label]
        out["human_agreement"] = human_agreement(
            (_f(e.score[i]), None if np.isnan(e.passed[i]) else bool(e.passed[i]), labels[i]) for i in scored)
    return out


def metric_value(summary: dict[str, Any], variant: str, metric: str) -> float | None:
    """Look up ``exact_match.pass_rate``, ``error_rate``, ``latency_ms.p95``... for a variant.

    Raises ``KeyError`` with a helpful message when the metric does not exist.
    """
    v = summary["variants"][variant]
    parts = metric.split(".")
    if parts[0] in RUN_METRICS:
        node: Any = v["calls"]
        for p in parts:
            if not isinstance(node, dict) or p not in node:
                raise KeyError(metric)
            node = node[p]
        return _f(node)
    if len(parts) == 3 and parts[0] in v["metrics"] and parts[2] in AGREEMENT_STATS.get(parts[1], ()):
        return _f((v["metrics"][parts[0]].get(parts[1]) or {}).get(parts[2]))
    if len(parts) != 2 or parts[0] not in v["metrics"] or parts[1] not in EVALUATOR_STATS:
        raise KeyError(metric)
    return _f(v["metrics"][parts[0]][parts[1]])


def known_metrics(evaluators: list[str]) -> list[str]:
    """Every metric name a gate rule may use, for error hints."""
    names = [f"{e}.{s}" for e in evaluators for s in EVALUATOR_STATS]
    names += [f"{e}.{group}.{s}" for e in evaluators for group, stats in AGREEMENT_STATS.items() for s in stats]
    names.append("error_rate")
    names += [f"latency_ms.{s}" for s in RUN_METRICS["latency_ms"]]
    names += [f"tokens.{s}" for s in RUN_METRICS["tokens"]]
    return names
