"""What the verbs return: a run's report, a comparison's report, a promotion's result.

Plain records of what :func:`promptgauge.api.run`, :func:`~promptgauge.api.compare` and
:func:`~promptgauge.api.promote` produced -- ids, verdicts, report files -- kept apart from the
verbs so that :mod:`promptgauge.promote` can take a :class:`CompareReport` without importing
the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compare import Comparison
    from .report import ReportDoc
    from .results import Results
    from .runner import Progress


@dataclass
class RunReport:
    """What a finished run produced: its id, summary (with the gate verdict) and report files."""

    run_id: str
    status: str
    summary: dict[str, Any]
    reports: dict[str, Path]
    store_path: Path
    comparisons: list[Comparison] = field(default_factory=list)
    progress: Progress | None = None
    #: The suite's ``export:`` entries done after the run: ``{to, where, items (variant -> run id / file), notes}``.
    exports: list[dict[str, Any]] = field(default_factory=list)
    #: The exports that failed, each its error message (the run is stored and reported all the same).
    export_errors: list[str] = field(default_factory=list)
    #: How many results failed, and the first of them: (row_id, variant, repeat, error).
    failed: int = 0
    failures: list[tuple[str, str, int, str]] = field(default_factory=list)

    @property
    def gate(self) -> dict[str, Any]:
        return self.summary["gate"]

    @property
    def passed(self) -> bool:
        return bool(self.summary["gate"]["passed"])


@dataclass
class CompareReport:
    """A comparison of a candidate with a baseline, the gate's verdict on it, and its report files."""

    comparison: Comparison
    verdict: dict[str, Any]
    document: ReportDoc
    reports: dict[str, Path]
    baseline: Results
    candidate: Results

    @property
    def passed(self) -> bool:
        return bool(self.verdict["passed"])


@dataclass
class PromotionResult:
    """Whether the candidate was promoted, on what evidence, and the files written when it was."""

    promoted: bool
    evidence: CompareReport
    record: dict[str, Any] | None
    record_path: Path | None
    baseline_path: Path | None
