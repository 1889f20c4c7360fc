"""What a test gets back from ``evaluate(row)``: a :class:`Result` (output, outputs, trajectory, scores) and,
per evaluator, a :class:`Score` -- a ``float`` that remembers its evaluator, row, output, pass/fail and
reason, so a failing assertion can say why a row failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Self

from ..datasets import Row
from ..escaping import terminal
from ..results.trajectory import call_list, load_trajectory, message_list, tool_sequence

SHOWN_CHARS = 400


class Score(float):
    """One evaluator's score of one result: compares as a float, explains itself on failure.

    ``value`` is NaN when the evaluator gave no number or failed (``error``).
    """

    evaluator: str
    passed: bool | None
    error: str | None
    details: dict[str, Any] | None
    result: Result | None

    def __new__(cls, evaluator: str, value: float | None, *, passed: bool | None = None, error: str | None = None,
                details: dict[str, Any] | None = None, result: Result | None = None) -> Self:
        self = super().__new__(cls, math.nan if value is None else value)
        self.evaluator, self.passed, self.error, self.details, self.result = evaluator, passed, error, details, result
        return self

    @property
    def reason(self) -> str | None:
        """The evaluator's explanation (a judge's ``*_reason``), if it gave one."""
        for key, value in (self.details or {}).items():
            if (key == "reason" or key.endswith("_reason")) and value:
                return str(value)
        return None

    def __repr__(self) -> str:
        return f"Score({self.evaluator}={float(self):.4g})"

    def explain(self, op: str | None = None, threshold: float | None = None) -> list[str]:
        """Lines that say what was scored: score vs threshold, row, variant, input, output, reason."""
        head = f"promptgauge: {self.evaluator} = {float(self):.4g}"
        if op is not None:
            head += f", needed {op} {threshold:g}"
        if self.passed is not None:
            head += f" (evaluator says: {'pass' if self.passed else 'fail'})"
        lines = [head]
        if self.result is not None:
            lines += self.result.describe()
        if self.reason:
            lines.append(f"  reason:  {short(self.reason)}")
        if self.error:
            lines.append(f"  error:   {short(self.error)}")
        return [terminal(x) for x in lines]  # pytest prints them raw: no escape sequence from a row or an output


@dataclass
class Result:
    """One row through one variant: the output and every evaluator's :class:`Score`.

    ``result.f1`` and ``result["f1"]`` are the score of evaluator ``f1``. A tool-calling variant's
    result has its ``trajectory`` (``outputs["trajectory"]``), its ``tool_calls`` (each ``{id, step,
    name, arguments, arguments_raw, result, error, latency_ms}``) and its ``messages``.
    """

    row: Row | None
    variant: str
    output: str | None
    outputs: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Score] = field(default_factory=dict)
    where: str = ""
    explained: bool = field(default=False, repr=False)

    def __getitem__(self, evaluator: str) -> Score:
        if evaluator not in self.scores:
            raise KeyError(f"no score '{evaluator}' in this result; scores: {', '.join(self.scores) or 'none'}")
        return self.scores[evaluator]

    def __getattr__(self, name: str) -> Score:
        scores = self.__dict__.get("scores", {})
        if name in scores:
            return scores[name]
        raise AttributeError(f"Result has no attribute or score '{name}'; scores: {', '.join(scores) or 'none'}")

    def __repr__(self) -> str:
        return f"Result(row={self.row.id if self.row else None!r}, variant={self.variant!r}, output={self.output!r})"

    @property
    def trajectory(self) -> dict[str, Any] | None:
        """The trajectory (messages, steps, tool_calls, stop_reason); None for a variant without tools."""
        return load_trajectory(self.outputs.get("trajectory"))

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls in the order the model emitted them ([] without a trajectory)."""
        return call_list(self.trajectory)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The whole exchange in OpenAI chat format, input messages included ([] without a trajectory)."""
        return message_list(self.trajectory)

    def describe(self) -> list[str]:
        lines = []
        if self.row is not None and self.row.id:
            lines.append(f"  row:     {self.row.id}" + (f" ({self.where})" if self.where else ""))
        if self.variant:
            lines.append(f"  variant: {self.variant}")
        if self.row is not None:
            lines.append("  input:   " + short(", ".join(f"{k}={v!r}" for k, v in self.row.data.items())))
        lines.append(f"  output:  {short(repr(self.output))}")
        traj = self.trajectory
        if traj is not None:
            lines.append(f"  tools:   {short(tool_sequence(traj) or '')} (stopped: {traj.get('stop_reason')})")
        return [terminal(x) for x in lines]


def short(text: str, limit: int = SHOWN_CHARS) -> str:
    """*text* on one line, at most *limit* characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


