"""promptflow's own examples (tests/flows/pf_examples, copied unchanged) run with no edits and no wrapper
code: prompty files with their samples as rows, promptflow's template semantics, DAG and flex flows,
an evaluation flow as an evaluator -- all against the fake OpenAI server."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli

from promptgauge import api
from promptgauge.errors import UserError
from promptgauge.testing.browser import Browser

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


def _labels(pf: Path, fake_openai) -> None:
    """Four rows; the fake server answers three of them with the right label."""
    rows = [("r1", "App"), ("r2", "Channel"), ("r3", "Academic"), ("r4", "Profile")]
    (pf / "rows.jsonl").write_text("".join(json.dumps({"id": i, "text": f"classify {i}", "label": label}) + "\n"
                                           for i, label in rows))
    fake_openai.responder = None
    fake_openai.replies = {"classify r1": "App", "classify r2": "channel", "classify r3": "Academic",
                           "classify r4": "Academic"}


CLASSIFICATION = {"name": "classification", "type": "flow:ex/flows/evaluation/eval-classification-accuracy",
                  "column_mapping": {"groundtruth": "${data.label}", "prediction": "${target.response}"}}


def test_evaluation_flow_is_an_evaluator_with_its_aggregated_metric(pf, fake_openai):
    _labels(pf, fake_openai)
    (pf / "ask.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\nuser:\n{{text}}\n")
    _suite(pf, dataset="rows.jsonl", targets={"fake": {"type": "openai", "model": "gpt-4o-mini",
                                                       "base_url": fake_openai.base_url, "api_key_env": "AZURE_OPENAI_API_KEY"}},
           variants=[{"name": "v", "prompt": "ask.prompty", "target": "fake"}], baseline="v",
           evaluators=[CLASSIFICATION], gate={"rules": ["classification.accuracy >= 0.7", "classification.pass_rate >= 0.7"]})
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(next((pf / "reports").glob("*/summary.json")).read_text())
    m = summary["variants"]["v"]["metrics"]["classification"]
    assert m["aggregates"] == {"accuracy": 0.75}  # calculate_accuracy's log_metric: round(3 / 4, 2)
    assert m["pass_rate"] == 0.75 and m["n"] == 4  # grade: Correct / Incorrect per row
    rules = {r["rule"]: r for r in summary["gate"]["rules"]}
    assert rules["classification.accuracy >= 0.7"]["passed"] and rules["classification.accuracy >= 0.7"]["value"] == 0.75
    db = sqlite3.connect(pf / ".promptgauge" / "promptgauge.db")
    details = dict(db.execute("SELECT row_id, details FROM scores WHERE evaluator='classification'").fetchall())
    assert json.loads(details["r4"])["grade"] == "Incorrect" and json.loads(details["r2"])["grade"] == "Correct"
    assert "| `v` | `classification.accuracy` | 0.750 |" in (pf / "reports" / summary["run_id"] / "report.md").read_text()
    with Browser() as b:  # the HTML report shows it too
        b.open((pf / "reports" / summary["run_id"] / "report.html").resolve().as_uri())
        cells = b.eval("[...document.querySelectorAll('#run-level td')].map(td => td.textContent.trim())")
    assert cells == ["v", "classification.accuracy", "0.750"], cells
    with socket.socket() as sock:  # in process: no trace service left listening on promptflow's port
        assert sock.connect_ex(("127.0.0.1", 23333)) != 0
    db = sqlite3.connect(pf / ".promptgauge" / "promptgauge.db")
    with db:  # the source run's aggregate gone: the rescore must compute its own
        db.execute("UPDATE runs SET manifest=json_remove(manifest, '$.aggregates') WHERE run_id=?", (summary["run_id"],))
    rescored = run_cli("rescore", summary["run_id"], "--evaluator", "classification", cwd=pf)  # aggregated again
    assert rescored.returncode == 0, rescored.stdout + rescored.stderr
    manifests = [json.loads(m) for (m,) in db.execute("SELECT manifest FROM runs ORDER BY created_at")]
    assert manifests[-1]["rescored_from"]["run_id"] == summary["run_id"]
    assert manifests[-1]["aggregates"] == {"v": {"classification": {"accuracy": 0.75}}}
    trend = run_cli("runs", "--metric", "classification.accuracy", cwd=pf)  # pf run show-metrics, across runs
    assert trend.returncode == 0 and "0.75" in trend.stdout, trend.stdout + trend.stderr
    # a stricter bar fails the gate on the aggregated metric itself
    doc = yaml.safe_load((pf / "promptgauge.yaml").read_text())
    doc["gate"]["rules"] = ["classification.accuracy >= 0.8"]
    (pf / "promptgauge.yaml").write_text(yaml.safe_dump(doc))
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 1, out.stdout + out.stderr
    # a metric the flow never logs is no data: the rule fails, it does not pass on nothing
    doc["gate"]["rules"] = ["classification.precision >= 0"]
    (pf / "promptgauge.yaml").write_text(yaml.safe_dump(doc))
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 1 and "classification.precision was not measured" in out.stdout + out.stderr


def test_standard_and_flex_flows_run_unchanged_as_targets(pf, fake_openai, monkeypatch):
    """flows/standard/basic reads AZURE_OPENAI_API_KEY / AZURE_OPENAI_API_BASE; flex-flows/basic the azure
    client's AZURE_OPENAI_ENDPOINT: their connection is pointed at the fake server through the environment."""
    monkeypatch.setenv("AZURE_OPENAI_API_BASE", fake_openai.root_url)
    # the DAG's python node sends a completion prompt, the flex flow a system message: echo either
    fake_openai.responder = lambda req: "echo: " + (req.get("prompt") or req["messages"][-1]["content"])
    _suite(pf, dataset="ex/flows/standard/basic/data.jsonl",
           targets={"dag": {"type": "flow", "flow": "ex/flows/standard/basic"},
                    "flex": {"type": "flow", "flow": "ex/flex-flows/basic/flow.flex.yaml"}},
           variants=[{"name": "dag", "target": "dag"}, {"name": "flex", "target": "flex"}], baseline="dag",
           evaluators=[CLASSIFICATION | {"column_mapping": {"groundtruth": "${target.output}",
                                                             "prediction": "${target.response}"}}])
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = _results(pf)
    assert len(rows) == 6 and not any(r[3] for r in rows.values()), rows
    texts = {json.loads(r[5])["text"] for r in rows.values()}
    for (_, variant), r in rows.items():
        text = json.loads(r[5])["text"]
        prompt = (f"Write a simple {text} program that displays the greeting message." if variant == "dag"
                  else f"system: \nWrite a simple {text} program.\nOutput code only.")  # each flow's hello.jinja2
        assert r[2] == f"echo: {prompt}", r[2]
    assert texts == {"Python Hello World!", "C Hello World!", "C# Hello World!"}
    paths = {r.path for r in fake_openai.requests}
    assert paths == {"/openai/deployments/gpt-35-turbo-instruct/completions", "/openai/deployments/gpt-4o/chat/completions"}


def test_promptflow_logs_go_to_a_file_and_the_terminal_gets_one_line_per_failed_row(pf, fake_openai, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_BASE", fake_openai.root_url)
    fake_openai.responder = lambda req: "fine"
    fake_openai.fail_at(1, "500", n=6)  # two of the three rows fail inside the flow (its client tries 3 times)
    _suite(pf, dataset="ex/flows/standard/basic/data.jsonl", targets={"dag": {"type": "flow", "flow": "ex/flows/standard/basic"}},
           variants=[{"name": "dag", "target": "dag"}], baseline="dag", runner={"concurrency": 1, "retries": 0})
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 0, out.stdout + out.stderr
    terminal = out.stdout + out.stderr
    assert "Traceback" not in terminal and "ERROR execution" not in terminal, terminal
    failed = [line for line in out.stderr.splitlines() if line.startswith("failed dag row ")]
    assert len(failed) == 2 and all("Execution failure in 'llm'" in line and "500" in line for line in failed), terminal
    assert "Traceback" not in terminal and "ERROR execution" not in terminal, terminal
    assert "2 of 3 results failed" in out.stderr
    (log,) = (pf / "reports").glob("*/promptflow.log")
    text = log.read_text()
    assert text.count("Traceback (most recent call last)") >= 2 and "InternalServerError" in text
    assert "test-key" not in text  # the key from the environment never reaches the log
    assert f"promptflow's log: {log}" in out.stderr.replace("\n", "")


@pytest.mark.parametrize(("evaluator", "message"), [
    ({"type": "flow:nowhere"}, "flow not found"),
    ({"type": "flow:ex/flows/evaluation/eval-classification-accuracy/requirements.txt"}, "unknown flow type"),
    ({"type": "flow:ex/prompty"}, "no flow file in"),
    (CLASSIFICATION | {"params": {"score": "nope"}}, "params.score names output 'nope'"),
    (CLASSIFICATION | {"params": {"colour": "red"}}, "has no parameter 'colour'"),
    (CLASSIFICATION | {"column_mapping": {"truth": "${data.label}"}}, "column_mapping names truth"),
    (CLASSIFICATION | {"params": {"connections": {"c": "missing"}}}, "'missing' is not an openai or azure entry"),
])
def test_flow_evaluator_mistakes_are_clear_errors(pf, fake_openai, evaluator, message):
    _labels(pf, fake_openai)
    (pf / "ask.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\nuser:\n{{text}}\n")
    _suite(pf, dataset="rows.jsonl", targets={"fake": {"type": "openai", "model": "m", "base_url": fake_openai.base_url}},
           variants=[{"name": "v", "prompt": "ask.prompty", "target": "fake"}], baseline="v",
           evaluators=[{"name": "e", **evaluator}])
    with pytest.raises(UserError) as exc:
        api.run(pf / "promptgauge.yaml")
    assert message in exc.value.format(), exc.value.format()
    assert fake_openai.request_count == 0  # checked before any call


def test_an_evaluation_prompty_is_an_evaluator(pf, fake_openai):
    """prompty/eval-basic/eval.prompty as `type: flow:...` (promptflow runs a prompty as a flow): its own
    model.configuration, its JSON outputs as scores, {{statement}} empty as in promptflow."""
    rows = [{"id": "1", "question": "What is capital of France?", "ground_truth": "Paris"}]
    (pf / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _suite(pf, dataset="rows.jsonl", variants=[{"name": "basic", "prompt": "ex/prompty/basic/basic.prompty"}],
           baseline="basic", evaluators=[{"name": "qa", "type": "flow:ex/prompty/eval-basic/eval.prompty",
                                          "column_mapping": {"question": "${data.question}",
                                                             "answer": "${target.response}",
                                                             "ground_truth": "${data.ground_truth}"}}],
           gate={"rules": ["qa.mean >= 4"]})
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(next((pf / "reports").glob("*/summary.json")).read_text())
    assert summary["variants"]["basic"]["metrics"]["qa"]["mean"] == 4.0
    judged = [r.body for r in fake_openai.requests if (r.body.get("response_format") or {}).get("type") == "json_object"]
    assert len(judged) == 1 and judged[0]["model"] == "gpt-4o" and judged[0]["max_tokens"] == 200
    assert "answer: echo: What is capital of France?\nstatement: \noutput:" in judged[0]["messages"][-1]["content"]
    db = sqlite3.connect(pf / ".promptgauge" / "promptgauge.db")
    (details,) = [json.loads(d) for (d,) in db.execute("SELECT details FROM scores WHERE evaluator='qa'")]
    assert details["score"] == 4.0 and details["explanation"] == "close"


def test_a_flex_evaluation_flow_aggregates_with_its_class(pf, fake_openai):
    """A flex flow class with __aggregate__ (tests/flows/flex_eval): per-row dicts as scores, the aggregate's
    dict as run-level metrics; init: as a flex flow class's constructor arguments."""
    _labels(pf, fake_openai)
    shutil.copytree(Path(__file__).parent / "flows" / "flex_eval", pf / "flex_eval")
    (pf / "ask.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\nuser:\n{{text}}\n")
    _suite(pf, dataset="rows.jsonl", targets={"fake": {"type": "openai", "model": "m", "base_url": fake_openai.base_url}},
           variants=[{"name": "v", "prompt": "ask.prompty", "target": "fake"}], baseline="v",
           evaluators=[{"name": "exact", "type": "flow:flex_eval", "params": {"init": {"ignore_case": False}},
                        "column_mapping": {"expected": "${data.label}"}}],
           gate={"rules": ["exact.match_rate >= 0.5", "exact.lines == 4"]})
    out = run_cli("run", "--no-progress", cwd=pf)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(next((pf / "reports").glob("*/summary.json")).read_text())
    m = summary["variants"]["v"]["metrics"]["exact"]
    assert m["aggregates"] == {"match_rate": 0.5, "lines": 4.0}  # 'channel' != 'Channel' with ignore_case false
    assert m["mean"] == 0.5 and m["pass_rate"] == 0.5
