"""The pytest plugin on tool-calling variants: Result.trajectory / tool_calls / messages, assert_tool_called and
assert_tool_sequence with their failure output (pytester, agents from trajectory_fixtures as python targets)."""

from __future__ import annotations

import pandas  # noqa: F401 - loaded here, outside pytester's in-process runs, which cannot reload numpy
import pytest
from conftest import SuiteBuilder
from trajectory_fixtures import agent_suite, trajectory

import promptgauge.pytest_plugin.agents  # noqa: F401
import promptgauge.pytest_plugin.harness  # noqa: F401
import promptgauge.pytest_plugin.snapshots  # noqa: F401
from promptgauge.pytest_plugin import assert_tool_called, assert_tool_sequence
from promptgauge.testing.fake_server import FakeOpenAIServer

pytest_plugins = ["pytester"]


@pytest.fixture
def agents(pytester: pytest.Pytester, fake_openai: FakeOpenAIServer) -> SuiteBuilder:
    b = SuiteBuilder(pytester.path, fake_openai.base_url)
    agent_suite(b, runner={"concurrency": 2, "timeout": 5, "retries": 0, "cache": False})
    return b


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # these sessions test the assertions, not snapshots: they have none to compare with
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "promptgauge_baselines=off", *args)


def test_result_exposes_the_trajectory_and_tool_assertions_explain_failures(pytester, agents):
    pytester.makepyfile(test_agent="""
        import pytest
        from promptgauge.pytest_plugin import assert_tool_called

        @pytest.mark.promptgauge()
        def test_looks_up_the_order(row, evaluate):
            result = evaluate(row)
            assert result.trajectory["stop_reason"] == "answer"
            assert result.messages[1] == {"role": "user", "content": row.data["question"]}
            assert result.tool_calls[0]["step"] == 0 and result.messages[-1]["content"] == result.output
            calls = assert_tool_called(result, "lookup_order", args={"order_id": row.data["order_id"]})
            assert calls[0]["name"] == "lookup_order"
    """)
    res = run(pytester, "-v")
    res.assert_outcomes(passed=5, failed=1)
    res.stdout.fnmatch_lines([
        "*test_looks_up_the_order?o2-wrong_arg? FAILED*",
        'E       AssertionError: promptgauge: tool lookup_order with arguments ⊇ {"order_id": 42} was called 0 time(s)',
        "E         row:     o2-wrong_arg (*data.jsonl:3)",
        "E         variant: v2",
        "E         input:   id='o2-wrong_arg', question='Where is order 42?', order_id=42, scenario='wrong_arg', *",
        "E         output:  'Order 42 has shipped.'",
        "E         tools:   lookup_order (stopped: answer)",
        "E         tool calls (1):",
        """E           0. step 0: lookup_order({"order_id": 43}) -> '{"order_id": 43, "status": "shipped"}'""",
        'E         expected: lookup_order with arguments ⊇ {"order_id": 42}, at least once',
        "E         lookup_order was called 1 time(s), none with these arguments",
    ])
    assert "what the test evaluated" not in res.stdout.str()  # explained once, by the assertion


def test_order_times_and_sequences(pytester, agents):
    pytester.makepyfile(test_order="""
        from promptgauge.pytest_plugin import assert_tool_called, assert_tool_sequence

        ROW = {"id": "x", "question": "Where is order 7? Please refund it.", "order_id": 7, "scenario": "reorder",
               "ground_truth": "7", "expected_tool_calls": []}
        LONG = {**ROW, "id": "y", "question": "Where is order 8?", "order_id": 8, "scenario": "long"}

        def test_baseline_refunds_after_lookup(evaluate):
            result = evaluate(ROW, "v1")
            assert_tool_sequence(result, ["lookup_order", "refund"], mode="exact")
            assert_tool_called(result, "refund", args={"order_id": 7}, times=1, after="lookup_order")
            assert_tool_called(result, "lookup_order", before="refund")
            assert_tool_called(result, "escalate", times=0)

        def test_candidate_refund_after_lookup(evaluate):
            assert_tool_called(evaluate(ROW, "v2"), "refund", after="lookup_order")

        def test_candidate_in_order(evaluate):
            assert_tool_sequence(evaluate(ROW, "v2"), ["lookup_order", "refund"])

        def test_candidate_exact(evaluate):
            assert_tool_sequence(evaluate(ROW, "v2"), ["lookup_order", "refund"], mode="exact")

        def test_times(evaluate):
            result = evaluate(LONG, "v2")
            assert_tool_sequence(result, ["lookup_order"] * 12, mode="exact")
            assert_tool_called(result, "lookup_order", times=3)

        def test_never_called(evaluate):
            assert_tool_called(evaluate(ROW, "v1"), "escalate", before="refund")

        def test_bad_mode(evaluate):
            assert_tool_sequence(evaluate(ROW, "v1"), "lookup_order")
    """)
    res = run(pytester)
    res.assert_outcomes(passed=1, failed=6)
    res.stdout.fnmatch_lines([
        "E       AssertionError: promptgauge: the first call of refund (step 0) came before the first "
        "lookup_order (step 1)",
        "E         row:     x",
        "E         variant: v2",
        "E         tools:   refund → lookup_order (stopped: answer)",
        "E         tool calls (2):",
        """E           0. step 0: refund({"order_id": 7}) -> '{"refunded": true}'""",
        """E           1. step 1: lookup_order({"order_id": 7}) -> *""",
        "E         expected: refund, at least once, after the first lookup_order",
    ])
    res.stdout.fnmatch_lines([
        "E       AssertionError: promptgauge: tool sequence refund → lookup_order does not contain "
        "lookup_order → refund in order",
        "E         expected: lookup_order → refund (in order; other calls may come between)",
        "E         matched lookup_order; then no refund (expected #2)",
    ])
    res.stdout.fnmatch_lines([
        "E       AssertionError: promptgauge: tool sequence refund → lookup_order is not exactly lookup_order → refund",
        "E         first difference at call 0: refund instead of lookup_order",
    ])
    res.stdout.fnmatch_lines([
        "E       AssertionError: promptgauge: tool lookup_order was called 12 time(s)",
        "E         tool calls (12):",
        "E         expected: lookup_order, 3 time(s)",
    ])
    res.stdout.fnmatch_lines(["E       AssertionError: promptgauge: tool escalate was called 0 time(s)"])
    res.stdout.fnmatch_lines(["*promptgauge: names must be a list of tool names, e.g. ?'lookup_order', 'refund'?"])


def test_variants_without_tools(pytester: pytest.Pytester, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.replies = {"What is the capital of Peru?": "Lima"}
    b = SuiteBuilder(pytester.path, fake_openai.base_url)
    b.dataset([{"id": "pe", "question": "What is the capital of Peru?", "ground_truth": "Lima"}])
    b.prompt("a.prompty", "user:\n{{question}}\n")
    b.prompt("b.prompty", "user:\n{{question}}\n")
    b.suite(runner={"timeout": 2, "retries": 0, "cache": False})
    pytester.makepyfile(test_plain="""
        import pytest
        from promptgauge.pytest_plugin import assert_tool_called

        @pytest.mark.promptgauge()
        def test_plain(row, evaluate):
            result = evaluate(row)
            assert result.trajectory is None and result.tool_calls == [] and result.messages == []
            assert_tool_called(result, "lookup_order")
    """)
    res = run(pytester)
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines([
        "E       AssertionError: promptgauge: tool lookup_order was called 0 time(s)",
        "E         output:  'Lima'",
        "E         tool calls: none (this result has no trajectory: does the variant declare tools?)",
    ])


def test_parallel_calls_are_neither_before_nor_after_each_other():
    traj = trajectory("q", [("lookup", {"id": 1}, "r")], "done")
    traj["tool_calls"].append({"id": "p", "step": 0, "name": "notify", "arguments": {}, "arguments_raw": "{}",
                               "result": "ok", "error": None})
    traj["tool_calls"].append({"id": "q", "step": 1, "name": "audit", "arguments": {"n": 1.0, "flag": True},
                               "arguments_raw": None, "result": "ok", "error": None})
    with pytest.raises(AssertionError, match=r"\(step 0\) came in the same step as the first notify \(step 0\)"):
        assert_tool_called(traj, "lookup", before="notify")
    assert_tool_called(traj, "audit", after="notify", args={"n": 1})  # 1 == 1.0
    with pytest.raises(AssertionError, match="audit with arguments"):
        assert_tool_called(traj, "audit", args={"flag": 1})  # True != 1
    with pytest.raises(AssertionError, match="tool lookup → notify → audit is not exactly|is not exactly"):
        assert_tool_sequence(traj, ["lookup", "audit"], mode="exact")
    assert_tool_sequence(traj, ["lookup", "audit"])
