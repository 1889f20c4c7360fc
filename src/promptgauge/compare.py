"""Candidate vs. baseline on the same rows: per metric, both aggregates, the delta, its CI, a p-value.

A *side* is one variant of one run, read from the store or from a results file
(JSON, ``promptgauge.results/1``, committed next to the prompts so a baseline
lives in git). Rows are matched by their stable row id (dataset id column or
content hash) and identical inputs.

For every metric (each evaluator's ``pass_rate`` and ``mean``, the run's
``error_rate`` and ``latency_ms.mean``; a metric equal row by row to another is
shown once) :func:`compare_sides` reports both aggregates on the matched rows,
``delta = candidate - baseline``, a CI of the delta, the paired test that fits
(exact McNemar for pass/fail rows, Wilcoxon signed-rank for scores; see
:mod:`promptgauge.stats`) with its two-sided p-value, Holm-adjusted across the
comparison's metrics (it decides ``change``), the one-sided p-value that the
candidate is worse (what the gate's ``no_regression`` uses), and an effect size
oriented so that > 0 (> 1 for an odds ratio) means the candidate is better.
Which way is better comes from :func:`promptgauge.summary.higher_is_better`.
Per row: flips (pass -> fail, fail -> pass) and the biggest worsenings of
scores. Seeded: the same inputs give the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, PrivateAttr

from . import stats
from .errors import CompareError, StoreError
from .store import Store
from .summary import higher_is_better

RESULTS_SCHEMA = "promptgauge.results/1"
#: Run metrics compared besides the evaluators'.
RUN_METRICS = ("error_rate", "latency_ms.mean")
MAX_DROPS = 20


# ----------------------------------------------------------------------------------- sides


@dataclass
class Side:
    """One variant of one run: its manifest and its per-row results and scores."""

    run_id: str
    variant: str
    suite: str
    created_at: float
    manifest: dict[str, Any]
    evaluator_kinds: dict[str, str]
    results: pd.DataFrame  # row_id, repeat, row_index, inputs (dict), output, error, latency_ms, tokens
    scores: pd.DataFrame  # row_id, repeat, evaluator, score, passed, error, details (dict | None)
    source: str = "store"
    _table: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        where = "" if self.source == "store" else f" from {self.source}"
        return f"{self.variant} @ run {self.run_id}{where}"

    @property
    def evaluators(self) -> list[str]:
        return list(self.manifest.get("evaluators", {}))

    @property
    def directions(self) -> dict[str, bool]:
        """Evaluator -> whether its higher scores are better, as the run recorded it."""
        return {ev: bool(e.get("higher_is_better", True)) for ev, e in self.manifest.get("evaluators", {}).items()}

    def hashes(self) -> dict[str, Any]:
        """What this side's numbers rest on, by content hash."""
        m = self.manifest
        v = m.get("variants", {}).get(self.variant, {})
        params = v.get("parameters", {})
        return {
            "dataset": {"path": m.get("dataset", {}).get("path"), "sha256": m.get("dataset", {}).get("sha256"),
                        "rows": m.get("dataset", {}).get("rows")},
            "suite": m.get("suite", {}).get("sha256"),
            "prompt": {"path": v.get("prompt"), "sha256": v.get("prompt_sha256")},
            "model": v.get("target_info") or {"target": v.get("target")},
            "parameters": params,
            "parameters_sha256": _sha(params),
            "evaluators": {k: e.get("sha256") or e.get("source") for k, e in m.get("evaluators", {}).items()},
        }

    def table(self) -> pd.DataFrame:
        """One line per row id (dataset order), one column per metric; repeats averaged."""
        if self._table is None:
            self._table = _row_table(self)
        return self._table


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def load_side(store: Store, run_id: str | None, variant: str | None, *, role: str = "candidate") -> Side:
    """A run's variant from the store; without *variant*, the run's only or judged variant."""
    info = store.run(run_id)
    variants = list(info.manifest.get("variants", {}))
    baseline = info.config.get("baseline")
    if variant is None:
        if len(variants) == 1:
            variant = variants[0]
        elif role == "baseline" and baseline in variants:
            variant = baseline
        else:
            others = [v for v in variants if v != baseline]
            if len(others) != 1:
                raise CompareError(
                    f"run {info.run_id} has variants {', '.join(variants)}: say which one is the {role}",
                    hint=f"write {info.run_id}:VARIANT",
                )
            variant = others[0]
    if variant not in variants:
        raise CompareError(f"run {info.run_id} has no variant '{variant}'", hint="its variants: " + ", ".join(variants))
    results, scores = store.variant_frames(info.run_id, variant)
    results["inputs"] = results["inputs"].map(json.loads)
    scores["details"] = scores["details"].map(lambda d: json.loads(d) if isinstance(d, str) else None)
    results = results.drop(columns=["outputs"])
    kinds = {e["name"]: e.get("type") or e["name"] for e in info.config.get("evaluators", [])}
    manifest = {**info.manifest, "variants": {variant: info.manifest["variants"][variant]}}
    return Side(info.run_id, variant, info.suite, info.created_at, manifest, kinds, results, scores)


def side_to_json(side: Side) -> dict[str, Any]:
    """A side as a results file (``promptgauge.results/1``): self-contained, diff-friendly JSON."""
    scores = side.scores.astype(object).where(side.scores.notna(), None)
    by_row: dict[tuple[str, int], dict[str, Any]] = {}
    for rec in scores.to_dict(orient="records"):
        by_row.setdefault((rec["row_id"], int(rec["repeat"])), {})[rec["evaluator"]] = {
            "score": rec["score"], "passed": None if rec["passed"] is None else bool(rec["passed"]),
            "error": rec["error"], "details": rec["details"]}
    rows = []
    results = side.results.astype(object).where(side.results.notna(), None)
    for rec in results.to_dict(orient="records"):
        key = (rec["row_id"], int(rec["repeat"]))
        rows.append({**{k: rec[k] for k in ("row_id", "repeat", "row_index", "inputs", "output", "error",
                                           "latency_ms", "prompt_tokens", "completion_tokens")},
                     "scores": by_row.get(key, {})})
    return {"schema": RESULTS_SCHEMA, "suite": side.suite, "run_id": side.run_id, "variant": side.variant,
            "created_at": side.created_at, "manifest": side.manifest, "evaluator_kinds": side.evaluator_kinds,
            "rows": rows}


def results_text(side: Side) -> str:
    """The results file of *side*, as text."""
    return json.dumps(side_to_json(side), indent=1, ensure_ascii=False, default=str) + "\n"


def write_results_file(side: Side, path: Path, text: str | None = None) -> Path:
    """Write *side* (or its already rendered *text*) as a results file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text if text is not None else results_text(side), encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_results_file(path: str | Path) -> Side:
    """Read a results file written by :func:`write_results_file` (a promoted baseline, say)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompareError("results file not found", file=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CompareError(f"not a JSON results file: {exc}", file=path) from None
    if not isinstance(doc, dict) or doc.get("schema") != RESULTS_SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise CompareError(f"not a promptgauge results file (schema {found!r})", file=path,
                           hint=f"expected schema '{RESULTS_SCHEMA}', written by 'promptgauge promote' or export")
    try:
        rows = doc["rows"]
        results = pd.DataFrame([{k: v for k, v in r.items() if k != "scores"} for r in rows],
                               columns=["row_id", "repeat", "row_index", "inputs", "output", "error", "latency_ms",
                                        "prompt_tokens", "completion_tokens"])
        scores = pd.DataFrame(
            [{"row_id": r["row_id"], "repeat": r["repeat"], "evaluator": ev, **s}
             for r in rows for ev, s in r["scores"].items()],
            columns=["row_id", "repeat", "evaluator", "score", "passed", "error", "details"])
        return Side(doc["run_id"], doc["variant"], doc["suite"], doc["created_at"], doc["manifest"],
                    doc.get("evaluator_kinds", {}), results, scores, source=str(path))
    except (KeyError, TypeError, AttributeError) as exc:
        raise CompareError(f"results file is incomplete or malformed near {exc}", file=path) from None


def resolve_side(ref: str | None, store: Store | None, *, suite: str | None, role: str,
                 default_run: str | None = None) -> Side:
    """A side from a reference: ``FILE.json``, ``RUN``, ``RUN:VARIANT``, ``latest[:VARIANT]`` or ``VARIANT``.

    ``RUN`` may be a unique prefix of a run id; ``VARIANT`` alone means that variant of
    the latest run (of *suite*, when given).
    """
    if ref and (ref.endswith(".json") or os.sep in ref):
        return load_results_file(ref)
    if store is None:
        raise StoreError(f"no store to find '{ref or 'latest'}' in", hint="run a suite first, or pass --store")
    run, _, variant = (ref or "latest").partition(":")
    if run in ("latest", ""):
        return load_side(store, default_run or store.run(suite=suite).run_id, variant or None, role=role)
    try:
        return load_side(store, store.run(run).run_id, variant or None, role=role)
    except StoreError:
        if variant:
            raise
    latest = store.run(default_run, suite=suite) if (default_run or suite) else store.run()
    if run in latest.manifest.get("variants", {}):
        return load_side(store, latest.run_id, run, role=role)
    raise StoreError(
        f"'{run}' is neither a run in the store nor a variant of the latest run {latest.run_id}",
        file=store.path, hint="list runs with: promptgauge runs; variants of the latest run: "
        + ", ".join(latest.manifest.get("variants", {})),
    )


# --------------------------------------------------------------------------- row tables


def _row_table(side: Side) -> pd.DataFrame:
    res = side.results
    codes, row_ids = pd.factorize(res["row_id"])  # results come in dataset order

    def per_row(values: np.ndarray) -> np.ndarray:
        """Mean over a row's repeats, ignoring NaN; NaN when a row has no value."""
        ok = ~np.isnan(values)
        total = np.bincount(codes, weights=np.where(ok, values, 0.0), minlength=len(row_ids))
        count = np.bincount(codes, weights=ok.astype(float), minlength=len(row_ids))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    call_err = res["error"].notna().to_numpy()
    out = pd.DataFrame(index=pd.Index(row_ids, name="row_id"))
    out["error_rate"] = per_row(call_err.astype(float))
    out["latency_ms.mean"] = per_row(np.where(call_err, np.nan, res["latency_ms"].to_numpy(dtype=float)))
    position = {key: i for i, key in enumerate(zip(res["row_id"], res["repeat"]))}
    for ev in side.evaluators:
        s = side.scores[side.scores["evaluator"] == ev]
        idx = np.array([position.get(k, -1) for k in zip(s["row_id"], s["repeat"])], dtype=int)
        keep = idx >= 0
        idx = idx[keep]
        passed, score = np.full(len(res), np.nan), np.full(len(res), np.nan)
        failed = call_err.copy()
        passed[idx] = s["passed"].to_numpy(dtype=float)[keep]
        score[idx] = s["score"].to_numpy(dtype=float)[keep]
        failed[idx] |= s["error"].notna().to_numpy()[keep]
        if s["passed"].notna().any():
            out[f"{ev}.pass_rate"] = per_row(np.where(failed, 0.0, passed))
        out[f"{ev}.mean"] = per_row(np.where(failed, np.nan, score))
    return out


def _is_binary(*arrays: np.ndarray) -> bool:
    values = np.concatenate([a[~np.isnan(a)] for a in arrays])
    return bool(np.isin(values, (0.0, 1.0)).all())


def _metric_specs(base: Side, cand: Side, evaluators: list[str]) -> tuple[list[tuple[str, str | None, bool]],
                                                                        dict[str, str]]:
    """(metric, evaluator, higher_is_better) for every metric both sides have, and aliases.

    An evaluator whose score is its pass/fail (exact_match: 1.0 or 0.0) gets only
    ``EV.pass_rate``; ``EV.mean`` is then an alias of it. An ``EV.mean`` equal row by
    row to a run metric (the ``latency`` evaluator's to ``latency_ms.mean``) is an
    alias of that metric. Directions: the candidate's record, else the baseline's.
    """
    tb, tc = base.table(), cand.table()
    directions = {**base.directions, **cand.directions}
    names: list[tuple[str, str | None]] = []
    aliases: dict[str, str] = {}
    for ev in evaluators:
        mean = f"{ev}.mean"
        has_pass = f"{ev}.pass_rate" in tb and f"{ev}.pass_rate" in tc
        if has_pass:
            names.append((f"{ev}.pass_rate", ev))
        if has_pass and _scores_are_pass(base, ev) and _scores_are_pass(cand, ev):
            aliases[mean] = f"{ev}.pass_rate"
        elif same := next((m for m in RUN_METRICS if tb[mean].equals(tb[m]) and tc[mean].equals(tc[m])), None):
            aliases[mean] = same
        elif tb[mean].notna().any() or tc[mean].notna().any():
            names.append((mean, ev))
    names += [(m, None) for m in RUN_METRICS]
    return [(m, ev, higher_is_better(m, directions)) for m, ev in names], aliases


def _scores_are_pass(side: Side, ev: str) -> bool:
    s = side.scores[(side.scores["evaluator"] == ev) & side.scores["error"].isna()]
    return bool((s["score"].astype(float) == s["passed"].astype(float)).all())


# ------------------------------------------------------------------------------ results


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


class SideInfo(BaseModel):
    """Which run and variant a side of the comparison is, and the hashes it rests on."""

    label: str
    run_id: str
    variant: str
    suite: str
    source: str
    created_at: float
    hashes: dict[str, Any]


class RowCounts(BaseModel):
    baseline: int
    candidate: int
    matched: int
    only_baseline: int
    only_candidate: int
    changed_inputs: int


class MetricComparison(BaseModel):
    """One metric, candidate vs. baseline on the matched rows."""

    metric: str
    evaluator: str | None
    kind: Literal["binary", "score"]
    higher_is_better: bool
    n: int
    n_missing: int
    baseline: float | None
    candidate: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None = Field(description="two-sided p-value of the paired test: did the metric change?")
    p_holm: float | None = Field(description="p_value, Holm-adjusted over the comparison's metrics")
    p_regression: float | None = Field(
        description="one-sided p-value that the candidate is worse (unadjusted; the gate's no_regression "
        "Holm-adjusts it over its own rules)")
    test: str
    effect_size: float | None
    effect_name: str
    change: Literal["improved", "regressed", "unchanged"] = Field(
        description="improved / regressed when p_holm < alpha, in the metric's direction; else unchanged")
    rows_better: int
    rows_worse: int


class Flip(BaseModel):
    row_id: str
    evaluator: str
    direction: Literal["pass->fail", "fail->pass"]


class Drop(BaseModel):
    row_id: str
    metric: str
    baseline: float
    candidate: float
    delta: float


class RowSide(BaseModel):
    output: str | None
    error: str | None
    latency_ms: float | None
    scores: dict[str, dict[str, Any]]


class RowDiff(BaseModel):
    row_id: str
    index: int
    status: Literal["regressed", "improved", "mixed", "unchanged"]
    inputs: dict[str, Any]
    baseline: RowSide
    candidate: RowSide


class Comparison(BaseModel):
    """Candidate vs. baseline: metrics with statistics, flips, drops and every matched row."""

    baseline: SideInfo
    candidate: SideInfo
    rows: RowCounts
    warnings: list[str]
    alpha: float
    confidence: float
    seed: int
    n_resamples: int
    metrics: list[MetricComparison]
    flips: list[Flip]
    drops: list[Drop]
    row_diffs: list[RowDiff]
    _paired: dict[str, stats.PairedComparison] = PrivateAttr(default_factory=dict)
    _aliases: dict[str, str] = PrivateAttr(default_factory=dict)

    def metric(self, name: str) -> MetricComparison | None:
        name = self._aliases.get(name, name)
        return next((m for m in self.metrics if m.metric == name), None)

    def paired(self, name: str) -> stats.PairedComparison | None:
        """The oriented (higher is better) paired comparison behind *name*, for ``no_regression``."""
        return self._paired.get(self._aliases.get(name, name))


def _info(side: Side) -> SideInfo:
    return SideInfo(label=side.label, run_id=side.run_id, variant=side.variant, suite=side.suite,
                    source=side.source, created_at=side.created_at, hashes=side.hashes())


def compare_sides(base: Side, cand: Side, *, intersect: bool = False, alpha: float = 0.05,
                  confidence: float = 0.95, seed: int = 0, n_resamples: int = 10_000,
                  rows: bool = True) -> Comparison:
    """Compare *cand* with *base* row by row. Raises :class:`CompareError` for different datasets.

    Sides over different datasets (or different row sets) are refused unless
    ``intersect=True``: then the rows both have with identical inputs are compared
    and a warning with the row counts goes into the comparison. ``rows=False`` leaves out
    the per-row view (``row_diffs``), for callers that need only the statistics.
    """
    warnings: list[str] = []
    b_inputs = dict(zip(base.results["row_id"], base.results["inputs"]))
    c_inputs = dict(zip(cand.results["row_id"], cand.results["inputs"]))
    common = [r for r in c_inputs if r in b_inputs]
    same = [r for r in common if b_inputs[r] == c_inputs[r]]
    counts = RowCounts(baseline=len(b_inputs), candidate=len(c_inputs), matched=len(same),
                       only_baseline=len(b_inputs) - len(common), only_candidate=len(c_inputs) - len(common),
                       changed_inputs=len(common) - len(same))
    b_ds, c_ds = base.hashes()["dataset"], cand.hashes()["dataset"]
    differ = b_ds["sha256"] != c_ds["sha256"] or len(same) != len(b_inputs) or len(same) != len(c_inputs)
    if differ:
        what = (f"baseline {base.label} has {counts.baseline} rows (dataset {b_ds['path']} sha256 "
                f"{str(b_ds['sha256'])[:12]}), candidate {cand.label} has {counts.candidate} rows (dataset "
                f"{c_ds['path']} sha256 {str(c_ds['sha256'])[:12]}); {counts.matched} rows match, "
                f"{counts.only_baseline} only in the baseline, {counts.only_candidate} only in the candidate, "
                f"{counts.changed_inputs} with changed inputs")
        if not intersect:
            raise CompareError("baseline and candidate ran on different datasets: " + what,
                               hint="compare the rows both have with --intersect, or rerun both on one dataset")
        if not same:
            raise CompareError("baseline and candidate have no rows in common: " + what)
        warnings.append("DIFFERENT DATASETS: comparing only the rows both have. " + what)
    evaluators = [e for e in cand.evaluators if e in base.evaluators]
    for e in sorted(set(cand.evaluators) ^ set(base.evaluators)):
        warnings.append(f"evaluator '{e}' ran on only one side; it is not compared")
    b_ev, c_ev = base.hashes()["evaluators"], cand.hashes()["evaluators"]
    for e in evaluators:
        if b_ev.get(e) != c_ev.get(e):
            warnings.append(f"evaluator '{e}' changed between the sides (its code hash differs): "
                            "its deltas mix a model change with a metric change")
    tb, tc = base.table().loc[same], cand.table().loc[same]
    specs, aliases = _metric_specs(base, cand, evaluators)
    metrics, paired = [], {}
    for name, ev, hib in specs:
        a, b = tb[name].to_numpy(dtype=float), tc[name].to_numpy(dtype=float)
        binary = _is_binary(a, b)
        a_o, b_o = (a, b) if hib else ((1 - a, 1 - b) if binary else (-a, -b))
        pc = stats.compare_paired(a_o, b_o, kind="binary" if binary else "score", confidence=confidence,
                                  n_resamples=n_resamples, seed=seed)
        paired[name] = pc
        sign = 1.0 if hib else -1.0
        keep = ~(np.isnan(a) | np.isnan(b))
        d = (b_o - a_o)[keep]
        ci = sorted([sign * pc.ci_low, sign * pc.ci_high]) if not math.isnan(pc.ci_low) else [None, None]
        metrics.append(dict(
            metric=name, evaluator=ev, kind=pc.kind, higher_is_better=hib, n=pc.n, n_missing=pc.n_missing,
            baseline=_num(a[keep].mean()) if pc.n else None, candidate=_num(b[keep].mean()) if pc.n else None,
            delta=_num(sign * pc.delta + 0.0), ci_low=_num(ci[0]), ci_high=_num(ci[1]), p_value=_num(pc.pvalue),
            p_regression=_num(pc.pvalue_regression), test=pc.test, effect_size=_num(pc.effect_size),
            effect_name=pc.effect_name,
            rows_better=int((d > 0).sum()), rows_worse=int((d < 0).sum()),
        ))
    adjusted = stats.holm([m["p_value"] if m["p_value"] is not None else math.nan for m in metrics])
    out = []
    for m, p_holm, (name, _, _) in zip(metrics, adjusted, specs):
        sig = not math.isnan(p_holm) and p_holm < alpha
        better = paired[name].delta > 0
        m["p_holm"] = _num(p_holm)
        m["change"] = ("improved" if better else "regressed") if sig and paired[name].delta != 0 else "unchanged"
        out.append(MetricComparison(**m))
    flips, drops = _flips_and_drops(tb, tc, out)
    comp = Comparison(baseline=_info(base), candidate=_info(cand), rows=counts, warnings=warnings, alpha=alpha,
                      confidence=confidence, seed=seed, n_resamples=n_resamples, metrics=out, flips=flips,
                      drops=drops, row_diffs=_row_diffs(base, cand, same, tb, tc, out) if rows else [])
    comp._paired = paired
    comp._aliases = aliases
    return comp


def _flips_and_drops(tb: pd.DataFrame, tc: pd.DataFrame, metrics: list[MetricComparison]) -> tuple[list[Flip], list[Drop]]:
    flips: list[Flip] = []
    drops: list[Drop] = []
    for m in metrics:
        if m.evaluator is None:
            continue
        a, b = tb[m.metric], tc[m.metric]
        if m.metric.endswith(".pass_rate") and m.kind == "binary":
            for row_id in tb.index[(a == 1) & (b == 0)]:
                flips.append(Flip(row_id=row_id, evaluator=m.evaluator, direction="pass->fail"))
            for row_id in tb.index[(a == 0) & (b == 1)]:
                flips.append(Flip(row_id=row_id, evaluator=m.evaluator, direction="fail->pass"))
        elif m.metric.endswith(".mean"):
            d = (b - a) * (1 if m.higher_is_better else -1)
            for row_id in d[d < 0].index:
                drops.append(Drop(row_id=row_id, metric=m.metric, baseline=float(a[row_id]),
                                  candidate=float(b[row_id]), delta=float(b[row_id] - a[row_id])))
    drops.sort(key=lambda x: -abs(x.delta))
    return flips, drops[:MAX_DROPS]


def _row_statuses(tb: pd.DataFrame, tc: pd.DataFrame, metrics: list[MetricComparison]) -> list[str]:
    """Per row: regressed / improved / mixed / unchanged over the evaluator metrics."""
    better = np.zeros(len(tb), dtype=bool)
    worse = np.zeros(len(tb), dtype=bool)
    for m in metrics:
        if m.evaluator is None:
            continue
        d = (tc[m.metric].to_numpy(dtype=float) - tb[m.metric].to_numpy(dtype=float)) * (1 if m.higher_is_better else -1)
        better |= d > 0
        worse |= d < 0
    return ["mixed" if b and w else "regressed" if w else "improved" if b else "unchanged"
            for b, w in zip(better, worse)]


def _row_sides(side: Side) -> dict[str, RowSide]:
    """Each row's first result with its scores and evaluator reasons, for the per-row view."""
    first = side.results.drop_duplicates("row_id")
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    keys = set(zip(first["row_id"], first["repeat"]))
    for rec in side.scores.to_dict(orient="records"):
        if (rec["row_id"], rec["repeat"]) not in keys:
            continue
        details = rec["details"] or {}
        reason = next((str(v) for k, v in details.items() if k.endswith("reason") and v), None)
        scores.setdefault(rec["row_id"], {})[rec["evaluator"]] = {
            "score": _num(rec["score"]), "passed": None if pd.isna(rec["passed"]) else bool(rec["passed"]),
            "error": rec["error"] if isinstance(rec["error"], str) else None, "reason": reason}
    return {
        rec["row_id"]: RowSide(output=rec["output"] if isinstance(rec["output"], str) else None,
                               error=rec["error"] if isinstance(rec["error"], str) else None,
                               latency_ms=_num(rec["latency_ms"]), scores=scores.get(rec["row_id"], {}))
        for rec in first.to_dict(orient="records")
    }


def _row_diffs(base: Side, cand: Side, rows: list[str], tb: pd.DataFrame, tc: pd.DataFrame,
               metrics: list[MetricComparison]) -> list[RowDiff]:
    first = cand.results.drop_duplicates("row_id").set_index("row_id")
    index, inputs = first["row_index"].to_dict(), first["inputs"].to_dict()
    b_rows, c_rows = _row_sides(base), _row_sides(cand)
    return [RowDiff.model_construct(row_id=r, index=int(index[r]), status=status, inputs=inputs[r],
                                    baseline=b_rows[r], candidate=c_rows[r])
            for r, status in zip(rows, _row_statuses(tb, tc, metrics))]
