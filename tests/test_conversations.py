"""Conversation rows on the fake server: stored scoring, replay, per-turn scores, simulated users, resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_helpers import results
from conftest import run_cli

from promptgauge import api
from promptgauge.engine import Options
from promptgauge.engine.conversation import call_seed
from promptgauge.engine.simulator import OPENING
from promptgauge.suite import DEFAULT_SIMULATOR_PROMPT
from promptgauge.testing.fake_server import FakeOpenAIServer, ToolCall, ToolRule

SYSTEM = "You are a support agent."
CONV = [{"role": "system", "content": "a stored system prompt"},
        {"role": "user", "content": "u1"}, {"role": "assistant", "content": "stored a1"},
        {"role": "user", "content": "u2"}, {"role": "assistant", "content": "stored a2"},
        {"role": "user", "content": "u3"}, {"role": "assistant", "content": "stored a3"}]


def _write(root: Path, base_url: str, rows: list[dict[str, Any]], **overrides: Any) -> Path:
    (root / "chat.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\n"
                                       f"system:\n{SYSTEM}\n\nuser:\n{{{{question}}}}\n", encoding="utf-8")
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "convevals.py").write_text(
        "def answers(messages):\n    return {'score': sum(1 for m in messages if m['role'] == 'assistant')}\n",
        encoding="utf-8")
    doc: dict[str, Any] = {
        "name": "chats", "dataset": "data.jsonl",
        "targets": {"fake": {"type": "openai", "base_url": base_url, "model": "gpt-4o-mini"}},
        "variants": [{"name": "chat", "prompt": "chat.prompty", "target": "fake"}],
        "evaluators": [],
        "runner": {"concurrency": 2, "timeout": 5, "retries": 1, "backoff_base": 0.01, "backoff_max": 0.05},
    }
    doc.update(overrides)
    path = root / "promptgauge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _scores(db: Path, run_id: str) -> dict[tuple[str, str, str], tuple[Any, Any, Any]]:
    con = sqlite3.connect(db)
    out = {(r, v, e): (s, p, json.loads(d) if d else None) for r, v, e, s, p, d in con.execute(
        "SELECT row_id, variant, evaluator, score, passed, details FROM scores WHERE run_id=?", (run_id,))}
    con.close()
    return out


def test_stored_conversation_is_scored_as_it_is(tmp_path, fake_openai):
    rows = [{"id": "c1", "messages": CONV},
            {"id": "c2", "conversation": {"messages": CONV[:3]}}]  # azure-ai-evaluation's shape
    suite = _write(tmp_path, fake_openai.base_url, rows,
                   variants=[{"name": "stored", "conversation": "score"}],
                   evaluators=[{"name": "answers", "type": "convevals:answers",
                                "column_mapping": {"messages": "${target.messages}"}},
                               {"name": "stored_a", "type": "starts_with", "params": {"value": "stored a"},
                                "per_turn": True}])
    report = api.run(suite)
    assert fake_openai.request_count == 0
    got = results(report.store_path, report.run_id)
    assert got[("c1", "stored")]["output"] == "stored a3" and got[("c2", "stored")]["output"] == "stored a1"
    traj = got[("c1", "stored")]["outputs"]["trajectory"]
    assert traj["messages"] == CONV and traj["stop_reason"] == "stored"
    assert traj["turns"] == [{"turn": 0, "start": 1, "end": 3}, {"turn": 1, "start": 3, "end": 5},
                             {"turn": 2, "start": 5, "end": 7}]
    scores = _scores(report.store_path, report.run_id)
    assert scores[("c1", "stored", "answers")][0] == 3 and scores[("c2", "stored", "answers")][0] == 1
    assert scores[("c1", "stored", "stored_a")][:2] == (1.0, 1)
    assert [t["turn"] for t in scores[("c1", "stored", "stored_a")][2]["per_turn"]] == [0, 1, 2]


def test_replay_answers_each_user_turn_with_its_own_history(tmp_path, fake_openai):
    suite = _write(tmp_path, fake_openai.base_url, [{"id": "c1", "messages": CONV}],
                   evaluators=[{"name": "answers", "type": "convevals:answers",
                                "column_mapping": {"messages": "${target.messages}"}},
                               {"name": "early", "type": "regex", "params": {"pattern": "^echo: u[12]$"},
                                "per_turn": True}])
    report = api.run(suite)
    sent = [r.body["messages"] for r in fake_openai.requests]
    sys_msg = {"role": "system", "content": SYSTEM}
    assert sent == [
        [sys_msg, {"role": "user", "content": "u1"}],
        [sys_msg, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "echo: u1"},
         {"role": "user", "content": "u2"}],
        [sys_msg, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "echo: u1"},
         {"role": "user", "content": "u2"}, {"role": "assistant", "content": "echo: u2"},
         {"role": "user", "content": "u3"}],
    ]
    got = results(report.store_path, report.run_id)[("c1", "chat")]
    assert got["output"] == "echo: u3"
    traj = got["outputs"]["trajectory"]
    assert traj["messages"] == sent[2] + [{"role": "assistant", "content": "echo: u3"}]
    assert [(s["turn"], s["step"]) for s in traj["steps"]] == [(0, 0), (1, 0), (2, 0)]
    assert traj["turns"] == [{"turn": 0, "start": 1, "end": 3}, {"turn": 1, "start": 3, "end": 5},
                             {"turn": 2, "start": 5, "end": 7}]
    assert traj["stop_reason"] == "answer" and traj["mode"] == "replay"
    # per-turn: turns 0 and 1 pass, turn 2 fails -> mean 2/3, not passed; per-turn outcomes in the details
    scores = _scores(report.store_path, report.run_id)
    score, passed, details = scores[("c1", "chat", "early")]
    assert score == pytest.approx(2 / 3) and passed == 0
    assert [(t["turn"], t["score"], t["passed"]) for t in details["per_turn"]] == [(0, 1.0, True), (1, 1.0, True),
                                                                                  (2, 0.0, False)]
    assert scores[("c1", "chat", "answers")][0] == 3
    # warm re-run: no call
    fake_openai.reset_stats()
    api.run(suite)
    assert fake_openai.request_count == 0


def test_replay_with_tools_runs_the_loop_per_turn(tmp_path, fake_openai):
    from agent_helpers import AgentSuite

    agent = AgentSuite(tmp_path, fake_openai.base_url)
    agent.prompt()
    # every user turn: look the order up, then answer from the latest result
    fake_openai.script_tools(
        lambda req: [ToolCall("lookup_order", {"order_id": 42})] if req["messages"][-1]["role"] == "user" else None,
        ToolRule(has_tool_results=True, reply="Status: {tool:lookup_order}"))
    agent.rows([{"id": "c1", "messages": [{"role": "user", "content": "where is 42?"},
                                          {"role": "user", "content": "really?"},
                                          {"role": "assistant", "content": "x"},
                                          {"role": "user", "content": "thanks"}]}])
    agent.suite()
    report = api.run(agent.root / "promptgauge.yaml")
    got = results(report.store_path, report.run_id)[("c1", "agent")]
    traj = got["outputs"]["trajectory"]
    assert [m["role"] for m in traj["messages"]] == ["system", "user", "user", "assistant", "tool", "assistant",
                                                     "user", "assistant", "tool", "assistant"]
    assert [(s["turn"], s["step"], s["finish_reason"]) for s in traj["steps"]] == [
        (0, 0, "tool_calls"), (0, 1, "stop"), (1, 0, "tool_calls"), (1, 1, "stop")]
    assert [(c["turn"], c["name"]) for c in traj["tool_calls"]] == [(0, "lookup_order"), (1, "lookup_order")]
    assert traj["turns"] == [{"turn": 0, "start": 1, "end": 6}, {"turn": 1, "start": 6, "end": 10}]
    assert got["output"].startswith("Status:") and fake_openai.request_count == 4


def _simulated_responder(request: dict[str, Any]) -> str:
    """The simulator (its system prompt is the default template) counts its turns; the variant echoes."""
    messages = request["messages"]
    if messages[0]["content"].startswith("You are role-playing"):
        n = sum(1 for m in messages if m["role"] == "assistant")
        system = messages[0]["content"]
        if "goal: finish after two" in system and n == 2:
            return "Thanks, that is all. GOAL MET"
        return f"user message {n}"
    return "echo: " + next(m["content"] for m in reversed(messages) if m["role"] == "user")


SIM_ROWS = [{"id": "s1", "persona": "a customer", "goal": "finish after two"},
            {"id": "s2", "persona": "a customer", "goal": "never satisfied"}]


def _sim_suite(root: Path, base_url: str) -> Path:
    return _write(root, base_url, SIM_ROWS,
                  simulator={"target": "fake", "max_turns": 2, "stop": "GOAL MET", "parameters": {"temperature": 1}},
                  evaluators=[{"name": "answers", "type": "convevals:answers",
                               "column_mapping": {"messages": "${target.messages}"}}])


def _without_timings(traj: dict[str, Any]) -> dict[str, Any]:
    out = {**traj, "steps": [{k: v for k, v in s.items() if k not in ("latency_ms", "cached")} for s in traj["steps"]]}
    if "simulator" in traj:
        out["simulator"] = {**traj["simulator"], "steps": [{k: v for k, v in s.items() if k not in
                                                            ("latency_ms", "cached")} for s in traj["simulator"]["steps"]]}
    return out


def test_simulated_user_stops_at_the_goal_or_max_turns(tmp_path, fake_openai):
    fake_openai.responder = _simulated_responder
    report = api.run(_sim_suite(tmp_path, fake_openai.base_url), options=Options(cache=False))
    got = results(report.store_path, report.run_id)
    s1 = got[("s1", "chat")]["outputs"]["trajectory"]
    assert s1["stop_reason"] == "goal" and s1["mode"] == "simulate"
    assert s1["messages"] == [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": "user message 0"},
                              {"role": "assistant", "content": "echo: user message 0"},
                              {"role": "user", "content": "user message 1"},
                              {"role": "assistant", "content": "echo: user message 1"}]
    assert s1["simulator"]["final_message"] == "Thanks, that is all. GOAL MET"
    s2 = got[("s2", "chat")]["outputs"]["trajectory"]
    assert s2["stop_reason"] == "max_turns" and len(s2["turns"]) == 2  # asked once more after the last turn
    assert s2["simulator"]["final_message"] == "user message 2"
    # what the simulator saw: its system prompt, the opening, its own messages as assistant, the answers as user
    sim = [r.body for r in fake_openai.requests if r.body["messages"][0]["content"].startswith("You are role")]
    s1_calls = [b for b in sim if "finish after two" in b["messages"][0]["content"]]
    assert [len(b["messages"]) for b in s1_calls] == [2, 4, 6]
    assert s1_calls[2]["messages"][1:] == [
        {"role": "user", "content": OPENING}, {"role": "assistant", "content": "user message 0"},
        {"role": "user", "content": "echo: user message 0"}, {"role": "assistant", "content": "user message 1"},
        {"role": "user", "content": "echo: user message 1"}]
    assert s1_calls[0]["messages"][0]["content"] == DEFAULT_SIMULATOR_PROMPT.replace("{{persona}}", "a customer") \
        .replace("{{goal}}", "finish after two").replace("{{stop}}", "GOAL MET")
    assert [b["seed"] for b in s1_calls] == [call_seed(0, "s1", "chat", 0, turn=t, role="user") for t in range(3)]
    assert fake_openai.request_count == 3 + 2 + 3 + 2  # s1: 3 simulator + 2 variant; s2: 3 + 2
    # determinism: a fresh store without the cache gets the same conversations
    again = api.run(_sim_suite(tmp_path, fake_openai.base_url),
                    store=tmp_path / "again.db", options=Options(cache=False))
    got2 = results(again.store_path, again.run_id)
    assert {k: _without_timings(v["outputs"]["trajectory"]) for k, v in got2.items()} == \
        {k: _without_timings(v["outputs"]["trajectory"]) for k, v in got.items()}
    # warm re-run (reuse) and a run from the response cache alone: 0 calls
    fake_openai.reset_stats()
    api.run(_sim_suite(tmp_path, fake_openai.base_url))
    (tmp_path / ".promptgauge" / "promptgauge.db").unlink()
    api.run(_sim_suite(tmp_path, fake_openai.base_url))  # first fills the cache
    fake_openai.reset_stats()
    (tmp_path / ".promptgauge" / "promptgauge.db").unlink()
    cached = api.run(_sim_suite(tmp_path, fake_openai.base_url))
    assert fake_openai.request_count == 0 and cached.progress.cached == 2


def test_simulated_conversation_replays_byte_identically_from_a_cassette(tmp_path):
    cassette = tmp_path / "sim.cassette.jsonl"
    with FakeOpenAIServer(responder=_simulated_responder) as server:
        suite = _sim_suite(tmp_path, server.base_url)
        recorded = api.run(suite, options=Options(record=cassette, cache=False))
        assert server.request_count == 10
    out = run_cli("run", "--no-progress", "--replay", str(cassette), "--store", str(tmp_path / "replay.db"),
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    a = results(recorded.store_path, recorded.run_id)
    b = results(tmp_path / "replay.db")
    assert {k: _without_timings(v["outputs"]["trajectory"]) for k, v in b.items()} == \
        {k: _without_timings(v["outputs"]["trajectory"]) for k, v in a.items()}
    assert {k: v["output"] for k, v in a.items()} == {k: v["output"] for k, v in b.items()}


def test_bad_conversation_row_is_a_user_error(tmp_path, fake_openai):
    _write(tmp_path, fake_openai.base_url, [{"id": "c1", "messages": [{"role": "robot", "content": "x"}]}])
    out = run_cli("run", "--no-progress", cwd=tmp_path)
    assert out.returncode == 2 and "messages[0] is not a chat message" in out.stderr, out.stderr


def _count(db: Path) -> int:
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
def test_kill_9_mid_conversations_then_resume_equals_an_uninterrupted_run(tmp_path, fake_openai):
    fake_openai.latency = 0.01
    rows = [{"id": f"c{i}", "messages": [{"role": "user", "content": f"q{i}.{t}"} if t % 2 == 0 else
                                         {"role": "assistant", "content": "old"} for t in range(5)]}
            for i in range(30)]
    _write(tmp_path, fake_openai.base_url, rows, runner={"concurrency": 4, "timeout": 5, "retries": 1})
    db = tmp_path / ".promptgauge" / "promptgauge.db"
    proc = subprocess.Popen([sys.executable, "-m", "promptgauge", "run", "--no-progress", "--no-cache"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _count(db) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(db)
    assert 5 <= partial < 30  # killed mid-run
    run_id = sqlite3.connect(db).execute("SELECT run_id FROM runs").fetchone()[0]
    fake_openai.reset_stats()
    out = run_cli("run", "--no-progress", "--no-cache", "--resume", run_id, cwd=tmp_path)
    assert out.returncode in (0, 1), out.stderr
    assert fake_openai.request_count == 3 * (30 - partial)  # only the missing conversations ran (3 turns each)
    out = run_cli("run", "--no-progress", "--no-cache", "--store", str(tmp_path / "ref.db"), cwd=tmp_path)
    assert out.returncode in (0, 1), out.stderr

    def rows_of(path: Path, run: str | None) -> dict[str, Any]:
        got = results(path, run)
        return {k: (v["output"], v["error"], _without_timings(v["outputs"]["trajectory"])) for k, v in got.items()}

    resumed, reference = rows_of(db, run_id), rows_of(tmp_path / "ref.db", None)
    assert len(resumed) == 30 and resumed == reference


def _seeds_by_history(requests: list[Any]) -> dict[tuple[str, ...], int]:
    """Each request's seed, keyed by the texts of its messages (the call's place in its conversation)."""
    return {tuple(str(m.get("content")) for m in r.body["messages"]): r.body["seed"] for r in requests}


def test_every_turn_and_step_of_a_conversation_gets_its_own_reproducible_seed(tmp_path, fake_openai):
    from agent_helpers import AgentSuite

    agent = AgentSuite(tmp_path, fake_openai.base_url)
    agent.prompt()
    fake_openai.script_tools(
        lambda req: [ToolCall("lookup_order", {"order_id": 42})] if req["messages"][-1]["role"] == "user" else None,
        ToolRule(has_tool_results=True, reply="Status: {tool:lookup_order}"))
    agent.rows([{"id": "c1", "messages": [{"role": "user", "content": "where is 42?"},
                                          {"role": "assistant", "content": "x"},
                                          {"role": "user", "content": "and now?"}]}])
    suite = agent.suite(runner={"concurrency": 1, "timeout": 5, "retries": 0, "repeats": 2, "seed": 7})
    api.run(suite, options=Options(cache=False))
    sent = [(r.body["seed"], len(r.body["messages"])) for r in fake_openai.requests]
    # per repeat: turn 0 step 0, turn 0 step 1 (after the tool), turn 1 step 0, turn 1 step 1 -- each its own seed
    expected = {(call_seed(7, "c1", "agent", rep, turn=t, step=s), n)
                for rep in (0, 1) for t, s, n in ((0, 0, 2), (0, 1, 4), (1, 0, 6), (1, 1, 8))}
    assert len(sent) == 8 and set(sent) == expected and len({s for s, _ in sent}) == 8
    got = results(tmp_path / ".promptgauge" / "promptgauge.db")
    assert [(s["turn"], s["step"]) for s in got[("c1", "agent")]["outputs"]["trajectory"]["steps"]] == [
        (0, 0), (0, 1), (1, 0), (1, 1)]
    # reproducible: the same run seed gives the same seeds to the same calls; another run seed, other seeds
    first = _seeds_by_history(fake_openai.requests)
    fake_openai.reset_stats()
    api.run(suite, store=tmp_path / "again.db", options=Options(cache=False))
    assert _seeds_by_history(fake_openai.requests) == first
    fake_openai.reset_stats()
    api.run(suite, store=tmp_path / "other.db", seed=8, options=Options(cache=False))
    other = _seeds_by_history(fake_openai.requests)
    assert other.keys() == first.keys() and not set(other.values()) & set(first.values())


def test_the_simulated_users_seeds_derive_from_the_run_seed(tmp_path, fake_openai):
    fake_openai.responder = _simulated_responder
    suite = _write(tmp_path, fake_openai.base_url, SIM_ROWS[:1], runner={"concurrency": 1, "seed": 5},
                   simulator={"target": "fake", "max_turns": 2, "stop": "GOAL MET"})
    api.run(suite, options=Options(cache=False))
    sim = [r.body for r in fake_openai.requests if r.body["messages"][0]["content"].startswith("You are role")]
    chat = [r.body for r in fake_openai.requests if r.body["messages"][0]["content"] == SYSTEM]
    assert [b["seed"] for b in sim] == [call_seed(5, "s1", "chat", 0, turn=t, role="user") for t in range(3)]
    assert [b["seed"] for b in chat] == [call_seed(5, "s1", "chat", 0, turn=t) for t in range(2)]
    # simulator.seed sets the simulator's base; runner.seeds: fixed gives every call that one seed
    fake_openai.reset_stats()
    suite = _write(tmp_path, fake_openai.base_url, SIM_ROWS[:1], runner={"concurrency": 1, "seeds": "fixed"},
                   simulator={"target": "fake", "max_turns": 2, "stop": "GOAL MET", "seed": 3})
    api.run(suite, store=tmp_path / "fixed.db", options=Options(cache=False))
    assert [r.body["seed"] for r in fake_openai.requests
            if r.body["messages"][0]["content"].startswith("You are role")] == [3, 3, 3]


def test_dry_run_counts_every_turn_and_the_simulated_users_calls(tmp_path, fake_openai):
    fake_openai.responder = _simulated_responder
    rows = [{"id": "c1", "messages": CONV}, {"id": "c2", "conversation": {"messages": CONV[:3]}},
            {"id": "s1", "persona": "a customer", "goal": "finish after two"}]
    suite = _write(tmp_path, fake_openai.base_url, rows,
                   simulator={"target": "fake", "max_turns": 2, "stop": "GOAL MET",
                              "parameters": {"max_tokens": 10}},
                   gate={"prices": {"gpt-4o-mini": {"input": 1.0, "output": 2.0}}})
    est = api.dry_run(suite)
    chat = est.variants[0]
    # c1: 3 user turns, c2: 1, s1: at most max_turns = 2 answers; the simulator: at most max_turns + 1 messages
    assert (chat["calls"], chat["cached"], chat["conversations"], chat["turns"]) == (3 + 1 + 2, 0, 2, 6)
    assert (chat["simulated"], chat["simulator_calls"], chat["simulator_completion_tokens"]) == (1, 3, 30)
    assert est.calls == 9
    assert chat["cost_usd"] == pytest.approx((chat["prompt_tokens"] + chat["simulator_prompt_tokens"]) * 1e-6
                                             + (chat["completion_tokens"] + 30) * 2e-6)
    out = run_cli("run", "--dry-run", cwd=tmp_path)
    assert out.returncode == 0 and "replays 2 conversations" in out.stdout and "simulated user on 1 rows" in \
        out.stdout, out.stdout + out.stderr
    assert fake_openai.request_count == 0
    # after a run, the replayed conversations' turns are in the response cache: followed turn by turn
    api.run(suite)
    warm = api.dry_run(suite).variants[0]
    assert (warm["calls"], warm["cached"], warm["simulator_calls"]) == (2, 4, 3)
    # a stored conversation (conversation: score) makes no call
    suite = _write(tmp_path, fake_openai.base_url, rows[:2], variants=[{"name": "stored", "conversation": "score"}])
    assert api.dry_run(suite).calls == 0


def test_a_score_variant_never_simulates_a_goal_row(tmp_path, fake_openai):
    fake_openai.responder = _simulated_responder
    rows = [{"id": "c1", "messages": CONV}, {"id": "s1", "persona": "a customer", "goal": "finish after two"}]
    suite = _write(tmp_path, fake_openai.base_url, rows,
                   variants=[{"name": "chat", "prompt": "chat.prompty", "target": "fake"},
                             {"name": "stored", "conversation": "score"}], baseline="stored",
                   simulator={"target": "fake", "max_turns": 2},
                   evaluators=[{"name": "answers", "type": "convevals:answers",
                                "column_mapping": {"messages": "${target.messages}"}}])
    report = api.run(suite)
    got = results(report.store_path, report.run_id)
    assert got[("s1", "stored")]["error"] == ("variant 'stored' scores stored conversations (conversation: score), "
                                              "but this row has no 'messages'")
    assert got[("c1", "stored")]["output"] == "stored a3" and got[("s1", "chat")]["error"] is None
    assert got[("s1", "chat")]["outputs"]["trajectory"]["mode"] == "simulate"
