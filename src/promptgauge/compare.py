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

Memory stays flat in rows: the statistics come from each side's compact columns
(:mod:`promptgauge.columns`), and texts are read only for the rows a report shows --
at most :data:`MAX_ROWS` (the most changed first; :meth:`Comparison.iter_rows`
streams every row, for ``rows.csv``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, PrivateAttr

from . import stats
from .columns import Columns
from .errors import CompareError, StoreError
from .metrics import COMPARED_RUN_METRICS as RUN_METRICS, higher_is_better
from .store import Store, reader, variant_frames
from .summary import columns_summary

RESULTS_SCHEMA = "promptgauge.results/1"
MAX_DROPS = 20
#: Rows a comparison's per-row view (``row_diffs``) holds at most; also the flips kept per evaluator and direction.
MAX_ROWS = 2000
#: Rows read from a side at a time when streaming every row.
ROW_CHUNK = 1000
#: Status order of the rows a capped per-row view keeps first.
STATUS_RANK = {"regressed": 0, "mixed": 1, "improved": 2, "unchanged": 3}


# ----------------------------------------------------------------------------------- sides


@dataclass
class Side:
    """One variant of one run: its manifest and its per-row results and scores.

    A side from a results file (or ``load_side(..., frames=True)``) holds every result and
    score in ``results`` and ``scores``. A side with ``store`` set holds no frames: its numbers
    come from compact columns (:meth:`columns`) and the texts of the rows a report shows are
    read from the store file when asked (:meth:`rows`), so memory stays flat in rows.
    """

    run_id: str
    variant: str
    suite: str
    created_at: float
    manifest: dict[str, Any]
    evaluator_kinds: dict[str, str]
    results: pd.DataFrame | None  # row_id, repeat, row_index, inputs (dict), output, error, latency_ms, tokens
    scores: pd.DataFrame | None  # row_id, repeat, evaluator, score, passed, error, details (dict | None)
    source: str = "store"
    _table: pd.DataFrame | None = field(default=None, repr=False)
    store: Path | None = None  # the store file a frameless side reads from
    _columns: Columns | None = field(default=None, init=False, repr=False)

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

    def columns(self) -> Columns:
        """Every result's numbers, compact (see :mod:`promptgauge.columns`)."""
        if self._columns is None:
            configs = self.manifest.get("evaluators")
            if self.results is not None:
                self._columns = Columns.from_frames(self.results, self.scores, self.evaluators, configs)
            else:
                with reader(self.store) as db:
                    self._columns = Columns.read(db, self.run_id, self.variant, self.evaluators, configs)
        return self._columns

    def table(self) -> pd.DataFrame:
        """One line per row id (dataset order), one column per metric; repeats averaged."""
        if self._table is None:
            self._table = _row_table(self.columns(), self.evaluators)
        return self._table

    def summary(self) -> dict[str, Any]:
        """Call statistics and per-evaluator metrics (:func:`promptgauge.summary.columns_summary`)."""
        return columns_summary(self.columns(), self.evaluators, self.manifest.get("evaluators"))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``results`` and ``scores`` with every text (read whole from the store for a frameless side)."""
        if self.results is not None:
            return self.results, self.scores
        with reader(self.store) as db:
            return _parse_frames(*variant_frames(db, self.run_id, self.variant))

    def rows(self, row_ids: Any) -> dict[str, RowView]:
        """The per-row view of these rows (a few at a time: their texts are read for this)."""
        if self.results is not None:
            return _frame_rows(self.results, self.scores, row_ids)
        with reader(self.store) as db:
            return _store_rows(db, self.run_id, self.variant, list(row_ids))

    def input_names(self) -> list[str]:
        """The rows' input names, in order of first appearance."""
        if self.results is not None:
            return list(dict.fromkeys(k for inputs in self.results["inputs"] for k in inputs))
        with reader(self.store) as db:  # SQLite takes a bare column from the row with the MIN()
            return [k for k, _, _ in db.execute(
                "SELECT j.key, MIN(r.row_index) AS first, j.id FROM results r, json_each(r.inputs) j "
                "WHERE r.run_id=? AND r.variant=? GROUP BY j.key ORDER BY first, j.id", (self.run_id, self.variant))]


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def load_side(store: Store, run_id: str | None, variant: str | None, *, role: str = "candidate",
              frames: bool = True) -> Side:
    """A run's variant from the store; without *variant*, the run's only or judged variant.

    ``frames=False`` gives a frameless side: compact columns, texts read from the store file
    for the rows shown (what runs and comparisons use: memory stays flat in rows).
    """
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
    kinds = {e["name"]: e.get("type") or e["name"] for e in info.config.get("evaluators", [])}
    manifest = {**info.manifest, "variants": {variant: info.manifest["variants"][variant]}}
    if not frames:
        return Side(info.run_id, variant, info.suite, info.created_at, manifest, kinds, None, None, store=store.path)
    results, scores = _parse_frames(*variant_frames(store.db, info.run_id, variant))
    return Side(info.run_id, variant, info.suite, info.created_at, manifest, kinds, results, scores)


def _parse_frames(results: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The store's frames with inputs and details parsed (dicts) and without the raw target outputs."""
    results["inputs"] = results["inputs"].map(json.loads)
    scores["details"] = scores["details"].map(lambda d: json.loads(d) if isinstance(d, str) else None)
    return results.drop(columns=["outputs"]), scores


def side_to_json(side: Side) -> dict[str, Any]:
    """A side as a results file (``promptgauge.results/1``): self-contained, diff-friendly JSON."""
    results, scores = side.frames()
    scores = scores.astype(object).where(scores.notna(), None)
    by_row: dict[tuple[str, int], dict[str, Any]] = {}
    for rec in scores.to_dict(orient="records"):
        by_row.setdefault((rec["row_id"], int(rec["repeat"])), {})[rec["evaluator"]] = {
            "score": rec["score"], "passed": None if rec["passed"] is None else bool(rec["passed"]),
            "error": rec["error"], "details": rec["details"]}
    rows = []
    results = results.astype(object).where(results.notna(), None)
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
    the latest run (of *suite*, when given). A side from the store is frameless.
    """
    if ref and (ref.endswith(".json") or os.sep in ref):
        return load_results_file(ref)
    if store is None:
        raise StoreError(f"no store to find '{ref or 'latest'}' in", hint="run a suite first, or pass --store")
    run, _, variant = (ref or "latest").partition(":")
    if run in ("latest", ""):
        return load_side(store, default_run or store.run(suite=suite).run_id, variant or None, role=role,
                         frames=False)
    try:
        return load_side(store, store.run(run).run_id, variant or None, role=role, frames=False)
    except StoreError:
        if variant:
            raise
    latest = store.run(default_run, suite=suite) if (default_run or suite) else store.run()
    if run in latest.manifest.get("variants", {}):
        return load_side(store, latest.run_id, run, role=role, frames=False)
    raise StoreError(
        f"'{run}' is neither a run in the store nor a variant of the latest run {latest.run_id}",
        file=store.path, hint="list runs with: promptgauge runs; variants of the latest run: "
        + ", ".join(latest.manifest.get("variants", {})),
    )


# --------------------------------------------------------------------------- row tables


def _row_table(cols: Columns, evaluators: list[str]) -> pd.DataFrame:
    codes, row_ids = pd.factorize(cols.row_id)  # results come in dataset order

    def per_row(values: np.ndarray) -> np.ndarray:
        """Mean over a row's repeats, ignoring NaN; NaN when a row has no value."""
        ok = ~np.isnan(values)
        total = np.bincount(codes, weights=np.where(ok, values, 0.0), minlength=len(row_ids))
        count = np.bincount(codes, weights=ok.astype(float), minlength=len(row_ids))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    call_err = cols.error
    out = pd.DataFrame(index=pd.Index(row_ids, name="row_id"))
    out["error_rate"] = per_row(call_err.astype(float))
    out["latency_ms.mean"] = per_row(np.where(call_err, np.nan, cols.latency_ms))
    for ev in evaluators:
        e = cols.evaluators[ev]
        failed = call_err | (e.present & e.error)
        if not np.isnan(e.passed).all():
            out[f"{ev}.pass_rate"] = per_row(np.where(failed, 0.0, e.passed))
        out[f"{ev}.mean"] = per_row(np.where(failed, np.nan, e.score))
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
    e = side.columns().evaluators[ev]
    scored = e.present & ~e.error
    return bool((e.score[scored] == e.passed[scored]).all())


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


class RowView(NamedTuple):
    """A row of one side as the per-row view shows it: its first result, with its scores and reasons."""

    index: int
    inputs: dict[str, Any]
    output: str | None
    error: str | None
    latency_ms: float | None
    scores: dict[str, dict[str, Any]]

    def side(self) -> RowSide:
        return RowSide.model_construct(output=self.output, error=self.error, latency_ms=self.latency_ms,
                                       scores=self.scores)


class RowDiff(BaseModel):
    row_id: str
    index: int
    status: Literal["regressed", "improved", "mixed", "unchanged"]
    inputs: dict[str, Any]
    baseline: RowSide
    candidate: RowSide


class Comparison(BaseModel):
    """Candidate vs. baseline: metrics with statistics, flips, drops and the matched rows side by side.

    For a huge comparison, row_diffs holds the most changed rows and rows_omitted counts the others
    (rows.csv has every row; in Python, iter_rows() streams them all from the sides).
    """

    baseline: SideInfo
    candidate: SideInfo
    rows: RowCounts
    warnings: list[str]
    alpha: float
    confidence: float
    seed: int
    n_resamples: int
    metrics: list[MetricComparison]
    flips: list[Flip] = Field(description=f"rows whose pass/fail flipped; at most {MAX_ROWS} per evaluator and "
                              "direction (the pass-rate metrics' rows_worse and rows_better count them all)")
    flips_omitted: int = Field(0, description="flips left out of flips")
    drops: list[Drop]
    row_diffs: list[RowDiff] = Field(description=f"the matched rows side by side: all, or the {MAX_ROWS} most "
                                     "changed (regressed, mixed, improved first) in dataset order")
    rows_omitted: int = Field(0, description="matched rows left out of row_diffs (rows.csv has every row)")
    _paired: dict[str, stats.PairedComparison] = PrivateAttr(default_factory=dict)
    _aliases: dict[str, str] = PrivateAttr(default_factory=dict)
    _rows: tuple[Side, Side, np.ndarray, np.ndarray] | None = PrivateAttr(None)

    def metric(self, name: str) -> MetricComparison | None:
        name = self._aliases.get(name, name)
        return next((m for m in self.metrics if m.metric == name), None)

    def paired(self, name: str) -> stats.PairedComparison | None:
        """The oriented (higher is better) paired comparison behind *name*, for ``no_regression``."""
        return self._paired.get(self._aliases.get(name, name))

    def flip_counts(self) -> dict[str, int]:
        """Flipped rows per direction, summed over evaluators, also those ``flips`` leaves out."""
        flipping = [m for m in self.metrics if _flips(m)]
        return {"pass->fail": sum(m.rows_worse for m in flipping), "fail->pass": sum(m.rows_better for m in flipping)}

    def row_fields(self) -> tuple[list[str], list[str], list[str]]:
        """The rows' input names, the baseline's and the candidate's evaluators (e.g. for table columns)."""
        if self._rows is None:
            return (list(dict.fromkeys(k for r in self.row_diffs for k in r.inputs)),
                    list(dict.fromkeys(ev for r in self.row_diffs for ev in r.baseline.scores)),
                    list(dict.fromkeys(ev for r in self.row_diffs for ev in r.candidate.scores)))
        base, cand, _, _ = self._rows
        return cand.input_names(), sorted(base.evaluators), sorted(cand.evaluators)

    def iter_rows(self, chunk: int = ROW_CHUNK) -> Iterator[tuple[str, str, RowView, RowView]]:
        """``(row id, status, baseline, candidate)`` of every matched row, read from the sides *chunk*
        rows at a time (a frameless side's store must still exist); a comparison read back from
        ``report.json`` has only its ``row_diffs``."""
        if self._rows is None:
            for r in self.row_diffs:
                yield r.row_id, r.status, *(RowView(r.index, r.inputs, s.output, s.error, s.latency_ms, s.scores)
                                            for s in (r.baseline, r.candidate))
            return
        base, cand, ids, status = self._rows
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            b_rows, c_rows = base.rows(part), cand.rows(part)
            for r, st in zip(part.tolist(), status[start:start + chunk].tolist()):
                yield r, st, b_rows[r], c_rows[r]


def _info(side: Side) -> SideInfo:
    return SideInfo(label=side.label, run_id=side.run_id, variant=side.variant, suite=side.suite,
                    source=side.source, created_at=side.created_at, hashes=side.hashes())


def _first_inputs(cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    """Row ids in order of first appearance and each row's inputs digest."""
    first = ~pd.Series(cols.row_id).duplicated().to_numpy()
    return cols.row_id[first], cols.inputs[first]


def _match(base: Side, cand: Side) -> tuple[np.ndarray, RowCounts]:
    """The candidate's row ids (its order) that the baseline has with the same inputs, and the counts."""
    b_ids, b_keys = _first_inputs(base.columns())
    c_ids, c_keys = _first_inputs(cand.columns())
    pos = pd.Index(b_ids).get_indexer(c_ids)
    common = pos >= 0
    same = common.copy()
    same[common] = b_keys[pos[common]] == c_keys[common]
    if (differ := np.flatnonzero(common & ~same)).size:  # the same inputs may be written differently
        ids = c_ids[differ]  # (another key order): compare those parsed
        b_rows, c_rows = base.rows(ids), cand.rows(ids)
        same[differ] = [b_rows[r].inputs == c_rows[r].inputs for r in ids]
    n_common, n_same = int(common.sum()), int(same.sum())
    return c_ids[same], RowCounts(baseline=len(b_ids), candidate=len(c_ids), matched=n_same,
                                  only_baseline=len(b_ids) - n_common, only_candidate=len(c_ids) - n_common,
                                  changed_inputs=n_common - n_same)


def compare_sides(base: Side, cand: Side, *, intersect: bool = False, alpha: float = 0.05,
                  confidence: float = 0.95, seed: int = 0, n_resamples: int = 10_000,
                  rows: bool = True, max_rows: int = MAX_ROWS) -> Comparison:
    """Compare *cand* with *base* row by row. Raises :class:`CompareError` for different datasets.

    Sides over different datasets (or different row sets) are refused unless
    ``intersect=True``: then the rows both have with identical inputs are compared
    and a warning with the row counts goes into the comparison. ``rows=False`` leaves out
    the per-row view (``row_diffs``), for callers that need only the statistics; else it
    holds at most *max_rows* rows, the most changed first.
    """
    warnings: list[str] = []
    same, counts = _match(base, cand)
    b_ds, c_ds = base.hashes()["dataset"], cand.hashes()["dataset"]
    differ = b_ds["sha256"] != c_ds["sha256"] or counts.matched != counts.baseline or counts.matched != counts.candidate
    if differ:
        what = (f"baseline {base.label} has {counts.baseline} rows (dataset {b_ds['path']} sha256 "
                f"{str(b_ds['sha256'])[:12]}), candidate {cand.label} has {counts.candidate} rows (dataset "
                f"{c_ds['path']} sha256 {str(c_ds['sha256'])[:12]}); {counts.matched} rows match, "
                f"{counts.only_baseline} only in the baseline, {counts.only_candidate} only in the candidate, "
                f"{counts.changed_inputs} with changed inputs")
        if not intersect:
            raise CompareError("baseline and candidate ran on different datasets: " + what,
                               hint="compare the rows both have with --intersect, or rerun both on one dataset")
        if not counts.matched:
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
    flips, flips_omitted = _flip_list(tb, tc, out, max_rows)
    status = _row_statuses(tb, tc, out)
    shown = _shown(status, max_rows) if rows else np.arange(0)
    comp = Comparison(baseline=_info(base), candidate=_info(cand), rows=counts, warnings=warnings, alpha=alpha,
                      confidence=confidence, seed=seed, n_resamples=n_resamples, metrics=out, flips=flips,
                      flips_omitted=flips_omitted, drops=_drops(tb, tc, out),
                      row_diffs=_row_diffs(base, cand, same[shown], status[shown]) if rows else [],
                      rows_omitted=len(same) - len(shown) if rows else 0)
    comp._paired = paired
    comp._aliases = aliases
    comp._rows = (base, cand, same, status)
    return comp


def _flips(m: MetricComparison) -> bool:
    """Whether *m*'s rows flip: an evaluator's pass rate, one result per row (0 or 1)."""
    return m.evaluator is not None and m.metric.endswith(".pass_rate") and m.kind == "binary"


def _flip_list(tb: pd.DataFrame, tc: pd.DataFrame, metrics: list[MetricComparison], limit: int
               ) -> tuple[list[Flip], int]:
    """The flips, at most *limit* per evaluator and direction, and how many were left out."""
    flips: list[Flip] = []
    omitted = 0
    for m in filter(_flips, metrics):
        a, b = tb[m.metric].to_numpy(dtype=float), tc[m.metric].to_numpy(dtype=float)
        for direction, hit in (("pass->fail", (a == 1) & (b == 0)), ("fail->pass", (a == 0) & (b == 1))):
            row_ids = tb.index[hit]
            omitted += max(0, len(row_ids) - limit)
            flips += [Flip(row_id=r, evaluator=m.evaluator, direction=direction) for r in row_ids[:limit]]
    return flips, omitted


def _drops(tb: pd.DataFrame, tc: pd.DataFrame, metrics: list[MetricComparison]) -> list[Drop]:
    """The :data:`MAX_DROPS` biggest worsenings of scores (ties: metric order, then row order)."""
    found: list[tuple[float, int, Drop]] = []
    for m in metrics:
        if m.evaluator is None or not m.metric.endswith(".mean"):
            continue
        a, b = tb[m.metric].to_numpy(dtype=float), tc[m.metric].to_numpy(dtype=float)
        worse = np.flatnonzero((b - a) * (1 if m.higher_is_better else -1) < 0)
        worst = worse[np.argsort(-np.abs(b[worse] - a[worse]), kind="stable")[:MAX_DROPS]]
        found += [(abs(b[i] - a[i]), len(found) + k, Drop(row_id=tb.index[i], metric=m.metric, baseline=float(a[i]),
                                                          candidate=float(b[i]), delta=float(b[i] - a[i])))
                  for k, i in enumerate(worst)]
    return [d for _, _, d in sorted(found, key=lambda x: (-x[0], x[1]))[:MAX_DROPS]]


def _row_statuses(tb: pd.DataFrame, tc: pd.DataFrame, metrics: list[MetricComparison]) -> np.ndarray:
    """Per row: regressed / improved / mixed / unchanged over the evaluator metrics."""
    better = np.zeros(len(tb), dtype=bool)
    worse = np.zeros(len(tb), dtype=bool)
    for m in metrics:
        if m.evaluator is None:
            continue
        d = tc[m.metric].to_numpy(dtype=float) - tb[m.metric].to_numpy(dtype=float)
        d *= 1 if m.higher_is_better else -1
        better |= d > 0
        worse |= d < 0
    return np.select([better & worse, worse, better], ["mixed", "regressed", "improved"], "unchanged")


def _shown(status: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the rows the per-row view holds: all when they fit, else the most changed, in order."""
    if len(status) <= limit:
        return np.arange(len(status))
    rank = np.array([STATUS_RANK[s] for s in status])
    return np.sort(np.argsort(rank, kind="stable")[:limit])


def _score_view(score: Any, passed: Any, error: Any, details: Any) -> dict[str, Any]:
    """One evaluator's record in the per-row view, with the evaluator's reason."""
    if isinstance(details, str):  # JSON text from the store: parsed only when it may hold a reason
        details = json.loads(details) if "reason" in details else None
    reason = next((str(v) for k, v in details.items() if k.endswith("reason") and v), None) if details else None
    return {"score": _num(score), "passed": None if passed is None or passed != passed else bool(passed),  # NaN
            "error": error if isinstance(error, str) else None, "reason": reason}


def _row_view(index: Any, inputs: dict[str, Any], output: Any, error: Any, latency_ms: Any,
              scores: dict[str, dict[str, Any]]) -> RowView:
    return RowView(int(index), inputs, output if isinstance(output, str) else None,
                   error if isinstance(error, str) else None, _num(latency_ms), scores)


def _frame_rows(results: pd.DataFrame, scores: pd.DataFrame, row_ids: Any) -> dict[str, RowView]:
    """Each row's first result with its scores, from a side's frames."""
    first = results[results["row_id"].isin(row_ids)].drop_duplicates("row_id")
    keys = set(zip(first["row_id"], first["repeat"]))
    per_row: dict[str, dict[str, dict[str, Any]]] = {}
    for rec in scores[scores["row_id"].isin(row_ids)].to_dict(orient="records"):
        if (rec["row_id"], rec["repeat"]) in keys:
            per_row.setdefault(rec["row_id"], {})[rec["evaluator"]] = _score_view(
                rec["score"], rec["passed"], rec["error"], rec["details"])
    return {rec["row_id"]: _row_view(rec["row_index"], rec["inputs"], rec["output"], rec["error"], rec["latency_ms"],
                                     per_row.get(rec["row_id"], {}))
            for rec in first.to_dict(orient="records")}


def _store_rows(db: sqlite3.Connection, run_id: str, variant: str, row_ids: list[str]) -> dict[str, RowView]:
    """Each row's first result with its scores, read from the store (for these rows only)."""
    out: dict[str, RowView] = {}
    for start in range(0, len(row_ids), 500):  # well under SQLite's limit of bound parameters
        chunk = row_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        first = {rec[0]: rec for rec in db.execute(  # SQLite takes bare columns from the row with the MIN()
            f"SELECT row_id, MIN(repeat), row_index, inputs, output, error, latency_ms FROM results "
            f"WHERE run_id=? AND variant=? AND row_id IN ({marks}) GROUP BY row_id", (run_id, variant, *chunk))}
        per_row: dict[str, dict[str, dict[str, Any]]] = {}
        for row_id, repeat, ev, score, passed, error, details in sorted(db.execute(  # by evaluator, as the frames
                f"SELECT row_id, repeat, evaluator, score, passed, error, details FROM scores "  # (an ORDER BY would
                f"WHERE run_id=? AND variant=? AND row_id IN ({marks})", (run_id, variant, *chunk)),  # scan the run)
                key=itemgetter(2)):
            if repeat == first[row_id][1]:
                per_row.setdefault(row_id, {})[ev] = _score_view(score, passed, error, details)
        for row_id, _, index, inputs, output, error, latency_ms in first.values():
            out[row_id] = _row_view(index, json.loads(inputs), output, error, latency_ms, per_row.get(row_id, {}))
    return out


def _row_diffs(base: Side, cand: Side, row_ids: np.ndarray, status: np.ndarray) -> list[RowDiff]:
    b_rows, c_rows = base.rows(row_ids), cand.rows(row_ids)
    return [RowDiff.model_construct(row_id=r, index=c_rows[r].index, status=st, inputs=c_rows[r].inputs,
                                    baseline=b_rows[r].side(), candidate=c_rows[r].side())
            for r, st in zip(row_ids.tolist(), status.tolist())]
