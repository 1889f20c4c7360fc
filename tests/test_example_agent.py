"""examples/agent: two support agents differing in a tool description, gated with tool_trajectory.

On the fake server (exact): a scripted model that looks an order up before refunding it only when
the refund tool's description tells it to. On the embedded model (slow): the example as shipped,
shapes only.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from agent_helpers import results, scores
from conftest import REPO, run_cli

from promptgauge import api

EXAMPLE = REPO / "examples" / "agent"


def customer(request: dict) -> str:
    """The fake server's simulated customer (the requests without tools): asks for a refund of its goal's order,
    then says the goal is met."""
    messages = request["messages"]
    order = re.search(r"\b(\d{4})\b", messages[0]["content"]).group(1)
    if not any(m["role"] == "assistant" for m in messages):
        return f"Refund order {order}, the cups are chipped."
    return "Thanks, that is clear. GOAL MET"


def support_model(request: dict) -> list | str:
    """The fake server's agent, turn by turn: careful (look the order up, refund only if refundable) when the
    refund tool says so, hasty (refund at once) otherwise; questions about an order get a lookup."""
    messages = request["messages"]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    question = messages[last_user]["content"]
    order = int(re.search(r"\b(\d{4})\b", question).group(1))
    refund = "refund" in question.lower() or "money back" in question.lower()
    tools = {t["function"]["name"]: t["function"] for t in request["tools"]}
    careful = "look the order up first" in tools["refund_order"]["description"].lower()
    turn = messages[last_user + 1:]  # this turn's calls and results
    called = [c["function"]["name"] for m in turn if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    last = next((m["content"] for m in reversed(turn) if m["role"] == "tool"), "")
    lookups = [json.loads(m["content"]) for m in messages if m["role"] == "tool" and m["content"].startswith("{")
               and json.loads(m["content"]).get("order_id") == order and "refundable" in json.loads(m["content"])]
    if not refund:
        return [("lookup_order", {"order_id": order})] if not called else f"Order {order}: {last}"
    if careful:
        if not lookups:
            return [("lookup_order", {"order_id": order})]
        if "refund_order" not in called and lookups[-1]["refundable"]:
            return [("refund_order", {"order_id": order, "reason": "customer request"})]
        return f"Order {order}: {last}"
    return [("refund_order", {"order_id": order, "reason": "customer request"})] if not called else f"Done: {last}"


def _example_on(root: Path, base_url: str, *, baseline: str, gated: str) -> Path:
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".promptgauge", "reports", "__pycache__"))
    doc = yaml.safe_load((root / "promptgauge.yaml").read_text())
    doc["targets"] = {"fake": {"type": "openai", "base_url": base_url, "model": "gpt-4o-mini"}}
    for v in doc["variants"]:  # the loop's own settings: no limits needed for a model that answers
        v["target"] = "fake"
        v.pop("max_steps", None)
        v.pop("on_max_steps", None)
    doc["simulator"]["target"] = "fake"
    doc["baseline"] = baseline
    doc["gate"]["variants"] = [gated]
    (root / "promptgauge.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "promptgauge.yaml"


def test_the_careful_agent_passes_the_gate_against_the_baseline(tmp_path, fake_openai):
    fake_openai.script_tools(support_model)
    fake_openai.responder = customer
    suite = _example_on(tmp_path / "agent", fake_openai.base_url, baseline="baseline", gated="careful")
    report = api.run(suite)
    metrics = {v: report.summary["variants"][v]["metrics"] for v in ("baseline", "careful")}
    # by hand: 4 lookup rows and the chat-1002 conversation (lookup; then refund) pass for both; 6 refund and
    # 2 non-refundable rows, the chat-1006 conversation (refund, then a lookup of another order) and the simulated
    # customer of sim-1005 (a refund it cannot have) pass only when careful
    assert metrics["baseline"]["tool_trajectory"]["pass_rate"] == pytest.approx(5 / 15)
    assert metrics["careful"]["tool_trajectory"]["pass_rate"] == 1.0
    assert metrics["baseline"]["tool_args_valid"]["pass_rate"] == metrics["careful"]["tool_args_valid"]["pass_rate"] == 1
    gate = report.summary["gate"]
    assert gate["passed"] is True and gate["variants"] == ["careful"]
    assert {r["rule"]: r["passed"] for r in gate["rules"]} == {
        "tool_trajectory.pass_rate >= 0.5": True, "tool_args_valid.pass_rate >= 0.9": True, "error_rate <= 0.05": True,
        "tool_trajectory: no_regression(max_drop=0.1, alpha=0.05)": True}
    improvement = next(r for r in gate["rules"] if r["kind"] == "no_regression")
    assert improvement["value"] == pytest.approx(1 - 5 / 15)
    rows = results(report.store_path, report.run_id)
    # the conversations: replayed turn by turn, each turn with its own tool loop
    chat = rows[("chat-1006", "careful")]["outputs"]["trajectory"]
    assert chat["mode"] == "replay" and [t["turn"] for t in chat["turns"]] == [0, 1]
    assert [(c["turn"], c["name"], c["arguments"]["order_id"]) for c in chat["tool_calls"]] == [
        (0, "lookup_order", 1006), (0, "refund_order", 1006), (1, "lookup_order", 1010)]
    hasty_chat = rows[("chat-1006", "baseline")]["outputs"]["trajectory"]["tool_calls"]
    assert [(c["turn"], c["name"]) for c in hasty_chat] == [(0, "refund_order"), (1, "lookup_order")]
    sim = rows[("sim-1005", "careful")]["outputs"]["trajectory"]
    assert sim["mode"] == "simulate" and sim["stop_reason"] == "goal"
    assert sim["messages"][1] == {"role": "user", "content": "Refund order 1005, the cups are chipped."}
    assert [c["name"] for c in sim["tool_calls"]] == ["lookup_order"]
    assert sim["simulator"]["final_message"] == "Thanks, that is clear. GOAL MET"
    # every turn got an answer: the per-turn evaluator's verdicts
    answered = scores(report.store_path, report.run_id)
    assert answered[("chat-1006", "careful", "answered")]["details"]["per_turn"][1]["passed"] is True
    assert len(answered[("chat-1006", "careful", "answered")]["details"]["per_turn"]) == 2
    careful = rows[("refund-1002", "careful")]["outputs"]["trajectory"]
    assert [(c["name"], c["error"]) for c in careful["tool_calls"]] == [("lookup_order", None), ("refund_order", None)]
    assert json.loads(careful["tool_calls"][1]["result"]) == {"order_id": 1002, "refunded": 89.5,
                                                              "reason": "customer request"}
    hasty = rows[("norefund-1005", "baseline")]["outputs"]["trajectory"]["tool_calls"]
    assert [(c["name"], c["error"]) for c in hasty] == [
        ("refund_order", "tool raised ValueError: order 1005 (delivered) cannot be refunded")]


def test_the_hasty_agent_fails_the_gate_against_the_careful_one(tmp_path, fake_openai):
    fake_openai.script_tools(support_model)
    fake_openai.responder = customer
    _example_on(tmp_path / "agent", fake_openai.base_url, baseline="careful", gated="baseline")
    out = run_cli("run", "--no-progress", cwd=tmp_path / "agent")
    assert out.returncode == 1, out.stdout + out.stderr
    summary = json.loads(next((tmp_path / "agent" / "reports").glob("*/summary.json")).read_text())
    rules = {r["kind"] + ":" + r["metric"]: r for r in summary["gate"]["rules"]}
    threshold, regression = rules["threshold:tool_trajectory.pass_rate"], rules["no_regression:tool_trajectory.pass_rate"]
    assert threshold["passed"] is False and threshold["value"] == pytest.approx(5 / 15)
    # 10 rows flip pass -> fail: exact McNemar, one-sided p = 0.5 ** 10
    assert regression["passed"] is False and regression["p_value"] == pytest.approx(0.5 ** 10)
    assert regression["value"] == pytest.approx(5 / 15 - 1)
    assert rules["threshold:error_rate"]["passed"] is True and rules["threshold:tool_args_valid.pass_rate"]["passed"]


@pytest.mark.slow
def test_the_example_runs_offline_on_the_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp")
    shutil.copytree(EXAMPLE, tmp_path / "agent", ignore=shutil.ignore_patterns(".promptgauge", "reports",
                                                                              "__pycache__"))
    # the first 3 rows: a replayed conversation, a simulated customer, a single question
    # one llama.cpp thread: the same outputs, and far faster on a busy machine (no spinning threads)
    out = run_cli("run", "--no-progress", "--limit", "3", cwd=tmp_path / "agent", timeout=1800,
                  env={"PROMPTGAUGE_LOCAL_THREADS": "1"})
    assert out.returncode in (0, 1), out.stdout + out.stderr  # the gate's verdict is the model's business
    rows = results(tmp_path / "agent" / ".promptgauge" / "promptgauge.db")
    assert len(rows) == 6
    for (row_id, variant), row in rows.items():
        assert row["error"] is None, (row_id, variant, row["error"])
        trajectory = row["outputs"]["trajectory"]
        turns = trajectory.get("turns") or [None]
        assert trajectory["stop_reason"] in ("answer", "max_steps", "goal", "max_turns")
        assert 1 <= len(trajectory["steps"]) <= 2 * len(turns)  # per turn: max_steps 1, then one answer call
        assert trajectory["messages"][0]["role"] == "system" and trajectory["messages"][1]["role"] == "user"
        for call in trajectory["tool_calls"]:  # grammar-constrained: well-formed calls of declared tools
            assert call["name"] in ("lookup_order", "refund_order")
            assert isinstance(call["arguments"], dict) and isinstance(call["arguments"]["order_id"], int)
        assert isinstance(row["output"], str)
        assert row["outputs"]["tool_definitions"][0]["function"]["name"] == "lookup_order"
    assert rows[("chat-1006", "baseline")]["outputs"]["trajectory"]["mode"] == "replay"
    assert len(rows[("chat-1006", "baseline")]["outputs"]["trajectory"]["turns"]) == 2
    simulated = rows[("sim-1005", "careful")]["outputs"]["trajectory"]
    assert simulated["mode"] == "simulate" and 1 <= len(simulated["turns"]) <= 2  # max_turns 2
    assert simulated["simulator"]["steps"]  # the simulated customer's calls went through the engine


def test_the_readme_shows_the_example_suite_as_shipped():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "```yaml\n" + (EXAMPLE / "promptgauge.yaml").read_text(encoding="utf-8") + "```" in readme
