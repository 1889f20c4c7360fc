"""Agent judges (intent_resolution, tool_call_accuracy, task_adherence) against azure-ai-evaluation's own classes:
the same scripted fake-server reply gives the same request and the same keys and values, for every input shape
(text, our trajectory, OpenAI messages, azure's agent messages); and the judges run in a suite."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import openai
import pytest
from azure.ai.evaluation import (
    IntentResolutionEvaluator,
    TaskAdherenceEvaluator,
    ToolCallAccuracyEvaluator,
)

from promptgauge import api
from promptgauge.evaluators.agent import AGENT_JUDGES
from promptgauge.evaluators.agent_format import (
    AzureAgentEvaluator,
    azure_agent_inputs,
    to_azure_agent_messages,
    to_azure_tool_definitions,
)
from promptgauge.evaluators.integrity import unseal
from promptgauge.evaluators.judge import JudgeReplyError
from promptgauge.evaluators.models import EvaluatorModel
from promptgauge.store import Store
from promptgauge.targets.openai_chat import OpenAIChatTarget

AZURE = {"intent_resolution": IntentResolutionEvaluator, "tool_call_accuracy": ToolCallAccuracyEvaluator,
         "task_adherence": TaskAdherenceEvaluator}

TOOLS = [
    {"type": "function", "function": {"name": "lookup_order", "description": "Find an order by id.", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "refund", "description": "Refund an order.", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}},
]
TRAJECTORY = {
    "messages": [
        {"role": "system", "content": "You are a support agent. Never refund without a lookup."},
        {"role": "user", "content": "Where is order 42? Refund it if it is lost."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": 42}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "lost"}'},
        {"role": "assistant", "content": "It is lost; refunding.", "tool_calls": [
            {"id": "call_2", "type": "function", "function": {"name": "refund", "arguments": '{"order_id": 42}'}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "refunded"},
        {"role": "assistant", "content": "Order 42 was lost, so I refunded it."},
    ],
    "steps": [{"step": 0}, {"step": 1}, {"step": 2}],
    "tool_calls": [
        {"id": "call_1", "step": 0, "name": "lookup_order", "arguments": {"order_id": 42},
         "arguments_raw": '{"order_id": 42}', "result": '{"status": "lost"}', "error": None},
        {"id": "call_2", "step": 1, "name": "refund", "arguments": {"order_id": 42},
         "arguments_raw": '{"order_id": 42}', "result": "refunded", "error": None},
    ],
    "stop_reason": "answer",
}
MULTI_TURN = [
    {"role": "user", "content": "Hi, I have a question about an order."},
    {"role": "assistant", "content": "Sure, which order?"},
    {"role": "user", "content": "Order 42: where is it?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": 42}'}}]},
    {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
    {"role": "assistant", "content": "Order 42 has shipped."},
]
# azure's agent format, as its AIAgentConverter writes it (flat tool_call items), with its own tool definitions
AZURE_QUERY = [
    {"role": "system", "content": "You are a friendly and helpful customer service agent."},
    {"createdAt": 1700000060, "role": "user", "content": [{"type": "text", "text": "What is the status of order 123?"}]},
]
AZURE_RESPONSE = [
    {"createdAt": 1700000075, "run_id": "0", "role": "assistant", "content": [
        {"type": "tool_call", "tool_call_id": "t1", "name": "get_order", "arguments": {"order_id": "123"}}]},
    {"createdAt": 1700000080, "run_id": "0", "tool_call_id": "t1", "role": "tool",
     "content": [{"type": "tool_result", "tool_result": {"order": {"id": "123", "status": "shipped"}}}]},
    {"createdAt": 1700000085, "run_id": "0", "role": "assistant",
     "content": [{"type": "text", "text": "Order 123 has shipped."}]},
]
AZURE_TOOLS = [{"name": "get_order", "type": "function", "description": "Get an order.",
                "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}}}]

# the engine records failures on the trajectory and returns them to the model: malformed arguments, a tool that raised
FAILING = [
    {"role": "user", "content": "Refund order 42."},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "b1", "type": "function", "function": {"name": "refund", "arguments": '{"order_id": 4'}}]},
    {"role": "tool", "tool_call_id": "b1", "content": "error: malformed JSON arguments: Expecting ',' delimiter"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "b2", "type": "function", "function": {"name": "refund", "arguments": '{"order_id": 42}'}}]},
    {"role": "tool", "tool_call_id": "b2", "content": "error: tool raised ValueError: payments down"},
    {"role": "assistant", "content": "Sorry, refunds are unavailable right now."},
]

SHAPES: dict[str, dict[str, Any]] = {
    "text": {"query": "Where is order 42?", "response": "Order 42 shipped on Monday.",
             "tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 42}}], "tool_definitions": TOOLS},
    "trajectory": {"query": TRAJECTORY, "response": TRAJECTORY, "tool_definitions": TOOLS},
    "openai messages": {"query": TRAJECTORY["messages"], "response": TRAJECTORY["messages"], "tool_definitions": TOOLS},
    "multi-turn": {"query": MULTI_TURN, "response": MULTI_TURN, "tool_definitions": TOOLS},
    "failing calls": {"query": FAILING, "response": FAILING, "tool_definitions": TOOLS},
    "azure messages": {"query": AZURE_QUERY, "response": AZURE_RESPONSE, "tool_definitions": AZURE_TOOLS},
}


def inputs_for(name: str, shape: str) -> dict[str, Any]:
    given = copy.deepcopy(SHAPES[shape])
    if name != "tool_call_accuracy":
        given.pop("tool_calls", None)
    return given


def model(server) -> EvaluatorModel:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    return EvaluatorModel(OpenAIChatTarget("fake", client, "gpt-4o-mini", kind="openai", endpoint=None))


def config(server) -> dict[str, Any]:
    return {"type": "openai", "model": "gpt-4o-mini", "base_url": server.base_url, "api_key": "x"}


def ours(server, name: str, **inputs: Any) -> dict[str, Any]:
    return asyncio.run(AGENT_JUDGES[name](judge=model(server))(**inputs))


def theirs(server, name: str, **inputs: Any) -> dict[str, Any]:
    return AZURE[name](config(server))(**azure_agent_inputs(**inputs))


def unsealed(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """A judge request without its data tags and integrity rule (evaluators.integrity)."""
    if body is None:
        return None
    return {**body, "messages": [{**m, "content": unseal(m["content"])} for m in body["messages"]]}


def without_prompt_tokens(result: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in result.items() if k.endswith("_properties") and isinstance(v, dict)}
    return {**result, **{k: {**v, "prompt_tokens": None, "total_tokens": None} for k, v in props.items()}}


def last_request(server, before: int) -> dict[str, Any] | None:
    return server.requests[-1].body if server.request_count > before else None


def both(server, name: str, **inputs: Any) -> tuple[dict, dict, Any, Any]:
    """azure's result and ours for the same inputs, with the judge request each sent (None if none)."""
    n = server.request_count
    az = theirs(server, name, **copy.deepcopy(inputs))
    az_request = last_request(server, n)
    n = server.request_count
    mine = ours(server, name, **copy.deepcopy(inputs))
    return az, mine, az_request, last_request(server, n)


REPLIES = {
    "completed": lambda name: {"reason": "Let's think step by step: fine.", "score": 1 if name == "task_adherence" else 4,
                               "status": "completed", "properties": {"tool_calls_made_by_agent": 2}},
    "low": lambda name: {"reason": "Material failure.", "score": 0 if name == "task_adherence" else 2},
    "skipped": lambda name: {"reason": "No tool calls to evaluate.", "score": None, "status": "skipped"},
}


@pytest.mark.parametrize("reply", list(REPLIES))
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", list(AZURE))
def test_same_request_keys_and_values_as_azure(fake_openai, name, shape, reply):
    fake_openai.responder = lambda req: json.dumps(REPLIES[reply](name))
    az, mine, az_request, my_request = both(fake_openai, name, **inputs_for(name, shape))
    # azure's prompt and parameters, byte for byte, but for the data tags around the graded values and the rule
    # that says they are data (evaluators.integrity)
    assert az_request is not None and unsealed(my_request) == az_request
    assert unsealed(my_request) != my_request
    assert without_prompt_tokens(mine) == without_prompt_tokens(az)  # (the tags make our prompt longer)
    assert list(mine) == list(az)  # in azure's key order
    if reply == "skipped":
        assert mine[f"{name}_result"] == "not_applicable" and mine[name] is None
    else:
        assert mine[f"{name}_result"] == ("pass" if reply == "completed" else "fail")
        if reply == "completed":
            assert mine[f"{name}_properties"]["tool_calls_made_by_agent"] == 2  # the judge's own properties, kept
        assert mine[f"{name}_properties"]["model"] == "gpt-4o-mini" and mine[f"{name}_properties"]["prompt_tokens"] > 0


def test_what_the_judge_is_shown(fake_openai):
    fake_openai.responder = lambda req: json.dumps({"reason": "ok", "score": 1})
    ours(fake_openai, "task_adherence", **inputs_for("task_adherence", "trajectory"))
    user = unseal(fake_openai.requests[-1].body["messages"][1]["content"])
    assert ("USER_QUERY (user instructions): SYSTEM_PROMPT:\n  You are a support agent. Never refund without a lookup."
            "\n\nUser turn 1:\n  Where is order 42? Refund it if it is lost.") in user
    assert ("It is lost; refunding.\n[TOOL_CALL] refund(order_id=42)\n[TOOL_RESULT] refunded\n"
            "Order 42 was lost, so I refunded it.") in user
    assert "[TOOL_CALL] lookup_order(order_id=42)\n[TOOL_RESULT] {\"status\": \"lost\"}" in user
    ours(fake_openai, "intent_resolution", **inputs_for("intent_resolution", "multi-turn"))
    user = unseal(fake_openai.requests[-1].body["messages"][1]["content"])
    assert ("CONVERSATION_HISTORY: User turn 1:\n  Hi, I have a question about an order.\n\nAgent turn 1:\n"
            "  Sure, which order?\n\nUser turn 2:\n  Order 42: where is it?\n\n\nAGENT_RESPONSE: Order 42 has shipped.") in user


@pytest.mark.parametrize("name, inputs, reason", [
    ("tool_call_accuracy", {"query": "q", "response": [{"role": "assistant", "content": "No tools needed."}],
                            "tool_definitions": TOOLS}, "No tool calls found in response or provided tool_calls."),
    ("tool_call_accuracy", {"query": "q", "tool_calls": [{"name": "cancel", "arguments": {}}], "tool_definitions": TOOLS},
     "Tool definitions for all tool calls must be provided."),
    ("intent_resolution", {"query": "q", "response": [{"role": "assistant", "content": [
        {"type": "function_call", "name": "lookup_order", "arguments": {}, "tool_call_id": "c"}]}]},
     "Intermediate response. Please provide the agent's final response for evaluation."),
    ("task_adherence", {"query": "q", "response": [{"role": "assistant", "content": [
        {"type": "function_call", "name": "lookup_order", "arguments": {}, "tool_call_id": "c"}]}]},
     "Intermediate response. Please provide the agent's final response for evaluation."),
])
def test_not_applicable_like_azure_without_asking_the_judge(fake_openai, name, inputs, reason):
    az, mine, az_request, my_request = both(fake_openai, name, **inputs)
    assert az_request is None and my_request is None
    assert mine == az
    assert mine[f"{name}_reason"] == f"Not applicable: {reason}" and mine[f"{name}_status"] == "skipped"


NESTED = [{"role": "assistant", "content": [{"type": "tool_call", "tool_call": {
    "id": "x", "type": "function", "function": {"name": "get_order", "arguments": {"order_id": "1"}}}}]}]


@pytest.mark.parametrize("name, inputs, message", [
    ("intent_resolution", {"query": "", "response": "x"}, "Query string cannot be empty."),
    ("task_adherence", {"query": "q", "response": []}, "Response list cannot be empty."),
    ("intent_resolution", {"query": "q", "response": "r", "tool_definitions": [{"name": "t"}]},
     "Each tool definitions must contain a 'parameters' field."),
    ("tool_call_accuracy", {"query": "q", "tool_definitions": TOOLS}, "No tool calls found in response or provided tool_calls."),
    ("tool_call_accuracy", {"query": "q", "response": "r", "tool_calls": [{"name": "x"}], "tool_definitions": None},
     "Tool definitions input is required but not provided."),
    # azure's own docstring example uses nested tool_call items, which its validator rejects
    ("intent_resolution", {"query": "q", "response": NESTED}, "Each tool_call content items must contain a 'name' field."),
])
def test_input_errors_like_azure(fake_openai, name, inputs, message):
    with pytest.raises(Exception) as az:
        theirs(fake_openai, name, **copy.deepcopy(inputs))
    with pytest.raises(ValueError) as mine:
        ours(fake_openai, name, **copy.deepcopy(inputs))
    assert az.value.message == str(mine.value) == message
    assert fake_openai.request_count == 0


@pytest.mark.parametrize("name, reply", [("intent_resolution", {"score": 9, "reason": "x"}),
                                         ("tool_call_accuracy", {"score": 0, "reason": "x"}),
                                         ("intent_resolution", {"reason": "forgot"})])
def test_unusable_scores_are_errors_with_the_raw_reply(fake_openai, name, reply):
    fake_openai.responder = lambda req: json.dumps(reply)
    with pytest.raises(Exception) as az:
        theirs(fake_openai, name, **inputs_for(name, "text"))
    with pytest.raises(JudgeReplyError) as mine:
        ours(fake_openai, name, **inputs_for(name, "text"))
    assert az.value.message.split(".")[0] == str(mine.value).split(".")[0]
    assert str(mine.value).startswith("Invalid score value: ")
    assert mine.value.details == {"raw_reply": json.dumps(reply)}


def test_replies_azure_cannot_read_are_read_leniently(fake_openai):
    fake_openai.responder = lambda req: "<S0>thinking</S0><S1>Fully resolved.</S1><S2>5</S2>"
    r = ours(fake_openai, "intent_resolution", query="q", response="r")
    assert (r["intent_resolution"], r["intent_resolution_reason"], r["intent_resolution_result"]) == (5.0, "Fully resolved.", "pass")
    fake_openai.responder = lambda req: 'Verdict:\n```json\n{"reason": "Adhered.", "score": 1}\n```'
    r = ours(fake_openai, "task_adherence", query="q", response="r")
    assert (r["task_adherence"], r["task_adherence_result"], r["task_adherence_threshold"]) == (1.0, "pass", 3)
    fake_openai.responder = lambda req: "I cannot judge this."
    with pytest.raises(JudgeReplyError, match="no score found"):
        ours(fake_openai, "tool_call_accuracy", **inputs_for("tool_call_accuracy", "text"))


def test_threshold_and_direction(fake_openai):
    fake_openai.responder = lambda req: json.dumps({"reason": "ok", "score": 3})
    judge = AGENT_JUDGES["tool_call_accuracy"](judge=model(fake_openai), threshold=4)
    r = asyncio.run(judge(**inputs_for("tool_call_accuracy", "text")))
    assert (r["tool_call_accuracy_result"], r["tool_call_accuracy_threshold"], r["gpt_tool_call_accuracy"]) == ("fail", 4, 3.0)
    assert all(cls.higher_is_better for cls in AGENT_JUDGES.values())
    assert ToolCallAccuracyEvaluator(config(fake_openai))._higher_is_better is False  # azure's slip, not copied


def test_shapes_convert_to_what_azure_accepts():
    messages = to_azure_agent_messages(TRAJECTORY)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert messages[4]["content"] == [{"type": "text", "text": "It is lost; refunding."},
                                      {"type": "tool_call", "tool_call_id": "call_2", "name": "refund", "arguments": {"order_id": 42}}]
    assert messages[3] == {"role": "tool", "tool_call_id": "call_1",
                           "content": [{"type": "tool_result", "tool_result": {"status": "lost"}}]}
    assert to_azure_agent_messages(AZURE_QUERY + AZURE_RESPONSE) == AZURE_QUERY + AZURE_RESPONSE
    bad = to_azure_agent_messages([{"role": "assistant", "content": "", "tool_calls": [
        {"id": "z", "type": "function", "function": {"name": "refund", "arguments": "{oops"}}]}])
    assert bad[0]["content"] == [{"type": "tool_call", "tool_call_id": "z", "name": "refund", "arguments": {"arguments_raw": "{oops"}}]
    assert to_azure_tool_definitions(TOOLS)[0] == {"name": "lookup_order", "type": "function", "description": "Find an order by id.",
                                                   "parameters": TOOLS[0]["function"]["parameters"]}
    split = azure_agent_inputs(query=TRAJECTORY, response=TRAJECTORY)
    assert split["query"] == messages[:2] and split["response"] == messages[2:]


def test_azure_classes_fed_our_trajectory_through_the_adapter(fake_openai):
    fake_openai.responder = lambda req: json.dumps({"reason": "Resolved.", "score": 5})
    adapter = AzureAgentEvaluator(config(fake_openai), evaluator="IntentResolutionEvaluator")
    via_azure = asyncio.run(adapter(query=TRAJECTORY, response=TRAJECTORY, tool_definitions=TOOLS))
    mine = ours(fake_openai, "intent_resolution", query=TRAJECTORY, response=TRAJECTORY, tool_definitions=TOOLS)
    assert without_prompt_tokens(via_azure) == without_prompt_tokens(mine)
    assert fake_openai.requests[0].body == unsealed(fake_openai.requests[1].body)
    with pytest.raises(ValueError, match="has no evaluator 'NoSuchEvaluator'"):
        AzureAgentEvaluator(config(fake_openai), evaluator="NoSuchEvaluator")


# -- in a suite -----------------------------------------------------------------------------------

def scores(report: api.RunReport) -> dict[str, dict[str, Any]]:
    store = Store(report.store_path)
    try:
        return {item["row_id"]: item["scores"] for item in store.iter_results(report.run_id)}
    finally:
        store.close()


def test_agent_evaluators_in_a_suite(builder, fake_openai):
    """Trajectories carried by the dataset (the engine's ${target.trajectory} does the same for agent variants)."""
    (builder.root / "agent_answers.py").write_text("def answer(question, **_):\n    return 'ok'\n")
    lost = copy.deepcopy(TRAJECTORY)
    swapped = copy.deepcopy(TRAJECTORY)
    swapped["tool_calls"][0]["step"], swapped["tool_calls"][1]["step"] = 1, 0  # refund first, then the lookup
    expected = [{"name": "lookup_order", "arguments": {"order_id": 42}}, {"name": "refund", "arguments": {"order_id": 42}}]
    builder.dataset([{"id": r, "question": "Where is order 42?", "trajectory": t, "expected_tool_calls": expected,
                      "tool_definitions": TOOLS} for r, t in (("good", lost), ("swapped", swapped))])
    agent = {"query": "${data.trajectory}", "response": "${data.trajectory}"}
    builder.suite(
        variants=[{"name": "a", "target": "python:agent_answers:answer"}], baseline=None, judge="fake",
        evaluators=[
            {"name": "tool_trajectory", "column_mapping": {"trajectory": "${data.trajectory}"}, "params": {"max_steps": 3}},
            {"name": "calls_any_order", "type": "tool_trajectory", "params": {"mode": "any_order"},
             "column_mapping": {"trajectory": "${data.trajectory}"}},
            {"name": "tool_args_valid", "column_mapping": {"trajectory": "${data.trajectory}",
                                                           "tool_definitions": "${data.tool_definitions}"}},
            {"name": "intent_resolution", "column_mapping": agent},
            {"name": "tool_call_accuracy", "column_mapping": {**agent, "tool_definitions": "${data.tool_definitions}"}},
            {"name": "task_adherence", "column_mapping": agent},
            {"name": "azure_intent", "type": "promptgauge.evaluators.agent_format:AzureAgentEvaluator",
             "params": {"evaluator": "IntentResolutionEvaluator"}, "column_mapping": agent},
            # ${target.trajectory}: this variant has none -- optional, so the run goes on and the gate says SKIPPED
            {"name": "default_mapping", "type": "tool_trajectory", "optional": True},
        ],
        gate={"rules": ["tool_trajectory.pass_rate >= 0.5", "intent_resolution.mean >= 4"]})
    fake_openai.responder = lambda req: json.dumps(
        {"reason": "ok", "score": 1 if "TaskAdherence" in json.dumps(req) or "assistant_RESPONSE" in json.dumps(req) else 4})
    report = api.run(builder.root / "promptgauge.yaml")
    assert report.status == "finished" and report.passed
    rows = scores(report)
    assert rows["good"]["tool_trajectory"]["score"] == 1.0 and rows["good"]["tool_trajectory"]["passed"] is True
    assert rows["swapped"]["tool_trajectory"]["score"] == 0.5 and rows["swapped"]["tool_trajectory"]["passed"] is False
    assert "out of order" in rows["swapped"]["tool_trajectory"]["details"]["tool_trajectory_reason"]
    assert rows["swapped"]["calls_any_order"]["passed"] is True
    assert rows["good"]["tool_args_valid"]["score"] == 1.0
    for row in rows.values():
        assert row["intent_resolution"]["score"] == 4.0 and row["tool_call_accuracy"]["score"] == 4.0
        assert row["task_adherence"]["score"] == 1.0 and row["task_adherence"]["passed"] is True
        assert without_prompt_tokens(row["azure_intent"]["details"]) == without_prompt_tokens(row["intent_resolution"]["details"])
        assert row["default_mapping"]["error"].startswith("KeyError: '${target.trajectory} is not available for this row: "
                                                         "only a variant whose prompt declares tools")
    manifest = report.summary["manifest"]["evaluators"]
    assert manifest["intent_resolution"]["source"] == "builtin" and manifest["intent_resolution"]["model"]["target"] == "fake"
    assert manifest["tool_trajectory"]["higher_is_better"] is True


def test_default_expected_column_must_exist(builder):
    builder.suite(evaluators=[{"name": "tool_trajectory"}])
    with pytest.raises(Exception, match=r"maps expected to \$\{data.expected_tool_calls\}, but the dataset has no column"):
        api.run(builder.root / "promptgauge.yaml")
