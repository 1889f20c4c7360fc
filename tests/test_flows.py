"""promptflow DAG and flex flows as targets, run in process (no workers, no trace service)."""

from __future__ import annotations

import shutil
import socket
import sqlite3
from pathlib import Path

import pytest
from conftest import run_cli

from promptgauge import api
from promptgauge.errors import TargetError

FLOWS = Path(__file__).parent / "flows"


def _rows(root):
    db = sqlite3.connect(root / ".promptgauge" / "promptgauge.db")
    return {(r[0], r[1]): r for r in db.execute("SELECT row_id, variant, output, error FROM results")}


@pytest.fixture
def flows(builder):
    for name in ("dag", "flex"):
        shutil.copytree(FLOWS / name, builder.root / name)
    return builder


def _suite(b, **targets):
    b.suite(targets={"fake": {"type": "openai", "base_url": b.base_url, "model": "gpt-4o-mini"}, **targets},
            variants=[{"name": n, "target": n} for n in targets], baseline=next(iter(targets)),
            evaluators=[{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}],
            gate={"rules": []}, runner={"concurrency": 4, "timeout": 30, "retries": 0})


@pytest.mark.slow
def test_dag_and_flex_flows_run_in_process(flows, fake_openai):
    conn = {"open_ai_connection": "fake"}
    _suite(flows, dag0={"type": "flow", "flow": "dag", "connections": conn},
           dag1={"type": "flow", "flow": "dag/flow.dag.yaml", "variant": "${chat.variant_1}", "connections": conn},
           flex={"type": "flow", "flow": "flex", "init": {"prefix": "Q:"}})
    out = run_cli("run", "--no-progress", cwd=flows.root)
    assert out.returncode == 0, out.stderr
    rows = _rows(flows.root)
    assert rows[("fr", "dag0")][2] == "PARIS"  # llm node on the fake server, then the python node
    assert rows[("fr", "dag1")][2] == "TERSE"  # node variant_1's prompt
    assert rows[("fr", "flex")][2] == "Q: What is the capital of France?"
    assert not any(r[3] for r in rows.values())
    # Nothing of promptflow outlives the run: no trace service on its port.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 23333)) != 0


def test_flow_errors_are_clear(flows, tmp_path):
    (flows.root / "odd.yaml").write_text("steps: []\n")
    _suite(flows, odd={"type": "flow", "flow": "odd.yaml"})
    with pytest.raises(TargetError, match="unknown flow type: a flow file has 'nodes:'"):
        api.run(flows.root / "promptgauge.yaml")
    dag = (flows.root / "dag" / "flow.dag.yaml").read_text()
    (flows.root / "dag" / "flow.dag.yaml").write_text(dag.replace("${chat.output}", "${chatty.output}"))
    _suite(flows, d={"type": "flow", "flow": "dag", "connections": {"open_ai_connection": "fake"}})
    with pytest.raises(TargetError, match="node 'shout' references node 'chatty', which the flow does not have"):
        api.run(flows.root / "promptgauge.yaml")
    (flows.root / "dag" / "flow.dag.yaml").write_text(dag.replace("path: shout.py", "path: gone.py"))
    with pytest.raises(TargetError, match="node 'shout' uses missing file gone.py"):
        api.run(flows.root / "promptgauge.yaml")
    (flows.root / "dag" / "flow.dag.yaml").write_text(
        dag.replace("    type: code\n    path: shout.py", "    type: package\n    tool: no_such_pkg.tools.shout"))
    with pytest.raises(TargetError, match="promptflow cannot load this flow.*no_such_pkg.tools.shout"):
        api.run(flows.root / "promptgauge.yaml")
    (flows.root / "dag" / "flow.dag.yaml").write_text(dag)
    _suite(flows, d={"type": "flow", "flow": "dag", "variant": "${chat.variant_9}"})
    with pytest.raises(TargetError, match=r"no node variant \$\{chat.variant_9\}.*chat.variant_0"):
        api.run(flows.root / "promptgauge.yaml")


def test_flow_that_raises_is_recorded_per_row(flows, fake_openai):
    (flows.root / "flex" / "app.py").write_text(
        "def boom(question: str):\n    if 'Spain' in question:\n        raise RuntimeError('no Spain')\n"
        "    return question\n")
    (flows.root / "flex" / "flow.flex.yaml").write_text("entry: app:boom\n")
    _suite(flows, flex={"type": "flow", "flow": "flex"})
    report = api.run(flows.root / "promptgauge.yaml")
    rows = _rows(flows.root)
    assert report.status == "finished"
    assert "no Spain" in rows[("es", "flex")][3] and rows[("fr", "flex")][2].startswith("What is")


@pytest.mark.slow
def test_flows_that_call_tools_give_their_trajectory(builder, fake_openai):
    """A DAG flow whose llm node has tools (a python node runs the calls) and a flex flow that returns its chat:
    their tool calls become the row's trajectory, scored by tool_trajectory like an agent's."""
    import json

    from agent_helpers import results

    for name in ("dag_tools", "flex_tools"):
        shutil.copytree(FLOWS / name, builder.root / name)
    builder.dataset([{"id": "q42", "question": "Where is order 42?",
                      "expected_tool_calls": [{"name": "lookup_order", "arguments": {"order_id": 42}}]}])
    builder.suite(targets={"fake": {"type": "openai", "base_url": builder.base_url, "model": "gpt-4o-mini"},
                           "dag": {"type": "flow", "flow": "dag_tools", "connections": {"open_ai_connection": "fake"}},
                           "flex": {"type": "flow", "flow": "flex_tools"}},
                  variants=[{"name": "dag", "target": "dag"}, {"name": "flex", "target": "flex"}], baseline="dag",
                  evaluators=[{"name": "tool_trajectory", "params": {"mode": "superset"}}],
                  gate={"rules": ["tool_trajectory.pass_rate >= 1"]},
                  runner={"concurrency": 2, "timeout": 60, "retries": 0})
    report = api.run(builder.root / "promptgauge.yaml")
    assert report.passed, report.summary["gate"]
    rows = results(report.store_path, report.run_id)
    dag = rows[("q42", "dag")]["outputs"]
    # the llm node's two parallel calls (one step), their results from the python node's tool messages
    assert [(c["step"], c["name"], c["arguments"], c["node"]) for c in dag["trajectory"]["tool_calls"]] == [
        (0, "lookup_order", {"order_id": 42}, "plan"), (0, "lookup_order", {"order_id": 7}, "plan")]
    assert [json.loads(c["result"]) for c in dag["trajectory"]["tool_calls"]] == [
        {"order_id": 42, "status": "shipped"}, {"order_id": 7, "status": "delivered"}]
    assert [m["role"] for m in dag["trajectory"]["messages"]] == ["assistant", "tool", "tool", "assistant"]
    assert dag["trajectory"]["messages"][-1]["content"] == rows[("q42", "dag")]["output"]
    assert dag["tool_definitions"][0]["function"]["name"] == "lookup_order"  # the llm node's tools
    flex = rows[("q42", "flex")]["outputs"]["trajectory"]
    assert [(c["step"], c["name"], c["arguments"], c["result"]) for c in flex["tool_calls"]] == [
        (0, "lookup_order", {"order_id": 42}, '{"order_id": 42, "status": "shipped"}')]
    assert rows[("q42", "flex")]["output"] == "Order 42 has shipped."
    tool_requests = [r.body for r in fake_openai.requests if r.body.get("tools")]
    assert len(tool_requests) == 1 and tool_requests[0]["tools"][0]["function"]["name"] == "lookup_order"
