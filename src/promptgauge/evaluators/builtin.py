"""Deterministic evaluators: cheap, exact, no model involved.

Each is a class built with its parameters and called with mapped columns,
returning a dict (the azure-ai-evaluation contract). ``inputs`` gives the
default column mapping used when the suite does not map a column.
"""

from __future__ import annotations

import json
import re
from typing import Any


def _norm(text: Any, *, ignore_case: bool, strip: bool) -> str:
    s = "" if text is None else str(text)
    if strip:
        s = s.strip()
    return s.casefold() if ignore_case else s


class ExactMatchEvaluator:
    """``response`` equals ``ground_truth`` (after optional strip / case folding). Score 1.0 or 0.0."""

    inputs = {"response": "${target.response}", "ground_truth": "${data.ground_truth}"}

    def __init__(self, *, ignore_case: bool = False, strip: bool = True) -> None:
        self.ignore_case, self.strip = ignore_case, strip

    def __call__(self, *, response: Any, ground_truth: Any) -> dict[str, Any]:
        ok = _norm(response, ignore_case=self.ignore_case, strip=self.strip) == _norm(
            ground_truth, ignore_case=self.ignore_case, strip=self.strip)
        return {"exact_match": float(ok), "exact_match_result": "pass" if ok else "fail"}


class ContainsEvaluator:
    """``response`` contains ``value`` (a column or a fixed parameter). Case-insensitive by default."""

    inputs = {"response": "${target.response}", "value": "${data.ground_truth}"}

    def __init__(self, *, value: str | None = None, ignore_case: bool = True) -> None:
        self.value, self.ignore_case = value, ignore_case

    def __call__(self, *, response: Any, value: Any = None) -> dict[str, Any]:
        needle = self.value if self.value is not None else value
        if needle is None:
            raise ValueError("contains needs a 'value' parameter or a mapped 'value' column")
        ok = _norm(needle, ignore_case=self.ignore_case, strip=True) in _norm(
            response, ignore_case=self.ignore_case, strip=False)
        return {"contains": float(ok), "contains_result": "pass" if ok else "fail"}


class RegexEvaluator:
    """``response`` matches ``pattern`` (``re.search``; flags: ignore_case, multiline)."""

    inputs = {"response": "${target.response}"}

    def __init__(self, *, pattern: str, ignore_case: bool = False, fullmatch: bool = False) -> None:
        try:
            self.regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        self.fullmatch = fullmatch

    def __call__(self, *, response: Any) -> dict[str, Any]:
        text = "" if response is None else str(response)
        ok = bool(self.regex.fullmatch(text.strip()) if self.fullmatch else self.regex.search(text))
        return {"regex": float(ok), "regex_result": "pass" if ok else "fail"}


class JsonValidEvaluator:
    """``response`` parses as JSON (optionally inside a ```json fenced block)."""

    inputs = {"response": "${target.response}"}
    _FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```\s*$", re.DOTALL)

    def __init__(self, *, allow_fence: bool = True) -> None:
        self.allow_fence = allow_fence

    def __call__(self, *, response: Any) -> dict[str, Any]:
        text = "" if response is None else str(response).strip()
        if self.allow_fence and (m := self._FENCE.match(text)):
            text = m.group(1)
        try:
            json.loads(text)
            ok, reason = True, ""
        except json.JSONDecodeError as exc:
            ok, reason = False, f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        return {"json_valid": float(ok), "json_valid_result": "pass" if ok else "fail", "json_valid_reason": reason}


class LatencyEvaluator:
    """The call's latency in milliseconds; passes under ``budget_ms`` when given."""

    inputs = {"latency_ms": "${target.latency_ms}"}

    def __init__(self, *, budget_ms: float | None = None) -> None:
        self.budget_ms = budget_ms

    def __call__(self, *, latency_ms: Any) -> dict[str, Any]:
        value = float(latency_ms)
        out: dict[str, Any] = {"latency_ms": value}
        if self.budget_ms is not None:
            out["latency_result"] = "pass" if value <= self.budget_ms else "fail"
        return out


BUILTINS: dict[str, type] = {
    "exact_match": ExactMatchEvaluator,
    "contains": ContainsEvaluator,
    "regex": RegexEvaluator,
    "json_valid": JsonValidEvaluator,
    "latency": LatencyEvaluator,
}
