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
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .evaluators.reliability import human_agreement, repeat_agreement
from .store import Store

SUMMARY_SCHEMA = "promptgauge.summary/1"
EVALUATOR_STATS = ("n", "mean", "std", "min", "median", "max", "pass_rate", "passed", "errors", "error_rate")
AGREEMENT_STATS = {"reliability": ("alpha", "exact", "within_1"), "human_agreement": ("alpha", "exact", "within_1")}
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
        res = results[results["variant"] == variant]
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
        sv = scores[scores["variant"] == variant]
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
            m.update(_agreement(store, run_id, ev, variant, info.manifest.get("evaluators", {}).get(ev) or {}))
            metrics[ev] = m
        out["variants"][variant] = {"calls": calls, "metrics": metrics}
    return out


def _agreement(store: Store, run_id: str, evaluator: str, variant: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """``reliability`` (repeats) and ``human_agreement`` (human labels) of one evaluator, when configured."""
    out: dict[str, Any] = {}
    repeats, label = cfg.get("repeats") or 1, cfg.get("human_label")
    if repeats < 2 and not label:
        return out
    records = list(store.score_records(run_id, evaluator, variant))
    if repeats > 1:
        out["reliability"] = repeat_agreement(r["details"].get("repeat_scores", []) for r in records)
    if label:
        out["human_agreement"] = human_agreement((r["score"], r["passed"], r["inputs"].get(label)) for r in records)
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
