"""No vacuous pass: a gate, a comparison, `promptgauge ci` or the monitor never pass on nothing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from conftest import run_cli


def _summary(root):
    return json.loads(next((root / "reports").glob("*/summary.json")).read_text())


def _judge_rows(builder, fake_openai, **overrides):
    """A relevance judge that never gets a usable score (the fake server echoes): every row is an error."""
    builder.suite(judge="fake", evaluators=[{"name": "relevance", "column_mapping": {"query": "${data.question}"}},
                                            {"name": "contains"}], gate={"rules": ["contains.pass_rate >= 0.5"]},
                  variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None, **overrides)


def test_an_evaluator_with_no_scored_rows_fails_the_gate_even_without_a_rule(builder, fake_openai):
    _judge_rows(builder, fake_openai)
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "evaluator 'relevance' scored no rows" in proc.stdout and "gate: FAIL" in proc.stdout
    rules = _summary(builder.root)["gate"]["rules"]
    (scored,) = [r for r in rules if r["rule"] == "scored: relevance"]
    assert scored["passed"] is False and scored["kind"] == "required"


def test_an_optional_evaluator_with_no_scored_rows_is_skipped_loudly(builder, fake_openai):
    builder.suite(judge="fake", evaluators=[{"name": "relevance", "optional": True,
                                             "column_mapping": {"query": "${data.question}"}}, {"name": "contains"}],
                  gate={"rules": ["contains.pass_rate >= 0.5"]},
                  variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None)
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SKIPPED: optional evaluator 'relevance' scored no rows" in proc.stdout
    report = next((builder.root / "reports").glob("*/report.md")).read_text()
    assert "SKIPPED" in report


def test_a_rule_whose_metric_has_no_data_fails(builder, fake_openai):
    builder.suite(judge="fake", evaluators=[{"name": "relevance", "optional": True,
                                             "column_mapping": {"query": "${data.question}"}}],
                  gate={"rules": ["relevance.errors <= 100", "relevance.error_rate <= 1"]},
                  variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None)
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rules = {r["rule"]: r for r in _summary(builder.root)["gate"]["rules"]}
    for text in ("relevance.errors <= 100", "relevance.error_rate <= 1"):
        assert rules[text]["passed"] is False and "no data" in rules[text]["reason"], rules[text]


def test_a_variant_whose_every_call_failed_fails_even_with_no_rules(builder, fake_openai):
    (builder.root / "app.py").write_text("def answer(question):\n    raise RuntimeError('down')\n")
    builder.suite(variants=[{"name": "py", "target": "python:app:answer"}], baseline=None, evaluators=[],
                  gate={"rules": ["tokens.total <= 1000"]})
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rules = {r["rule"]: r for r in _summary(builder.root)["gate"]["rules"]}
    assert rules["has results"]["passed"] is False and "no successful call" in rules["has results"]["reason"]
    assert rules["tokens.total <= 1000"]["passed"] is False and "no data" in rules["tokens.total <= 1000"]["reason"]


def test_ci_does_not_pass_on_nothing(builder, fake_openai):
    _judge_rows(builder, fake_openai)
    proc = run_cli("ci", "--out", "out", cwd=builder.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    junit = ET.parse(builder.root / "out" / "junit.xml")
    assert any("relevance" in (f.get("message") or "") + (f.text or "") for f in junit.iter("failure"))


def test_compare_with_an_empty_side_is_refused(builder, fake_openai):
    builder.suite()
    assert run_cli("run", "--no-progress", cwd=builder.root).returncode == 0
    proc = run_cli("promote", "--baseline", "a", "b", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    promoted = builder.root / "baselines" / "t.json"
    doc = json.loads(promoted.read_text())
    doc["rows"] = []
    (builder.root / "empty.json").write_text(json.dumps(doc))
    proc = run_cli("compare", "empty.json", "latest:b", cwd=builder.root)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "has no rows to compare" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("compare", "latest:a", "empty.json", cwd=builder.root)
    assert proc.returncode == 2 and "candidate" in proc.stderr and "has no rows" in proc.stderr


def test_monitor_on_a_missing_plain_path_is_exit_2_and_an_empty_glob_no_data(tmp_path):
    cfg = ("name: m\nsources:\n  - {name: app, path: %s}\nevaluators: [{name: length, params: {max: 100}}]\n")
    (tmp_path / "monitor.yaml").write_text(cfg % "logs/app.jsonl")
    proc = run_cli("monitor", "--once", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "logs/app.jsonl" in proc.stderr and "sources[0].path" in proc.stderr and "not found" in proc.stderr
    (tmp_path / "logs").mkdir()
    (tmp_path / "monitor.yaml").write_text(cfg % "logs")
    proc = run_cli("monitor", "--once", cwd=tmp_path)
    assert proc.returncode == 2 and "is a folder" in proc.stderr and "logs/*.jsonl" in proc.stderr, proc.stderr
    (tmp_path / "monitor.yaml").write_text(cfg % "'logs/*.jsonl'")
    proc = run_cli("monitor", "--once", cwd=tmp_path)
    # logs may not have started yet: not an input error, but not healthy either (nothing passes on nothing)
    assert proc.returncode == 4 and "NO DATA" in proc.stdout, proc.stdout + proc.stderr
