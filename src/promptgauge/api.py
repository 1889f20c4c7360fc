"""The library behind every CLI verb: call these from a notebook, a test or a pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .gate import evaluate_gate, parse_rules
from .monitor import PassResult, monitor  # noqa: F401 - the library behind `promptgauge monitor`
from .report import write_reports
from .runner import Progress, execute, prepare
from .store import Store
from .suite import Suite, load_suite
from .summary import summarize


@dataclass
class RunReport:
    """What a finished run produced: its id, summary (with the gate verdict) and report files."""

    run_id: str
    status: str
    summary: dict[str, Any]
    reports: dict[str, Path]
    store_path: Path

    @property
    def gate(self) -> dict[str, Any]:
        return self.summary["gate"]

    @property
    def passed(self) -> bool:
        return bool(self.summary["gate"]["passed"])


def open_store(suite: Suite, path: str | Path | None = None) -> Store:
    return Store(Path(path) if path else suite.resolve(suite.store))


def run(
    suite: str | Path | Suite | None = None,
    *,
    variants: list[str] | None = None,
    resume: bool = False,
    run_id: str | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    store: str | Path | None = None,
    reports_dir: str | Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_start: Callable[[str, int], None] | None = None,
) -> RunReport:
    """Run a suite end to end: score, store, summarise, gate, write reports.

    Raises :class:`promptgauge.errors.UserError` for bad input (before any model
    call) and ``KeyboardInterrupt`` when stopped (results so far are kept).
    """
    s = suite if isinstance(suite, Suite) else load_suite(suite)
    plan = prepare(s, variants=variants, limit=limit)
    rules = parse_rules(s, [e.name for e in plan.evaluators])
    st = open_store(s, store)
    try:
        if on_start:
            on_start(run_id or "", plan.total())
        outcome = execute(plan, st, run_id=run_id, resume=resume, on_progress=on_progress, concurrency=concurrency)
        summary = summarize(st, outcome.run_id)
        gated = [v for v in s.gated_variants() if v in summary["variants"]] or list(summary["variants"])
        summary["gate"] = evaluate_gate(summary, rules, gated)
        out_dir = Path(reports_dir) if reports_dir else s.resolve(s.reports_dir)
        reports = write_reports(summary, st, out_dir / outcome.run_id)
        return RunReport(outcome.run_id, outcome.status, summary, reports, st.path)
    finally:
        st.close()


def ci(
    suite: str | Path | Suite | None = None,
    *,
    out: str | Path = "promptgauge-report",
    **options: Any,
) -> RunReport:
    """Run a suite for a pipeline: :func:`run` (its ``options``), then everything into *out*.

    *out* gets ``junit.xml`` (a test case per gate rule), ``report.md`` (for a
    pull-request comment), ``summary.json`` and the other reports; the returned
    report's ``reports`` point there. The pipeline's exit code is the gate's:
    ``report.passed``.
    """
    from .ci import publish

    report = run(suite, **options)
    report.reports = publish(report.summary, report.reports, Path(out))
    return report
