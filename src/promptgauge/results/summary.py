"""Aggregates of one run: per variant, call statistics and per-evaluator metrics.

Metric names, their grammar and which way each is better: :mod:`promptgauge.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import stats
from ..agreement import human_agreement, repeat_agreement
from ..store import Store
from .columns import Columns, EvaluatorColumns, read_columns

if TYPE_CHECKING:
    import pandas as pd

SUMMARY_SCHEMA = "promptgauge.summary/1"


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
    summaries = {v: columns_summary(columns[v], evaluators, configs) for v in variants}
    for (v, ev), flagged in judge_injections(store, run_id, evaluators, configs).items():
        if v in summaries and ev in summaries[v]["metrics"]:
            summaries[v]["metrics"][ev]["judge_injection"] = flagged
    for v, per_evaluator in (info.manifest.get("aggregates") or {}).items():  # flows' aggregation nodes
        for ev, values in per_evaluator.items():
            if v in summaries and ev in summaries[v]["metrics"]:
                summaries[v]["metrics"][ev]["aggregates"] = values
    for ev, cfg in (info.manifest.get("pairwise") or {}).items():
        for v in variants:
            if v != cfg.get("baseline") and (found := pairwise_summary(store, run_id, v, ev)) is not None:
                summaries[v].setdefault("pairwise", {})[ev] = {"baseline": cfg.get("baseline"), **found}
    return {
        "schema": SUMMARY_SCHEMA,
        "run_id": run_id,
        "suite": info.suite,
        "status": info.status,
        "created_at": info.created_at,
        "finished_at": info.finished_at,
        "manifest": info.manifest,
        "variants": summaries,
    }


def pairwise_summary(store: Store, run_id: str, variant: str, evaluator: str,
                     confidence: float = 0.95) -> dict[str, Any] | None:
    """A pairwise judge's verdicts on one gated variant (None when it judged none of its rows, errors included).

    ``n`` judged rows, ``wins`` / ``ties`` / ``losses`` (a verdict that changed with the order is a tie),
    ``win_rate`` = (wins + ties / 2) / n with its Wilson CI (``win_rate_ci``), the exact sign test on the
    decisive rows (``p_value``: two-sided; ``p_better``: one-sided, the candidate preferred), and
    ``position_bias``: the share of judged rows whose verdict changed with the order.
    """
    rows = store.db.execute(
        "SELECT score, error, json_extract(details, '$.flipped') FROM scores "
        "WHERE run_id=? AND variant=? AND evaluator=?", (run_id, variant, evaluator)).fetchall()
    if not rows:
        return None
    scores = [s for s, e, _ in rows if e is None and s is not None]  # repeats: a mean of 1 / 0.5 / 0
    wins, ties, losses = sum(s > 0.5 for s in scores), sum(s == 0.5 for s in scores), sum(s < 0.5 for s in scores)
    n = wins + ties + losses
    flipped = sum(1 for s, e, f in rows if e is None and s is not None and f)
    low, high = stats.win_rate_ci(wins, ties, losses, confidence=confidence)
    test = stats.sign_test(wins, losses)
    return {
        "n": n, "wins": wins, "ties": ties, "losses": losses, "errors": len(rows) - n,
        "win_rate": (wins + ties / 2) / n if n else None,
        "win_rate_ci": {"ci_low": _f(low), "ci_high": _f(high), "confidence": confidence},
        "p_value": _f(test.pvalue) if n else None, "p_better": _f(test.pvalue_greater) if n else None,
        "position_bias": flipped / n if n else None, "flipped": flipped,
    }


#: How many flagged row ids a summary lists per evaluator.
INJECTION_IDS = 20


def judge_injections(store: Store, run_id: str, evaluators: list[str],
                     configs: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(variant, evaluator) -> ``{rows, row_ids}``: the results of a judge (an evaluator that calls a model)
    whose graded text was flagged as instruction-like text aimed at the grader (``judge_injection``)."""
    judges = [ev for ev in evaluators if (configs.get(ev) or {}).get("model")]
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if not judges:
        return out
    marks = ",".join("?" * len(judges))
    for variant, ev, row_id in store.db.execute(
            f"SELECT variant, evaluator, row_id FROM scores WHERE run_id=? AND evaluator IN ({marks}) "
            "AND instr(details, '\"judge_injection\"') AND json_extract(details, '$.judge_injection.flagged') "
            "ORDER BY variant, evaluator, row_id", (run_id, *judges)):
        entry = out.setdefault((variant, ev), {"rows": 0, "row_ids": []})
        if row_id not in entry["row_ids"]:
            entry["rows"] += 1
            if len(entry["row_ids"]) < INJECTION_IDS:
                entry["row_ids"].append(row_id)
    return out


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
    ttft = cols.ttft_ms[ok]
    ttft = ttft[~np.isnan(ttft)]
    if ttft.size:  # streamed answers: time to first token, and output tokens per second after it
        calls["latency_ms"]["ttft"] = _stats(ttft, ("mean", "p50", "p95", "max"))
        tps = cols.tokens_per_s[ok]
        calls["tokens_per_s"] = _stats(tps[~np.isnan(tps)], ("mean", "p50", "p5", "min"))
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


def _stats(values: np.ndarray, names: tuple[str, ...]) -> dict[str, float | None]:
    """``mean``, ``min``, ``max`` and percentiles (``p50``, ``p95``...) of *values*; None each when empty."""
    funcs = {"mean": np.mean, "min": np.min, "max": np.max}
    return {n: (_f(funcs[n](values)) if n in funcs else _f(np.percentile(values, float(n[1:])))) if values.size else None
            for n in names}


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
