"""Tool loops on the engine: cache, warm re-runs, cassettes, kill -9 and resume, evaluators, results files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from agent_helpers import AgentSuite, results, without_timings
from conftest import run_cli

from promptgauge import api
from promptgauge.engine import Options
from promptgauge.errors import EvaluatorError
from promptgauge.results import load_results, load_results_file, results_to_json, write_results_file
from promptgauge.store import Store
from promptgauge.targets import Completion
from promptgauge.testing.fake_server import FakeOpenAIServer

pytest_plugins = ["pytester"]

# Two steps per row: a lookup of the row's order, then an answer quoting it.
BODY = ("system:\nYou are a support agent.\nTOOL: lookup_order {\"order_id\": {{order}}}\n"
        "REPLY: Status: {tool:lookup_order}\n\nuser:\n{{question}}\n")


def _rows(n):
    return [{"id": f"r{i}", "order": i, "question": f"Where is order {i}?",
             "expected_tool_calls": [{"name": "lookup_order", "arguments": {"order_id": i}}]} for i in range(n)]


@pytest.fixture
def agent(tmp_path, fake_openai):
    suite = AgentSuite(tmp_path, fake_openai.base_url)
    suite.prompt(BODY)
    suite.rows(_rows(4))
    suite.suite(evaluators=[{"name": "tool_trajectory"}, {"name": "tool_args_valid"}])
    return suite


def _trajectories(rows):
    return {k: without_timings(v["outputs"]["trajectory"]) for k, v in rows.items()}


def test_warm_rerun_makes_no_model_call(agent, fake_openai):
    first = api.run(agent.root / "promptgauge.yaml")
    assert fake_openai.request_count == 8  # 4 rows x 2 steps
    before = results(first.store_path, first.run_id)
    assert all(r["outputs"]["trajectory"]["stop_reason"] == "answer" for r in before.values())
    fake_openai.reset_stats()
    second = api.run(agent.root / "promptgauge.yaml")
    assert fake_openai.request_count == 0 and second.progress.reused == 4
    # Without the store, every step is answered from the response cache: still no call.
    (agent.root / ".promptgauge" / "promptgauge.db").unlink()
    third = api.run(agent.root / "promptgauge.yaml")
    assert fake_openai.request_count == 0 and third.progress.cached == 4 and third.progress.reused == 0
    after = results(third.store_path, third.run_id)
    assert _trajectories(after) == _trajectories(before)
    assert all(s["cached"] for r in after.values() for s in r["outputs"]["trajectory"]["steps"])
    assert [r["output"] for r in after.values()] == [r["output"] for r in before.values()]


def test_a_changed_tool_changes_the_variant(agent, fake_openai):
    api.run(agent.root / "promptgauge.yaml")
    code = (agent.root / f"{agent.module}.py").read_text()
    (agent.root / f"{agent.module}.py").write_text(code + "\n# changed\n")
    fake_openai.reset_stats()
    report = api.run(agent.root / "promptgauge.yaml")
    # not reused (the tool's file changed); step 0 comes from the cache, step 1 too (same results)
    assert report.progress.reused == 0 and report.progress.cached == 4 and fake_openai.request_count == 0


def test_cassette_records_the_loop_and_replays_it_offline(agent, tmp_path):
    with FakeOpenAIServer(seed=0) as server:
        agent.base_url = server.base_url
        agent.suite(evaluators=[{"name": "tool_trajectory"}])
        recorded = api.run(agent.root / "promptgauge.yaml", options=Options(record=tmp_path / "agent.cassette.jsonl",
                                                                             cache=False))
        assert server.request_count == 8
    lines = [json.loads(x) for x in (tmp_path / "agent.cassette.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and sum(1 for x in lines if any(m["role"] == "tool" for m in x["request"]["messages"])) == 4
    # the server is gone: the replay runs the whole loop from the cassette (and the tools again)
    out = run_cli("run", "--no-progress", "--replay", str(tmp_path / "agent.cassette.jsonl"), "--store",
                  str(tmp_path / "replay.db"), cwd=agent.root)
    assert out.returncode == 0, out.stderr
    assert _trajectories(results(tmp_path / "replay.db")) == _trajectories(results(recorded.store_path,
                                                                                     recorded.run_id))


def test_trajectory_outputs_for_evaluators(agent, fake_openai):
    (agent.root / "evaluators").mkdir()
    (agent.root / "evaluators" / "shapes.py").write_text(
        "def shapes(messages, tool_calls, tool_definitions):\n"
        "    return {'shapes': len(messages) * 100 + len(tool_calls) * 10 + len(tool_definitions)}\n")
    agent.suite(evaluators=[
        {"name": "shapes", "column_mapping": {"messages": "${target.messages}", "tool_calls": "${target.tool_calls}",
                                              "tool_definitions": "${target.tool_definitions}"}},
        {"name": "tool_trajectory"}, {"name": "tool_args_valid"}])
    report = api.run(agent.root / "promptgauge.yaml")
    metrics = report.summary["variants"]["agent"]["metrics"]
    assert metrics["shapes"]["mean"] == 5 * 100 + 1 * 10 + 2  # 5 messages, 1 call, 2 tool definitions
    assert metrics["tool_trajectory"]["pass_rate"] == 1.0 and metrics["tool_args_valid"]["pass_rate"] == 1.0


def test_a_variant_without_tools_says_why_it_has_no_trajectory(agent, fake_openai):
    (agent.root / "plain.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\nuser:\n{{question}}\n")
    agent.suite(variants=[{"name": "agent", "prompt": "agent.prompty", "target": "fake"},
                          {"name": "plain", "prompt": "plain.prompty", "target": "fake"}],
                evaluators=[{"name": "tool_trajectory"}])
    # An evaluator that fails on each of a variant's first rows stops the run with the reason (exit 2).
    with pytest.raises(EvaluatorError) as err:
        api.run(agent.root / "promptgauge.yaml")
    assert "evaluator 'tool_trajectory' failed on each of the first" in str(err.value)
    assert ("KeyError: '${target.trajectory} is not available for this row: only a variant whose prompt "
            "declares tools (a tool loop) has it" in str(err.value))


def test_results_file_round_trips_the_trajectory(agent, tmp_path):
    report = api.run(agent.root / "promptgauge.yaml")
    store = Store(report.store_path)
    try:
        side = load_results(store, report.run_id, "agent")
        path = write_results_file(side, tmp_path / "baseline.json")
    finally:
        store.close()
    doc = json.loads(path.read_text())
    stored = results(report.store_path, report.run_id)
    assert {r["row_id"]: r["trajectory"] for r in doc["rows"]} == {
        k[0]: v["outputs"]["trajectory"] for k, v in stored.items()}
    again = load_results_file(path)
    assert results_to_json(again)["rows"] == doc["rows"]


def test_plain_completions_keep_their_cache_entries():
    assert "tool_calls" not in Completion(text="Paris", prompt_tokens=3).to_dict()
    assert Completion.from_dict(Completion(text="Paris").to_dict()) == Completion(text="Paris")
    with_calls = Completion(text="", tool_calls=[{"id": "c", "type": "function",
                                                  "function": {"name": "f", "arguments": "{}"}}])
    assert Completion.from_dict(with_calls.to_dict()) == with_calls
    assert with_calls.message == {"role": "assistant", "content": None, "tool_calls": with_calls.tool_calls}


def test_the_cost_budget_stops_between_steps_and_resume_finishes(agent, fake_openai):
    # 1 USD per prompt token: a step costs ~50 USD, a loop ~110 USD
    agent.suite(evaluators=[{"name": "tool_trajectory"}], gate={"prices": {"gpt-4o-mini": {"input": 1e6, "output": 0}}},
                runner={"concurrency": 1, "timeout": 5, "retries": 0})
    stopped = api.run(agent.root / "promptgauge.yaml", options=Options(max_cost=250))
    assert stopped.status == "budget"
    partial = results(stopped.store_path, stopped.run_id)
    assert 0 < len(partial) < 4 and fake_openai.request_count in (2 * len(partial), 2 * len(partial) + 1)
    assert sum(r["outputs"]["cost_usd"] for r in partial.values()) <= 250
    assert all(r["outputs"]["trajectory"]["stop_reason"] == "answer" and len(r["outputs"]["trajectory"]["steps"]) == 2
               for r in partial.values())  # a loop cut by the budget is not stored: --resume runs it whole
    done = api.run(agent.root / "promptgauge.yaml", resume=True, run_id=stopped.run_id,
                   options=Options(max_cost=10_000))
    assert done.status == "finished" and len(results(done.store_path, done.run_id)) == 4


def test_dry_run_counts_the_first_call_of_each_loop(agent):
    estimate = api.dry_run(agent.root / "promptgauge.yaml")
    assert estimate.variants[0]["calls"] == 4 and estimate.variants[0]["max_calls"] == 4 * 8


def test_pytest_evaluate_runs_the_tool_loop(pytester, fake_openai):
    suite = AgentSuite(pytester.path, fake_openai.base_url)
    suite.prompt(BODY)
    suite.rows(_rows(2))
    suite.suite(evaluators=[{"name": "tool_trajectory"}])
    pytester.makepyfile(test_agent="""
        import pytest

        @pytest.mark.promptgauge()
        def test_agent(row, evaluate):
            result = evaluate(row)
            trajectory = result.outputs["trajectory"]
            assert [c["name"] for c in trajectory["tool_calls"]] == ["lookup_order"]
            assert trajectory["stop_reason"] == "answer" and result.output.startswith("Status: ")
            assert result.tool_trajectory == 1.0
    """)
    pytester.makeini("[pytest]\npromptgauge_baselines = off\n")  # no snapshot to compare with here
    outcome = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert outcome.ret == pytest.ExitCode.OK, outcome.stdout.str()
    outcome.assert_outcomes(passed=2)
    assert fake_openai.request_count == 4


def _count(db):
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=5)
        n = con.execute("SELECT count(*) FROM results").fetchone()[0]
        con.close()
        return n
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(agent, fake_openai, tmp_path):
    fake_openai.latency = 0.02
    agent.rows(_rows(40))
    agent.suite(evaluators=[{"name": "tool_trajectory"}],
                runner={"concurrency": 4, "timeout": 5, "retries": 1, "repeats": 2})
    db = agent.root / ".promptgauge" / "promptgauge.db"
    proc = subprocess.Popen([sys.executable, "-m", "promptgauge", "run", "--no-progress", "--no-cache"],
                            cwd=agent.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _count(db) < 10 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(db)
    assert 10 <= partial < 80  # killed mid-run
    run_id = sqlite3.connect(db).execute("SELECT run_id FROM runs").fetchone()[0]
    fake_openai.reset_stats()
    out = run_cli("run", "--no-progress", "--no-cache", "--resume", run_id, cwd=agent.root)
    assert out.returncode in (0, 1), out.stderr
    assert fake_openai.request_count == 2 * 2 * 40 - 2 * partial  # only the missing loops ran (2 steps each)
    resumed = sqlite3.connect(db).execute(
        "SELECT row_id, variant, repeat, output, error FROM results WHERE run_id=?", (run_id,)).fetchall()
    out = run_cli("run", "--no-progress", "--no-cache", "--store", str(tmp_path / "ref.db"), cwd=agent.root)
    assert out.returncode in (0, 1), out.stderr
    reference = sqlite3.connect(tmp_path / "ref.db").execute(
        "SELECT row_id, variant, repeat, output, error FROM results").fetchall()
    assert len(resumed) == len({r[:3] for r in resumed}) == 80
    assert sorted(resumed) == sorted(reference)
    traj = {(r, v, p): without_timings(json.loads(o)["trajectory"]) for r, v, p, o in sqlite3.connect(db).execute(
        "SELECT row_id, variant, repeat, outputs FROM results WHERE run_id=?", (run_id,))}
    ref = {(r, v, p): without_timings(json.loads(o)["trajectory"]) for r, v, p, o in sqlite3.connect(
        tmp_path / "ref.db").execute("SELECT row_id, variant, repeat, outputs FROM results")}
    assert traj == ref
