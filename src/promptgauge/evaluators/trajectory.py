"""Deterministic trajectory evaluators: ``tool_trajectory`` (the tool calls made vs. the expected ones) and
``tool_args_valid`` (every call's arguments against the tool's declared JSON schema).

Both read the calls from any shape :func:`~.agent_format.tool_calls` reads: a trajectory
(``${target.trajectory}``), its ``tool_calls`` list, OpenAI chat messages, azure-ai-evaluation's
agent messages or tool-call lists, or JSON text of any of these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from .agent_format import ToolCall, load_json, step_count, tool_calls

__all__ = ["ARGUMENT_MODES", "MODES", "TRAJECTORY_EVALUATORS", "ToolArgsValidEvaluator", "ToolTrajectoryEvaluator"]

MODES = ("exact", "in_order", "any_order", "subset", "superset")
ARGUMENT_MODES = ("off", "exact", "subset", "schema")


@dataclass
class _Expected:
    name: str
    arguments: Any
    given: bool  # an expected call without "arguments" matches any arguments

    def describe(self) -> str:
        return self.name if not self.given else f"{self.name}({json.dumps(self.arguments, sort_keys=True, default=str)})"


def _expected_calls(value: Any) -> list[_Expected]:
    value = load_json(value)
    if value is None:
        raise ValueError("the expected tool calls are null; give a list ([] expects no calls)")
    if not isinstance(value, list):
        raise TypeError(f"the expected tool calls must be a list of {{name, arguments}}, not {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append(_Expected(item, None, False))
            continue
        source = item.get("function") if isinstance(item, dict) and isinstance(item.get("function"), dict) else item
        if not isinstance(source, dict):
            raise TypeError(f"expected tool call {i} is a {type(item).__name__}, not an object or a name")
        if not isinstance(source.get("name"), str) or not source["name"]:
            raise ValueError(f"expected tool call {i} needs a 'name': {json.dumps(item, default=str)[:120]}")
        arguments = source.get("arguments")  # absent or null: any arguments match
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                raise ValueError(f"expected tool call {i} ({source['name']}): 'arguments' is not JSON") from None
        out.append(_Expected(source["name"], arguments, arguments is not None))
    return out


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(json_equal, a, b))
    return type(a) is type(b) and a == b


def json_contains(expected: Any, actual: Any) -> bool:
    """Every key of *expected* is in *actual* with the same value (recursively for objects; lists compare whole)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and json_contains(v, actual[k]) for k, v in expected.items())
    return json_equal(expected, actual)


def _first_error(validator: Any, value: Any) -> str | None:
    error = next(iter(sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.path)))), None)
    if error is None:
        return None
    return f"at {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"


def _validator(schema: Any, what: str) -> Any:
    import jsonschema

    if not isinstance(schema, (dict, bool)):
        raise TypeError(f"{what} is not a JSON schema (an object)")
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"{what} is not a valid JSON schema: {exc.message}") from None
    return cls(schema)


class _Matcher:
    """Whether an actual call fulfils an expected one, under an argument mode."""

    def __init__(self, mode: str, expected: list[_Expected]) -> None:
        self.mode = mode
        self.validators = {i: _validator(e.arguments, f"expected tool call {i} ({e.name}): 'arguments'")
                           for i, e in enumerate(expected) if mode == "schema" and e.given}

    def mismatch(self, i: int, e: _Expected, a: ToolCall) -> str | None:
        """None if *a* fulfils *e*, else why not."""
        if e.name != a.name:
            return f"called {a.name}, not {e.name}"
        if self.mode == "off" or not e.given:
            return None
        if a.arguments is None:
            return "its arguments are not valid JSON"
        if self.mode == "schema":
            error = _first_error(self.validators[i], a.arguments)
            return None if error is None else f"its arguments fail the expected schema {error}"
        if (json_equal if self.mode == "exact" else json_contains)(e.arguments, a.arguments):
            return None
        return f"expected arguments {'' if self.mode == 'exact' else 'including '}{json.dumps(e.arguments, sort_keys=True)}"


def _max_matching(rows: list[int], cols: list[int], ok: Callable[[int, int], bool],
                  start: dict[int, int] | None = None) -> dict[int, int]:
    """A maximum bipartite matching row -> col (augmenting paths), keeping every row of *start* matched."""
    owner = {c: r for r, c in (start or {}).items()}

    def augment(r: int, seen: set[int]) -> bool:
        for c in cols:
            if c not in seen and ok(r, c):
                seen.add(c)
                if c not in owner or augment(owner[c], seen):
                    owner[c] = r
                    return True
        return False

    for r in rows:
        if r not in (start or {}):
            augment(r, set())
    return {r: c for c, r in owner.items()}


def _ordered_matching(m: int, steps: list[list[int]], ok: Callable[[int, int], bool]) -> dict[int, int]:
    """A largest matching expected -> actual that keeps the expected order across steps (any order inside a step).

    The expected calls fulfilled by one step form a contiguous run of the expected list, so
    ``best[j]`` -- the most matches for the first ``j`` expected calls with the steps so far --
    is extended one step at a time by matching each run ``j..j2`` into that step (O(m^2 n)).
    """
    best = [0] * (m + 1)
    back: list[list[tuple[int, dict[int, int]] | None]] = []
    for step in steps:
        nxt, choice = list(best), [None] * (m + 1)
        for j in range(m + 1):
            run: dict[int, int] = {}
            for j2 in range(j + 1, m + 1):  # the run grows by one expected call: at most one more augmenting path
                if len(run) < len(step):
                    run = _max_matching([j2 - 1], step, ok, start=run)
                if best[j] + len(run) > nxt[j2]:
                    nxt[j2], choice[j2] = best[j] + len(run), (j, run)
        back.append(choice)
        best = nxt
    pairs: dict[int, int] = {}
    j2 = m
    for choice in reversed(back):
        if choice[j2] is not None:
            j2, run = choice[j2]
            pairs.update(run)
    return pairs


def _ratio(k: int, n: int) -> float:
    return k / n if n else 1.0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _sequence(calls: list[ToolCall]) -> str:
    """``a → [b, c] → d``: the calls by step, parallel calls in brackets."""
    groups: dict[int, list[str]] = {}
    for c in calls:
        groups.setdefault(c.step, []).append(c.name)
    parts = [g[0] if len(g) == 1 else "[" + ", ".join(g) + "]" for _, g in sorted(groups.items())]
    return " → ".join(parts[:12]) + (" → …" if len(parts) > 12 else "") if parts else "(none)"


class ToolTrajectoryEvaluator:
    """The tool calls made against the expected ones (``${data.expected_tool_calls}``: ``[{"name", "arguments"}]``).

    ``mode`` -- how the calls made must relate to the expected list:

    - ``exact``: the same calls, in the same order, nothing else;
    - ``in_order``: every expected call, in the expected order; extra calls allowed anywhere;
    - ``any_order``: the same calls (as a multiset), in any order, nothing else;
    - ``subset``: the calls made are a subset of the expected ones -- every call made was expected
      (each expected call covers at most one); expected calls may be missing;
    - ``superset``: the calls made are a superset of the expected ones -- every expected call was
      made; extra calls allowed, order ignored.

    ``arguments`` -- when an actual call fulfils an expected one with the same name: ``off`` (names
    only), ``exact`` (equal JSON: ``1 == 1.0``, ``true != 1``), ``subset`` (every expected key present
    with an equal value, recursively into objects; lists compare whole), ``schema`` (the expected
    ``arguments`` is a JSON schema the actual arguments must validate against). An expected call
    without ``arguments`` (or with ``null``) matches any arguments; actual arguments that are not
    valid JSON match only then (or with ``off``). Budgets: ``max_tool_calls`` (calls made) and
    ``max_steps`` (model calls: the trajectory's ``steps``, or the assistant messages after the
    latest user message of a message list).

    Edge cases:

    - repeated calls are a multiset: two expected ``lookup`` calls need two actual ones, and each
      actual call fulfils at most one expected call (a maximum matching, so no greedy mis-pairing);
    - parallel calls (emitted in one model step) count as simultaneous: their order among themselves
      never matters, also for ``exact`` and ``in_order``. Steps come from the trajectory (``step``),
      or one per assistant message; a bare list of calls has one call per step (strict order);
    - calls that failed (unknown tool, bad arguments, the tool raised) count as made;
    - an empty expected list: ``exact``, ``any_order`` and ``subset`` pass only if no call was made;
      ``in_order`` and ``superset`` hold vacuously -- they pass, and the reason says so. ``subset``
      with no call made holds vacuously too (reason says so); a null expected value is an error;
    - ``max_steps`` needs steps (a trajectory or messages): with a bare call list it is an error.

    Score (0..1), the mode's own measure, so that 1.0 means the mode holds: ``exact`` -- F1 of
    precision and recall of the order-keeping matching; ``in_order`` -- recall of that matching;
    ``any_order`` -- F1 of the matching; ``subset`` -- precision; ``superset`` -- recall. A budget
    overrun makes the score 0.0. Passes at score >= ``threshold`` (default 1.0). Keys:
    ``tool_trajectory``, ``_result``, ``_precision`` and ``_recall`` (matched / calls made,
    matched / expected, of the matching the mode uses; 1.0 for an empty side), ``_reason``
    (missing, extra, out-of-order calls and wrong arguments; budgets), ``_threshold``, ``_details``.
    """

    key = "tool_trajectory"
    inputs: ClassVar[dict[str, str]] = {"trajectory": "${target.trajectory}", "expected": "${data.expected_tool_calls}"}

    def __init__(self, *, mode: str = "exact", arguments: str = "exact", max_steps: int | None = None,
                 max_tool_calls: int | None = None, threshold: float = 1.0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if arguments not in ARGUMENT_MODES:
            raise ValueError(f"arguments must be one of {', '.join(ARGUMENT_MODES)}, not {arguments!r}")
        for name, budget in (("max_steps", max_steps), ("max_tool_calls", max_tool_calls)):
            if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
                raise ValueError(f"{name} must be a non-negative integer, not {budget!r}")
        self.mode, self.arguments, self.threshold = mode, arguments, threshold
        self.max_steps, self.max_tool_calls = max_steps, max_tool_calls

    def __call__(self, *, trajectory: Any, expected: Any) -> dict[str, Any]:
        calls, wanted = tool_calls(trajectory), _expected_calls(expected)
        matcher = _Matcher(self.arguments, wanted)
        ok_table = [[matcher.mismatch(i, e, a) is None for a in calls] for i, e in enumerate(wanted)]

        def ok(i: int, j: int) -> bool:
            return ok_table[i][j]

        m, n = len(wanted), len(calls)
        if self.mode in ("exact", "in_order"):
            steps: dict[int, list[int]] = {}
            for j, c in enumerate(calls):
                steps.setdefault(c.step, []).append(j)
            matching = _ordered_matching(m, [steps[s] for s in sorted(steps)], ok)
            # the calls fulfilled only if the order is ignored are the out-of-order ones
            unordered = _max_matching(list(range(m)), list(range(n)), ok, start=matching)
        else:
            matching = unordered = _max_matching(list(range(m)), list(range(n)), ok)
        k = len(matching)
        precision, recall = _ratio(k, n), _ratio(k, m)
        score = {"exact": _f1(precision, recall), "in_order": recall, "any_order": _f1(precision, recall),
                 "subset": precision, "superset": recall}[self.mode]
        details = self._explain(wanted, calls, matching, unordered, matcher)
        parts = self._verdict(details, score, m, n)
        steps_used = step_count(trajectory)
        over = []
        if self.max_tool_calls is not None and n > self.max_tool_calls:
            over.append(f"{n} tool calls > max_tool_calls {self.max_tool_calls}")
        if self.max_steps is not None:
            if steps_used is None:
                raise ValueError("max_steps needs the trajectory's steps (a trajectory or messages), not a bare "
                                 "list of tool calls")
            if steps_used > self.max_steps:
                over.append(f"{steps_used} steps > max_steps {self.max_steps}")
        if over:
            score = 0.0
            parts.append("over budget: " + ", ".join(over))
        details.update(mode=self.mode, arguments=self.arguments, expected=m, calls=n, matched=k, steps=steps_used)
        k_ = self.key
        return {k_: score, f"{k_}_result": "pass" if score >= self.threshold else "fail",
                f"{k_}_precision": precision, f"{k_}_recall": recall, f"{k_}_reason": "; ".join(parts),
                f"{k_}_threshold": self.threshold, f"{k_}_details": details}

    @staticmethod
    def _explain(wanted: list[_Expected], calls: list[ToolCall], matching: dict[int, int],
                 unordered: dict[int, int], matcher: _Matcher) -> dict[str, Any]:
        """Missing, extra, out-of-order calls and wrong arguments.

        *unordered* extends *matching* (the one the mode uses) ignoring order: expected calls it adds
        are out of order; calls it leaves unmatched are extra, or made with wrong arguments when an
        unfulfilled expected call has their name.
        """
        out_of_order = sorted(i for i in unordered if i not in matching)
        left = [i for i in range(len(wanted)) if i not in unordered]
        used = set(unordered.values())
        spare = [j for j in range(len(calls)) if j not in used]
        wrong, missing = [], []
        for i in left:
            j = next((j for j in spare if calls[j].name == wanted[i].name), None)
            if j is None:
                missing.append(wanted[i].describe())
            else:
                spare.remove(j)
                wrong.append(f"{calls[j].describe()} at step {calls[j].step}: {matcher.mismatch(i, wanted[i], calls[j])}")
        return {"missing": missing, "wrong_arguments": wrong,
                "extra": [f"{calls[j].describe()} at step {calls[j].step}" for j in spare],
                "out_of_order": [f"{wanted[i].describe()} (made at step {calls[unordered[i]].step})" for i in out_of_order],
                "expected_sequence": " → ".join(e.name for e in wanted) or "(none)", "actual_sequence": _sequence(calls)}

    def _verdict(self, d: dict[str, Any], score: float, m: int, n: int) -> list[str]:
        mode = self.mode
        if m == 0 and n == 0:
            return ["no tool calls expected and none made"]
        if m == 0 and mode in ("in_order", "superset"):
            return [f"no tool calls expected, so {mode} holds vacuously ({n} call{'s' * (n != 1)} made)"]
        if n == 0 and m and mode == "subset":
            return [f"no tool calls made, so subset holds vacuously ({m} expected call{'s' * (m != 1)} not made)"]
        parts = []
        if d["wrong_arguments"]:
            parts.append("wrong arguments: " + "; ".join(d["wrong_arguments"]))
        if d["missing"] and mode != "subset":
            parts.append("missing: " + ", ".join(d["missing"]))
        if d["out_of_order"]:
            parts.append(f"out of order: {', '.join(d['out_of_order'])}; expected {d['expected_sequence']}, "
                         f"made {d['actual_sequence']}")
        if d["extra"] and mode in ("exact", "any_order", "subset"):
            parts.append("extra: " + ", ".join(d["extra"]))
        if score == 1.0:
            what = {"exact": "all expected calls made, in order, and no others",
                    "in_order": "all expected calls made in order", "any_order": "exactly the expected calls made",
                    "subset": "every call made was expected", "superset": "all expected calls made"}[mode]
            allowed = len(d["extra"]) if mode in ("in_order", "superset") else len(d["missing"]) if mode == "subset" else 0
            note = "" if not allowed else (f" ({allowed} extra call{'s' * (allowed != 1)} allowed)" if mode != "subset"
                                           else f" ({allowed} expected call{'s' * (allowed != 1)} not made, allowed)")
            return [f"{what} ({m} expected, {n} made){note}"]
        return parts


class ToolArgsValidEvaluator:
    """Every tool call's arguments validate against its tool's declared JSON schema (jsonschema, any draft).

    ``tool_definitions``: OpenAI function schemas (``[{"type": "function", "function": {"name",
    "parameters"}}]``, as a prompt declares them) or azure's flat ``{"name", "parameters"}``. A call
    fails when its tool is unknown, its arguments are not valid JSON or not a JSON object, or they
    fail the schema; a tool declared without ``parameters`` takes no arguments (only ``{}``). Score:
    the share of valid calls; no calls at all is 1.0 and the reason says nothing was validated.
    Passes at score >= ``threshold`` (default 1.0: every call valid). Keys: ``tool_args_valid``,
    ``_result``, ``_reason`` (the bad calls and why), ``_threshold``, ``_invalid`` (``[{index, name,
    step, error}]``).
    """

    key = "tool_args_valid"
    inputs: ClassVar[dict[str, str]] = {"trajectory": "${target.trajectory}",
                                        "tool_definitions": "${target.tool_definitions}"}

    def __init__(self, *, threshold: float = 1.0) -> None:
        self.threshold = threshold

    @staticmethod
    def _schemas(definitions: Any) -> dict[str, Any]:
        definitions = load_json(definitions)
        if isinstance(definitions, dict):
            definitions = [definitions]
        if not isinstance(definitions, list):
            raise TypeError(f"tool_definitions must be a list of tool schemas, not {type(definitions).__name__}")
        tools: list[Any] = []
        for tool in definitions:
            if isinstance(tool, dict) and tool.get("type") == "openapi" and isinstance(tool.get("functions"), list):
                tools += tool["functions"]
            else:
                tools.append(tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
                             else tool)
        schemas: dict[str, Any] = {}
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise TypeError(f"tool definition {i} is a {type(tool).__name__}, not an object")
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise ValueError(f"tool definition {i} has no name")
            parameters = tool.get("parameters")
            if parameters is None:
                parameters = {"type": "object", "maxProperties": 0}
            schemas.setdefault(tool["name"], _validator(parameters, f"the parameters of tool '{tool['name']}'"))
        return schemas

    def __call__(self, *, trajectory: Any, tool_definitions: Any) -> dict[str, Any]:
        calls, schemas = tool_calls(trajectory), self._schemas(tool_definitions)
        invalid = []
        for i, call in enumerate(calls):
            if call.name not in schemas:
                error = "unknown tool"
            elif call.arguments is None:
                error = f"malformed JSON arguments: {call.raw!r:.80}"
            elif not isinstance(call.arguments, dict):
                error = f"arguments are a JSON {type(call.arguments).__name__}, not an object"
            else:
                error = _first_error(schemas[call.name], call.arguments)
            if error:
                invalid.append({"index": i, "name": call.name, "step": call.step, "error": error})
        n = len(calls)
        score = (n - len(invalid)) / n if n else 1.0
        if not n:
            reason = "no tool calls were made, so there was nothing to validate (passes vacuously)"
        elif not invalid:
            reason = f"all {n} tool call{'s' * (n != 1)} have valid arguments"
        else:
            reason = f"{len(invalid)} of {n} tool calls invalid: " + "; ".join(
                f"#{b['index']} {b['name']} (step {b['step']}): {b['error']}" for b in invalid)
        k = self.key
        return {k: score, f"{k}_result": "pass" if score >= self.threshold else "fail", f"{k}_reason": reason,
                f"{k}_threshold": self.threshold, f"{k}_invalid": invalid}


#: Trajectory evaluator names (as a suite's ``type:``) -> classes.
TRAJECTORY_EVALUATORS: dict[str, type] = {"tool_trajectory": ToolTrajectoryEvaluator, "tool_args_valid": ToolArgsValidEvaluator}
