"""tool_trajectory and tool_args_valid: hand-derived expectations for every mode x argument mode, the edge
cases their docstrings state, and every input shape (our trajectory, OpenAI and azure messages, bare call lists)."""

from __future__ import annotations

import json

import pytest

from promptgauge.evaluators.agent_format import (
    to_azure_agent_messages,
    to_azure_tool_calls,
)
from promptgauge.evaluators.trajectory import (
    ToolArgsValidEvaluator,
    ToolTrajectoryEvaluator,
)


def traj(*steps: list[dict], answer: str = "done") -> dict:
    """A trajectory as the engine stores it (AGENT_DESIGN.md): one model step per list of calls, then an answer."""
    messages = [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": "help"}]
    calls, step_rows = [], []
    for s, step in enumerate(steps):
        ids = []
        for c in step:
            cid = f"call_{len(calls)}"
            ids.append(cid)
            raw = c.get("raw", json.dumps(c.get("arguments", {})))
            calls.append({"id": cid, "step": s, "name": c["name"], "arguments": c.get("arguments", {}) if "raw" not in c else None,
                          "arguments_raw": raw, "result": "ok", "error": c.get("error"), "latency_ms": 0.1})
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": c["name"], "arguments": c.get("raw", json.dumps(c.get("arguments", {})))}}
            for cid, c in zip(ids, step)]})
        messages += [{"role": "tool", "tool_call_id": cid, "content": "ok"} for cid in ids]
        step_rows.append({"step": s, "finish_reason": "tool_calls", "tool_calls": ids})
    messages.append({"role": "assistant", "content": answer})
    step_rows.append({"step": len(steps), "finish_reason": "stop", "tool_calls": []})
    return {"messages": messages, "steps": step_rows, "tool_calls": calls, "stop_reason": "answer"}


def run(trajectory, expected, **params) -> dict:
    return ToolTrajectoryEvaluator(**params)(trajectory=trajectory, expected=expected)


def summary(result: dict) -> tuple:
    return (round(result["tool_trajectory"], 4), result["tool_trajectory_result"],
            round(result["tool_trajectory_precision"], 4), round(result["tool_trajectory_recall"], 4))


L42 = {"name": "lookup_order", "arguments": {"order_id": 42}}
L42S = {"name": "lookup_order", "arguments": {"order_id": "42"}}
REFUND = {"name": "refund", "arguments": {"order_id": 42, "amount": 10}}
REFUND_MORE = {"name": "refund", "arguments": {"order_id": 42, "amount": 10, "reason": "late"}}
EXPECTED = [L42, REFUND]
EXPECTED_SCHEMA = [
    {"name": "lookup_order", "arguments": {"type": "object", "required": ["order_id"],
                                           "properties": {"order_id": {"type": "integer"}}}},
    {"name": "refund", "arguments": {"type": "object", "required": ["order_id", "amount"], "additionalProperties": False,
                                     "properties": {"order_id": {"type": "integer"}, "amount": {"type": "number"}}}},
]

# S1: refund first (with an extra "reason" argument), then the right lookup, then a lookup with a string id.
S1 = traj([REFUND_MORE], [L42], [L42S])
# S2: a lookup with a string id, then the refund with an extra argument.
S2 = traj([L42S], [REFUND_MORE])

# Derivations (n calls made, m = 2 expected; "ordered" = largest matching that keeps the expected order):
# S1, arguments off/subset: names match; lookup->L42 (or L42S), refund->REFUND_MORE; unordered 2 of 3 -> P 2/3, R 1;
#     ordered 1 (refund precedes lookup) -> P 1/3, R 1/2. exact: F1(1/3, 1/2) = 0.4; in_order: R 0.5;
#     any_order: F1(2/3, 1) = 0.8; subset: P 2/3; superset: R 1 (pass).
# S1, arguments exact/schema: REFUND_MORE has an extra key (exact) / extra property (schema); L42S has a string id;
#     only L42 matches: unordered = ordered = 1 -> P 1/3, R 1/2. exact 0.4, in_order 0.5, any_order 0.4,
#     subset 1/3, superset 0.5.
# S2, off: both match in order -> everything 1.0. exact/schema: nothing matches -> 0 everywhere.
#     subset: only refund matches (1 of 2, in order) -> P = R = 0.5, every score 0.5.
HAND = {
    ("S1", "off"): {"exact": (0.4, "fail", 0.3333, 0.5), "in_order": (0.5, "fail", 0.3333, 0.5),
                    "any_order": (0.8, "fail", 0.6667, 1.0), "subset": (0.6667, "fail", 0.6667, 1.0),
                    "superset": (1.0, "pass", 0.6667, 1.0)},
    ("S1", "exact"): {"exact": (0.4, "fail", 0.3333, 0.5), "in_order": (0.5, "fail", 0.3333, 0.5),
                      "any_order": (0.4, "fail", 0.3333, 0.5), "subset": (0.3333, "fail", 0.3333, 0.5),
                      "superset": (0.5, "fail", 0.3333, 0.5)},
    ("S2", "off"): dict.fromkeys(("exact", "in_order", "any_order", "subset", "superset"), (1.0, "pass", 1.0, 1.0)),
    ("S2", "exact"): dict.fromkeys(("exact", "in_order", "any_order", "subset", "superset"), (0.0, "fail", 0.0, 0.0)),
    ("S2", "subset"): dict.fromkeys(("exact", "in_order", "any_order", "subset", "superset"), (0.5, "fail", 0.5, 0.5)),
}
HAND[("S1", "subset")] = HAND[("S1", "off")]
HAND[("S1", "schema")] = HAND[("S1", "exact")]
HAND[("S2", "schema")] = HAND[("S2", "exact")]


@pytest.mark.parametrize("mode", ["exact", "in_order", "any_order", "subset", "superset"])
@pytest.mark.parametrize("arguments", ["off", "exact", "subset", "schema"])
@pytest.mark.parametrize("scenario", ["S1", "S2"])
def test_every_mode_and_argument_mode_by_hand(scenario, arguments, mode):
    expected = EXPECTED_SCHEMA if arguments == "schema" else EXPECTED
    result = run({"S1": S1, "S2": S2}[scenario], expected, mode=mode, arguments=arguments)
    assert summary(result) == HAND[(scenario, arguments)][mode]
    assert result["tool_trajectory_threshold"] == 1.0
    assert (result["tool_trajectory"] == 1.0) == (result["tool_trajectory_result"] == "pass")


def test_reasons_name_the_missing_extra_out_of_order_and_wrong_calls():
    r = run(S1, EXPECTED, mode="exact", arguments="off")["tool_trajectory_reason"]
    assert "out of order: lookup_order" in r and "expected lookup_order → refund, made refund → lookup_order → lookup_order" in r
    assert 'extra: lookup_order({"order_id": "42"}) at step 2' in r
    r = run(S1, EXPECTED, mode="any_order", arguments="exact")["tool_trajectory_reason"]
    assert r.startswith('wrong arguments: refund({"amount": 10, "order_id": 42, "reason": "late"}) at step 0: '
                        'expected arguments {"amount": 10, "order_id": 42}')
    r = run(S1, EXPECTED_SCHEMA, mode="superset", arguments="schema")["tool_trajectory_reason"]
    assert "fail the expected schema at (root): Additional properties are not allowed ('reason' was unexpected)" in r
    r = run(traj([L42]), EXPECTED, mode="superset")["tool_trajectory_reason"]
    assert r == 'missing: refund({"amount": 10, "order_id": 42})'
    d = run(S1, EXPECTED, mode="exact", arguments="off")["tool_trajectory_details"]
    assert d["matched"] == 1 and d["calls"] == 3 and d["expected"] == 2 and d["steps"] == 4
    assert d["extra"] == ['lookup_order({"order_id": "42"}) at step 2'] and len(d["out_of_order"]) == 1
    ok = run(traj([L42], [REFUND], [L42S]), EXPECTED, mode="in_order")
    assert ok["tool_trajectory_reason"] == "all expected calls made in order (2 expected, 3 made) (1 extra call allowed)"


def test_parallel_calls_in_one_step_are_order_insensitive():
    parallel = traj([REFUND, L42])  # one model step emitted both calls
    for mode in ("exact", "in_order", "any_order"):
        assert summary(run(parallel, EXPECTED, mode=mode)) == (1.0, "pass", 1.0, 1.0)
    sequential = traj([REFUND], [L42])  # two steps: the order now counts
    assert summary(run(sequential, EXPECTED, mode="exact")) == (0.5, "fail", 0.5, 0.5)
    assert summary(run(sequential, EXPECTED, mode="in_order")) == (0.5, "fail", 0.5, 0.5)
    assert summary(run(sequential, EXPECTED, mode="any_order")) == (1.0, "pass", 1.0, 1.0)
    # A bare list of calls has no steps: one call per step, strict order.
    assert summary(run([REFUND, L42], EXPECTED, mode="exact")) == (0.5, "fail", 0.5, 0.5)
    # Parallel calls among sequential ones: lookup, then [refund, lookup] in parallel, against lookup, lookup, refund.
    mixed = traj([L42], [REFUND, L42])
    assert run(mixed, [L42, L42, REFUND], mode="exact")["tool_trajectory_result"] == "pass"
    assert run(mixed, [L42, REFUND, L42], mode="exact")["tool_trajectory_result"] == "pass"
    assert run(mixed, [REFUND, L42, L42], mode="exact")["tool_trajectory"] == pytest.approx(2 / 3)


def test_repeated_calls_are_a_multiset():
    one, three = traj([L42]), traj([L42], [L42], [L42])
    assert summary(run(one, [L42, L42], mode="any_order")) == (0.6667, "fail", 1.0, 0.5)
    assert summary(run(one, [L42, L42], mode="subset")) == (1.0, "pass", 1.0, 0.5)
    assert run(one, [L42, L42], mode="subset")["tool_trajectory_reason"].endswith("(1 expected call not made, allowed)")
    assert summary(run(one, [L42, L42], mode="superset")) == (0.5, "fail", 1.0, 0.5)
    assert summary(run(one, [L42, L42], mode="exact")) == (0.6667, "fail", 1.0, 0.5)
    assert summary(run(three, [L42, L42], mode="subset")) == (0.6667, "fail", 0.6667, 1.0)
    assert summary(run(three, [L42, L42], mode="superset")) == (1.0, "pass", 0.6667, 1.0)
    assert summary(run(three, [L42, L42], mode="any_order")) == (0.8, "fail", 0.6667, 1.0)


def test_matching_is_maximal_not_greedy():
    # The first expected call (any arguments) could take either call; only a maximum matching leaves the
    # order-42 lookup for the second expected call.
    actual = traj([{"name": "lookup_order", "arguments": {"order_id": 42, "verbose": True}}],
                  [{"name": "lookup_order", "arguments": {"order_id": 7}}])
    expected = [{"name": "lookup_order"}, L42]
    assert summary(run(actual, expected, mode="any_order", arguments="subset")) == (1.0, "pass", 1.0, 1.0)
    assert summary(run(actual, expected, mode="exact", arguments="subset")) == (0.5, "fail", 0.5, 0.5)


def test_failed_and_malformed_calls_count_as_made():
    failed = traj([{**L42, "error": "tool raised ValueError: database down"}])
    assert summary(run(failed, [L42])) == (1.0, "pass", 1.0, 1.0)
    malformed = traj([{"name": "lookup_order", "raw": '{"order_id": 4'}])
    assert malformed["tool_calls"][0]["arguments"] is None
    r = run(malformed, [L42], mode="exact", arguments="exact")
    assert summary(r) == (0.0, "fail", 0.0, 0.0)
    assert "its arguments are not valid JSON" in r["tool_trajectory_reason"]
    assert "malformed JSON" in r["tool_trajectory_reason"]
    assert run(malformed, [L42], arguments="off")["tool_trajectory_result"] == "pass"
    assert run(malformed, [{"name": "lookup_order"}], arguments="exact")["tool_trajectory_result"] == "pass"
    assert run(malformed, ["lookup_order"])["tool_trajectory_result"] == "pass"  # a bare name: any arguments


@pytest.mark.parametrize("mode, none_made, two_made", [
    ("exact", (1.0, "pass", 1.0, 1.0), (0.0, "fail", 0.0, 1.0)),
    ("any_order", (1.0, "pass", 1.0, 1.0), (0.0, "fail", 0.0, 1.0)),
    ("subset", (1.0, "pass", 1.0, 1.0), (0.0, "fail", 0.0, 1.0)),
    ("in_order", (1.0, "pass", 1.0, 1.0), (1.0, "pass", 0.0, 1.0)),
    ("superset", (1.0, "pass", 1.0, 1.0), (1.0, "pass", 0.0, 1.0)),
])
def test_empty_expected_list(mode, none_made, two_made):
    none = run(traj(), [], mode=mode)
    assert summary(none) == none_made and none["tool_trajectory_reason"] == "no tool calls expected and none made"
    two = run(traj([L42], [REFUND]), [], mode=mode)
    assert summary(two) == two_made
    if mode in ("in_order", "superset"):
        assert two["tool_trajectory_reason"] == f"no tool calls expected, so {mode} holds vacuously (2 calls made)"
    else:
        assert two["tool_trajectory_reason"].startswith("extra: lookup_order")


def test_no_calls_made_against_expected_calls():
    assert summary(run(traj(), EXPECTED, mode="subset")) == (1.0, "pass", 1.0, 0.0)
    assert run(traj(), EXPECTED, mode="subset")["tool_trajectory_reason"] == (
        "no tool calls made, so subset holds vacuously (2 expected calls not made)")
    for mode in ("exact", "in_order", "any_order", "superset"):
        r = run(traj(), EXPECTED, mode=mode)
        assert r["tool_trajectory"] == 0.0 and r["tool_trajectory_result"] == "fail"
        assert r["tool_trajectory_reason"].startswith("missing: lookup_order")


def test_null_or_malformed_expected_is_an_error():
    with pytest.raises(ValueError, match="expected tool calls are null"):
        run(traj(), None)
    with pytest.raises(TypeError, match="must be a list"):
        run(traj(), {"name": "x"})
    with pytest.raises(ValueError, match="needs a 'name'"):
        run(traj(), [{"arguments": {}}])
    with pytest.raises(ValueError, match="'arguments' is not JSON"):
        run(traj(), [{"name": "x", "arguments": "{oops"}])
    with pytest.raises(ValueError, match="not a valid JSON schema"):
        run(traj([L42]), [{"name": "lookup_order", "arguments": {"type": "nonsense"}}], arguments="schema")


def test_budgets():
    two_steps = traj([L42], [REFUND])  # 3 model calls: two with tool calls, then the answer
    r = run(two_steps, EXPECTED, max_tool_calls=1)
    assert summary(r) == (0.0, "fail", 1.0, 1.0)
    assert r["tool_trajectory_reason"] == "all expected calls made, in order, and no others (2 expected, 2 made); " \
                                          "over budget: 2 tool calls > max_tool_calls 1"
    assert run(two_steps, EXPECTED, max_tool_calls=2, max_steps=3)["tool_trajectory_result"] == "pass"
    r = run(two_steps, EXPECTED, max_steps=2)
    assert r["tool_trajectory"] == 0.0 and r["tool_trajectory_reason"].endswith("over budget: 3 steps > max_steps 2")
    # From messages: assistant messages after the latest user message are the steps.
    assert run(two_steps["messages"], EXPECTED, max_steps=2)["tool_trajectory_details"]["steps"] == 3
    with pytest.raises(ValueError, match="max_steps needs the trajectory's steps"):
        run(two_steps["tool_calls"], EXPECTED, max_steps=5)


def test_threshold_allows_partial_credit():
    r = run(traj([L42]), EXPECTED, mode="superset", threshold=0.5)
    assert r["tool_trajectory"] == 0.5 and r["tool_trajectory_result"] == "pass" and r["tool_trajectory_threshold"] == 0.5


@pytest.mark.parametrize("params, message", [
    ({"mode": "strict"}, "mode must be one of exact, in_order, any_order, subset, superset"),
    ({"arguments": "fuzzy"}, "arguments must be one of off, exact, subset, schema"),
    ({"max_steps": -1}, "max_steps must be a non-negative integer"),
    ({"max_tool_calls": 1.5}, "max_tool_calls must be a non-negative integer"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        ToolTrajectoryEvaluator(**params)


def test_every_input_shape_gives_the_same_verdict():
    t = traj([L42], [REFUND_MORE])
    openai_calls = [c for m in t["messages"] if m.get("tool_calls") for c in m["tool_calls"]]
    shapes = {
        "trajectory": t, "trajectory json": json.dumps(t), "tool_calls": t["tool_calls"],
        "openai messages": t["messages"], "azure messages": to_azure_agent_messages(t),
        "azure conversation": {"messages": to_azure_agent_messages(t)},
        "azure tool calls": to_azure_tool_calls(t), "openai tool calls": openai_calls,
        "plain": [L42, REFUND_MORE],
    }
    for mode in ("exact", "subset"):
        results = {}
        for name, shape in shapes.items():
            r = run(shape, EXPECTED, mode=mode, arguments="exact")
            r["tool_trajectory_details"].pop("steps")
            results[name] = r
        first = results["trajectory"]
        assert first["tool_trajectory"] == 0.5  # lookup matches, the refund has an extra argument
        for name, r in results.items():
            assert r == first, name


def test_expected_calls_in_other_shapes():
    t = traj([L42], [REFUND])
    as_openai = [{"type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                 for c in EXPECTED]
    assert run(t, as_openai)["tool_trajectory_result"] == "pass"
    assert run(t, json.dumps(EXPECTED))["tool_trajectory_result"] == "pass"
    assert run(t, ["lookup_order", "refund"])["tool_trajectory_result"] == "pass"
    # null arguments: any arguments; {} with exact arguments: no arguments at all
    assert run(t, [{"name": "lookup_order", "arguments": None}, {"name": "refund", "arguments": None}])[
        "tool_trajectory_result"] == "pass"
    assert run(t, [{"name": "lookup_order", "arguments": {}}, REFUND])["tool_trajectory"] == 0.5
    assert run(t, [{"name": "lookup_order", "arguments": {}}, REFUND], arguments="subset")["tool_trajectory"] == 1.0


# -- tool_args_valid ----------------------------------------------------------------------------

TOOLS = [
    {"type": "function", "function": {"name": "lookup_order", "description": "Find an order.", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "refund", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "integer"}, "amount": {"type": "number", "maximum": 100}},
        "required": ["order_id", "amount"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "ping"}},
]


def valid(trajectory, tools=TOOLS, **params) -> dict:
    return ToolArgsValidEvaluator(**params)(trajectory=trajectory, tool_definitions=tools)


def test_tool_args_valid_scores_the_share_of_valid_calls():
    t = traj([L42, L42S], [{"name": "refund", "arguments": {"order_id": 42, "amount": 500}}],
             [{"name": "refnd", "arguments": {}}], [{"name": "lookup_order", "raw": "{order_id: 42}"}],
             [{"name": "ping", "arguments": {}}], [{"name": "ping", "arguments": {"loud": True}}])
    r = valid(t)
    assert r["tool_args_valid"] == pytest.approx(2 / 7) and r["tool_args_valid_result"] == "fail"
    assert r["tool_args_valid_threshold"] == 1.0
    assert [(b["index"], b["name"], b["step"]) for b in r["tool_args_valid_invalid"]] == [
        (1, "lookup_order", 0), (2, "refund", 1), (3, "refnd", 2), (4, "lookup_order", 3), (6, "ping", 5)]
    errors = [b["error"] for b in r["tool_args_valid_invalid"]]
    assert errors[0] == "at order_id: '42' is not of type 'integer'"
    assert errors[1] == "at amount: 500 is greater than the maximum of 100"
    assert errors[2] == "unknown tool"
    assert errors[3] == "malformed JSON arguments: '{order_id: 42}'"
    assert errors[4] == "at (root): {'loud': True} is expected to be empty"
    assert r["tool_args_valid_reason"].startswith("5 of 7 tool calls invalid: #1 lookup_order (step 0): at order_id:")


def test_tool_args_valid_other_shapes_and_edge_cases():
    azure_tools = [{"name": "lookup_order", "type": "function",
                    "parameters": TOOLS[0]["function"]["parameters"]}]
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": 1}'}},
        {"id": "b", "type": "function", "function": {"name": "lookup_order", "arguments": "[1, 2]"}}]}]
    r = valid(messages, azure_tools)
    assert r["tool_args_valid"] == 0.5
    assert r["tool_args_valid_invalid"][0]["error"] == "arguments are a JSON list, not an object"
    assert valid(traj([L42]), json.dumps(TOOLS))["tool_args_valid_result"] == "pass"
    assert valid(traj([L42]), TOOLS[0])["tool_args_valid_reason"] == "all 1 tool call have valid arguments"
    none = valid(traj())
    assert none["tool_args_valid"] == 1.0 and none["tool_args_valid_result"] == "pass"
    assert none["tool_args_valid_reason"] == "no tool calls were made, so there was nothing to validate (passes vacuously)"
    assert valid(traj([L42], [L42S]), threshold=0.5)["tool_args_valid_result"] == "pass"
    assert valid(traj([L42]), [])["tool_args_valid_invalid"][0]["error"] == "unknown tool"
    with pytest.raises(ValueError, match="the parameters of tool 'bad' is not a valid JSON schema"):
        valid(traj([L42]), [{"name": "bad", "parameters": {"type": 12}}])
    with pytest.raises(TypeError, match="tool_definitions must be a list"):
        valid(traj([L42]), None)
