"""What an evaluator said about one row, normalised: a score, pass/fail, or an error.

Evaluators return whatever they like (a dict in the azure-ai-evaluation style, a number,
a bool); :func:`normalise` reads the primary score and pass/fail out of it, :func:`combine`
merges the repeats of one evaluator on one row, :func:`negated` is the ``not-`` modifier.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any


@dataclass
class Outcome:
    """A normalised evaluator result for one row."""

    score: float | None = None
    passed: bool | None = None
    error: str | None = None
    details: dict[str, Any] | None = None


def negated(outcome: Outcome) -> Outcome:
    """The ``not-`` modifier: pass becomes fail and back; the score is 1.0 for a pass, else 0.0."""
    if outcome.error is not None:
        return outcome
    if outcome.passed is None:
        return Outcome(error="ValueError: nothing to negate: the evaluator gave no pass/fail", details=outcome.details)
    return Outcome(score=float(not outcome.passed), passed=not outcome.passed, details=outcome.details)


def combine(outcomes: list[Outcome], threshold: float | None = None, higher_is_better: bool = True) -> Outcome:
    """Repeats of one evaluator on one row -> one outcome.

    The score is the mean of the scored repeats; pass/fail is the suite
    ``threshold`` on that mean (see :func:`meets`), else the majority of the repeats' verdicts (a
    tie fails). ``repeat_scores`` in the details keeps every repeat's score
    (``None`` for a repeat that failed), for agreement statistics.
    """
    repeat_scores = [o.score if o.error is None else None for o in outcomes]
    errors = [o.error for o in outcomes if o.error is not None]
    scored = [o for o in outcomes if o.error is None and o.score is not None]
    if not scored:
        first = next((o for o in outcomes if o.error is not None), outcomes[0])
        return Outcome(error=first.error, details={**(first.details or {}), "repeat_scores": repeat_scores})
    score = statistics.fmean(o.score for o in scored)  # type: ignore[misc]
    if threshold is not None:
        passed: bool | None = meets(score, threshold, higher_is_better)
    else:
        votes = [o.passed for o in scored if o.passed is not None]
        passed = sum(votes) * 2 > len(votes) if votes else None
    details = {**(scored[0].details or {}), "score": score, "repeat_scores": repeat_scores}
    if errors:
        details["repeat_errors"] = errors
    return Outcome(score=score, passed=passed, details=details)


def meets(score: float, threshold: float, higher_is_better: bool = True) -> bool:
    """A suite ``threshold``: the score passes at or above it (at or below it when lower is better)."""
    return score >= threshold if higher_is_better else score <= threshold


def normalise(raw: Any, threshold: float | None = None, higher_is_better: bool = True) -> Outcome:
    """Primary score and pass/fail from whatever an evaluator returned.

    - a bool is pass/fail (score 1.0/0.0); a number is the score;
    - a dict: ``score`` if present, else its first numeric value that is not a
      ``*_threshold``; ``passed`` if present, else the first ``*_result`` equal to
      ``pass``/``fail``, else the first bool value;
    - a suite ``threshold`` decides pass/fail (see :func:`meets`).
    """
    score: float | None = None
    passed: bool | None = None
    details: dict[str, Any] | None = None
    if isinstance(raw, bool):
        score, passed = float(raw), raw
    elif isinstance(raw, (int, float)):
        score = float(raw)
    elif isinstance(raw, dict):
        details = raw
        if _is_number(raw.get("score")):
            score = float(raw["score"])
        else:
            for key, value in raw.items():
                if _is_number(value) and not key.endswith("_threshold"):
                    score = float(value)
                    break
        if isinstance(raw.get("passed"), bool):
            passed = raw["passed"]
        else:
            for key, value in raw.items():
                if key.endswith("_result") and value in ("pass", "fail"):
                    passed = value == "pass"
                    break
            else:
                passed = next((v for v in raw.values() if isinstance(v, bool)), None)
        if score is None and passed is not None:
            score = float(passed)
    else:
        raise TypeError(f"evaluator returned {type(raw).__name__}; expected a dict, a number or a bool")
    if score is not None and math.isnan(score):
        score = None
    if threshold is not None and score is not None:
        passed = meets(score, threshold, higher_is_better)
    return Outcome(score=score, passed=passed, details=details)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
