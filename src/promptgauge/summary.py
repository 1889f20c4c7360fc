"""Aggregates of one run: per variant, call statistics and per-evaluator metrics.

Metric names, as gate rules and reports use them:

- ``<evaluator>.mean`` / ``.std`` / ``.min`` / ``.max`` / ``.median`` -- of the primary score over scored rows;
- ``<evaluator>.pass_rate`` -- passed / (scored + errors): an error counts as a failure;
- ``<evaluator>.n``, ``<evaluator>.errors``, ``<evaluator>.error_rate``;
- ``error_rate`` -- failed model calls / calls; ``latency_ms.p50|p95|mean|max``;
  ``tokens.prompt|completion|total`` (sums).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .store import Store

SUMMARY_SCHEMA = "promptgauge.summary/1"
EVALUATOR_STATS = ("n", "mean", "std", "min", "median", "max", "pass_rate", "passed", "errors", "error_rate")
RUN_METRICS = {"error_rate": None, "latency_ms": ("mean", "p50", "p95", "max"), "tokens": ("prompt", "completion", "total")}


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def summarize(store: Store, run_id: str, evaluators: list[str] | None = None) -> dict[str, Any]:
    """The run's summary as plain JSON-ready data (``summary.json``)."""
    info = store.run(run_id)
    results = store.results_frame(run_id)
    scores = store.scores_frame(run_id)
    variants = list(info.manifest.get("variants", {})) or sorted(results["variant"].unique())
    evaluators = evaluators if evaluators is not None else list(info.manifest.get("evaluators", {}))
    out: dict[str, Any] = {
        "schema": SUMMARY_SCHEMA,
        "run_id": run_id,
        "suite": info.suite,
        "status": info.status,
        "created_at": info.created_at,
        "finished_at": info.finished_at,
        "manifest": info.manifest,
        "variants": {},
    }
    for variant in variants:
        out["variants"][variant] = variant_summary(
            results[results["variant"] == variant], scores[scores["variant"] == variant], evaluators)
    return out


def variant_summary(res: Any, sv: Any, evaluators: list[str]) -> dict[str, Any]:
    """Call statistics and per-evaluator metrics of one variant, from its results and scores frames."""
    ok = res[res["error"].isna()]
    lat = ok["latency_ms"].dropna().to_numpy(dtype=float)
    n_calls = len(res)
    n_err = int(res["error"].notna().sum())
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
            "prompt": int(ok["prompt_tokens"].fillna(0).sum()),
            "completion": int(ok["completion_tokens"].fillna(0).sum()),
        },
    }
    calls["tokens"]["total"] = calls["tokens"]["prompt"] + calls["tokens"]["completion"]
    metrics = {}
    for ev in evaluators:
        s = sv[sv["evaluator"] == ev]
        values = s.loc[s["error"].isna(), "score"].dropna().to_numpy(dtype=float)
        passed = s.loc[s["error"].isna(), "passed"].dropna()
        errors = int(s["error"].notna().sum()) + n_err  # a failed call is an error for every evaluator
        n = int(values.size)
        attempted = int(s["error"].isna().sum()) + errors
        m: dict[str, Any] = {
            "n": n,
            "mean": _f(values.mean()) if n else None,
            "std": _f(values.std(ddof=1)) if n > 1 else (0.0 if n == 1 else None),
            "min": _f(values.min()) if n else None,
            "median": _f(np.median(values)) if n else None,
            "max": _f(values.max()) if n else None,
            "passed": int(passed.sum()) if len(passed) else None,
            "pass_rate": (int(passed.sum()) / (len(passed) + errors)) if len(passed) else None,
            "errors": errors,
            "error_rate": errors / attempted if attempted else 0.0,
        }
        metrics[ev] = m
    return {"calls": calls, "metrics": metrics}


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
    if len(parts) != 2 or parts[0] not in v["metrics"] or parts[1] not in EVALUATOR_STATS:
        raise KeyError(metric)
    return _f(v["metrics"][parts[0]][parts[1]])


def known_metrics(evaluators: list[str]) -> list[str]:
    """Every metric name a gate rule may use, for error hints."""
    names = [f"{e}.{s}" for e in evaluators for s in EVALUATOR_STATS]
    names.append("error_rate")
    names += [f"latency_ms.{s}" for s in RUN_METRICS["latency_ms"]]
    names += [f"tokens.{s}" for s in RUN_METRICS["tokens"]]
    return names
