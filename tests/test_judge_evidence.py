"""Point 3 of issue 16: a judge's model, parameters and prompt are part of the evidence.

Against the real fake OpenAI server: judges call at temperature 0 with a seed; the manifest records the judge's
model, parameters and prompt hash; a comparison across a changed judge (or against a run that did not record
one) says so in every report.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from promptgauge import api
from promptgauge.compare import judge_changes
from promptgauge.evaluators.judge import builtin_prompt

ROWS = {"fr": ("What is the capital of France?", "Paris"), "jp": ("What is the capital of Japan?", "Tokyo")}


def suite(builder, fake_openai, *, judge_params: dict[str, Any] | None = None, target: str = "fake") -> None:
    (builder.root / "answers.py").write_text(
        f"ANSWERS = {json.dumps(dict(ROWS.values()))}\ndef answer(question, **_):\n    return ANSWERS[question]\n")
    builder.dataset([{"id": k, "question": q, "ground_truth": a} for k, (q, a) in ROWS.items()])
    rel = {"name": "relevance", "column_mapping": {"query": "${data.question}"}, "target": target}
    if judge_params:
        rel["params"] = {"parameters": judge_params}
    builder.suite(variants=[{"name": "a", "target": "python:answers:answer"}], baseline=None,
                  evaluators=[rel], gate={"rules": []},
                  targets={"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "gpt-4o-mini"},
                           "other": {"type": "openai", "base_url": fake_openai.base_url, "model": "gpt-4o"}})


def test_judges_call_at_temperature_0_with_a_seed_and_the_manifest_records_them(builder, fake_openai):
    fake_openai.responder = lambda req: '{"score": 4, "reason": "ok"}'
    suite(builder, fake_openai)
    report = api.run(builder.root / "promptgauge.yaml")
    bodies = [r.body for r in fake_openai.requests]
    assert len(bodies) == 2 and all(b["temperature"] == 0 and isinstance(b.get("seed"), int) for b in bodies)
    assert len({b["seed"] for b in bodies}) == 2  # a seed per row, derived from the run seed
    judge = report.summary["manifest"]["evaluators"]["relevance"]["judge"]
    assert judge["model"]["model"] == "gpt-4o-mini" and judge["parameters"]["temperature"] == 0
    assert judge["parameters"]["max_tokens"] == builtin_prompt("relevance").parameters["max_tokens"]
    assert len(judge["prompt_sha256"]) == 64
    doc = json.loads(report.reports["json"].read_text())
    assert doc["hashes"]["judges"]["relevance"]["prompt_sha256"] == judge["prompt_sha256"]


def test_a_changed_judge_is_named_in_every_report(builder, fake_openai):
    fake_openai.responder = lambda req: '{"score": 4, "reason": "ok"}'
    suite(builder, fake_openai)
    first = api.run(builder.root / "promptgauge.yaml")
    suite(builder, fake_openai, judge_params={"temperature": 0.7}, target="other")
    second = api.run(builder.root / "promptgauge.yaml")
    result = api.compare(f"{first.run_id}:a", f"{second.run_id}:a", suite=builder.root / "promptgauge.yaml")
    notes = [w for w in result.comparison.warnings if "LLM judge 'relevance' changed" in w]
    assert len(notes) == 1, result.comparison.warnings
    assert "model gpt-4o-mini -> gpt-4o" in notes[0] and "temperature: 0.7" in notes[0]
    assert "prompt sha256" not in notes[0]  # the prompt did not change
    assert "LLM judge" in result.reports["markdown"].read_text()
    assert "LLM judge &#39;relevance&#39; changed" in result.reports["html"].read_text()
    gate = ET.parse(result.reports["junit"]).getroot().find("testsuite[@name='gate']")
    assert "LLM judge 'relevance' changed" in gate.find("system-out").text
    # the same judge on both sides: no note
    suite(builder, fake_openai)
    third = api.run(builder.root / "promptgauge.yaml")
    same = api.compare(f"{first.run_id}:a", f"{third.run_id}:a", suite=builder.root / "promptgauge.yaml")
    assert not [w for w in same.comparison.warnings if "LLM judge" in w]


def test_an_older_baseline_without_judge_settings_is_flagged():
    new = {"relevance": {"model": {"model": "gpt-4o-mini"}, "parameters": {"temperature": 0}, "prompt_sha256": "a"}}
    assert judge_changes({}, new, ["relevance"]) == [
        "LLM judge 'relevance': the baseline did not record its judge settings (an older run), so a change of "
        "judge model, parameters or prompt cannot be ruled out"]
    assert judge_changes(new, new, ["relevance"]) == [] and judge_changes({}, {}, ["relevance"]) == []
    changed = {"relevance": {**new["relevance"], "prompt_sha256": "b"}}
    assert "prompt sha256 a -> b" in judge_changes(new, changed, ["relevance"])[0]
