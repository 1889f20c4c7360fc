"""Checks a run makes while it goes, for mistakes only the first answers can show.

A column mapping to a target output that never comes (``${target.nope}``), or an
evaluator that raises on every row, would otherwise let the run finish with that
evaluator at n = 0. :class:`FailureWatch` sees each item's scores as they are
stored: an evaluator that has failed on each of the first :data:`FIRST_ROWS` items of
a variant (or on all of them, when a variant has fewer) without scoring one stops
the run with an :class:`~promptgauge.errors.EvaluatorError` (exit 2) that names it
and quotes its first error. What was scored until then stays in the store. An
evaluator the suite marks ``optional: true`` is never stopped for (the gate says it
was skipped instead), nor is an LLM judge whose replies hold no usable score
(``JudgeReplyError``: the judge answered; that is a finding about the judge, kept per
row with its raw reply, not a setup mistake -- the gate still fails an evaluator
that scored no row).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import EvaluatorError
from ..suite import Suite

#: An evaluator failing on each of a variant's first this many items stops the run.
FIRST_ROWS = 5
#: Row errors that never stop a run: a judge's reply without a usable score.
NOT_A_MISTAKE = ("JudgeReplyError",)


class FailureWatch:
    """Stops a run at an evaluator that fails on each of a variant's first items (see the module)."""

    def __init__(self, suite: Suite, items_per_variant: int, *, first: int = FIRST_ROWS) -> None:
        self.suite = suite
        self.need = max(1, min(first, items_per_variant))
        self.optional = {e.name for e in suite.evaluators if e.optional}
        self._failed: dict[tuple[str, str], int] = {}
        self._scored: set[tuple[str, str]] = set()

    def observe(self, variant: str, scores: Iterable[dict[str, Any]]) -> None:
        """One stored item's scores; raises :class:`EvaluatorError` when an evaluator has failed enough."""
        for s in scores:
            key = (variant, s["evaluator"])
            if key in self._scored or s["evaluator"] in self.optional:
                continue
            if s.get("error") is None:
                self._scored.add(key)
                continue
            if str(s["error"]).startswith(NOT_A_MISTAKE):
                continue
            self._failed[key] = self._failed.get(key, 0) + 1
            if self._failed[key] >= self.need:
                raise self._error(variant, s["evaluator"], str(s["error"]))

    def _error(self, variant: str, name: str, error: str) -> EvaluatorError:
        missing_output = "${target." in error and "is not available" in error
        rows = f"each of the first {self.need} rows" if self.need > 1 else "the first row"
        return EvaluatorError(
            f"evaluator '{name}' failed on {rows} of variant '{variant}' and scored none, so the run stopped "
            f"(results so far are kept): {error}",
            file=self.suite.path, field=f"evaluators.{name}" + (".column_mapping" if missing_output else ""),
            hint=("map a column the target does give, e.g. ${target.response}" if missing_output else
                  "fix the evaluator or its params, or mark it 'optional: true' to let it be skipped"))
