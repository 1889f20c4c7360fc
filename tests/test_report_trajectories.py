"""Trajectories in comparisons and reports: tool flips, the side-by-side view in real Chromium (hostile tool
results rendered inert), tool sequences in markdown / JSON / JUnit / CSV, bounded sizes, results files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from trajectory_fixtures import EVIL, agent_suite, trajectory

from promptgauge import api
from promptgauge.compare import MAX_TRAJECTORIES, compare_sides
from promptgauge.results import (
    cut_trajectory,
    first_divergence,
    load_results,
    load_results_file,
    step_groups,
    tool_change,
    tool_sequence,
    trajectory_digests,
    write_results_file,
)
from promptgauge.results.trajectory import MAX_CHARS, MAX_TEXT, message_list
from promptgauge.store import Store
from promptgauge.testing.browser import Browser

CHANGED = {"o1-reorder": "sequence", "o2-wrong_arg": "arguments", "o4-hostile": "sequence", "o5-long": "sequence"}


@pytest.fixture
def agent_run(builder):
    """v1 vs. v2 on the six scenarios of trajectory_fixtures: the gate fails (two rows lose tool_trajectory)."""
    agent_suite(builder)
    result = api.run(builder.root / "promptgauge.yaml")
    assert not result.passed
    return result


def test_tool_flips_divergence_and_what_the_document_holds(agent_run):
    doc = json.loads(agent_run.reports["json"].read_text())
    [c] = doc["comparisons"]
    tool_flips = {(f["row_id"], f["direction"]) for f in c["flips"] if f["evaluator"] is None}
    assert tool_flips == {("o1-reorder", "tool sequence changed"), ("o4-hostile", "tool sequence changed"),
                          ("o5-long", "tool sequence changed"), ("o2-wrong_arg", "tool arguments changed")}
    assert {(f["row_id"], f["direction"]) for f in c["flips"] if f["evaluator"] == "tool_trajectory"} == {
        ("o1-reorder", "pass->fail"), ("o2-wrong_arg", "pass->fail")}
    assert c["tool_changes"] == {"sequence": 3, "arguments": 1}
    rows = {r["row_id"]: r for r in c["row_diffs"]}
    assert {k: r["tool_change"] for k, r in rows.items() if r["tool_change"]} == CHANGED
    # first divergence, by step group (0 = the input messages): hand-derived from trajectory_fixtures
    assert {k: r["divergence"] for k, r in rows.items()} == {
        "o0-same": None, "o1-reorder": 1, "o2-wrong_arg": 1, "o3-wording": None, "o4-hostile": 2, "o5-long": 2}
    # trajectories only on changed rows; every row has its tool sequence
    assert {k for k, r in rows.items() if r["candidate"]["trajectory"]} == set(CHANGED)
    assert rows["o1-reorder"]["baseline"]["tools"] == "lookup_order → refund"
    assert rows["o1-reorder"]["candidate"]["tools"] == "refund → lookup_order"
    assert rows["o5-long"]["candidate"]["tools"] == "lookup_order ×12"
    assert rows["o3-wording"]["candidate"]["tools"] == "lookup_order"
    # the hostile tool result (5,000+ characters) is cut, and says so
    hostile = rows["o4-hostile"]["candidate"]["trajectory"]
    result = next(m["content"] for m in hostile["messages"] if m["role"] == "tool")
    assert result.startswith(EVIL) and result.endswith(" more characters]") and len(result) < MAX_TEXT + 40
    assert hostile["cut"]["texts"] >= 2 and hostile["stop_reason"] == "answer" and hostile["steps"] == 3
    assert [c["name"] for c in hostile["tool_calls"]] == ["lookup_order", "escalate"]


def test_markdown_junit_csv_carry_verdicts_and_tool_sequences(agent_run):
    md = agent_run.reports["markdown"].read_text()
    assert "3 rows changed their tool sequence, 1 only their tool arguments" in md
    assert "| row | status | changed scores | baseline output | candidate output | tool calls |" in md
    line = next(x for x in md.splitlines() if x.startswith("| `o1-reorder`"))
    assert "| regressed |" in line and line.endswith(
        "| baseline: lookup_order → refund; candidate: refund → lookup_order (tool sequence changed) |")
    line = next(x for x in md.splitlines() if x.startswith("| `o4-hostile`"))
    assert "| unchanged |" in line and "(tool sequence changed)" in line
    assert "\u202e" not in md and "⟨U+202E⟩" in md and "<script>" not in md  # inert in a PR comment too
    assert "`o0-same`" not in md and "`o3-wording`" not in md  # unchanged scores and tools
    cases = {c.get("name"): c for c in ET.parse(agent_run.reports["junit"]).getroot().iter("testcase")}
    failure = cases["o1-reorder"].find("failure")
    assert failure is not None and failure.text.splitlines()[-1] == (
        "tool calls: baseline: lookup_order → refund; candidate: refund → lookup_order (tool sequence changed)")
    assert "tool calls: baseline: lookup_order; candidate: lookup_order (tool arguments changed)" in \
        cases["o2-wrong_arg"].find("failure").text
    csv = pd.read_csv(agent_run.reports["csv"], dtype=str, keep_default_na=False).set_index("row_id")
    assert csv.loc["o1-reorder", ["baseline_tools", "candidate_tools", "tool_change"]].tolist() == [
        "lookup_order → refund", "refund → lookup_order", "sequence"]
    assert csv.loc["o2-wrong_arg", "tool_change"] == "arguments" and csv.loc["o0-same", "tool_change"] == ""
    assert csv.loc["o5-long", "candidate_tools"] == "lookup_order ×12"


def test_trajectories_in_chromium_hostile_tool_results_are_inert(agent_run, tmp_path):
    html_path = agent_run.reports["html"]
    html = html_path.read_text()
    assert "<script>window.__pwned" not in html and 'href="javascript' not in html
    assert "\u202e" not in html  # every bidi override is a visible mark
    with Browser(width=1280, height=900) as b:
        b.open(html_path.resolve().as_uri())
        assert b.requested_urls() == [html_path.resolve().as_uri()]
        # the tool filter shows the rows whose tool calls changed
        visible = "Array.from(document.querySelectorAll('tbody.row')).filter(t => !t.hidden).map(t => t.dataset.id)"
        b.eval("const s = document.querySelector('.f-status'); s.value = 'tools'; s.dispatchEvent(new Event('change'))")
        assert b.eval(visible) == list(CHANGED)
        # open every row and every trajectory: still no script ran, no link, no handler
        b.eval("document.querySelectorAll('tr.detail').forEach(d => d.hidden = false);"
               "document.querySelectorAll('details.traj').forEach(d => d.open = true)")
        assert b.eval("window.__pwned === undefined") is True
        assert b.eval("document.scripts.length") == 1
        assert b.eval("document.querySelectorAll('a, [onerror], [onclick], [onmouseover]').length") == 0
        state = b.eval("""(() => { const t = document.querySelector('tbody.row[data-id="o4-hostile"] details.traj');
            const results = Array.from(t.querySelectorAll('.msg.tool pre')).map(p => p.textContent);
            const args = Array.from(t.querySelectorAll('pre.args')).map(p => p.textContent);
            return {results, args, marks: Array.from(t.querySelectorAll('.ctl')).map(m => m.textContent),
                    text: t.innerText, tw: t.querySelector('table.trajtable').scrollWidth, cw: t.clientWidth,
                    page: document.documentElement.scrollWidth, win: window.innerWidth,
                    pre: t.querySelector('.msg.tool pre').getBoundingClientRect().width}; })()""")
        assert state["results"][0].startswith(EVIL + '<a href="javascript:window.__pwned=4">click</a>')
        assert "A" * 1000 in state["results"][0] and state["results"][0].endswith(" more characters]")
        assert '"note": "<script>window.__pwned = 1</script>' in state["args"][0]
        assert "⟨U+202E⟩" in state["marks"] and "⟨U+2066⟩" in state["marks"] and "\u202e" not in state["text"]
        # layout holds: the unbroken 5,000-character string wraps inside the page
        assert state["tw"] <= state["cw"] and state["page"] <= state["win"] and state["pre"] < state["win"] / 2
        rows = b.eval("""Array.from(document.querySelectorAll('details.traj')).map(t => [
            t.closest('tbody.row').dataset.id, t.hasAttribute('open') ? 1 : 0,
            (t.querySelector('tr.diverged th') || {innerText: ''}).innerText.replace(/\\s+/g, ' ')])""")
        assert {r[0]: r[2] for r in rows} == {"o1-reorder": "step 0 first divergence",
                                              "o2-wrong_arg": "step 0 first divergence",
                                              "o4-hostile": "step 1 first divergence",
                                              "o5-long": "step 1 first divergence"}
        b.open(html_path.resolve().as_uri())  # as the reader gets it: short trajectories open, long ones closed
        opened = b.eval("Object.fromEntries(Array.from(document.querySelectorAll('details.traj')).map(t => "
                        "[t.closest('tbody.row').dataset.id, t.open]))")
        assert opened == {"o1-reorder": True, "o2-wrong_arg": True, "o4-hostile": True, "o5-long": False}
        assert "cut for the report" in b.eval("document.querySelector('.cut-note').textContent")
        b.eval("document.querySelector('tbody.row[data-id=\"o4-hostile\"] tr.main td').click()")
        shot = b.screenshot(tmp_path / "traj.png")
    assert shot.stat().st_size > 20_000


def test_results_files_carry_trajectories_and_compare_like_the_store(agent_run, tmp_path):
    root = Path(agent_run.reports["json"]).parents[2]
    store = Store(root / ".promptgauge" / "promptgauge.db")
    try:
        base = load_results(store, agent_run.run_id, "v1")
        cand = load_results(store, agent_run.run_id, "v2", frames=False)
        path = write_results_file(base, tmp_path / "baseline.json")
        from_store = compare_sides(load_results(store, agent_run.run_id, "v1", frames=False), cand)
        from_file = compare_sides(load_results_file(path), cand)
    finally:
        store.close()
    rows = json.loads(path.read_text())["rows"]
    assert all(r["trajectory"]["stop_reason"] == "answer" for r in rows)  # whole, not cut
    hostile = next(r for r in rows if r["row_id"] == "o4-hostile")
    assert len(hostile["trajectory"]["messages"][3]["content"]) > 5000
    for comp in (from_store, from_file):
        assert comp.tool_changes == {"sequence": 3, "arguments": 1}
        assert {r.row_id: r.tool_change for r in comp.row_diffs if r.tool_change} == CHANGED
    assert from_file.flips == from_store.flips
    assert (load_results_file(path).columns().tools == base.columns().tools).all()


def test_runs_without_trajectories_have_no_tool_columns(builder):
    builder.suite()
    result = api.run(builder.root / "promptgauge.yaml")
    [c] = json.loads(result.reports["json"].read_text())["comparisons"]
    assert c["tool_changes"] == {} and all(r["tool_change"] is None and r["candidate"]["tools"] is None
                                           for r in c["row_diffs"])
    assert "tool calls" not in result.reports["markdown"].read_text()
    assert "candidate_tools" not in result.reports["csv"].read_text().splitlines()[0]
    assert "details class=\"traj\"" not in result.reports["html"].read_text()


# -- the pieces ------------------------------------------------------------------------------------------


SHAPES = {
    "calls": trajectory("q", [("lookup", {"id": 1, "x": [1, 2.5]}, "r"), ("refund", {"id": 1}, "ok")], "done"),
    "malformed": trajectory("q", [("lookup", {}, "r")], "done", raw={0: "{not json"}),
    "no_calls": trajectory("q", [], "hello"),
    "messages_only": {"messages": trajectory("q", [("lookup", {"id": 1, "x": [1, 2.5]}, "r"),
                                                   ("refund", {"id": 1}, "ok")], "done")["messages"]},
}


def test_tool_digests_agree_between_the_store_and_results_frames(tmp_path):
    store = Store(tmp_path / "s.db")
    try:
        store.create_run("r1", "t", None, {"variants": {"v": {}}, "evaluators": {}, "dataset": {}}, {})
        shapes = {**SHAPES, "none": None, "text": json.dumps(SHAPES["calls"])}
        for i, (name, traj) in enumerate(shapes.items()):
            outputs = {"response": "x"} if traj is None else {"response": "x", "trajectory": traj}
            store.put_result("r1", name, "v", 0, row_index=i, inputs={"i": i}, output="x", outputs=outputs,
                             error=None, latency_ms=1.0, prompt_tokens=1, completion_tokens=1, attempts=1)
        sql = load_results(store, "r1", "v", frames=False).columns()
        frames = load_results(store, "r1", "v").columns()
    finally:
        store.close()
    assert (sql.tools == frames.tools).all()
    digest = dict(zip(sql.row_id, sql.tools))
    assert digest["none"] == b"" and digest["calls"] == digest["messages_only"] == digest["text"]
    assert digest["no_calls"] not in (b"", digest["calls"]) and digest["malformed"] != digest["calls"]
    for name, traj in SHAPES.items():
        assert b"".join(trajectory_digests(traj)) == digest[name]


def test_tool_change_sequence_and_divergence_edge_cases():
    calls, none = trajectory_digests(SHAPES["calls"]), trajectory_digests(None)
    assert tool_change(calls, calls) is None
    assert tool_change(none, trajectory_digests(SHAPES["no_calls"])) is None  # no trajectory = no calls
    assert tool_change(calls, trajectory_digests(SHAPES["no_calls"])) == "sequence"
    moved = trajectory("q", [("lookup", {"x": [1, 2.5], "id": 1}, "other"), ("refund", {"id": 2}, "ok")], "done")
    assert tool_change(calls, trajectory_digests(moved)) == "arguments"  # key order is no change; id 1 -> 2 is
    assert tool_sequence(None) is None and tool_sequence(SHAPES["no_calls"]) == "(no tool calls)"
    many = trajectory("q", [(f"t{i % 2}", {}, "") for i in range(25)], "done")
    assert tool_sequence(many) == " → ".join(["t0", "t1"] * 10) + " → … +5 more"
    assert tool_sequence(SHAPES["messages_only"]) == "lookup → refund"
    # divergence: ids of calls do not matter; the input never counts; a longer run diverges where the other ends
    renamed = json.loads(json.dumps(SHAPES["calls"]).replace("call_", "id_"))
    renamed["messages"][0]["content"] = "another system prompt"
    assert first_divergence(SHAPES["calls"], renamed) is None
    assert first_divergence(SHAPES["calls"], moved) == 1
    longer = trajectory("q", [("lookup", {"id": 1, "x": [1, 2.5]}, "r"), ("refund", {"id": 1}, "ok"),
                              ("notify", {}, "")], "done")
    assert first_divergence(SHAPES["calls"], longer) == 3
    assert first_divergence(SHAPES["calls"], None) is None
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]}
    assert step_groups(chat["messages"]) == [[0], [1], [2], [3]]
    assert step_groups(message_list(SHAPES["calls"])) == [[0, 1], [2, 3], [4, 5], [6]]


def test_cut_trajectory_is_bounded():
    big = trajectory("q" * 9000, [(f"tool{i}", {"blob": "x" * 3000}, "y" * 7000) for i in range(150)], "z" * 3000)
    cut = cut_trajectory(big)
    texts = [m["content"] for m in cut["messages"]] + [c["arguments"] for m in cut["messages"]
                                                       for c in m.get("tool_calls", [])]
    assert sum(len(t) for t in texts) <= MAX_CHARS + 40 * len(texts)
    assert all(len(t) <= MAX_TEXT + 40 for t in texts)
    assert cut["cut"]["messages"] == len(big["messages"]) - len(cut["messages"]) > 250
    assert len(cut["tool_calls"]) == 100 and cut["cut"]["tool_calls"] == 50 and cut["steps"] == 151
    assert len(json.dumps(cut)) < 2 * MAX_CHARS
    small = cut_trajectory(SHAPES["calls"])
    assert small["cut"] == {"texts": 0, "messages": 0, "tool_calls": 0}
    assert [m["content"] for m in small["messages"]] == [m["content"] or "" for m in SHAPES["calls"]["messages"]]


def test_report_size_is_bounded_with_many_big_trajectories(builder):
    rows = [{"id": f"r{i:03d}", "question": f"q{i}", "order_id": i, "scenario": "big",
             "ground_truth": "x", "expected_tool_calls": []} for i in range(40)]
    builder.dataset(rows)
    (builder.root / "big_agents.py").write_text(
        "from trajectory_fixtures import trajectory\n"
        "def a(question, order_id, scenario):\n"
        "    return {'response': 'x', 'trajectory': trajectory(question, [('t', {'i': k}, 'r' * 4000) for k in range(30)], 'x')}\n"
        "def b(question, order_id, scenario):\n"
        "    return {'response': 'y', 'trajectory': trajectory(question, [('u', {'i': k}, 's' * 4000) for k in range(30)], 'y')}\n")
    builder.suite(variants=[{"name": "a", "target": "python:big_agents:a"}, {"name": "b", "target": "python:big_agents:b"}],
                  evaluators=[{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}],
                  gate={"rules": ["error_rate <= 0.5"]})
    result = api.run(builder.root / "promptgauge.yaml")
    [c] = json.loads(result.reports["json"].read_text())["comparisons"]
    assert len(c["row_diffs"]) == 40 <= MAX_TRAJECTORIES  # every row changed: each carries both trajectories, cut
    assert all(r["candidate"]["trajectory"]["cut"]["messages"] > 0 for r in c["row_diffs"])
    whole = sum(len(line) for line in result.reports["jsonl"].open())  # results.jsonl keeps them whole
    per_side = MAX_CHARS + 12_000  # texts, plus the JSON around them and the calls
    assert whole > 40 * 2 * 30 * 4000
    assert result.reports["json"].stat().st_size < 40 * 2 * per_side + 100_000
    assert result.reports["html"].stat().st_size < 40 * 2 * per_side * 1.5 + 100_000
    assert result.reports["markdown"].stat().st_size <= 65_536
