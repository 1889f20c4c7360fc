"""Logged tool-calling traffic in the monitor: OpenAI chat logs and OTel GenAI spans become trajectories, scored by
the trajectory evaluators and agent judges (the judge on the real fake server)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from monitor_helpers import T0, append, chat_line, iso, write_config
from test_monitor_sources import _kv, otlp_export, otlp_span

from promptgauge.monitor import load_monitor_config, run_pass
from promptgauge.monitor.sources import OpenAIChatReader, OTelGenAIReader

TOOLS = [{"type": "function", "function": {"name": "lookup_order", "description": "Look an order up.", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "refund", "description": "Refund an order.", "parameters": {
        "type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}}}]


def call(cid: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": arguments}}


def agent_line(rid: str, ts: float, *, order: int = 42, refund_args: str | None = None,
               final: bool = True) -> dict[str, Any]:
    """The log line of an agent's last model call (*final*) or of its first (which asks for a lookup).

    The request carries an earlier turn (with its own tool call), the latest user message, and in the final
    call the lookup and a refund (arguments *refund_args*) with their results.
    """
    messages = [{"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": "Is order 7 here?"},
                {"role": "assistant", "content": None, "tool_calls": [call("old", "lookup_order", '{"order_id": 7}')]},
                {"role": "tool", "tool_call_id": "old", "content": '{"status": "delivered"}'},
                {"role": "assistant", "content": "Yes, delivered."},
                {"role": "user", "content": f"Where is order {order}? Refund it if it is lost."}]
    if final:
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call("c1", "lookup_order", f'{{"order_id": {order}}}')]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "lost"}'},
            {"role": "assistant", "content": "It is lost.", "tool_calls": [
                call("c2", "refund", refund_args or f'{{"order_id": {order}}}')]},
            {"role": "tool", "tool_call_id": "c2", "content": "refunded"}]
        reply = {"role": "assistant", "content": f"Order {order} was lost, so I refunded it."}
    else:
        reply = {"role": "assistant", "content": None, "tool_calls": [call("c1", "lookup_order", f'{{"order_id": {order}}}')]}
    return {"id": rid, "timestamp": iso(ts), "latency_ms": 321.0, "metadata": {"route": "support"},
            "request": {"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS},
            "response": {"id": f"chatcmpl-{rid}", "created": int(ts), "model": "gpt-4o-mini", "choices": [
                {"index": 0, "message": reply, "finish_reason": "stop" if final else "tool_calls"}],
                "usage": {"prompt_tokens": 90, "completion_tokens": 12}}}


def test_openai_logs_become_trajectories():
    [rec] = OpenAIChatReader().records(agent_line("a1", T0, refund_args='{"order_id": 4'))
    t = rec.outputs["trajectory"]
    assert t is not None and rec.outputs["messages"] is t["messages"] and rec.outputs["tool_calls"] is t["tool_calls"]
    assert rec.outputs["tool_definitions"] == TOOLS and rec.outputs["response"].startswith("Order 42 was lost")
    assert len(t["messages"]) == 11 and t["messages"][-1] == {"role": "assistant",
                                                              "content": "Order 42 was lost, so I refunded it."}
    # the current turn only: the earlier turn's lookup of order 7 is history, not this trajectory's calls
    assert [(c["id"], c["step"], c["name"], c["arguments"], c["result"]) for c in t["tool_calls"]] == [
        ("c1", 0, "lookup_order", {"order_id": 42}, '{"status": "lost"}'), ("c2", 1, "refund", None, "refunded")]
    assert t["tool_calls"][1]["arguments_raw"] == '{"order_id": 4'
    assert t["tool_calls"][1]["error"].startswith("malformed JSON arguments: ")
    assert [(s["step"], s["finish_reason"], s["tool_calls"], s["latency_ms"], s["prompt_tokens"]) for s in t["steps"]] == [
        (0, "tool_calls", ["c1"], None, None), (1, "tool_calls", ["c2"], None, None), (2, "stop", [], 321.0, 90)]
    assert t["stop_reason"] == "answer"
    # the agent's first call: the reply asks for a tool; the exchange goes on in a later call
    [first] = OpenAIChatReader().records(agent_line("a0", T0, final=False))
    ft = first.outputs["trajectory"]
    assert ft["stop_reason"] == "tool_calls" and first.outputs["response"] == ""
    assert [(c["name"], c["arguments"], c["result"]) for c in ft["tool_calls"]] == [("lookup_order", {"order_id": 42}, None)]
    assert ft["steps"] == [{"step": 0, "latency_ms": 321.0, "prompt_tokens": 90, "completion_tokens": 12, "cached": False,
                            "finish_reason": "tool_calls", "tool_calls": ["c1"]}]
    # plain chat logs stay as they were
    [plain] = OpenAIChatReader().records(chat_line("p", T0, "q", "a"))
    assert not {"trajectory", "tool_calls", "messages", "tool_definitions"} & set(plain.outputs)
    # a failed call keeps what the request held, stopped by the error
    failed = agent_line("e", T0)
    del failed["response"]
    failed["error"] = {"message": "HTTP 500"}
    [rec] = OpenAIChatReader().records(failed)
    assert rec.error == "HTTP 500" and rec.outputs["trajectory"]["stop_reason"] == "error"
    assert [s["latency_ms"] for s in rec.outputs["trajectory"]["steps"]] == [None, None]


def _parts(role, *parts, finish=None):
    return {"role": role, "parts": list(parts), **({"finish_reason": finish} if finish else {})}


def test_otel_spans_become_trajectories_in_every_convention():
    inputs = [_parts("user", {"type": "text", "content": "Where is order 42?"}),
              _parts("assistant", {"type": "tool_call", "id": "t1", "name": "lookup_order", "arguments": {"order_id": 42}}),
              _parts("tool", {"type": "tool_call_response", "id": "t1", "response": {"status": "lost"}}),
              _parts("assistant", {"type": "tool_call", "id": "t2", "name": "refund", "arguments": {"order_id": 42}})]
    chat = otlp_span("0a" * 8, T0, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 50,
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.tool.definitions": json.dumps(TOOLS), "gen_ai.input.messages": json.dumps(inputs),
        "gen_ai.output.messages": json.dumps([_parts("assistant", {"type": "text", "content": "Refunded."},
                                                     finish="stop")])})
    tool = otlp_span("0b" * 8, T0 - 1, attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "refund",
                                              "gen_ai.tool.call.id": "t2", "error.type": "PaymentsDown"},
                     status={"code": 2, "message": "payments are down"})
    recs = list(OTelGenAIReader().records(otlp_export([chat, tool])))
    assert [r.id for r in recs] == ["0a" * 8]  # execute_tool spans are no records of their own
    t = recs[0].outputs["trajectory"]
    assert t["messages"][0] == {"role": "system", "content": "Be brief."}
    assert t["messages"][2]["tool_calls"] == [call("t1", "lookup_order", '{"order_id": 42}')]
    assert t["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": '{"status": "lost"}'}
    assert [(c["name"], c["step"], c["result"], c["error"]) for c in t["tool_calls"]] == [
        ("lookup_order", 0, '{"status": "lost"}', None), ("refund", 1, None, "tool failed: payments are down")]
    assert t["tool_calls"][1]["latency_ms"] == pytest.approx(800, abs=1)  # from the execute_tool span
    assert t["stop_reason"] == "answer" and t["steps"][-1]["prompt_tokens"] == 50
    assert recs[0].outputs["tool_definitions"] == TOOLS and recs[0].data["query"] == "Where is order 42?"
    # older conventions: message events with tool_calls, and OpenLLMetry's indexed attributes
    events = otlp_span("0c" * 8, T0, attrs={"gen_ai.operation.name": "chat"}, events=[
        {"name": "gen_ai.user.message", "attributes": [_kv("content", "Where is order 9?")]},
        {"name": "gen_ai.assistant.message", "attributes": [_kv("tool_calls", json.dumps(
            [call("e1", "lookup_order", '{"order_id": 9}')]))]},
        {"name": "gen_ai.tool.message", "attributes": [_kv("id", "e1"), _kv("content", "shipped")]},
        {"name": "gen_ai.choice", "attributes": [_kv("finish_reason", "stop"), _kv("message", json.dumps(
            {"content": "It shipped."}))]}])
    indexed = otlp_span("0d" * 8, T0, attrs={
        "gen_ai.system": "openai", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Refund 5",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "i1", "gen_ai.completion.0.tool_calls.0.name": "refund",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"order_id": 5}'})
    old, ll = OTelGenAIReader().records(otlp_export([events, indexed]))
    ot = old.outputs["trajectory"]
    assert [(c["name"], c["arguments"], c["result"]) for c in ot["tool_calls"]] == [
        ("lookup_order", {"order_id": 9}, "shipped")]
    assert ot["stop_reason"] == "answer" and ot["messages"][-1]["content"] == "It shipped."
    lt = ll.outputs["trajectory"]
    assert [(c["name"], c["arguments"], c["result"]) for c in lt["tool_calls"]] == [("refund", {"order_id": 5}, None)]
    assert lt["stop_reason"] == "tool_calls" and ll.outputs["response"] == ""


def test_monitor_scores_logged_agents_with_trajectory_evaluators_and_agent_judges(tmp_path, fake_openai):
    def judge(request: dict[str, Any]) -> str:
        text = json.dumps(request["messages"])
        return json.dumps({"reason": "calls fit the query", "score": 2 if "order 43" in text else 5,
                           "status": "completed"})

    fake_openai.responder = judge
    cfg = write_config(
        tmp_path, evaluators=["tool_args_valid", "tool_call_accuracy", "json_valid"], judge="fake",
        targets={"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "gpt-4o-mini"}},
        runner={"concurrency": 1, "timeout": 5, "retries": 0, "backoff_base": 0.01, "backoff_max": 0.05},
        alerts=[{"metric": "tool_args_valid.pass_rate", "below": 0.9, "min_n": 1}])
    append(tmp_path / "logs" / "app.jsonl", [
        agent_line("good", T0 + 60), agent_line("bad", T0 + 120, order=43, refund_args='{"order_id": "43"}'),
        agent_line("first", T0 + 180, final=False), chat_line("plain", T0 + 240, "q", '{"a": 1}')])
    result = run_pass(load_monitor_config(cfg))
    con = sqlite3.connect(tmp_path / ".promptgauge" / "promptgauge.db")
    try:
        got = {(rid, ev): (score, passed, json.loads(details) if details else None)
               for rid, ev, score, passed, details in con.execute(
                   "SELECT record_id, evaluator, score, passed, details FROM monitor_scores")}
    finally:
        con.close()
    # the trajectory evaluator: every call against the logged tool definitions
    assert got[("good", "tool_args_valid")][:2] == (1.0, 1)
    assert got[("bad", "tool_args_valid")][:2] == (0.5, 0)  # the refund's order_id is a string
    assert got[("first", "tool_args_valid")][:2] == (1.0, 1)
    # the agent judge, shown the logged conversation and tools
    assert got[("good", "tool_call_accuracy")][:2] == (5.0, 1) and got[("bad", "tool_call_accuracy")][:2] == (2.0, 0)
    assert got[("good", "tool_call_accuracy")][2]["tool_call_accuracy_reason"] == "calls fit the query"
    # a plain chat record has no trajectory: the agent evaluators skip it, the others score it
    assert ("plain", "tool_args_valid") not in got and ("plain", "tool_call_accuracy") not in got
    assert got[("plain", "json_valid")][:2] == (1.0, 1)
    window = result.report["windows"][0]["metrics"]
    assert window["tool_args_valid.pass_rate"]["value"] == pytest.approx(2 / 3)
    assert result.status == "alert"
    judged = [r.body for r in fake_openai.requests]
    assert len(judged) == 3 and all("refund" in json.dumps(b) for b in judged[:2])
