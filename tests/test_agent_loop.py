"""The tool loop, exactly, on the fake server through the real openai client: shapes and every error case."""

from __future__ import annotations

import json
import time

import pytest
from agent_helpers import LOOKUP, REFUND, AgentSuite, results

from promptgauge import api
from promptgauge.testing.fake_server import ToolCall, ToolRule, tool_call_id

SYSTEM = "system:\nYou are a support agent.\n{directives}\n\nuser:\n{{{{question}}}}\n"


@pytest.fixture
def agent(tmp_path, fake_openai):
    return AgentSuite(tmp_path, fake_openai.base_url)


def _run(agent):
    report = api.run(agent.root / "promptgauge.yaml")
    return report, results(report.store_path, report.run_id)


def _chat_requests(server):
    return [r.body for r in server.requests if r.path.endswith("/chat/completions")]


def test_single_tool_call_gives_the_exact_trajectory(agent, fake_openai):
    agent.prompt(SYSTEM.format(directives='TOOL: lookup_order {"order_id": 42}\nREPLY: Order status: {tool:lookup_order}'))
    agent.rows([{"id": "q1", "question": "Where is order 42?"}])
    agent.suite()
    report, rows = _run(agent)
    row = rows[("q1", "agent")]
    trajectory = row["outputs"]["trajectory"]
    start = [{"role": "system", "content": 'You are a support agent.\nTOOL: lookup_order {"order_id": 42}\n'
              "REPLY: Order status: {tool:lookup_order}"}, {"role": "user", "content": "Where is order 42?"}]
    call_id = tool_call_id(start, 0)
    result = '{"order_id": 42, "status": "shipped"}'
    assert trajectory["messages"] == start + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": 42}'}}]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
        {"role": "assistant", "content": "Order status: " + result},
    ]
    assert trajectory["stop_reason"] == "answer"
    assert [{k: v for k, v in c.items() if k != "latency_ms"} for c in trajectory["tool_calls"]] == [
        {"id": call_id, "step": 0, "name": "lookup_order", "arguments": {"order_id": 42},
         "arguments_raw": '{"order_id": 42}', "result": result, "error": None}]
    steps = trajectory["steps"]
    assert [(s["step"], s["finish_reason"], s["tool_calls"], s["cached"]) for s in steps] == [
        (0, "tool_calls", [call_id], False), (1, "stop", [], False)]
    # the row: the final answer; latency and tokens are sums over the steps
    assert row["output"] == "Order status: " + result and row["error"] is None
    assert row["latency_ms"] == pytest.approx(sum(s["latency_ms"] for s in steps))
    assert row["prompt_tokens"] == sum(s["prompt_tokens"] for s in steps) > 0
    assert row["completion_tokens"] == sum(s["completion_tokens"] for s in steps) > 0
    assert row["attempts"] == 2
    assert row["outputs"]["tool_definitions"] == [LOOKUP, REFUND]
    # what the server saw: two requests with the tools, the second carrying the tool result
    sent = _chat_requests(fake_openai)
    assert len(sent) == 2 and all(b["tools"] == [LOOKUP, REFUND] for b in sent)
    assert sent[0]["messages"] == start and sent[1]["messages"] == trajectory["messages"][:4]


def test_parallel_calls_run_concurrently_and_keep_the_models_order(agent, fake_openai):
    agent.prompt(SYSTEM.format(directives='TOOL: lookup_order {"order_id": 2}\nTOOL: lookup_order {"order_id": 1}\n'
                                          "REPLY: {tool_results}"))
    agent.rows([{"id": "q1", "question": "Where are my orders?"}])
    agent.suite(tools={"lookup_order": f"{agent.module}:slow_lookup", "refund_order": f"{agent.module}:refund_order"})
    started = time.perf_counter()
    _, rows = _run(agent)
    elapsed = time.perf_counter() - started
    trajectory = rows[("q1", "agent")]["outputs"]["trajectory"]
    calls = trajectory["tool_calls"]
    assert [(c["step"], c["arguments"]) for c in calls] == [(0, {"order_id": 2}), (0, {"order_id": 1})]
    # the first call sleeps 0.2 s, the second 0.1 s: concurrently, not 0.3 s in a row
    assert calls[0]["latency_ms"] >= 200 and calls[1]["latency_ms"] >= 100 and elapsed < 5
    tool_messages = [m for m in trajectory["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [c["id"] for c in calls]  # the model's order
    assert [json.loads(m["content"])["order_id"] for m in tool_messages] == [2, 1]
    assert trajectory["steps"][0]["tool_calls"] == [c["id"] for c in calls]
    assert rows[("q1", "agent")]["output"] == ('lookup_order: {"order_id": 2, "status": "delivered"}\n'
                                               'lookup_order: {"order_id": 1, "status": "shipped"}')


def test_multi_step_loop(agent, fake_openai):
    fake_openai.script_tools(
        ToolRule(step=0, calls=[("lookup_order", {"order_id": 2})]),
        ToolRule(step=1, calls=[("refund_order", {"order_id": 2, "reason": "broken"})]),
        ToolRule(step=2, reply="Done: {tool:refund_order}"),
    )
    agent.prompt()
    agent.rows([{"id": "q1", "question": "Refund order 2, it is broken."}])
    agent.suite()
    _, rows = _run(agent)
    row = rows[("q1", "agent")]
    trajectory = row["outputs"]["trajectory"]
    assert [(c["step"], c["name"], c["result"]) for c in trajectory["tool_calls"]] == [
        (0, "lookup_order", '{"order_id": 2, "status": "delivered"}'), (1, "refund_order", "refunded order 2")]
    assert [m["role"] for m in trajectory["messages"]] == ["system", "user", "assistant", "tool", "assistant", "tool",
                                                           "assistant"]
    assert [s["step"] for s in trajectory["steps"]] == [0, 1, 2] and trajectory["stop_reason"] == "answer"
    assert row["output"] == "Done: refunded order 2" and len(_chat_requests(fake_openai)) == 3


def test_max_steps_stops_the_loop_and_keeps_the_last_text(agent, fake_openai):
    fake_openai.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42})]))  # never answers
    agent.prompt()
    agent.rows([{"id": "q1", "question": "Where is order 42?"}])
    agent.suite(variants=[{"name": "agent", "prompt": "agent.prompty", "target": "fake", "max_steps": 3}])
    _, rows = _run(agent)
    row = rows[("q1", "agent")]
    trajectory = row["outputs"]["trajectory"]
    assert trajectory["stop_reason"] == "max_steps" and len(trajectory["steps"]) == 3
    assert len(trajectory["tool_calls"]) == 3  # the last step's call is run too: the history stays valid
    assert trajectory["messages"][-1]["role"] == "tool"
    assert row["output"] == "" and row["error"] is None and len(_chat_requests(fake_openai)) == 3


def test_max_steps_with_a_final_answer(agent, fake_openai):
    fake_openai.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42})]))
    agent.prompt(SYSTEM.format(directives="REPLY: Status: {tool:lookup_order}"))
    agent.rows([{"id": "q1", "question": "Where is order 42?"}])
    agent.suite(variants=[{"name": "agent", "prompt": "agent.prompty", "target": "fake", "max_steps": 2,
                           "on_max_steps": "answer"}])
    _, rows = _run(agent)
    row = rows[("q1", "agent")]
    trajectory = row["outputs"]["trajectory"]
    sent = _chat_requests(fake_openai)
    assert len(sent) == 3 and "tool_choice" not in sent[0] and sent[2]["tool_choice"] == "none"
    assert trajectory["stop_reason"] == "max_steps" and len(trajectory["steps"]) == 3
    assert row["output"] == 'Status: {"order_id": 42, "status": "shipped"}'


def test_a_tool_that_raises_returns_its_error_to_the_model(agent, fake_openai):
    agent.prompt(SYSTEM.format(directives='TOOL: refund_order {"order_id": 1}\nREPLY: Sorry: {tool:refund_order}'))
    agent.rows([{"id": "q1", "question": "Refund order 1."}])
    agent.suite()
    _, rows = _run(agent)
    row = rows[("q1", "agent")]
    call = row["outputs"]["trajectory"]["tool_calls"][0]
    assert call["error"] == "tool raised ValueError: order 1 cannot be refunded"
    assert call["result"] == "error: tool raised ValueError: order 1 cannot be refunded"
    assert _chat_requests(fake_openai)[1]["messages"][-1]["content"] == call["result"]  # the model got it
    assert row["error"] is None and row["output"] == "Sorry: error: tool raised ValueError: order 1 cannot be refunded"


@pytest.mark.parametrize(("call", "error", "arguments"), [
    (ToolCall("cancel_order", {"order_id": 42}),
     "unknown tool 'cancel_order'; the tools are: lookup_order, refund_order", {"order_id": 42}),
    (ToolCall("lookup_order", '{"order_id": 4'),
     "malformed JSON arguments: Expecting ',' delimiter: line 1 column 15 (char 14)", None),
    (ToolCall("lookup_order", {"order_id": "forty-two"}),
     "arguments do not match the tool's schema: at order_id: 'forty-two' is not of type 'integer'",
     {"order_id": "forty-two"}),
    (ToolCall("lookup_order", "[42]"), "arguments do not match the tool's schema: at (root): [42] is not of type "
     "'object'", [42]),
])
def test_bad_calls_are_recorded_and_returned_to_the_model(agent, fake_openai, call, error, arguments):
    fake_openai.script_tools(ToolRule(step=0, calls=[call]), ToolRule(step=1, reply="I got: {tool_results}"))
    agent.prompt()
    agent.rows([{"id": "q1", "question": "Where is order 42?"}])
    agent.suite()
    _, rows = _run(agent)
    row = rows[("q1", "agent")]
    recorded = row["outputs"]["trajectory"]["tool_calls"][0]
    assert (recorded["name"], recorded["error"], recorded["arguments"]) == (call.name, error, arguments)
    assert recorded["arguments_raw"] == call.arguments_json() and recorded["result"] == "error: " + error
    assert row["error"] is None and row["output"] == f"I got: {call.name}: error: {error}"


def test_canned_results_from_the_row(agent, fake_openai):
    fake_openai.script_tools(
        ToolRule(step=0, calls=[("lookup_order", {"order_id": 1}), ("lookup_order", {"order_id": 2})]),
        ToolRule(step=1, calls=[("lookup_order", {"order_id": 3}), ("refund_order", {"order_id": 3})]),
        ToolRule(step=2, reply="{tool_results}"),
    )
    agent.prompt()
    agent.rows([{"id": "q1", "question": "Where are my orders?",
                 "replay": {"lookup_order": [{"status": "shipped"}, "delivered"], "refund_order": "refunded"}}])
    agent.suite(tools={"lookup_order": "${data.replay}", "refund_order": "${data.replay}"})
    _, rows = _run(agent)
    calls = rows[("q1", "agent")]["outputs"]["trajectory"]["tool_calls"]
    assert [(c["name"], c["result"], c["error"]) for c in calls] == [
        ("lookup_order", '{"status": "shipped"}', None),
        ("lookup_order", "delivered", None),
        ("lookup_order", "error: the row's ${data.replay} holds 2 result(s) for tool 'lookup_order'; this is call 3",
         "the row's ${data.replay} holds 2 result(s) for tool 'lookup_order'; this is call 3"),
        ("refund_order", "refunded", None),  # one result for every call
    ]


def test_the_variant_tools_override_the_suites(agent, fake_openai):
    agent.prompt(SYSTEM.format(directives='TOOL: lookup_order {"order_id": 1}\nREPLY: {tool:lookup_order}'))
    agent.rows([{"id": "q1", "question": "Where is order 1?", "canned": {"lookup_order": "from the row"}}])
    agent.suite(variants=[{"name": "code", "prompt": "agent.prompty", "target": "fake"},
                          {"name": "canned", "prompt": "agent.prompty", "target": "fake",
                           "tools": {"lookup_order": "${data.canned}"}}])
    _, rows = _run(agent)
    assert rows[("q1", "code")]["output"] == '{"order_id": 1, "status": "shipped"}'
    assert rows[("q1", "canned")]["output"] == "from the row"


def test_a_failed_model_call_ends_the_loop_and_keeps_the_partial_trajectory(agent, fake_openai):
    fake_openai.script_tools(ToolRule(step=0, calls=[("lookup_order", {"order_id": 42})]),
                             ToolRule(step=1, when=lambda request: time.sleep(1.0) or True, reply="too late"))
    agent.prompt()
    agent.rows([{"id": "q1", "question": "Where is order 42?"}])
    agent.suite(runner={"concurrency": 1, "timeout": 0.3, "retries": 0})
    _, rows = _run(agent)
    row = rows[("q1", "agent")]
    assert row["error"] == "step 1: timeout after 0.3s (after 1 attempt)" and row["output"] is None
    trajectory = row["outputs"]["trajectory"]
    assert trajectory["stop_reason"] == "error" and len(trajectory["steps"]) == 1
    assert [c["name"] for c in trajectory["tool_calls"]] == ["lookup_order"]


THREADED_TOOLS = '''
import threading
import time

CALLS = []


def lookup_order(order_id):
    CALLS.append(order_id)
    if order_id == 4:          # slow once: the tool goes back to the threads
        time.sleep(0.05)
    if order_id == 99:         # hangs past the timeout
        time.sleep(3)
    return threading.current_thread().name
'''


def test_a_fast_sync_tool_moves_to_the_loop_and_a_slow_or_hung_one_stays_on_threads(agent, fake_openai):
    from promptgauge.tools import FAST_CALLS

    module = agent.module + "_threads"
    (agent.root / f"{module}.py").write_text(THREADED_TOOLS, encoding="utf-8")
    agent.prompt(SYSTEM.format(directives='TOOL: lookup_order {"order_id": {{order}}}\nREPLY: {tool:lookup_order}'),
                 tools=[LOOKUP])
    orders = [1, 2, 3, 4, 99, 5, 6, 7, *range(8, 20)]
    agent.rows([{"id": f"q{i}", "question": "where?", "order": n} for i, n in enumerate(orders)])
    agent.suite(tools={"lookup_order": f"{module}:lookup_order"},
                runner={"concurrency": 1, "timeout": 0.5, "retries": 0})
    _, rows = _run(agent)
    where = {n: rows[(f"q{i}", "agent")]["output"] for i, n in enumerate(orders) if n != 99}
    assert FAST_CALLS == 3
    # the first 3 calls run on threads; order 4 sleeps 50 ms: wherever it ran, it was slow, so order 99 runs on
    # a thread, hangs and is abandoned at the timeout (slow too), and the next 3 run on threads again; once
    # 3 calls in a row returned within FAST_SECONDS the tool is called on the loop itself
    assert [where[n] for n in (1, 2, 3, 5, 6, 7)] == ["promptgauge-tool"] * 6
    assert "MainThread" in [where[n] for n in range(8, 20)]
    hung = rows[("q4", "agent")]["outputs"]["trajectory"]["tool_calls"][0]
    assert hung["error"] == "tool timed out after 0.5s" and hung["result"] == "error: tool timed out after 0.5s"
