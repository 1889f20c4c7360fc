"""Tool calls on the fake OpenAI server, driven by the real openai SDK (sync, async, streaming, Azure; no mocks)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from promptgauge.testing import fake_server
from promptgauge.testing.fake_server import (
    FakeOpenAIServer,
    ToolCall,
    ToolRule,
    tool_call_id,
)

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]},
    },
}
REFUND = {
    "type": "function",
    "function": {
        "name": "refund",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "integer"},
                "reason": {"type": "string", "enum": ["damaged", "late"]},
                "notify": {"type": "boolean"},
            },
            "required": ["order_id", "reason"],
        },
    },
}
TOOLS = [LOOKUP, REFUND]
CALL_ID = re.compile(r"call_[0-9a-f]{24}")
SHIPPED = '{"status": "shipped"}'


@pytest.fixture(scope="module")
def shared_server():
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def srv(shared_server):
    """The module's server with no tool script, no faults and empty stats."""
    shared_server.reset()
    return shared_server


@pytest.fixture
def client(srv):
    with openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as c:
        yield c


def user(text):
    return {"role": "user", "content": text}


def chat(client, messages, tools=TOOLS, **kwargs):
    """One chat completion offering `tools`."""
    return client.chat.completions.create(model="m", messages=messages, tools=tools, **kwargs)


def calls_of(response):
    """``[(name, arguments), ...]`` of a response's tool calls."""
    return [(c.function.name, c.function.arguments) for c in response.choices[0].message.tool_calls or []]


def answered(message, results):
    """The assistant tool-call message as an agent sends it back, then one tool message per call."""
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls
        ],
    }
    tool_messages = [
        {"role": "tool", "tool_call_id": c.id, "content": result}
        for c, result in zip(message.tool_calls, results, strict=True)
    ]
    return [assistant, *tool_messages]


# -- scripted tool calls ---------------------------------------------------------


def test_single_tool_call_reply_shape_and_usage(srv, client):
    srv.script_tools(ToolRule(calls=[ToolCall("lookup_order", {"order_id": 42})]))
    response = chat(client, [user("where is order 42?")], tools=[LOOKUP])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.role == "assistant"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert CALL_ID.fullmatch(call.id)
    assert (call.type, call.function.name, call.function.arguments) == ("function", "lookup_order", '{"order_id": 42}')
    # prompt: 4 words of the question + "lookup_order" + "Find an order" + 8 words of the parameters' JSON;
    # completion: "lookup_order" + '{"order_id":' + '42}'
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (16, 3, 19)


def test_parallel_tool_calls(srv, client):
    srv.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42}), {"name": "lookup_order", "arguments": {"order_id": 7}}]))
    response = chat(client, [user("two orders")])
    assert calls_of(response) == [("lookup_order", '{"order_id": 42}'), ("lookup_order", '{"order_id": 7}')]
    ids = [c.id for c in response.choices[0].message.tool_calls]
    assert len(set(ids)) == 2 and all(CALL_ID.fullmatch(i) for i in ids)


def test_multi_step_loop_by_hand_records_the_conversation_sent_back(srv, client):
    srv.script_tools(
        ToolRule(step=0, calls=[("lookup_order", {"order_id": 42})]),
        ToolRule(step=1, calls=[("refund", {"order_id": 42, "reason": "late"})]),
        ToolRule(has_tool_results=True, reply="Done.\n{tool_results}\nStatus: {tool:lookup_order}"),
    )
    messages = [{"role": "system", "content": "You are a support agent."}, user("refund order 42, it is late")]
    first = chat(client, messages)
    assert calls_of(first) == [("lookup_order", '{"order_id": 42}')]
    messages += answered(first.choices[0].message, [SHIPPED])
    second = chat(client, messages)
    assert calls_of(second) == [("refund", '{"order_id": 42, "reason": "late"}')]
    messages += answered(second.choices[0].message, ['{"refunded": true}'])
    final = chat(client, messages)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.tool_calls is None
    assert final.choices[0].message.content == (
        'Done.\nlookup_order: {"status": "shipped"}\nrefund: {"refunded": true}\nStatus: {"status": "shipped"}'
    )
    assert [body["messages"] for _, body in srv.requests] == [messages[:2], messages[:4], messages]
    assert srv.requests[-1].body["tools"] == TOOLS
    assert srv.requests[-1].body["messages"][3] == {
        "role": "tool",
        "tool_call_id": first.choices[0].message.tool_calls[0].id,
        "content": SHIPPED,
    }


def test_malformed_arguments_are_sent_verbatim(srv, client):
    srv.script_tools(ToolRule(calls=[ToolCall("lookup_order", '{"order_id": 4')]))
    response = chat(client, [user("x")])
    assert calls_of(response) == [("lookup_order", '{"order_id": 4')]
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.choices[0].message.tool_calls[0].function.arguments)


def test_unknown_tool_name_then_the_error_result_is_quoted(srv, client):
    srv.script_tools(ToolRule(step=0, calls=[("cancel_everything", {})]))
    messages = [user("do it")]
    first = chat(client, messages)
    assert calls_of(first) == [("cancel_everything", "{}")]
    messages += answered(first.choices[0].message, ["error: unknown tool 'cancel_everything'"])
    # no rule matches step 1 and there is no REPLY line: the default reply quotes the tool results
    final = chat(client, messages)
    assert final.choices[0].message.content == "cancel_everything: error: unknown tool 'cancel_everything'"


def test_rule_conditions_first_match_and_callables(srv, client):
    seen = []

    def by_model(request):
        seen.append(request["model"])
        return [("lookup_order", {"order_id": 1})] if request["model"] == "special" else None

    srv.script_tools(
        lambda request: [],  # an empty answer falls through to the next rule
        by_model,
        ToolRule(match=r"order (\d+)", calls=[("lookup_order", {"order_id": 2})]),
        ToolRule(match=r"order", calls=[("lookup_order", {"order_id": 3})]),
        ToolRule(when=lambda request: request.get("temperature") == 0, reply="cold"),
    )
    assert calls_of(chat(client, [user("order 9")])) == [("lookup_order", '{"order_id": 2}')]
    assert calls_of(chat(client, [user("my order")])) == [("lookup_order", '{"order_id": 3}')]
    special = client.chat.completions.create(model="special", messages=[user("order 9")], tools=TOOLS)
    assert calls_of(special) == [("lookup_order", '{"order_id": 1}')]
    assert chat(client, [user("hi")], temperature=0).choices[0].message.content == "cold"
    assert chat(client, [user("hi")]).choices[0].message.content == "echo: hi"  # no rule: the responder's text
    assert seen == ["m", "m", "special", "m", "m"]


def test_text_answer_uses_a_custom_responder(srv, client):
    srv.responder = lambda request: f"{len(request['tools'])} tools"
    assert chat(client, [user("x")]).choices[0].message.content == "2 tools"


def test_tool_rule_validation_from_dict_and_reset():
    with pytest.raises(ValueError, match="exactly one"):
        ToolRule()
    with pytest.raises(ValueError, match="exactly one"):
        ToolRule(calls=[("a", {})], reply="b")
    with pytest.raises(ValueError, match="at least one"):
        ToolRule(calls=[])
    with pytest.raises(TypeError, match="tool call"):
        ToolRule(calls=[42])
    with pytest.raises(ValueError, match="unknown tool rule keys"):
        ToolRule.from_dict({"reply": "x", "when": "always"})
    rule = ToolRule.from_dict({"match": "x", "step": 0, "calls": [{"name": "f", "arguments": {"a": 1}}]})
    assert rule.calls == (ToolCall("f", {"a": 1}),)
    assert ToolCall("f").arguments_json() == "{}"

    initial = ToolRule(reply="initial")
    server = FakeOpenAIServer(tool_script=[initial])
    server.script_tools(ToolRule(reply="later"))
    server.reset()
    assert server.tool_script == [initial]


def test_a_failing_rule_is_a_500_naming_it(srv, client):
    srv.script_tools(lambda request: 1 / 0)
    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        chat(client, [user("x")])


# -- tool_choice, parallel_tool_calls ----------------------------------------------


def test_tool_choice_none_answers_with_text(srv, client):
    srv.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42})]))
    response = chat(client, [user("where is it?")], tool_choice="none")
    assert response.choices[0].finish_reason == "stop"
    assert response.choices[0].message.content == "echo: where is it?"
    assert response.choices[0].message.tool_calls is None
    srv.script_tools(ToolRule(reply="scripted text"))
    assert chat(client, [user("x")], tool_choice="none").choices[0].message.content == "scripted text"


def test_tool_choice_forces_a_function(srv, client):
    srv.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42}), ("refund", {"order_id": 42, "reason": "late"})]))
    forced = {"type": "function", "function": {"name": "refund"}}
    assert calls_of(chat(client, [user("x")], tool_choice=forced)) == [("refund", '{"order_id": 42, "reason": "late"}')]
    # nothing scripted for the forced function: placeholder arguments valid for its schema
    srv.script_tools(ToolRule(reply="just text"))
    response = chat(client, [user("x")], tool_choice=forced)
    assert response.choices[0].finish_reason == "tool_calls"
    assert calls_of(response) == [("refund", '{"order_id": 0, "reason": "damaged"}')]


def test_tool_choice_required(srv, client):
    assert calls_of(chat(client, [user("x")], tool_choice="required")) == [("lookup_order", '{"order_id": 0}')]
    srv.script_tools(ToolRule(calls=[("refund", {"order_id": 1, "reason": "late"})]))
    assert calls_of(chat(client, [user("x")], tool_choice="required")) == [("refund", '{"order_id": 1, "reason": "late"}')]
    assert calls_of(chat(client, [user("x")], tool_choice="auto")) == [("refund", '{"order_id": 1, "reason": "late"}')]


def test_parallel_tool_calls_false_gives_one_call(srv, client):
    srv.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42}), ("lookup_order", {"order_id": 7})]))
    both = chat(client, [user("x")])
    one = chat(client, [user("x")], parallel_tool_calls=False)
    assert calls_of(one) == [("lookup_order", '{"order_id": 42}')]
    assert one.choices[0].message.tool_calls[0].id == both.choices[0].message.tool_calls[0].id
    streamed = list(chat(client, [user("x")], parallel_tool_calls=False, stream=True))
    assert {d.index for c in streamed for d in c.choices[0].delta.tool_calls or []} == {0}
    assert calls_of(chat(client, [user("x")], parallel_tool_calls=True)) == calls_of(both)


# -- validation ------------------------------------------------------------------


ASSISTANT_AB = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "lookup_order", "arguments": "{}"}},
    ],
}


@pytest.mark.parametrize(
    ("messages", "param", "message"),
    [
        (
            [user("q"), {"role": "tool", "tool_call_id": "call_a", "content": "r"}],
            "messages.[1].role",
            "must be a response to a preceeding message with 'tool_calls'",
        ),
        (
            [user("q"), ASSISTANT_AB, {"role": "tool", "tool_call_id": "call_zz", "content": "r"}],
            "messages.[2].tool_call_id",
            "'call_zz' not found in 'tool_calls' of previous message",
        ),
        (
            [user("q"), ASSISTANT_AB, {"role": "tool", "content": "r"}],
            "messages.[2].tool_call_id",
            "Missing required parameter",
        ),
        (
            [user("q"), ASSISTANT_AB, {"role": "tool", "tool_call_id": "call_a", "content": "r"}, user("more")],
            "messages.[1].role",
            "did not have response messages: call_b",
        ),
        (
            [
                user("q"),
                ASSISTANT_AB,
                {"role": "tool", "tool_call_id": "call_a", "content": "r"},
                {"role": "tool", "tool_call_id": "call_b", "content": "r"},
                {"role": "assistant", "content": "done"},
                {"role": "tool", "tool_call_id": "call_a", "content": "late"},
            ],
            "messages.[5].role",
            "must be a response to a preceeding message",
        ),
    ],
    ids=["no-preceding-tool-calls", "unknown-id", "missing-id", "unanswered-call", "after-a-text-answer"],
)
def test_tool_messages_are_validated_like_openai(client, messages, param, message):
    with pytest.raises(openai.BadRequestError, match=re.escape(message)) as caught:
        chat(client, messages)
    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == param
    # without tools too: the check is about the conversation
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=messages)


def test_answered_tool_calls_are_accepted_in_any_order(client):
    messages = [
        user("q"),
        ASSISTANT_AB,
        {"role": "tool", "tool_call_id": "call_b", "content": "B"},
        {"role": "tool", "tool_call_id": "call_a", "content": "A"},
    ]
    assert chat(client, messages).choices[0].message.content == "lookup_order: B\nlookup_order: A"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": []}, "tools"),
        ({"tools": [{"type": "function"}]}, "tools[0]"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ],
)
def test_tool_parameters_are_validated(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=[user("q")], **kwargs)
    assert caught.value.param == param


# -- streaming -------------------------------------------------------------------


def test_streamed_tool_call_deltas_as_openai_sends_them(srv, client):
    srv.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42}), ("refund", '{"order_id": 4')]))
    expected = chat(client, [user("x")]).choices[0].message.tool_calls
    chunks = list(chat(client, [user("x")], stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    first = deltas[0]
    assert first.role == "assistant" and first.content is None
    (opening,) = first.tool_calls
    assert (opening.index, opening.id, opening.type) == (0, expected[0].id, "function")
    assert (opening.function.name, opening.function.arguments) == ("lookup_order", "")
    pieces = [d.tool_calls[0] for d in deltas[1:] if d.tool_calls]
    openings = [p for p in pieces if p.id is not None]
    assert [(p.index, p.id, p.function.name) for p in openings] == [(1, expected[1].id, "refund")]
    for index, call in enumerate(expected):
        arguments = [p.function.arguments for p in pieces if p.index == index and p.id is None]
        assert len(arguments) > 2  # in pieces
        assert all(p.function.name is None for p in pieces if p.id is None)
        assert "".join(arguments) == call.function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == []
    # completion: lookup_order + '{"order_id":' '42}' + refund + '{"order_id":' '4';
    # prompt: "x" + lookup_order's 12 (see the first test) + "refund" + 18 words of refund's parameters' JSON
    assert (chunks[-1].usage.completion_tokens, chunks[-1].usage.prompt_tokens) == (6, 32)


def test_stream_helper_reassembles_tool_calls(srv, client):
    srv.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42}), ("refund", '{"order_id": 4')]))
    plain = chat(client, [user("x")])
    with client.chat.completions.stream(model="m", messages=[user("x")], tools=TOOLS) as stream:
        done = [(e.index, e.name, e.arguments) for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    assert done == [(0, "lookup_order", '{"order_id": 42}'), (1, "refund", '{"order_id": 4')]
    assert final.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, c.function.arguments) for c in final.choices[0].message.tool_calls] == [
        (c.id, c.function.name, c.function.arguments) for c in plain.choices[0].message.tool_calls
    ]


def test_async_client_loop_with_streaming(srv):
    srv.script_tools(
        ToolRule(step=0, calls=[("lookup_order", {"order_id": 42})]),
        ToolRule(has_tool_results=True, reply="Order status: {tool:lookup_order}"),
    )

    async def run():
        async with openai.AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as aclient:
            messages = [user("where is order 42?")]
            async with aclient.chat.completions.stream(model="m", messages=messages, tools=TOOLS) as stream:
                first = await stream.get_final_completion()
            messages += answered(first.choices[0].message, [SHIPPED])
            final = await aclient.chat.completions.create(model="m", messages=messages, tools=TOOLS, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in final if c.choices])
            return first, text

    first, text = asyncio.run(run())
    assert [(c.function.name, c.function.arguments) for c in first.choices[0].message.tool_calls] == [
        ("lookup_order", '{"order_id": 42}')
    ]
    assert text == 'Order status: {"status": "shipped"}'


# -- Azure -----------------------------------------------------------------------


def test_azure_deployment_paths_with_tools(srv):
    srv.script_tools(ToolRule(calls=[("lookup_order", {"order_id": 42})]))
    azure = openai.AzureOpenAI(azure_endpoint=srv.root_url, api_key="x", api_version="2024-06-01", max_retries=0)
    with azure:
        response = chat(azure, [user("x")])
        forced = chat(azure, [user("x")], tool_choice={"type": "function", "function": {"name": "refund"}})
        with azure.chat.completions.stream(model="my-deploy", messages=[user("x")], tools=TOOLS) as stream:
            streamed = stream.get_final_completion()
    assert calls_of(response) == [("lookup_order", '{"order_id": 42}')]
    assert calls_of(forced) == [("refund", '{"order_id": 0, "reason": "damaged"}')]
    assert streamed.choices[0].message.tool_calls[0].id == response.choices[0].message.tool_calls[0].id
    assert [path for path, _ in srv.requests] == [
        "/openai/deployments/m/chat/completions",
        "/openai/deployments/m/chat/completions",
        "/openai/deployments/my-deploy/chat/completions",
    ]


# -- in-band TOOL: lines -----------------------------------------------------------


def test_inband_tool_lines_call_then_quote_the_results(client):
    messages = [
        {"role": "system", "content": 'Support agent.\nTOOL: lookup_order {"order_id": 42}'},
        user("where is my order?"),
    ]
    first = chat(client, messages)
    assert calls_of(first) == [("lookup_order", '{"order_id": 42}')]
    messages += answered(first.choices[0].message, [SHIPPED])
    final = chat(client, messages)
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == 'lookup_order: {"status": "shipped"}'


def test_inband_parallel_lines_steps_malformed_and_reply_template(client):
    messages = [
        user(
            "refund both\n"
            'TOOL: lookup_order {"order_id": 42}\n'
            "  TOOL: lookup_order {\"order_id\": 7\n"  # malformed: sent verbatim
            "TOOL@1: refund\n"
            "REPLY: Refunded. {tool:refund} / {tool:nothing}"
        )
    ]
    first = chat(client, messages)
    assert calls_of(first) == [("lookup_order", '{"order_id": 42}'), ("lookup_order", '{"order_id": 7')]
    messages += answered(first.choices[0].message, ["A", "B"])
    second = chat(client, messages)
    assert calls_of(second) == [("refund", "{}")]
    messages += answered(second.choices[0].message, ["ok"])
    final = chat(client, messages)
    assert final.choices[0].message.content == "Refunded. ok / {tool:nothing}"


def test_inband_lines_per_user_turn_and_only_from_system_or_user(client):
    messages = [user('TOOL: lookup_order {"order_id": 1}')]
    first = chat(client, messages)
    messages += answered(first.choices[0].message, ["TOOL: refund {}"])  # a tool result is no directive
    messages.append({"role": "assistant", "content": chat(client, messages).choices[0].message.content})
    assert messages[-1]["content"] == "lookup_order: TOOL: refund {}"
    messages.append(user('and order 2?\nTOOL: lookup_order {"order_id": 2}'))
    second = chat(client, messages)  # steps count from the message carrying the lines
    assert calls_of(second) == [("lookup_order", '{"order_id": 2}')]
    assert second.choices[0].message.tool_calls[0].id != first.choices[0].message.tool_calls[0].id


def test_inband_lines_need_tools_and_rules_win(srv, client):
    text = 'x\nTOOL: lookup_order {"order_id": 1}'
    plain = client.chat.completions.create(model="m", messages=[user(text)])
    assert (plain.choices[0].finish_reason, plain.choices[0].message.content) == ("stop", "echo: " + text)
    srv.script_tools(ToolRule(calls=[("refund", {"order_id": 1, "reason": "late"})]))
    assert calls_of(chat(client, [user(text)])) == [("refund", '{"order_id": 1, "reason": "late"}')]


# -- determinism ------------------------------------------------------------------


def test_call_ids_are_deterministic_across_servers_clients_and_streaming():
    messages = [user('TOOL: lookup_order {"order_id": 42}\nTOOL: refund {"order_id": 42, "reason": "late"}')]

    def ids_from_a_new_server():
        with FakeOpenAIServer(seed=7) as server, openai.OpenAI(base_url=server.base_url, api_key="k") as c:
            plain = [call.id for call in chat(c, messages).choices[0].message.tool_calls]
            with c.chat.completions.stream(model="other", messages=messages, tools=TOOLS) as stream:
                streamed = [call.id for call in stream.get_final_completion().choices[0].message.tool_calls]

            async def via_async():
                async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k") as ac:
                    response = await ac.chat.completions.create(model="m", messages=messages, tools=[LOOKUP])
                    return [call.id for call in response.choices[0].message.tool_calls]

            assert streamed == asyncio.run(via_async()) == plain
            return plain

    first, second = ids_from_a_new_server(), ids_from_a_new_server()
    assert first == second == [tool_call_id(messages, 0), tool_call_id(messages, 1)]
    assert len(set(first)) == 2
    assert tool_call_id([user("other")], 0) not in first


# -- CLI ---------------------------------------------------------------------------


def test_cli_serves_inband_tool_lines_and_a_json_tool_script(tmp_path):
    script = tmp_path / "rules.json"
    script.write_text(json.dumps([{"match": "refund", "calls": [{"name": "refund", "arguments": "{oops"}]}]))
    src = Path(fake_server.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "promptgauge.testing.fake_server", "--port", "0", "--tool-script", str(script)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            base_url = re.search(r"http://\S+/v1", process.stdout.readline()).group(0)
            with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as c:
                messages = [user('where?\nTOOL: lookup_order {"order_id": 42}\nREPLY: It is {tool:lookup_order}.')]
                first = chat(c, messages)
                assert calls_of(first) == [("lookup_order", '{"order_id": 42}')]
                messages += answered(first.choices[0].message, ["shipped"])
                assert chat(c, messages).choices[0].message.content == "It is shipped."
                assert calls_of(chat(c, [user("refund please")])) == [("refund", "{oops")]
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=5) == 0
            assert process.stderr.read() == ""
        finally:
            if process.poll() is None:
                process.kill()


def test_cli_rejects_a_bad_tool_script(tmp_path):
    script = tmp_path / "rules.json"
    script.write_text(json.dumps([{"reply": "x", "calls": [{"name": "f"}]}]))
    src = Path(fake_server.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "promptgauge.testing.fake_server", "--port", "0", "--tool-script", str(script)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30, check=False)
    assert result.returncode == 2
    assert "--tool-script" in result.stderr and "exactly one" in result.stderr
