"""Agent suite keys: tools, their implementations and the loop's settings are checked before any call (exit 2)."""

from __future__ import annotations

import pytest
from agent_helpers import LOOKUP, REFUND, AgentSuite
from conftest import run_cli

from promptgauge import api
from promptgauge.errors import UserError


@pytest.fixture
def agent(tmp_path, fake_openai):
    suite = AgentSuite(tmp_path, fake_openai.base_url)
    suite.prompt()
    suite.rows([{"id": "q1", "question": "Where is order 42?", "canned": {"lookup_order": "shipped"}}])
    return suite


def _error(agent, fake_openai) -> str:
    with pytest.raises(UserError) as info:
        api.run(agent.root / "promptgauge.yaml")
    assert fake_openai.request_count == 0  # before any call
    return info.value.format().replace(str(agent.root) + "/", "")


def _line(path, text):
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def test_a_declared_tool_without_implementation_is_exit_2(agent, fake_openai):
    suite = agent.suite(tools={"lookup_order": f"{agent.module}:lookup_order"})
    out = run_cli("run", "--no-progress", cwd=agent.root)
    line = _line(agent.root / "agent.prompty", "name: refund_order")
    assert out.returncode == 2 and fake_openai.request_count == 0
    assert (f"agent.prompty:{line}, field 'model.parameters.tools[1]': tool 'refund_order' (variant 'agent') has no "
            f"implementation (add to {suite.name}: tools: {{refund_order: module:function}}, or "
            "{refund_order: ${data.COLUMN}} for canned results)") in out.stderr


def test_an_implementation_for_an_undeclared_tool_is_an_error(agent, fake_openai):
    suite = agent.suite(tools={"lookup_order": f"{agent.module}:lookup_order",
                               "refund_order": f"{agent.module}:refund_order", "cancel_order": "x:y"})
    assert _error(agent, fake_openai) == (
        f"promptgauge.yaml:{_line(suite, 'cancel_order')}, field 'tools.cancel_order': tools: 'cancel_order' is "
        "implemented, but no variant declares a tool 'cancel_order' (declared tools: lookup_order, refund_order; "
        "remove it, or declare it in a prompt's model.parameters.tools)")


def test_a_variant_override_for_an_undeclared_tool_is_an_error(agent, fake_openai):
    suite = agent.suite(variants=[{"name": "agent", "prompt": "agent.prompty", "target": "fake",
                                   "tools": {"cancel_order": "x:y"}}])
    assert _error(agent, fake_openai) == (
        f"promptgauge.yaml:{_line(suite, 'cancel_order')}, field 'variants.agent.tools.cancel_order': variant 'agent' "
        "implements tool 'cancel_order', which it does not declare (declared tools: lookup_order, refund_order)")


def test_an_implementation_that_cannot_be_imported(agent, fake_openai):
    suite = agent.suite(tools={"lookup_order": "no_such_module:lookup", "refund_order": f"{agent.module}:refund_order"})
    assert _error(agent, fake_openai) == (
        f"promptgauge.yaml:{_line(suite, 'no_such_module')}, field 'tools.lookup_order': cannot import module "
        "'no_such_module': No module named 'no_such_module'")


def test_canned_results_need_the_column(agent, fake_openai):
    suite = agent.suite(tools={"lookup_order": "${data.replies}", "refund_order": "${data.canned}"})
    assert _error(agent, fake_openai) == (
        f"promptgauge.yaml:{_line(suite, 'replies')}, field 'tools.lookup_order': tool 'lookup_order' reads canned "
        "results from ${data.replies}, but the dataset has no column 'replies' (columns: id, question, canned)")


@pytest.mark.parametrize(("tools", "message"), [
    ([{"name": "lookup_order"}], "tools[0] is not a function tool; write {type: function, function: {name, "
     "description, parameters}}"),
    ([LOOKUP, LOOKUP], "tools[1]: tool 'lookup_order' is declared twice"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}],
     "tools[0] (f): parameters is not a valid JSON schema: 'objekt' is not valid under any of the given schemas"),
])
def test_tools_must_be_openai_function_schemas(agent, fake_openai, tools, message):
    agent.prompt(tools=tools)
    agent.suite(tools={})
    assert _error(agent, fake_openai) == f"agent.prompty:5, field 'model.parameters.tools': {message}"


def test_tools_declared_in_the_variant_parameters(agent, fake_openai):
    agent.prompt(tools=[LOOKUP])  # the variant's parameters replace the prompt's tools
    suite = agent.suite(variants=[{"name": "agent", "prompt": "agent.prompty", "target": "fake",
                                   "parameters": {"tools": [REFUND, {"type": "function"}]}}])
    assert _error(agent, fake_openai) == (
        f"promptgauge.yaml:{_line(suite, '    tools:')}, field 'variants.agent.parameters.tools': tools[1] is not "
        "a function tool; write {type: function, function: {name, description, parameters}}")


def test_tools_need_a_model_target(agent, fake_openai):
    (agent.root / "app.py").write_text("def answer(question):\n    return question\n")
    suite = agent.suite(variants=[{"name": "agent", "prompt": "agent.prompty", "target": "python:app:answer"}])
    assert _error(agent, fake_openai) == (
        f"promptgauge.yaml:{_line(suite, 'python:app')}, field 'variants.agent.target': variant 'agent' declares "
        "tools, but its target 'python:app:answer' is a python target (a tool loop needs a model target: "
        "openai:MODEL, azure:DEPLOYMENT or local:smollm2)")


def test_loop_settings_need_tools(agent, fake_openai):
    (agent.root / "plain.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\nuser:\n{{question}}\n")
    suite = agent.suite(tools={}, variants=[{"name": "plain", "prompt": "plain.prompty", "target": "fake",
                                             "max_steps": 3}])
    assert _error(agent, fake_openai) == (
        f"promptgauge.yaml:{_line(suite, 'max_steps')}, field 'variants.plain.max_steps': variant 'plain' sets "
        "max_steps, but its prompt declares no tools (declare them in the prompt's model.parameters.tools (OpenAI "
        "function schemas))")


@pytest.mark.parametrize(("tools", "field", "message"), [
    ({"lookup_order": "lookup"}, "tools.lookup_order",
     "'lookup' is not a tool implementation; write module:function (a Python callable, sync or async, importable "
     "from the suite's folder) or ${data.COLUMN} (canned results from the row: {tool_name: result} or "
     "{tool_name: [result per call]})"),
    ({"lookup order": "x:y"}, "tools.lookup order.[key]",
     "tool name 'lookup order': use letters, digits, '_' and '-' only (at most 64)"),
])
def test_suite_tool_keys_are_validated_with_their_line(agent, fake_openai, tools, message, field):
    suite = agent.suite(tools=tools)
    line = _line(suite, next(iter(tools)))
    assert _error(agent, fake_openai) == f"promptgauge.yaml:{line}, field '{field}': {message}"
