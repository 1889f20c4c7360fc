"""Assertions on what an agent did: :func:`assert_tool_called` and :func:`assert_tool_sequence`.

Both take the :class:`~.result.Result` of ``evaluate(row)`` (or a trajectory dict) and, on failure,
explain themselves as :func:`~.harness.assert_score` does: the row, the variant, the input, the
output, every tool call with its step, arguments and result, and what was expected.

Order is by step, the model call that emitted a call: calls emitted together in one step (parallel
tool calls) are neither before nor after each other -- the model had seen neither's result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..evaluators.trajectory import json_contains
from ..results.trajectory import call_list
from .result import Result, short

__all__ = ["assert_tool_called", "assert_tool_sequence"]

MODES = ("in_order", "exact")
#: Tool calls listed in a failure message.
LISTED = 30


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _describe_call(i: int, call: dict[str, Any]) -> str:
    args = call.get("arguments")
    shown = _json(args) if args is not None else f"<malformed JSON: {call.get('arguments_raw')!r}>"
    line = f"{i}. step {call.get('step', i)}: {call.get('name')}({shown})"
    if call.get("error"):
        line += f" error: {call['error']}"
    elif call.get("result") is not None:
        line += f" -> {call['result']!r}"
    return "    " + short(line, 240)


def _result(result: Any) -> Result:
    if isinstance(result, Result):
        return result
    if isinstance(result, dict):
        return Result(None, "", None, {"trajectory": result})
    _usage(f"expected the Result of evaluate(row) or a trajectory dict, not {type(result).__name__}")
    raise AssertionError  # not reached


def _usage(message: str) -> None:
    import pytest

    pytest.fail(f"promptgauge: {message}", pytrace=False)


def _fail(result: Result, head: str, expected: str, more: Sequence[str] = ()) -> None:
    calls = call_list(result.trajectory)
    lines = [f"promptgauge: {head}", *result.describe()]
    if result.trajectory is None:
        lines.append("  tool calls: none (this result has no trajectory: does the variant declare tools?)")
    else:
        lines.append(f"  tool calls ({len(calls)}):" if calls else "  tool calls: none")
        lines += [_describe_call(i, c) for i, c in enumerate(calls[:LISTED])]
        if len(calls) > LISTED:
            lines.append(f"    … {len(calls) - LISTED} more")
    lines.append(f"  expected: {expected}")
    lines += [f"  {m}" for m in more]
    result.explained = True
    from ..escaping import terminal

    raise AssertionError(terminal("\n".join(lines)))  # outputs, tool arguments: no escape sequence reaches the terminal


def _step(call: dict[str, Any], index: int) -> int:
    step = call.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else index


def assert_tool_called(result: Any, name: str, *, args: dict[str, Any] | None = None, times: int | None = None,
                       before: str | None = None, after: str | None = None) -> list[dict[str, Any]]:
    """Assert that the agent called tool *name*; return the matching calls.

    - *args*: only calls whose arguments contain these keys with these values count (a subset match,
      recursive in objects, JSON equality: ``1 == 1.0``, ``True != 1``; calls with malformed JSON
      arguments never match).
    - *times*: exactly this many matching calls (``0``: never called so); default at least one.
    - *before* / *after*: the first matching call comes in an earlier / a later step than the first
      call of that tool, which must have been called. Calls of one step (parallel calls) are neither.
    """
    __tracebackhide__ = True
    res = _result(result)
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
        _usage(f"times={times!r} is not a count (an integer >= 0)")
    if times == 0 and (before or after):
        _usage("times=0 with before/after: a tool that is never called has no order")
    if args is not None and not isinstance(args, dict):
        _usage(f"args must be a dict of the arguments to match, not {type(args).__name__}")
    calls = call_list(res.trajectory)
    matching = [(i, c) for i, c in enumerate(calls) if c.get("name") == name
                and (args is None or (c.get("arguments") is not None and json_contains(args, c.get("arguments"))))]
    what = f"{name}" + (f" with arguments ⊇ {_json(args)}" if args is not None else "")
    wanted = what + (f", {times} time(s)" if times is not None else ", at least once")
    wanted += f", before the first {before}" if before else ""
    wanted += f", after the first {after}" if after else ""
    named = sum(c.get("name") == name for c in calls)
    if (times is None and not matching) or (times is not None and len(matching) != times):
        more = [f"{name} was called {named} time(s), none with these arguments"] if named and not matching else []
        _fail(res, f"tool {what} was called {len(matching)} time(s)", wanted, more)
    for other, later in ((before, False), (after, True)):
        if not other:
            continue
        first_other = next(((i, c) for i, c in enumerate(calls) if c.get("name") == other), None)
        if first_other is None:
            _fail(res, f"tool {other} was never called, so {name} cannot come {'after' if later else 'before'} it",
                  wanted)
        mine, theirs = _step(matching[0][1], matching[0][0]), _step(first_other[1], first_other[0])
        if (mine > theirs) if later else (mine < theirs):
            continue
        where = "in the same step as" if mine == theirs else ("before" if later else "after")
        _fail(res, f"the first call of {what} (step {mine}) came {where} the first {other} (step {theirs})", wanted)
    return [c for _, c in matching]


def assert_tool_sequence(result: Any, names: Sequence[str], mode: str = "in_order") -> None:
    """Assert the order of the agent's tool calls by name.

    ``in_order``: *names* appear in this order, other calls may come between or around them (a
    repeated name needs as many calls); ``exact``: the calls are exactly *names*, nothing else.
    """
    __tracebackhide__ = True
    res = _result(result)
    if mode not in MODES:
        _usage(f"mode={mode!r}; valid: {', '.join(MODES)}")
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        _usage("names must be a list of tool names, e.g. ['lookup_order', 'refund']")
    actual = [str(c.get("name")) for c in call_list(res.trajectory)]
    wanted = list(names)
    shown = " → ".join(actual) or "(no tool calls)"
    expected = " → ".join(wanted) or "(no tool calls)"
    if mode == "exact":
        if actual == wanted:
            return
        at = next((i for i, (a, b) in enumerate(zip(actual, wanted)) if a != b), min(len(actual), len(wanted)))
        got = actual[at] if at < len(actual) else "nothing"
        _fail(res, f"tool sequence {shown} is not exactly {expected}", f"{expected} (exact)",
              [f"first difference at call {at}: {got} instead of {wanted[at] if at < len(wanted) else 'nothing'}"])
    pos = 0
    for k, want in enumerate(wanted):
        pos = next((i for i in range(pos, len(actual)) if actual[i] == want), -1) + 1
        if pos == 0:
            done = " → ".join(wanted[:k]) or "nothing"
            _fail(res, f"tool sequence {shown} does not contain {expected} in order", f"{expected} (in order; "
                  "other calls may come between)", [f"matched {done}; then no {want} (expected #{k + 1})"])
