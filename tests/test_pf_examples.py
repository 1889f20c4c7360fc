"""promptflow's own examples (tests/flows/pf_examples, copied unchanged) run with no edits and no wrapper
code: prompty files with their samples as rows, promptflow's template semantics, DAG and flex flows,
an evaluation flow as an evaluator -- all against the fake OpenAI server."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli

PF = Path(__file__).parent / "flows" / "pf_examples"


def _results(root: Path) -> dict[tuple[str, str], tuple]:
    db = sqlite3.connect(root / ".promptgauge" / "promptgauge.db")
    run_id = db.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    return {(r[0], r[1]): r for r in db.execute(
        "SELECT row_id, variant, output, error, outputs, inputs FROM results WHERE run_id=?", (run_id,))}


def _suite(root: Path, **doc: Any) -> Path:
    doc = {"name": "pf", "evaluators": [{"name": "length", "params": {"max": 10000}}], "gate": {"rules": []},
           "runner": {"concurrency": 2, "timeout": 20, "retries": 0}, **doc}
    path = root / "promptgauge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def pf(tmp_path, fake_openai, monkeypatch):
    """A copy of the examples, and the environment promptflow's .env.example asks for, on the fake server."""
    shutil.copytree(PF, tmp_path / "ex")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake_openai.root_url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    fake_openai.responder = lambda req: '{"score": "4", "explanation": "close", "apology": 1}' \
        if (req.get("response_format") or {}).get("type") == "json_object" else "echo: " + _last(req)
    return tmp_path


def _last(req: dict) -> str:
    return next((m["content"] for m in reversed(req.get("messages") or []) if m["role"] == "user"), "")


def test_prompty_samples_are_the_rows(pf):
    """basic.prompty: inline sample; eval-apology: sample: ${file:sample.json}; eval-basic: sample.json beside it."""
    for name, prompt, sample in [("basic", "ex/prompty/basic/basic.prompty", None),
                                 ("apology", "ex/prompty/eval-apology/apology.prompty", "eval-apology"),
                                 ("eval", "ex/prompty/eval-basic/eval.prompty", "eval-basic")]:
        _suite(pf, variants=[{"name": name, "prompt": prompt}], baseline=name)
        out = run_cli("run", "--no-progress", cwd=pf)
        assert out.returncode == 0, out.stdout + out.stderr
        rows = _results(pf)
        assert len(rows) == 1 and all(r[3] is None for r in rows.values()), rows
        (row,) = rows.values()
        if sample:
            assert json.loads(row[5]) == json.loads((pf / "ex" / "prompty" / sample / "sample.json").read_text())
        else:
            assert json.loads(row[5]) == {"question": "Who is the most famous person in the world?"}
    assert json.loads(row[4])["score"] == "4"  # eval.prompty's JSON outputs are ${target.score}...


def test_a_json_sample_file_is_a_dataset(pf):
    _suite(pf, dataset="ex/prompty/chat-basic/sample.json",
           variants=[{"name": "chat", "prompt": "ex/prompty/chat-basic/chat.prompty"}], baseline="chat")
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 0, out.stdout + out.stderr
    (row,) = _results(pf).values()
    assert row[2] == "echo: How many questions did the user ask?"


def test_promptflow_prompty_renders_an_undefined_variable_empty_and_warns_once(pf, fake_openai):
    """eval.prompty uses {{statement}}, which it does not declare and no row has: promptflow renders it empty."""
    rows = [{"question": f"q{i}", "answer": "a", "ground_truth": "g"} for i in range(3)]
    (pf / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _suite(pf, dataset="rows.jsonl", variants=[{"name": "eval", "prompt": "ex/prompty/eval-basic/eval.prompty"}],
           baseline="eval")
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 0, out.stdout + out.stderr
    warnings = [line for line in out.stderr.splitlines() if "'statement'" in line]
    assert len(warnings) == 1 and "eval.prompty" in out.stderr and "renders empty" in out.stderr, out.stderr
    sent = [r.body["messages"][-1]["content"] for r in fake_openai.requests]
    assert len(sent) == 3 and all("statement: \noutput:" in s for s in sent), sent[0]
    summary = json.loads(next((pf / "reports").glob("*/summary.json")).read_text())
    assert any("'statement'" in n for n in summary["notes"])
    # --strict-templates, or the suite key, make it today's error: exit 2 naming the file and the variable
    out = run_cli("run", "--no-progress", "--strict-templates", cwd=pf)
    assert out.returncode == 2 and "eval.prompty" in out.stderr and "'statement' is undefined" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    _suite(pf, dataset="rows.jsonl", variants=[{"name": "eval", "prompt": "ex/prompty/eval-basic/eval.prompty"}],
           baseline="eval", strict_templates=True)
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 2 and "'statement' is undefined" in out.stderr, out.stderr


def test_a_declared_input_without_default_is_still_required(pf):
    (pf / "rows.jsonl").write_text(json.dumps({"question": "q"}) + "\n")  # eval.prompty declares answer, no default
    _suite(pf, dataset="rows.jsonl", variants=[{"name": "eval", "prompt": "ex/prompty/eval-basic/eval.prompty"}],
           baseline="eval")
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 2 and "input 'answer' is missing" in out.stderr and "promptflow requires it" in out.stderr


def test_promptgauges_own_prompts_stay_strict(pf):
    (pf / "own.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\nuser:\n{{question}} {{extra}}\n")
    (pf / "rows.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    _suite(pf, dataset="rows.jsonl", targets={"fake": {"type": "azure", "model": "gpt-4o"}},
           variants=[{"name": "own", "prompt": "own.prompty", "target": "fake"}], baseline="own")
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 2 and "'extra' is undefined" in out.stderr and "own.prompty" in out.stderr, out.stderr
