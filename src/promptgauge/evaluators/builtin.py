"""Deterministic evaluators: cheap, exact, no model involved.

Each is a class built with its parameters and called with mapped columns,
returning a dict (the azure-ai-evaluation contract) with a score and a
``<key>_result`` of ``pass``/``fail``. ``inputs`` gives the default column
mapping used when the suite does not map a column; ``higher_is_better = False``
says a smaller score is better (a suite entry's ``higher_is_better`` overrides it).
Any of them can be negated with a ``not-`` prefix in the suite (``type: not-contains``).
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from ..cost import Price


def _norm(text: Any, *, ignore_case: bool, strip: bool) -> str:
    s = "" if text is None else str(text)
    if strip:
        s = s.strip()
    return s.casefold() if ignore_case else s


def _verdict(key: str, ok: bool, **extra: Any) -> dict[str, Any]:
    return {key: float(ok), f"{key}_result": "pass" if ok else "fail", **extra}


def _needle(fixed: Any, column: Any, name: str) -> Any:
    value = fixed if fixed is not None else column
    if value is None:
        raise ValueError(f"{name} needs a 'value' parameter or a mapped 'value' column")
    return value


class ExactMatchEvaluator:
    """``response`` equals ``ground_truth`` (after optional strip / case folding). Score 1.0 or 0.0."""

    inputs: ClassVar[dict[str, str]] = {"response": "${target.response}", "ground_truth": "${data.ground_truth}"}

    def __init__(self, *, ignore_case: bool = False, strip: bool = True) -> None:
        self.ignore_case, self.strip = ignore_case, strip

    def __call__(self, *, response: Any, ground_truth: Any) -> dict[str, Any]:
        ok = _norm(response, ignore_case=self.ignore_case, strip=self.strip) == _norm(
            ground_truth, ignore_case=self.ignore_case, strip=self.strip)
        return _verdict("exact_match", ok)


class ContainsEvaluator:
    """``response`` contains ``value`` (a column or a fixed parameter). Case-insensitive by default."""

    inputs: ClassVar[dict[str, str]] = {"response": "${target.response}", "value": "${data.ground_truth}"}

    def __init__(self, *, value: str | None = None, ignore_case: bool = True) -> None:
        self.value, self.ignore_case = value, ignore_case

    def __call__(self, *, response: Any, value: Any = None) -> dict[str, Any]:
        needle = _needle(self.value, value, "contains")
        ok = _norm(needle, ignore_case=self.ignore_case, strip=True) in _norm(
            response, ignore_case=self.ignore_case, strip=False)
        return _verdict("contains", ok)


class _ContainsMany:
    """Shared by contains_any / contains_all: ``values`` is a list (parameter or column) or a comma-separated string."""

    key = ""
    inputs: ClassVar[dict[str, str]] = {"response": "${target.response}"}

    def __init__(self, *, values: list[str] | str | None = None, ignore_case: bool = True) -> None:
        self.values, self.ignore_case = values, ignore_case

    def _found(self, response: Any, values: Any) -> tuple[list[str], list[str]]:
        items = _needle(self.values, values, self.key)
        if isinstance(items, str):
            items = [v.strip() for v in items.split(",") if v.strip()]
        if not isinstance(items, list) or not items:
            raise ValueError(f"{self.key} needs a non-empty list of values")
        text = _norm(response, ignore_case=self.ignore_case, strip=False)
        found = [v for v in map(str, items) if _norm(v, ignore_case=self.ignore_case, strip=True) in text]
        return found, [str(v) for v in items if str(v) not in found]


class ContainsAnyEvaluator(_ContainsMany):
    """``response`` contains at least one of ``values``. Score 1.0 or 0.0."""

    key = "contains_any"

    def __call__(self, *, response: Any, values: Any = None) -> dict[str, Any]:
        found, _ = self._found(response, values)
        return _verdict(self.key, bool(found), contains_any_found=found)


class ContainsAllEvaluator(_ContainsMany):
    """``response`` contains every one of ``values``. Score: the fraction found; passes when all are."""

    key = "contains_all"

    def __call__(self, *, response: Any, values: Any = None) -> dict[str, Any]:
        found, missing = self._found(response, values)
        share = len(found) / (len(found) + len(missing))
        return {"contains_all": share, "contains_all_result": "pass" if not missing else "fail",
                "contains_all_missing": missing}


class StartsWithEvaluator:
    """``response`` (leading whitespace ignored) starts with ``value``. Case-sensitive by default."""

    inputs: ClassVar[dict[str, str]] = {"response": "${target.response}", "value": "${data.ground_truth}"}

    def __init__(self, *, value: str | None = None, ignore_case: bool = False) -> None:
        self.value, self.ignore_case = value, ignore_case

    def __call__(self, *, response: Any, value: Any = None) -> dict[str, Any]:
        prefix = _norm(_needle(self.value, value, "starts_with"), ignore_case=self.ignore_case, strip=True)
        return _verdict("starts_with", _norm(response, ignore_case=self.ignore_case, strip=True).startswith(prefix))


class RegexEvaluator:
    """``response`` matches ``pattern`` (``re.search``, or the whole stripped text with ``fullmatch``)."""

    inputs: ClassVar[dict[str, str]] = {"response": "${target.response}"}

    def __init__(self, *, pattern: str, ignore_case: bool = False, fullmatch: bool = False) -> None:
        try:
            self.regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        self.fullmatch = fullmatch

    def __call__(self, *, response: Any) -> dict[str, Any]:
        text = "" if response is None else str(response)
        return _verdict("regex", bool(self.regex.fullmatch(text.strip()) if self.fullmatch else self.regex.search(text)))


_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```\s*$", re.DOTALL)


def _parse_json(response: Any, allow_fence: bool) -> tuple[Any, str | None]:
    """``(value, None)`` or ``(None, reason)`` for a response that should be JSON."""
    text = "" if response is None else str(response).strip()
    if allow_fence and (m := _FENCE.match(text)):
        text = m.group(1)
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


class JsonValidEvaluator:
    """``response`` parses as JSON (optionally inside a ```json fenced block)."""

    inputs: ClassVar[dict[str, str]] = {"response": "${target.response}"}

    def __init__(self, *, allow_fence: bool = True) -> None:
        self.allow_fence = allow_fence

    def __call__(self, *, response: Any) -> dict[str, Any]:
        _, reason = _parse_json(response, self.allow_fence)
        return _verdict("json_valid", reason is None, json_valid_reason=reason or "")


class JsonSchemaEvaluator:
    """``response`` is JSON valid against ``schema`` (a JSON Schema given inline, any draft)."""

    inputs: ClassVar[dict[str, str]] = {"response": "${target.response}"}

    def __init__(self, *, schema: dict[str, Any] | str, allow_fence: bool = True) -> None:
        import jsonschema

        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise ValueError(f"'schema' is not valid JSON: {exc.msg}") from None
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"'schema' is not a valid JSON Schema: {exc.message}") from None
        self.validator = cls(schema)
        self.allow_fence = allow_fence

    def __call__(self, *, response: Any) -> dict[str, Any]:
        value, reason = _parse_json(response, self.allow_fence)
        if reason is None:
            error = next(iter(sorted(self.validator.iter_errors(value), key=lambda e: list(e.path))), None)
            if error is not None:
                where = "/".join(map(str, error.absolute_path)) or "(root)"
                reason = f"at {where}: {error.message}"
        return _verdict("json_schema", reason is None, json_schema_reason=reason or "")


class LengthEvaluator:
    """Length of ``response`` in ``chars`` or ``words``; passes within ``min``..``max`` (each optional).

    With a ``max`` a shorter response is better, with only a ``min`` a longer one.
    """

    inputs: ClassVar[dict[str, str]] = {"response": "${target.response}"}

    def __init__(self, *, min: int | None = None, max: int | None = None, unit: str = "chars") -> None:
        if unit not in ("chars", "words"):
            raise ValueError(f"unit must be 'chars' or 'words', not {unit!r}")
        if min is None and max is None:
            raise ValueError("length needs 'min', 'max' or both")
        self.min, self.max, self.unit = min, max, unit
        self.higher_is_better = max is None

    def __call__(self, *, response: Any) -> dict[str, Any]:
        text = "" if response is None else str(response)
        n = len(text.split()) if self.unit == "words" else len(text)
        ok = (self.min is None or n >= self.min) and (self.max is None or n <= self.max)
        return {"length": float(n), "length_result": "pass" if ok else "fail", "length_unit": self.unit}


class LatencyEvaluator:
    """The call's latency in milliseconds; passes under ``budget_ms`` when given."""

    inputs: ClassVar[dict[str, str]] = {"latency_ms": "${target.latency_ms}"}
    higher_is_better = False

    def __init__(self, *, budget_ms: float | None = None) -> None:
        self.budget_ms = budget_ms

    def __call__(self, *, latency_ms: Any) -> dict[str, Any]:
        value = float(latency_ms)
        out: dict[str, Any] = {"latency_ms": value}
        if self.budget_ms is not None:
            out["latency_result"] = "pass" if value <= self.budget_ms else "fail"
        return out


class CostEvaluator:
    """The call's cost from its token counts and prices per million tokens (a :class:`~promptgauge.cost.Price`);
    passes under ``budget``."""

    inputs: ClassVar[dict[str, str]] = {"prompt_tokens": "${target.prompt_tokens}", "completion_tokens": "${target.completion_tokens}"}
    higher_is_better = False

    def __init__(self, *, prompt_price: float, completion_price: float, budget: float | None = None) -> None:
        self.price, self.budget = Price(input=prompt_price, output=completion_price), budget

    def __call__(self, *, prompt_tokens: Any, completion_tokens: Any) -> dict[str, Any]:
        if prompt_tokens is None or completion_tokens is None:
            raise ValueError("the target reported no token counts, so the cost is unknown")
        cost = self.price.cost(int(prompt_tokens), int(completion_tokens))
        out: dict[str, Any] = {"cost": cost}
        if self.budget is not None:
            out["cost_result"] = "pass" if cost <= self.budget else "fail"
        return out


BUILTINS: dict[str, type] = {
    "exact_match": ExactMatchEvaluator,
    "equals": ExactMatchEvaluator,
    "contains": ContainsEvaluator,
    "contains_any": ContainsAnyEvaluator,
    "contains_all": ContainsAllEvaluator,
    "starts_with": StartsWithEvaluator,
    "regex": RegexEvaluator,
    "json_valid": JsonValidEvaluator,
    "json_schema": JsonSchemaEvaluator,
    "length": LengthEvaluator,
    "latency": LatencyEvaluator,
    "cost": CostEvaluator,
}
