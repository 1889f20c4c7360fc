"""Conversations in reports: per-turn scores turn by turn, side by side with the baseline, in real Chromium (hostile
turns rendered inert), and per-conversation verdicts in markdown, JSON, JUnit and CSV."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import yaml
from trajectory_fixtures import BIDI, EVIL

from promptgauge import api
from promptgauge.testing.browser import Browser

HOSTILE = EVIL + " " + BIDI
CONV = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "x"},
        {"role": "user", "content": HOSTILE}, {"role": "assistant", "content": "x"},
        {"role": "user", "content": "bye"}]


def _responder(request: dict[str, Any]) -> str:
    """Answers "echo: <turn>"; the candidate's prompt says to shout from its second turn on."""
    messages = request["messages"]
    turn = sum(1 for m in messages if m["role"] == "assistant")
    text = f"echo: turn {turn}"
    return text.upper() if "SHOUT LATER" in messages[0]["content"] and turn >= 1 else text


def _suite(root: Path, base_url: str) -> Path:
    for name, system in (("calm", "Be calm."), ("loud", "Be calm. SHOUT LATER")):
        (root / f"{name}.prompty").write_text(f"---\nmodel:\n  parameters:\n    temperature: 0\n---\nsystem:\n{system}\n"
                                              "\nuser:\n{{question}}\n", encoding="utf-8")
    rows = [{"id": "c1", "messages": CONV}, {"id": "c2", "messages": CONV[:1]}]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    doc = {"name": "chats", "dataset": "data.jsonl",
           "targets": {"fake": {"type": "openai", "base_url": base_url, "model": "gpt-4o-mini"}},
           "variants": [{"name": "calm", "prompt": "calm.prompty", "target": "fake"},
                        {"name": "loud", "prompt": "loud.prompty", "target": "fake"}],
           "baseline": "calm",
           "evaluators": [{"name": "echo", "type": "regex", "params": {"pattern": "^echo: "}, "per_turn": True}],
           "gate": {"rules": ["echo.pass_rate >= 0.9"]},
           "runner": {"concurrency": 2, "timeout": 5, "retries": 0}}
    path = root / "promptgauge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_per_turn_scores_in_every_report_and_chromium(tmp_path, fake_openai):
    fake_openai.responder = _responder
    report = api.run(_suite(tmp_path, fake_openai.base_url))
    assert not report.passed  # loud: c1 fails on turns 1 and 2, c2 (one turn) passes -> pass rate 0.5
    # JSON: each side's per-turn verdicts, under the evaluator's score
    doc = json.loads(report.reports["json"].read_text())
    rows = {r["row_id"]: r for r in doc["comparisons"][0]["row_diffs"]}
    turns = {side: [(t["turn"], t["score"], t["passed"]) for t in rows["c1"][side]["scores"]["echo"]["turns"]]
             for side in ("baseline", "candidate")}
    assert turns == {"baseline": [(0, 1.0, True), (1, 1.0, True), (2, 1.0, True)],
                     "candidate": [(0, 1.0, True), (1, 0.0, False), (2, 0.0, False)]}
    assert rows["c1"]["candidate"]["scores"]["echo"]["score"] == 1 / 3 and rows["c1"]["status"] == "regressed"
    assert [t["passed"] for t in rows["c2"]["candidate"]["scores"]["echo"]["turns"]] == [True]
    # markdown: the changed conversation with its per-turn marks
    md = report.reports["markdown"].read_text()
    assert "echo 1.00→0.33 (per turn ✓✓✓→✓✗✗)" in md
    # JUnit: the failing conversation names its failed turns and both sides' turns
    case = next(c for c in ET.parse(report.reports["junit"]).getroot().iter("testcase") if c.get("name") == "c1")
    failure = case.find("failure")
    assert failure.get("message") == "echo failed on turns 1, 2 of 3"
    assert "conversation: echo per turn: baseline ✓✓✓, candidate ✓✗✗ (first change: turn 1)" in failure.text
    # CSV: the per-conversation verdict and its per-turn marks on each side
    with report.reports["csv"].open(newline="") as f:
        lines = {r["row_id"]: r for r in csv.DictReader(f)}
    assert (lines["c1"]["baseline.echo.turns"], lines["c1"]["candidate.echo.turns"]) == ("✓✓✓", "✓✗✗")
    assert (lines["c1"]["candidate.echo.passed"], lines["c2"]["candidate.echo.passed"]) == ("False", "True")
    # HTML in Chromium: the per-turn table, turn by turn, side by side, the first change marked; hostile turns inert
    html_path = report.reports["html"]
    html = html_path.read_text()
    assert "<script>window.__pwned" not in html and "\u202e" not in html
    with Browser(width=1280, height=900) as b:
        b.open(html_path.resolve().as_uri())
        assert b.requested_urls() == [html_path.resolve().as_uri()]
        b.eval("document.querySelectorAll('tr.detail').forEach(d => d.hidden = false);"
               "document.querySelectorAll('details.traj').forEach(d => d.open = true)")
        assert b.eval("window.__pwned === undefined") is True
        assert b.eval("document.querySelectorAll('a, img, [onerror], [onclick]').length") == 0
        state = b.eval("""(() => { const row = document.querySelector('tbody.row[data-id="c1"]');
            const t = row.querySelector('table.turns');
            return {cells: Array.from(t.querySelectorAll(':scope > tbody > tr')).map(tr =>
                        Array.from(tr.querySelectorAll('th, td')).map(c => c.innerText.replace(/\\s+/g, ' ').trim())),
                    caption: t.querySelector('caption').innerText, first: t.dataset.firstChange,
                    marks: row.querySelector('.turn-marks').innerText,
                    turns: Array.from(row.querySelectorAll('details.traj .msg.user pre')).map(p => p.textContent),
                    ctl: Array.from(row.querySelectorAll('details.traj .ctl')).map(m => m.textContent)}; })()""")
        assert state["cells"] == [["0", "1.00 pass", "1.00 pass"],
                                  ["1 first change", "1.00 pass", "0.00 fail"],
                                  ["2", "1.00 pass", "0.00 fail"]]
        assert state["caption"] == "Per-turn scores · first change at turn 1" and state["first"] == "1"
        assert state["marks"] == "✓✓✓ → ✓✗✗"
        # the conversation's turns, side by side, as text: the hostile one shown, not run; its bidi overrides as marks
        assert state["turns"][:2] == ["hello", "hello"] and state["turns"][2] == state["turns"][3]
        assert state["turns"][2].startswith(EVIL) and state["turns"][4:] == ["bye", "bye"]
        assert "⟨U+202E⟩" in state["ctl"] and "⟨U+2066⟩" in state["ctl"]
        assert b.eval("document.querySelector('tbody.row[data-id=\"c2\"] table.turns') !== null") is True
