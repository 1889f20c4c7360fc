"""Candidate vs. baseline on the same rows: per metric, both aggregates, the delta, its CI, a p-value.

Statistics over columns only: the two sides are :class:`~promptgauge.results.Results` (one
variant of one run, from the store or a results file), and everything read from them goes
through their methods. Rows are matched by their stable row id (dataset id column or content
hash) and identical inputs.

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
Per row: flips (pass -> fail, fail -> pass; and for tool-calling variants "tool sequence
changed" / "tool arguments changed", from the results' tool-call digests) and the biggest
worsenings of scores. Seeded: the same inputs give the same numbers.

Memory stays flat in rows: the statistics come from each side's compact columns
(:mod:`promptgauge.results.columns`), and texts are read only for the rows a report shows --
at most :data:`MAX_ROWS` (the most changed first; :meth:`Comparison.iter_rows`
streams every row, for ``rows.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from . import power as power_
from . import stats
from .errors import CompareError
from .metrics import COMPARED_RUN_METRICS as RUN_METRICS
from .metrics import higher_is_better
from .results import Columns, Results, RowView, cut_trajectory, first_divergence, tool_changes, tool_sequence
from .results.columns import RowMetrics, first_appearance, index_of

MAX_DROPS = 20
#: Rows a comparison's per-row view (``row_diffs``) holds at most; also the flips kept per evaluator and direction.
MAX_ROWS = 2000
#: Rows read from a side at a time when streaming every row.
ROW_CHUNK = 1000
#: Status order of the rows a capped per-row view keeps first.
STATUS_RANK = {"regressed": 0, "mixed": 1, "improved": 2, "unchanged": 3}
#: Rows of the per-row view that carry their trajectories (cut: :mod:`promptgauge.results.trajectory`), the
#: most changed first; the others show their tool sequence only.
MAX_TRAJECTORIES = 500
#: Flip directions of rows whose tool calls changed, by :func:`~promptgauge.results.tool_change`.
TOOL_FLIPS = {"sequence": "tool sequence changed", "arguments": "tool arguments changed"}


# --------------------------------------------------------------------------- the metrics


def _is_binary(*arrays: np.ndarray) -> bool:
    values = np.concatenate([a[~np.isnan(a)] for a in arrays])
    return bool(np.isin(values, (0.0, 1.0)).all())


def _metric_specs(base: Results, cand: Results, evaluators: list[str]
                  ) -> tuple[list[tuple[str, str | None, bool]], dict[str, str]]:
    """(metric, evaluator, higher_is_better) for every metric both sides have, and aliases.

    An evaluator whose score is its pass/fail (exact_match: 1.0 or 0.0) gets only
    ``EV.pass_rate``; ``EV.mean`` is then an alias of it. An ``EV.mean`` equal row by
    row to a run metric (the ``latency`` evaluator's to ``latency_ms.mean``) is an
    alias of that metric. Directions: the candidate's record, else the baseline's.
    """
    tb, tc = base.metrics(), cand.metrics()
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
        elif same := next((m for m in RUN_METRICS if _equal(tb[mean], tb[m]) and _equal(tc[mean], tc[m])), None):
            aliases[mean] = same
        elif (~np.isnan(tb[mean])).any() or (~np.isnan(tc[mean])).any():
            names.append((mean, ev))
    names += [(m, None) for m in RUN_METRICS]
    return [(m, ev, higher_is_better(m, directions)) for m, ev in names], aliases


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal row by row, NaN equal to NaN (as ``pandas.Series.equals``)."""
    return bool(np.array_equal(a, b, equal_nan=True))


def _scores_are_pass(side: Results, ev: str) -> bool:
    e = side.columns().evaluators[ev]
    scored = e.present & ~e.error
    return bool((e.score[scored] == e.passed[scored]).all())


# ----------------------------------------------------------------------------- the models


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
    mde: float | None = Field(None, description="minimum detectable effect: the smallest worsening the one-sided "
                              "paired test detects at alpha with probability mde_power, at this n and the observed "
                              "agreement (pass/fail) or spread of row differences (scores); null: none can be "
                              "detected (see mde_note)")
    mde_power: float = Field(power_.DEFAULT_POWER, description="the power the MDE is stated at")
    mde_note: str = Field("", description="the MDE with what it rests on, or why there is none")


class Flip(BaseModel):
    row_id: str
    evaluator: str | None = Field(description="the evaluator whose pass/fail flipped; null for a tool flip")
    direction: Literal["pass->fail", "fail->pass", "tool sequence changed", "tool arguments changed"] = Field(
        description="tool sequence changed: other tool names or order; tool arguments changed: same names")


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
    tools: str | None = Field(None, description="the tool sequence (lookup_order → refund); null: no trajectory")
    trajectory: dict[str, Any] | None = Field(
        None, description="the trajectory, cut (messages, tool_calls {id, step, name, error}, stop_reason, steps, "
        "cut); only on changed rows (status or tool calls), at most MAX_TRAJECTORIES rows")


class RowDiff(BaseModel):
    row_id: str
    index: int
    status: Literal["regressed", "improved", "mixed", "unchanged"]
    inputs: dict[str, Any]
    baseline: RowSide
    candidate: RowSide
    tool_change: Literal["sequence", "arguments"] | None = Field(None, description="what changed in the tool calls")
    divergence: int | None = Field(None, description="the first step group where the trajectories differ "
                                   "(0 is the input messages; see promptgauge.results.trajectory.step_groups)")


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
    tool_changes: dict[str, int] = Field(default_factory=dict, description="rows whose tool calls changed, counted "
                                         "whole: {sequence, arguments}; empty when neither side has trajectories")
    drops: list[Drop]
    row_diffs: list[RowDiff] = Field(description=f"the matched rows side by side: all, or the {MAX_ROWS} most "
                                     "changed (regressed, mixed, improved first) in dataset order")
    rows_omitted: int = Field(0, description="matched rows left out of row_diffs (rows.csv has every row)")
    _paired: dict[str, stats.PairedComparison] = PrivateAttr(default_factory=dict)
    _detect: dict[str, power_.Detectability] = PrivateAttr(default_factory=dict)
    _aliases: dict[str, str] = PrivateAttr(default_factory=dict)
    _rows: tuple[Results, Results, np.ndarray, np.ndarray] | None = PrivateAttr(None)

    def metric(self, name: str) -> MetricComparison | None:
        name = self._aliases.get(name, name)
        return next((m for m in self.metrics if m.metric == name), None)

    def paired(self, name: str) -> stats.PairedComparison | None:
        """The oriented (higher is better) paired comparison behind *name*, for ``no_regression``."""
        return self._paired.get(self._aliases.get(name, name))

    def detectability(self, name: str) -> power_.Detectability | None:
        """What the paired test behind *name* can detect (its MDE at the comparison's alpha), for the gate."""
        return self._detect.get(self._aliases.get(name, name))

    def has_trajectories(self) -> bool:
        """Whether either side has a result with a trajectory (reports then show tool sequences)."""
        if self._rows is None:
            return any(s.tools is not None for r in self.row_diffs for s in (r.baseline, r.candidate))
        return any(bool(side.columns().tools.any()) for side in self._rows[:2])

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
                yield r.row_id, r.status, *(RowView(r.index, r.inputs, s.output, s.error, s.latency_ms, s.scores,
                                                    s.trajectory) for s in (r.baseline, r.candidate))
            return
        base, cand, ids, status = self._rows
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            b_rows, c_rows = base.rows(part), cand.rows(part)
            for r, st in zip(part.tolist(), status[start:start + chunk].tolist()):
                yield r, st, b_rows[r], c_rows[r]


# ------------------------------------------------------------------------- the comparison


def _info(side: Results) -> SideInfo:
    return SideInfo(label=side.label, run_id=side.run_id, variant=side.variant, suite=side.suite,
                    source=side.source, created_at=side.created_at, hashes=side.hashes())


def _first_inputs(cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    """Row ids in order of first appearance and each row's inputs digest."""
    first = first_appearance(cols.row_id)[2]
    return cols.row_id[first], cols.inputs[first]


def _match(base: Results, cand: Results) -> tuple[np.ndarray, RowCounts]:
    """The candidate's row ids (its order) that the baseline has with the same inputs, and the counts."""
    b_ids, b_keys = _first_inputs(base.columns())
    c_ids, c_keys = _first_inputs(cand.columns())
    pos = index_of(b_ids, c_ids)
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


def compare_sides(base: Results, cand: Results, *, intersect: bool = False, alpha: float = 0.05,
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
    for role, side, n in (("baseline", base, counts.baseline), ("candidate", cand, counts.candidate)):
        if not n:  # nothing is not "no regression": refuse instead of comparing an empty side
            raise CompareError(f"the {role} {side.label} has no rows to compare",
                               hint="run it first, or name a run / results file that has results")
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
    warnings += judge_changes(base.hashes()["judges"], cand.hashes()["judges"], evaluators)
    tb, tc = base.metrics().select(same), cand.metrics().select(same)
    specs, aliases = _metric_specs(base, cand, evaluators)
    metrics, paired, detect = [], {}, {}
    for name, ev, hib in specs:
        a, b = tb[name], tc[name]
        binary = _is_binary(a, b)
        a_o, b_o = (a, b) if hib else ((1 - a, 1 - b) if binary else (-a, -b))
        pc = stats.compare_paired(a_o, b_o, kind="binary" if binary else "score", confidence=confidence,
                                  n_resamples=n_resamples, seed=seed)
        paired[name] = pc
        detect[name] = power_.detectability(a_o, b_o, kind=pc.kind, alpha=alpha)
        sign = 1.0 if hib else -1.0
        keep = ~(np.isnan(a) | np.isnan(b))
        d = (b_o - a_o)[keep]
        ci = sorted([sign * pc.ci_low, sign * pc.ci_high]) if not math.isnan(pc.ci_low) else [None, None]
        metrics.append({
            "metric": name, "evaluator": ev, "kind": pc.kind, "higher_is_better": hib, "n": pc.n,
            "n_missing": pc.n_missing, "baseline": _num(a[keep].mean()) if pc.n else None,
            "candidate": _num(b[keep].mean()) if pc.n else None, "delta": _num(sign * pc.delta + 0.0),
            "ci_low": _num(ci[0]), "ci_high": _num(ci[1]), "p_value": _num(pc.pvalue),
            "p_regression": _num(pc.pvalue_regression), "test": pc.test, "effect_size": _num(pc.effect_size),
            "effect_name": pc.effect_name, "rows_better": int((d > 0).sum()), "rows_worse": int((d < 0).sum()),
            "mde": detect[name].mde, "mde_power": detect[name].power, "mde_note": detect[name].describe(),
        })
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
    tools = tool_changes(base.columns(), cand.columns(), same)
    for change, direction in TOOL_FLIPS.items():
        hit = same[tools == change]
        flips_omitted += max(0, len(hit) - max_rows)
        flips += [Flip(row_id=r, evaluator=None, direction=direction) for r in hit[:max_rows].tolist()]
    rank = np.array([STATUS_RANK[s] for s in status], dtype=int) * 2 + (tools == "")  # tool changes first
    shown = _shown(rank, max_rows) if rows else np.arange(0)
    any_tools = bool(base.columns().tools.any() or cand.columns().tools.any())
    comp = Comparison(baseline=_info(base), candidate=_info(cand), rows=counts, warnings=warnings, alpha=alpha,
                      confidence=confidence, seed=seed, n_resamples=n_resamples, metrics=out, flips=flips,
                      flips_omitted=flips_omitted, drops=_drops(tb, tc, out),
                      tool_changes={k: int((tools == k).sum()) for k in TOOL_FLIPS} if any_tools else {},
                      row_diffs=_row_diffs(base, cand, same[shown], status[shown], tools[shown], rank[shown])
                      if rows else [], rows_omitted=len(same) - len(shown) if rows else 0)
    comp._paired = paired
    comp._detect = detect
    comp._aliases = aliases
    comp._rows = (base, cand, same, status)
    return comp


def judge_changes(base: dict[str, Any], cand: dict[str, Any], evaluators: list[str]) -> list[str]:
    """A warning per LLM judge whose model, call parameters or prompt differ between the sides, or whose settings
    only one side recorded (a run from before they were recorded)."""
    out = []
    for e in evaluators:
        b, c = base.get(e), cand.get(e)
        if b is None and c is None or b == c:
            continue
        if b is None or c is None:
            older = "baseline" if b is None else "candidate"
            out.append(f"LLM judge '{e}': the {older} did not record its judge settings (an older run), so a change "
                       "of judge model, parameters or prompt cannot be ruled out")
            continue
        what = [f"model {_model_name(b.get('model'))} -> {_model_name(c.get('model'))}"
                if b.get("model") != c.get("model") else "",
                f"parameters {_short(b.get('parameters'))} -> {_short(c.get('parameters'))}"
                if b.get("parameters") != c.get("parameters") else "",
                f"prompt sha256 {str(b.get('prompt_sha256'))[:12]} -> {str(c.get('prompt_sha256'))[:12]}"
                if b.get("prompt_sha256") != c.get("prompt_sha256") else "",
                f"threshold {b.get('threshold')} -> {c.get('threshold')}" if b.get("threshold") != c.get("threshold")
                else ""]
        out.append(f"LLM judge '{e}' changed between the sides ({'; '.join(w for w in what if w)}): its deltas mix "
                   "a change of the variant with a change of the judge")
    return out


def _model_name(model: Any) -> str:
    if not isinstance(model, dict):
        return str(model)
    return str(model.get("model") or model.get("target") or model)


def _short(params: Any) -> str:
    if not isinstance(params, dict):
        return str(params)
    return "{" + ", ".join(f"{k}: {v}" for k, v in sorted(params.items())) + "}"


def _flips(m: MetricComparison) -> bool:
    """Whether *m*'s rows flip: an evaluator's pass rate, one result per row (0 or 1)."""
    return m.evaluator is not None and m.metric.endswith(".pass_rate") and m.kind == "binary"


def _flip_list(tb: RowMetrics, tc: RowMetrics, metrics: list[MetricComparison], limit: int
               ) -> tuple[list[Flip], int]:
    """The flips, at most *limit* per evaluator and direction, and how many were left out."""
    flips: list[Flip] = []
    omitted = 0
    for m in filter(_flips, metrics):
        a, b = tb[m.metric], tc[m.metric]
        for direction, hit in (("pass->fail", (a == 1) & (b == 0)), ("fail->pass", (a == 0) & (b == 1))):
            row_ids = tb.row_ids[hit]
            omitted += max(0, len(row_ids) - limit)
            flips += [Flip(row_id=r, evaluator=m.evaluator, direction=direction) for r in row_ids[:limit]]
    return flips, omitted


def _drops(tb: RowMetrics, tc: RowMetrics, metrics: list[MetricComparison]) -> list[Drop]:
    """The :data:`MAX_DROPS` biggest worsenings of scores (ties: metric order, then row order)."""
    found: list[tuple[float, int, Drop]] = []
    for m in metrics:
        if m.evaluator is None or not m.metric.endswith(".mean"):
            continue
        a, b = tb[m.metric], tc[m.metric]
        worse = np.flatnonzero((b - a) * (1 if m.higher_is_better else -1) < 0)
        worst = worse[np.argsort(-np.abs(b[worse] - a[worse]), kind="stable")[:MAX_DROPS]]
        found += [(abs(b[i] - a[i]), len(found) + k, Drop(row_id=tb.row_ids[i], metric=m.metric, baseline=float(a[i]),
                                                          candidate=float(b[i]), delta=float(b[i] - a[i])))
                  for k, i in enumerate(worst)]
    return [d for _, _, d in sorted(found, key=lambda x: (-x[0], x[1]))[:MAX_DROPS]]


def _row_statuses(tb: RowMetrics, tc: RowMetrics, metrics: list[MetricComparison]) -> np.ndarray:
    """Per row: regressed / improved / mixed / unchanged over the evaluator metrics."""
    better = np.zeros(len(tb), dtype=bool)
    worse = np.zeros(len(tb), dtype=bool)
    for m in metrics:
        if m.evaluator is None:
            continue
        d = tc[m.metric] - tb[m.metric]
        d *= 1 if m.higher_is_better else -1
        better |= d > 0
        worse |= d < 0
    return np.select([better & worse, worse, better], ["mixed", "regressed", "improved"], "unchanged")


def _shown(rank: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the rows the per-row view holds: all when they fit, else the most changed (lowest
    *rank*), in order."""
    if len(rank) <= limit:
        return np.arange(len(rank))
    return np.sort(np.argsort(rank, kind="stable")[:limit])


def _row_diffs(base: Results, cand: Results, row_ids: np.ndarray, status: np.ndarray, tools: np.ndarray,
               rank: np.ndarray) -> list[RowDiff]:
    b_rows, c_rows = base.rows(row_ids), cand.rows(row_ids)
    changed = [i for i in np.argsort(rank, kind="stable").tolist() if status[i] != "unchanged" or tools[i]]
    keep = set(changed[:MAX_TRAJECTORIES])  # rows that carry their trajectories, the most changed first
    out = []
    for i, (r, st, change) in enumerate(zip(row_ids.tolist(), status.tolist(), tools.tolist())):
        b, c = b_rows[r], c_rows[r]
        out.append(RowDiff.model_construct(
            row_id=r, index=c.index, status=st, inputs=c.inputs, baseline=_row_side(b, i in keep),
            candidate=_row_side(c, i in keep), tool_change=change or None,
            divergence=first_divergence(b.trajectory, c.trajectory) if i in keep else None))
    return out


def _row_side(view: RowView, trajectory: bool) -> RowSide:
    return RowSide.model_construct(output=view.output, error=view.error, latency_ms=view.latency_ms,
                                   scores=view.scores, tools=tool_sequence(view.trajectory),
                                   trajectory=cut_trajectory(view.trajectory) if trajectory else None)
