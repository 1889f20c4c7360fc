"""azure-ai-evaluation evaluators run unchanged inside our engine, against the real fake OpenAI server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.ai.evaluation import RelevanceEvaluator

from promptgauge import api
from promptgauge.errors import EvaluatorError
from promptgauge.store import Store

QUESTIONS = [f"Question number {i}?" for i in range(8)]


@pytest.fixture
def azure_suite(builder, fake_openai):
    """8 rows answered by a Python function (no HTTP), so every request the server sees is a judge call."""
    (builder.root / "numbered.py").write_text("def answer(question, **_):\n    return 'Answer to ' + question\n")
    builder.dataset([{"id": f"q{i}", "question": q} for i, q in enumerate(QUESTIONS)])

    def write(**overrides: Any) -> None:
        doc = dict(variants=[{"name": "a", "target": "python:numbered:answer"}], baseline=None, judge="fake",
                   gate={"rules": []}, evaluators=[{"name": "az", "type": "azure.ai.evaluation:RelevanceEvaluator",
                                                    "column_mapping": {"query": "${data.question}"}}])
        doc.update(overrides)
        builder.suite(**doc)

    return write


def judge_reply(request: dict[str, Any]) -> str:
    """Score 2 for even question numbers, 4 for odd ones."""
    text = json.dumps(request["messages"])
    n = next(i for i, q in enumerate(QUESTIONS) if q in text)
    return json.dumps({"reason": f"row {n}", "score": 4 if n % 2 else 2, "status": "completed"})


def scores(report: api.RunReport, name: str) -> dict[str, dict[str, Any]]:
    store = Store(report.store_path)
    try:
        return {r["row_id"]: r["scores"][name] for r in store.iter_results(report.run_id)}
    finally:
        store.close()


def test_azure_evaluator_by_import_path_runs_in_our_engine(azure_suite, builder, fake_openai):
    fake_openai.responder = judge_reply
    fake_openai.latency = 0.05
    azure_suite(runner={"concurrency": 3, "timeout": 10, "retries": 0})
    report = api.run(builder.root / "promptgauge.yaml")
    rows = scores(report, "az")
    assert rows["q1"]["score"] == 4.0 and rows["q1"]["passed"] is True
    assert rows["q2"]["score"] == 2.0 and rows["q2"]["passed"] is False
    details = rows["q1"]["details"]
    assert details["relevance"] == 4.0 and details["relevance_reason"] == "row 1"
    assert details["relevance_result"] == "pass" and details["relevance_threshold"] == 3
    m = report.summary["variants"]["a"]["metrics"]["az"]
    assert (m["n"], m["errors"], m["mean"], m["pass_rate"]) == (8, 0, 3.0, 0.5)
    # Every request is azure-ai-evaluation's relevance prompt, sent to the suite's judge target...
    assert fake_openai.request_count == 8
    first = fake_openai.requests[0].body
    assert first["model"] == "gpt-4o-mini" and "Relevance" in json.dumps(first["messages"])
    # ...with our concurrency: overlapping calls, never more than the engine's 3 workers.
    assert 2 <= fake_openai.max_concurrent <= 3
    manifest = report.summary["manifest"]["evaluators"]["az"]
    assert manifest["source"] == "azure.ai.evaluation:RelevanceEvaluator" and manifest["model"]["target"] == "fake"
    assert "api_key" not in json.dumps(report.summary)


def test_suite_threshold_reaches_the_azure_evaluator(azure_suite, builder, fake_openai):
    fake_openai.responder = judge_reply
    azure_suite(evaluators=[{"name": "az", "type": "azure.ai.evaluation:RelevanceEvaluator", "threshold": 1.5,
                             "column_mapping": {"query": "${data.question}"}}])
    rows = scores(api.run(builder.root / "promptgauge.yaml", limit=2), "az")
    assert rows["q0"]["passed"] is True and rows["q0"]["details"]["relevance_threshold"] == 1.5


def test_azure_evaluator_on_an_azure_openai_judge_target(azure_suite, builder, fake_openai, monkeypatch):
    monkeypatch.setenv("FAKE_AZURE_KEY", "k")
    fake_openai.responder = judge_reply
    azure_suite(targets={"aoai": {"type": "azure", "azure_endpoint": fake_openai.root_url, "api_key_env": "FAKE_AZURE_KEY",
                                  "api_version": "2024-06-01"}},
                judge="aoai:judge-deployment")
    rows = scores(api.run(builder.root / "promptgauge.yaml", limit=1), "az")
    assert rows["q0"]["score"] == 2.0
    assert fake_openai.requests[0].path == "/openai/deployments/judge-deployment/chat/completions"


def test_azure_evaluator_instance_through_the_python_api(azure_suite, builder, fake_openai):
    fake_openai.responder = judge_reply
    # The suite entry gives the column mapping; the instance replaces what the entry would build.
    azure_suite(evaluators=[{"name": "relevance", "column_mapping": {"query": "${data.question}"}}], judge=None)
    evaluator = RelevanceEvaluator({"type": "openai", "model": "mine", "base_url": fake_openai.base_url, "api_key": "x"})
    report = api.run(builder.root / "promptgauge.yaml", limit=3, evaluators={"relevance": evaluator})
    rows = scores(report, "relevance")
    assert [rows[f"q{i}"]["score"] for i in range(3)] == [2.0, 4.0, 2.0]
    assert {r.body["model"] for r in fake_openai.requests} == {"mine"}
    assert report.summary["manifest"]["evaluators"]["relevance"]["source"].startswith(
        "instance:azure.ai.evaluation.")


def test_azure_evaluator_errors_stay_on_their_row(azure_suite, builder, fake_openai):
    fake_openai.responder = lambda req: "" if "Question number 1?" in json.dumps(req["messages"]) else judge_reply(req)
    azure_suite()
    rows = scores(api.run(builder.root / "promptgauge.yaml", limit=3), "az")
    assert rows["q1"]["error"] and rows["q0"]["score"] == 2.0 and rows["q2"]["score"] == 2.0


def test_azure_evaluator_configuration_mistakes(azure_suite, builder):
    azure_suite(judge="local:smollm2")
    with pytest.raises(EvaluatorError, match="need an openai or azure judge target") as info:
        api.run(builder.root / "promptgauge.yaml")
    assert info.value.field == "judge" and "promptgauge.yaml" in str(info.value)
    azure_suite(evaluators=[{"name": "az", "type": "azure.ai.evaluation:RelevanceEvaluator"}])
    with pytest.raises(EvaluatorError, match="needs 'query' but nothing maps it"):
        api.run(builder.root / "promptgauge.yaml")
    azure_suite(evaluators=[{"name": "az", "type": "azure.ai.evaluation:NoSuchEvaluator"}])
    with pytest.raises(EvaluatorError, match="has no attribute 'NoSuchEvaluator'"):
        api.run(builder.root / "promptgauge.yaml")
