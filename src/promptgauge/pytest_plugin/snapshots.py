"""Baseline snapshots of pytest suites: results files next to the tests, compared with every session.

``pytest --promptgauge-update-baseline`` writes, for each test file and variant the
session evaluated, ``baselines/<test file stem>.<variant>.json`` next to the test
file: a results file (``promptgauge.results/1``, see :mod:`promptgauge.results`)
with every row's inputs, output and scores. Rows the session did not run (``-k``)
keep their old entry.

Later sessions compare the rows they evaluated with it, paired, on the rows both
have (:func:`promptgauge.compare.compare_sides`), and gate each checked metric with
``no_regression`` (:mod:`promptgauge.gate`: one-sided paired tests, Holm-adjusted
over the variant's checks; a drop fails only when it is significant *and* larger
than ``max_drop``). Checked by default: every evaluator that gives pass/fail, on its
pass rate; any metric ``no_regression`` takes can be named instead (``f1.mean``,
``latency``, ``error_rate``).

A check never passes on nothing: a missing snapshot, a snapshot sharing no row with the
session, an empty side or no metric to check fails the check with what to do (create it
with ``--promptgauge-update-baseline``; or set ``promptgauge_baselines = off`` to run
without baseline checks at all).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SnapshotError, UserError

FOLDER = "baselines"
METRIC = re.compile(r"^[A-Za-z_][\w.\-]*$")
SHOWN_ROWS = 5


def snapshot_path(module: Path, variant: str) -> Path:
    """``tests/test_x.py``, ``terse`` -> ``tests/baselines/test_x.terse.json``."""
    return module.parent / FOLDER / f"{module.stem}.{variant}.json"


def check_metric_names(names: list[str]) -> None:
    """Metric names as ``no_regression`` takes them (checked against the evaluators when compared)."""
    for name in names:
        if not METRIC.match(name):
            raise SnapshotError(f"'{name}' is not a metric name (e.g. contains, f1.mean, error_rate)",
                                field="promptgauge_baseline_metrics")


def session_side(store: Any, run_id: str, variant: str, rows: set[str], test_file: str) -> Any:
    """The session's results of *variant* on *rows* (those of *test_file*), as a comparison side."""
    from ..results import load_results

    side = load_results(store, run_id, variant)
    keep_results, keep_scores = side.results["row_id"].isin(rows), side.scores["row_id"].isin(rows)
    return _with_rows(side, side.results[keep_results], side.scores[keep_scores], test_file)


def _with_rows(side: Any, results: Any, scores: Any, test_file: str) -> Any:
    """*side* with these rows; its ``dataset`` is the rows themselves (a test file draws on several files)."""
    digest = hashlib.sha256()
    for row_id, inputs in sorted(zip(results["row_id"], results["inputs"].map(_canonical), strict=True)):
        digest.update(f"{row_id}\0{inputs}\0".encode())
    dataset = {"path": test_file, "sha256": digest.hexdigest(), "rows": int(results["row_id"].nunique())}
    return dataclasses.replace(side, results=results.reset_index(drop=True), scores=scores.reset_index(drop=True),
                               manifest={**side.manifest, "dataset": dataset}, _metrics=None)


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


def write(path: Path, side: Any) -> int:
    """Write *side* as the snapshot at *path*, keeping the old entries of rows it lacks; return its rows."""
    import pandas as pd

    from ..errors import CompareError
    from ..results import load_results_file, write_results_file

    if path.is_file():
        try:
            old = load_results_file(path)
        except CompareError:  # replaced whole: that is what an update is for
            old = None
        if old is not None:
            kept = set(old.results["row_id"]) - set(side.results["row_id"])
            results = pd.concat([old.results[old.results["row_id"].isin(kept)], side.results], ignore_index=True)
            scores = pd.concat([old.scores[old.scores["row_id"].isin(kept)], side.scores], ignore_index=True)
            side = _with_rows(side, results.sort_values("row_index", kind="stable"), scores,
                              side.manifest["dataset"]["path"])
    write_results_file(side, path)
    return int(side.results["row_id"].nunique())


@dataclass
class Check:
    """One test file's variant, compared with its snapshot: a gate rule result per checked metric."""

    path: Path
    variant: str
    comparison: Any = None  #: the :class:`promptgauge.compare.Comparison`, when the sides could be compared
    rules: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    error: str | None = None  #: why the snapshot could not be read, compared or checked (a failure)


def check(path: Path, side: Any, *, metrics: list[str] | None = None, alpha: float = 0.05,
          max_drop: float = 0.0, on_inconclusive: str = "warn") -> Check:
    """Compare *side* (the session's rows of one test file and variant) with the snapshot at *path*."""
    from ..compare import compare_sides
    from ..errors import CompareError
    from ..gate import Subject, evaluate_gate, parse_rules
    from ..results import load_results_file, variant_summary
    from ..suite import GatePolicy

    result = Check(path, side.variant)
    if not path.is_file():
        result.error = (f"{path}: no baseline snapshot, so nothing to check against (create it with "
                        "--promptgauge-update-baseline and commit it, or set promptgauge_baselines = off)")
        return result
    try:
        base = load_results_file(path)
    except CompareError as exc:
        result.error = exc.format() + " (rewrite it with --promptgauge-update-baseline)"
        return result
    try:
        comp = compare_sides(base, side, intersect=True, alpha=alpha)
    except CompareError as exc:
        result.error = (f"{path}: nothing to compare: {exc.message} ({side.results['row_id'].nunique()} rows run; "
                        "update the snapshot with --promptgauge-update-baseline)")
        return result
    table = side.table()
    chosen = metrics or [e for e in side.evaluators if f"{e}.pass_rate" in table and comp.metric(f"{e}.pass_rate")]
    if not chosen:
        result.error = (f"{path}: nothing to check: no evaluator of variant '{side.variant}' has a pass rate on both "
                        "sides; name metrics in promptgauge_baseline_metrics (e.g. f1.mean)")
        return result
    try:
        rules = parse_rules(GatePolicy(rules=[f"{m}: no_regression(max_drop={max_drop}, alpha={alpha})"
                                              for m in chosen]), side.evaluators, in_suite=False)
    except UserError as exc:
        result.error = f"promptgauge_baseline_metrics: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        return result
    subject = Subject(side.variant, variant_summary(side.results, side.scores, side.evaluators), side, comp)
    result.comparison = comp
    result.rules = evaluate_gate(rules, [subject], baseline=base.label, on_inconclusive=on_inconclusive)["rules"]
    for rule in result.rules:
        rule["reason"] = _explain(rule, comp, path)
    return result


def _explain(rule: dict[str, Any], comp: Any, path: Path) -> str:
    """The gate's reason, the rows that got worse, and how to accept an intended change."""
    lines = [rule["reason"]]
    evaluator = rule["metric"].rsplit(".", 1)[0]
    worse = ([f.row_id for f in comp.flips if f.evaluator == evaluator and f.direction == "pass->fail"]
             if rule["metric"].endswith(".pass_rate") else [d.row_id for d in comp.drops if d.metric == rule["metric"]])
    if worse:
        more = f" (+{len(worse) - SHOWN_ROWS} more)" if len(worse) > SHOWN_ROWS else ""
        lines.append(f"rows worse than the baseline: {', '.join(worse[:SHOWN_ROWS])}{more}")
    if comp.rows.only_candidate:
        lines.append(f"{comp.rows.only_candidate} row(s) not in the baseline were not compared")
    if not rule["passed"]:
        lines.append(f"If the change is intended, accept it: pytest --promptgauge-update-baseline "
                     f"(rewrites {path.parent.name}/{path.name})")
    return "\n".join(lines)
