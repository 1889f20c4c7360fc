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
from agent_helpers import results
from conftest import REPO, run_cli

from promptgauge import api

EXAMPLE = REPO / "examples" / "agent"


def support_model(request: dict) -> list | str:
    """The fake server's agent: careful (lookup, then refund if refundable) when the refund tool says so."""
    messages = request["messages"]
    question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    order = int(re.search(r"\b(\d{4})\b", question).group(1))
    refund = "refund" in question.lower() or "money back" in question.lower()
    tools = {t["function"]["name"]: t["function"] for t in request["tools"]}
    careful = "look the order up first" in tools["refund_order"]["description"].lower()
    called = [c["function"]["name"] for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    last = next((m["content"] for m in reversed(messages) if m["role"] == "tool"), "")
    if not refund or careful:
        if not called:
            return [("lookup_order", {"order_id": order})]
        if refund and called == ["lookup_order"] and json.loads(last).get("refundable"):
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
    doc["baseline"] = baseline
    doc["gate"]["variants"] = [gated]
    (root / "promptgauge.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "promptgauge.yaml"


def test_the_careful_agent_passes_the_gate_against_the_baseline(tmp_path, fake_openai):
    fake_openai.script_tools(support_model)
    suite = _example_on(tmp_path / "agent", fake_openai.base_url, baseline="baseline", gated="careful")
    report = api.run(suite)
    metrics = {v: report.summary["variants"][v]["metrics"] for v in ("baseline", "careful")}
    # by hand: 4 lookup rows pass for both; 6 refund and 2 non-refundable rows pass only when careful
    assert metrics["baseline"]["tool_trajectory"]["pass_rate"] == pytest.approx(4 / 12)
    assert metrics["careful"]["tool_trajectory"]["pass_rate"] == 1.0
    assert metrics["baseline"]["tool_args_valid"]["pass_rate"] == metrics["careful"]["tool_args_valid"]["pass_rate"] == 1
    gate = report.summary["gate"]
    assert gate["passed"] is True and gate["variants"] == ["careful"]
    assert {r["rule"]: r["passed"] for r in gate["rules"]} == {
        "tool_trajectory.pass_rate >= 0.5": True, "tool_args_valid.pass_rate >= 0.9": True, "error_rate <= 0.05": True,
        "tool_trajectory: no_regression(max_drop=0.1, alpha=0.05)": True}
    improvement = next(r for r in gate["rules"] if r["kind"] == "no_regression")
    assert improvement["value"] == pytest.approx(1 - 4 / 12)
    rows = results(report.store_path, report.run_id)
    careful = rows[("refund-1002", "careful")]["outputs"]["trajectory"]
    assert [(c["name"], c["error"]) for c in careful["tool_calls"]] == [("lookup_order", None), ("refund_order", None)]
    assert json.loads(careful["tool_calls"][1]["result"]) == {"order_id": 1002, "refunded": 89.5,
                                                              "reason": "customer request"}
    hasty = rows[("norefund-1005", "baseline")]["outputs"]["trajectory"]["tool_calls"]
    assert [(c["name"], c["error"]) for c in hasty] == [
        ("refund_order", "tool raised ValueError: order 1005 (delivered) cannot be refunded")]


def test_the_hasty_agent_fails_the_gate_against_the_careful_one(tmp_path, fake_openai):
    fake_openai.script_tools(support_model)
    _example_on(tmp_path / "agent", fake_openai.base_url, baseline="careful", gated="baseline")
    out = run_cli("run", "--no-progress", cwd=tmp_path / "agent")
    assert out.returncode == 1, out.stdout + out.stderr
    summary = json.loads(next((tmp_path / "agent" / "reports").glob("*/summary.json")).read_text())
    rules = {r["kind"] + ":" + r["metric"]: r for r in summary["gate"]["rules"]}
    threshold, regression = rules["threshold:tool_trajectory.pass_rate"], rules["no_regression:tool_trajectory.pass_rate"]
    assert threshold["passed"] is False and threshold["value"] == pytest.approx(4 / 12)
    # 8 rows flip pass -> fail: exact McNemar, one-sided p = 0.5 ** 8
    assert regression["passed"] is False and regression["p_value"] == pytest.approx(0.5 ** 8)
    assert regression["value"] == pytest.approx(4 / 12 - 1)
    assert rules["threshold:error_rate"]["passed"] is True and rules["threshold:tool_args_valid.pass_rate"]["passed"]


@pytest.mark.slow
def test_the_example_runs_offline_on_the_embedded_model(tmp_path):
    pytest.importorskip("llama_cpp")
    shutil.copytree(EXAMPLE, tmp_path / "agent", ignore=shutil.ignore_patterns(".promptgauge", "reports",
                                                                              "__pycache__"))
    out = run_cli("run", "--no-progress", "--limit", "3", cwd=tmp_path / "agent", timeout=900)
    assert out.returncode in (0, 1), out.stdout + out.stderr  # the gate's verdict is the model's business
    rows = results(tmp_path / "agent" / ".promptgauge" / "promptgauge.db")
    assert len(rows) == 6
    for (row_id, variant), row in rows.items():
        assert row["error"] is None, (row_id, variant, row["error"])
        trajectory = row["outputs"]["trajectory"]
        assert trajectory["stop_reason"] in ("answer", "max_steps")
        assert 1 <= len(trajectory["steps"]) <= 3  # max_steps 2, then one answer call
        assert trajectory["messages"][:2] == [m for m in trajectory["messages"][:2] if m["role"] in ("system", "user")]
        for call in trajectory["tool_calls"]:  # grammar-constrained: well-formed calls of declared tools
            assert call["name"] in ("lookup_order", "refund_order")
            assert isinstance(call["arguments"], dict) and isinstance(call["arguments"]["order_id"], int)
        assert isinstance(row["output"], str)
        assert row["outputs"]["tool_definitions"][0]["function"]["name"] == "lookup_order"
