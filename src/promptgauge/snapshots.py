"""Baseline snapshots of pytest suites: per-row scores in a file next to the tests, checked for regressions.

``pytest --promptgauge-update-baseline`` writes ``test_x.promptgauge-baseline.json``
next to ``test_x.py``: per variant, row and evaluator, the score and pass/fail
of that run. Later runs compare, for each variant and metric, the rows present
on both sides (paired) with :func:`promptgauge.stats.compare_paired`, adjust
the one-sided p-values of all checks of the session with Holm, and let
:func:`promptgauge.stats.no_regression` decide: noise passes, a real drop fails.

Metrics are ``<evaluator>.pass_rate`` (pass/fail rows, exact McNemar; an
evaluator error counts as a failure) and ``<evaluator>.mean`` (scores,
Wilcoxon signed-rank; higher is better). By default every evaluator that
gives pass/fail is checked on its pass rate; ``.mean`` checks are opted into
(a score's direction is not known: fewer words or a lower latency is not worse).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

SCHEMA = "promptgauge.baseline-snapshot/1"
SUFFIX = ".promptgauge-baseline.json"
STATS = ("pass_rate", "mean")
SHOWN_ROWS = 5


class SnapshotError(UserError):
    """A baseline snapshot file is unreadable or not a snapshot; or a snapshot metric is malformed."""


def snapshot_path(module: Path) -> Path:
    """``tests/test_x.py`` -> ``tests/test_x.promptgauge-baseline.json``."""
    return module.with_name(module.stem + SUFFIX)


def read(path: Path) -> dict[str, Any] | None:
    """The snapshot at *path*, or None if there is none."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"not a JSON file: {exc}", file=path,
                            hint="delete it and rerun with --promptgauge-update-baseline") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("variants"), dict):
        raise SnapshotError(f"not a promptgauge baseline snapshot (schema {SCHEMA})", file=path,
                            hint="delete it and rerun with --promptgauge-update-baseline")
    return doc


def write(path: Path, records: Iterable[dict[str, Any]], suite: str, metrics: list[str] | None = None) -> int:
    """Merge the rows of *records* into the snapshot at *path* (rows not run are kept); return rows written.

    Stored per row: each pass/fail evaluator's score and pass/fail, and the score of
    each evaluator named in *metrics* as ``<evaluator>.mean``; not the rest (a latency
    would change every line of the file on every update).
    """
    means = {ev for ev, stat in parse_metrics(metrics or []) if stat == "mean"}
    doc = read(path) or {"schema": SCHEMA, "suite": suite, "variants": {}}
    n = 0
    for rec in records:
        cells = {ev: {"score": cell["score"], "passed": cell["passed"], **({"error": True} if cell["error"] else {})}
                 for ev, cell in _cells(rec).items() if cell["passed"] is not None or cell["error"] or ev in means}
        doc["variants"].setdefault(rec["variant"], {})[rec["row"]] = cells
        n += 1
    lines = ["{", f' "schema": {json.dumps(SCHEMA)},', f' "suite": {json.dumps(suite)},', ' "variants": {']
    for i, (variant, rows) in enumerate(sorted(doc["variants"].items())):
        lines.append(f"  {json.dumps(variant)}: {{")
        lines += [f"   {json.dumps(r)}: {json.dumps(rows[r], sort_keys=True, ensure_ascii=False)}"
                  + ("," if j < len(rows) - 1 else "") for j, r in enumerate(sorted(rows))]
        lines.append("  }" + ("," if i < len(doc["variants"]) - 1 else ""))
    lines += [" }", "}", ""]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return n


def parse_metrics(names: list[str]) -> list[tuple[str, str]]:
    """``["f1.mean", "contains.pass_rate"]`` -> ``[("f1", "mean"), ...]``."""
    out = []
    for name in names:
        evaluator, _, stat = name.rpartition(".")
        if not evaluator or stat not in STATS:
            raise SnapshotError(f"baseline metric '{name}' is not '<evaluator>.pass_rate' or '<evaluator>.mean'",
                                field="promptgauge_baseline_metrics")
        out.append((evaluator, stat))
    return out


def _value(entry: dict[str, Any] | None, evaluator: str, stat: str) -> float:
    cell = (entry or {}).get(evaluator)
    if cell is None:
        return math.nan
    if stat == "mean":
        return math.nan if cell.get("score") is None or cell.get("error") else float(cell["score"])
    if cell.get("error"):
        return 0.0
    return math.nan if cell.get("passed") is None else float(bool(cell["passed"]))


@dataclass
class Check:
    """One variant x metric of one snapshot file, compared with this run."""

    file: Path
    variant: str
    metric: str
    ok: bool
    reason: str
    n: int
    baseline: float
    current: float
    worse_rows: list[str]
    pvalue: float
    verdict: str = "regression"  #: or "no significant drop", "drop within max_drop"

    @property
    def name(self) -> str:
        return f"{self.variant}-{self.metric}" if self.variant else self.metric

    def line(self) -> str:
        """One line for the session summary."""
        if not self.variant:
            return f"FAIL {self.reason}"
        return (f"{'ok  ' if self.ok else 'FAIL'} {self.variant} {self.metric}: {self.baseline:.3g} -> "
                f"{self.current:.3g} on {self.n} rows, {self.verdict} (p={self.pvalue:.2g})")


def check(files: dict[Path, list[dict[str, Any]]], *, metrics: list[str] | None = None, alpha: float = 0.05,
          max_drop: float = 0.0) -> tuple[list[Check], list[str]]:
    """Compare each file's records with its snapshot; return the checks and notes on what was not compared."""
    from .stats import compare_paired, holm, no_regression

    chosen = parse_metrics(metrics) if metrics else None
    pending, notes, broken = [], [], []
    for path, records in files.items():
        try:
            doc = read(path)
        except SnapshotError as exc:
            broken.append(Check(path, "", "snapshot", False, exc.format(), 0, math.nan, math.nan, [], math.nan))
            continue
        if doc is None:
            notes.append(f"{path}: no baseline snapshot yet (create it with --promptgauge-update-baseline)")
            continue
        by_variant: dict[str, dict[str, dict[str, Any]]] = {}
        for rec in records:
            by_variant.setdefault(rec["variant"], {})[rec["row"]] = _cells(rec)
        for variant, current in sorted(by_variant.items()):
            base = doc["variants"].get(variant)
            if base is None:
                notes.append(f"{path}: variant '{variant}' has no baseline yet")
                continue
            rows = [r for r in current if r in base]
            if not rows:
                notes.append(f"{path}: none of the {len(current)} rows of '{variant}' is in the baseline")
                continue
            for evaluator, stat in chosen or _default_metrics(base, current, rows):
                a = [_value(base[r], evaluator, stat) for r in rows]
                b = [_value(current[r], evaluator, stat) for r in rows]
                kind = "binary" if stat == "pass_rate" else "score"
                comparison = compare_paired(a, b, kind=kind)
                if comparison.n == 0:
                    notes.append(f"{path}: {variant} {evaluator}.{stat} has no rows scored on both sides")
                    continue
                worse = sorted((r for r, x, y in zip(rows, a, b) if y < x), key=lambda r: rows.index(r))
                pending.append((path, variant, f"{evaluator}.{stat}", comparison, worse, len(current) - len(rows)))
    adjusted = holm([c.pvalue_regression for *_, c, _, _ in pending]) if pending else []
    checks = broken
    for (path, variant, metric, comparison, worse, new_rows), p in zip(pending, adjusted):
        comparison = dataclasses.replace(comparison, pvalue_regression=float(p))
        verdict = no_regression(comparison, max_drop=max_drop, alpha=alpha)
        lines = [f"{variant} {metric}: {verdict.reason}" + (f" [p Holm-adjusted over {len(pending)} checks]"
                                                             if len(pending) > 1 else "")]
        if worse:
            more = f" (+{len(worse) - SHOWN_ROWS} more)" if len(worse) > SHOWN_ROWS else ""
            lines.append(f"rows worse than the baseline: {', '.join(worse[:SHOWN_ROWS])}{more}")
        if new_rows:
            lines.append(f"{new_rows} row(s) not in the baseline were not compared")
        if not verdict.ok:
            lines.append(f"If the change is intended, accept it: pytest --promptgauge-update-baseline "
                         f"(updates {path.name})")
        reason = "\n".join(lines)
        kind = "regression" if not verdict.ok else "no significant drop" if p >= alpha else "drop within max_drop"
        checks.append(Check(path, variant, metric, verdict.ok, reason, comparison.n, comparison.mean_a,
                            comparison.mean_b, worse, float(p), kind))
    return checks, notes


def _cells(rec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    errors = set(rec.get("errors", ()))
    return {ev: {"score": rec["scores"][ev], "passed": rec["passed"].get(ev), "error": ev in errors}
            for ev in rec["scores"]}


def _default_metrics(base: dict[str, Any], current: dict[str, Any], rows: list[str]) -> list[tuple[str, str]]:
    """Every evaluator scored on both sides that gives pass/fail, on its pass rate."""
    evaluators: list[str] = []
    for r in rows:
        for ev in current[r]:
            if ev not in evaluators and ev in base[r]:
                evaluators.append(ev)
    return [(ev, "pass_rate") for ev in evaluators
            if any(current[r].get(ev, {}).get("passed") is not None for r in rows)
            and any(base[r].get(ev, {}).get("passed") is not None for r in rows)]
