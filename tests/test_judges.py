"""LLM judges against the real fake OpenAI server: reply shapes, the engine's retry path, rubric judges,
repeats with agreement statistics, and judge-vs-human agreement."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from promptgauge import api
from promptgauge.engine import Options, call_seed
from promptgauge.errors import UserError
from promptgauge.evaluators.integrity import unseal
from promptgauge.evaluators.judge import JudgeReplyError, parse_reply
from promptgauge.store import Store

QUESTIONS = {
    "fr": "What is the capital of France?",
    "jp": "What is the capital of Japan?",
    "it": "What is the capital of Italy?",
    "es": "What is the capital of Spain?",
}
ANSWERS = {"fr": "Paris", "jp": "Tokyo", "it": "Rome", "es": "Barcelona"}


def unsealed(body: dict[str, Any]) -> dict[str, Any]:
    """A judge request as it reads without its data tags and integrity rule (see test_judge_integrity.py)."""
    return {**body, "messages": [{**m, "content": unseal(m["content"])} for m in body["messages"]]}


@pytest.mark.parametrize("reply, expected", [
    ('{"reason": "On topic.", "score": 4, "status": "completed"}', (4.0, "On topic.", "completed")),
    ('```json\n{"score": "5", "reason": "Spot on."}\n```', (5.0, "Spot on.", "completed")),
    ('Verdict: {"reason": "Partly.", "score": 3} -- done', (3.0, "Partly.", "completed")),
    ('{"reason": "No response.", "score": null, "status": "skipped"}', (None, "No response.", "skipped")),
    ("<S0>Let's think.</S0><S1>Good answer.</S1><S2>4</S2>", (4.0, "Good answer.", "completed")),
    ("<reason>Vague.</reason>\n<score>2</score>", (2.0, "Vague.", "completed")),
    ("4", (4.0, "", "completed")),
    ("**5**", (5.0, "", "completed")),
    ("3/5", (3.0, "", "completed")),
    ("The answer is relevant. Score: 4", (4.0, "The answer is relevant. Score: 4", "completed")),
    ("I would rate it 2/5 overall.", (2.0, "I would rate it 2/5 overall.", "completed")),
])
def test_parse_reply_shapes(reply, expected):
    assert parse_reply(reply) == expected


@pytest.mark.parametrize("reply, message", [
    ("", "empty judge reply"),
    ("  \n ", "empty judge reply"),
    ("I cannot evaluate this.", "no score found"),
    ("In 2020 the city hosted 3 events.", "no score found"),
    ('{"reason": "forgot the score"}', "has no score"),
    ('{"score": "high"}', "is not a number"),
    ('{"score": 9, "reason": "x"}', "outside 1-5"),
    ("7", "outside 1-5"),
])
def test_parse_reply_rejects_unusable_replies_with_the_raw_text(reply, message):
    with pytest.raises(JudgeReplyError, match=message) as info:
        parse_reply(reply)
    assert info.value.details == {"raw_reply": reply}


def test_parse_reply_uses_the_given_scale():
    assert parse_reply("9", low=0, high=10)[0] == 9.0
    with pytest.raises(JudgeReplyError, match="outside 0-1"):
        parse_reply('{"score": 2}', low=0, high=1)


def row_of(request: dict[str, Any]) -> str:
    """Which dataset row a judge request is about (its rendered prompt quotes the question or the answer)."""
    text = unseal("\n".join(m["content"] for m in request["messages"]))
    return next(k for k in QUESTIONS if QUESTIONS[k] in text or f"RESPONSE: {ANSWERS[k]}\n" in text)


@pytest.fixture
def judged(builder, fake_openai):
    """A suite whose variant is a Python function (no HTTP), so every request the server sees is a judge call."""
    (builder.root / "judge_answers.py").write_text(
        f"ANSWERS = {json.dumps({QUESTIONS[k]: ANSWERS[k] for k in QUESTIONS})}\n"
        "def answer(question, **_):\n    return ANSWERS[question]\n"
    )
    builder.dataset([{"id": k, "question": QUESTIONS[k], "ground_truth": ANSWERS[k], "context": f"{ANSWERS[k]} is a city.",
                      "human": {"fr": 4, "jp": 2, "it": 3, "es": 2}[k]} for k in QUESTIONS])

    def write(*evaluators: dict[str, Any], **overrides: Any) -> Path:
        doc = dict(variants=[{"name": "a", "target": "python:judge_answers:answer"}], baseline=None,
                   judge="fake", evaluators=list(evaluators), gate={"rules": []})
        doc.update(overrides)
        return builder.suite(**doc)

    return write


def results(report: api.RunReport) -> dict[str, dict[str, Any]]:
    store = Store(report.store_path)
    try:
        return {item["row_id"]: item["scores"] for item in store.iter_results(report.run_id)}
    finally:
        store.close()


RELEVANCE = {"name": "relevance", "column_mapping": {"query": "${data.question}"}}


def test_each_reply_shape_is_scored_or_recorded_as_a_row_error(judged, fake_openai, builder):
    shapes = {"fr": '{"reason": "Direct answer.", "score": 4, "status": "completed"}',
              "jp": "<S1>Thin.</S1><S2>2</S2>", "it": "5", "es": "the model rambles without any score"}
    fake_openai.responder = lambda req: shapes[row_of(req)]
    judged(RELEVANCE)
    report = api.run(builder.root / "promptgauge.yaml", reports_dir=builder.root / "reports")
    assert report.status == "finished"
    rel = {k: v["relevance"] for k, v in results(report).items()}
    assert rel["fr"]["score"] == 4.0 and rel["fr"]["passed"] is True
    assert rel["fr"]["details"] | {"relevance_properties": None} == {
        "relevance": 4.0, "relevance_reason": "Direct answer.", "relevance_result": "pass",
        "relevance_threshold": 3, "relevance_properties": None}
    assert rel["jp"]["score"] == 2.0 and rel["jp"]["passed"] is False
    assert rel["jp"]["details"]["relevance_reason"] == "Thin."
    assert rel["it"]["score"] == 5.0
    assert rel["es"]["score"] is None and rel["es"]["passed"] is None
    assert "no score found" in rel["es"]["error"] and "the model rambles" in rel["es"]["error"]
    assert rel["es"]["details"] == {"raw_reply": shapes["es"]}
    m = report.summary["variants"]["a"]["metrics"]["relevance"]
    assert (m["n"], m["errors"], m["mean"]) == (3, 1, pytest.approx(11 / 3))


def test_empty_judge_reply_is_a_row_error(judged, fake_openai, builder):
    fake_openai.responder = lambda req: "" if row_of(req) == "jp" else '{"score": 3, "reason": "ok"}'
    judged({"name": "fluency"})
    rel = {k: v["fluency"] for k, v in results(api.run(builder.root / "promptgauge.yaml")).items()}
    assert rel["jp"]["error"].startswith("JudgeReplyError: empty judge reply")
    assert rel["jp"]["details"] == {"raw_reply": ""}
    assert all(rel[k]["score"] == 3.0 for k in ("fr", "it", "es"))


def test_judge_request_is_azure_prompt_with_its_parameters(judged, fake_openai, builder):
    fake_openai.responder = lambda req: '{"score": 4, "reason": "ok"}'
    judged(RELEVANCE, {"name": "g", "type": "groundedness", "params": {"parameters": {"max_tokens": 50}}},
           {"name": "sim", "type": "similarity", "column_mapping": {"query": "${data.question}"}})
    api.run(builder.root / "promptgauge.yaml", limit=1)
    bodies = [unsealed(r.body) for r in fake_openai.requests]
    assert len(bodies) == 3
    rel = next(b for b in bodies if "Relevance-Judge" in b["messages"][0]["content"])
    assert rel["model"] == "gpt-4o-mini" and rel["temperature"] == 0.0 and rel["max_tokens"] == 800
    assert rel["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in rel["messages"]] == ["system", "user"]
    assert "CONVERSATION_HISTORY: What is the capital of France?\nRESPONSE: Paris" in rel["messages"][1]["content"]
    grounded = next(b for b in bodies if "**Groundedness**" in b["messages"][1]["content"])
    assert grounded["max_tokens"] == 50  # evaluator params override the prompt's
    assert "CONTEXT: Paris is a city.\nRESPONSE: Paris" in grounded["messages"][1]["content"]  # no query column mapped
    sim = next(b for b in bodies if "Equivalence" in b["messages"][1]["content"])
    assert "correct answer:Paris\npredicted answer: Paris" in sim["messages"][1]["content"]


def test_judge_calls_go_through_the_engine_retry_path(judged, fake_openai, builder):
    fake_openai.responder = lambda req: '{"score": 5, "reason": "fine"}'
    judged(RELEVANCE)
    fake_openai.fail_next("429", 1)
    fake_openai.fail_next("500", 1)
    report = api.run(builder.root / "promptgauge.yaml", limit=1)
    assert results(report)["fr"]["relevance"]["score"] == 5.0
    assert fake_openai.fault_count == {"429": 1, "500": 1} and fake_openai.request_count == 3
    # Out of retries (runner.retries = 2): the judge's failure is that row's error, the run goes on.
    fake_openai.reset()
    fake_openai.responder = lambda req: '{"score": 5, "reason": "fine"}'
    fake_openai.fail_next("500", 3)
    # (without the response cache, which holds the first run's answer for "fr")
    report = api.run(builder.root / "promptgauge.yaml", limit=2, concurrency=1, options=Options(cache=False))
    scores = results(report)
    assert "HTTP 500" in scores["fr"]["relevance"]["error"] and "after 3 attempts" in scores["fr"]["relevance"]["error"]
    assert scores["jp"]["relevance"]["score"] == 5.0


def test_evaluator_model_overrides_the_suite_judge(judged, fake_openai, builder):
    fake_openai.responder = lambda req: '{"score": 4, "reason": "ok"}'
    judged({**RELEVANCE, "model": "fake:judge-large"})
    report = api.run(builder.root / "promptgauge.yaml", limit=1)
    assert fake_openai.requests[0].body["model"] == "judge-large"
    assert report.summary["manifest"]["evaluators"]["relevance"]["model"]["model"] == "judge-large"


def judge_seeds(evaluator: str = "relevance", repeats: int = 3, run_seed: int = 0) -> dict[int, tuple[str, int]]:
    """seed -> (row, repeat) of a judge's calls: call_seed(run seed, row id, "", repeat, role="judge:NAME")."""
    return {call_seed(run_seed, k, "", r, role=f"judge:{evaluator}"): (k, r) for k in QUESTIONS for r in range(repeats)}


def repeat_of(req: dict[str, Any]) -> int:
    """Which repeat of a judge a request is: per-call seeds, or with runner.seeds: fixed, seed r (none for r = 0)."""
    seed = req.get("seed", 0)
    return judge_seeds()[seed][1] if seed in judge_seeds() else seed


@pytest.mark.parametrize("mode", ["per_call", "fixed"])
def test_repeats_report_agreement_and_human_agreement(judged, fake_openai, builder, mode):
    # Each repeat of a row is its own call, with its own seed; the fake judge answers per (row, repeat).
    plan = {"fr": [4, 4, 4], "jp": [2, 3, 2], "it": [5, 5, 5], "es": [1, 1, 3]}
    seeds, temperatures = [], []

    def respond(req: dict[str, Any]) -> str:
        seeds.append(req.get("seed"))
        temperatures.append(req.get("temperature"))
        return json.dumps({"reason": "r", "score": plan[row_of(req)][repeat_of(req)]})

    fake_openai.responder = respond
    judged({**RELEVANCE, "repeats": 3, "human_label": "human"},
           gate={"rules": ["relevance.reliability.exact >= 0.5", "relevance.human_agreement.within_1 >= 0.8"]},
           runner={"seeds": mode})
    report = api.run(builder.root / "promptgauge.yaml")
    if mode == "per_call":  # a seed per (row, repeat), the same whatever variant is judged
        assert sorted(seeds) == sorted(judge_seeds()) and len(set(seeds)) == 12
    else:  # one seed for every row: today's behaviour before per-call seeds
        assert sorted(seeds, key=str) == sorted([None, 1, 2] * 4, key=str)
    assert temperatures == [0.0] * 12  # the relevance prompt's own temperature
    rows = results(report)
    assert rows["jp"]["relevance"]["score"] == pytest.approx(7 / 3)
    assert rows["jp"]["relevance"]["details"]["repeat_scores"] == [2.0, 3.0, 2.0]
    m = report.summary["variants"]["a"]["metrics"]["relevance"]
    assert m["reliability"]["rows"] == 4
    assert m["reliability"]["exact"] == 0.5 and m["reliability"]["within_1"] == 0.75
    assert 0 < m["reliability"]["alpha"] < 1
    # human: fr 4, jp 2, it 3, es 2 vs judge means 4, 2.33, 5, 1.67
    h = m["human_agreement"]
    assert (h["rows"], h["exact"], h["within_1"]) == (4, 0.75, 0.75)
    assert h["mean_abs_diff"] == pytest.approx((0 + 1 / 3 + 2 + 1 / 3) / 4)
    rules = {r["rule"]: r for r in report.gate["rules"]}
    assert rules["relevance.reliability.exact >= 0.5"]["passed"] is True
    assert rules["relevance.human_agreement.within_1 >= 0.8"]["passed"] is False and not report.passed


POLITENESS = """---
name: politeness
criteria: Politeness - the response is courteous and respectful to the user.
steps:
  - Read the query and the response.
  - Note any rude, curt or dismissive wording.
scale: [1, 10]
threshold: 7
inputs:
  query: {type: string}
  response: {type: string}
model:
  parameters:
    max_tokens: 60
---
"""


def test_rubric_judge_from_a_prompty_file(judged, fake_openai, builder):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "politeness.prompty").write_text(POLITENESS)
    fake_openai.responder = lambda req: {"fr": '{"reason": "Kind.", "score": 8}', "jp": "6/10"}.get(row_of(req), "11")
    judged({"name": "politeness", "column_mapping": {"query": "${data.question}"}})
    report = api.run(builder.root / "promptgauge.yaml")
    scores = {k: v["politeness"] for k, v in results(report).items()}
    assert scores["fr"]["details"]["politeness"] == 8.0 and scores["fr"]["passed"] is True
    assert scores["jp"]["score"] == 6.0 and scores["jp"]["passed"] is False
    assert "outside 1-10" in scores["it"]["error"]
    req = unsealed(fake_openai.requests[0].body)
    user = req["messages"][1]["content"]
    assert "# Criterion\nPoliteness - the response is courteous" in user
    assert "1. Read the query and the response.\n2. Note any rude, curt or dismissive wording." in user
    assert re.search(r"QUERY: What is the capital of \w+\?\nRESPONSE: \w+", user)
    assert "from 1 (does not meet the criterion at all) to 10" in user
    assert req["max_tokens"] == 60 and req["response_format"] == {"type": "json_object"}
    manifest = report.summary["manifest"]["evaluators"]["politeness"]
    assert manifest["source"] == "evaluators/politeness.prompty" and len(manifest["sha256"]) == 64


def test_rubric_judge_with_its_own_prompt(judged, fake_openai, builder):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "terse.prompty").write_text(
        "---\ncriteria: The answer is one word.\n---\nsystem:\nJudge: {{criteria}}\nuser:\nANSWER={{response}}\n")
    fake_openai.responder = lambda req: "Score: 5"
    judged({"name": "terse"})
    report = api.run(builder.root / "promptgauge.yaml", limit=1)
    assert results(report)["fr"]["terse"]["score"] == 5.0
    sent = fake_openai.requests[0].body["messages"]
    assert unsealed({"messages": sent})["messages"] == [
        {"role": "system", "content": "Judge: The answer is one word."}, {"role": "user", "content": "ANSWER=Paris"}]
    assert re.fullmatch(r"ANSWER=<untrusted_[0-9a-f]{16}>Paris</untrusted_[0-9a-f]{16}>", sent[1]["content"])
    assert "Integrity rule" in sent[0]["content"]  # the rule in the user's own prompt too


def test_judge_configuration_mistakes_exit_2(judged, builder):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "vague.prompty").write_text("---\nsteps: [Look.]\n---\n")
    judged({"name": "vague"})
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "vague.prompty" in proc.stderr and "needs 'criteria:'" in proc.stderr


@pytest.mark.parametrize("evaluator, overrides, message, field", [
    (RELEVANCE, {"judge": None}, "no judge model is set", "evaluators.relevance.model"),
    ({**RELEVANCE, "model": "nosuch:thing"}, {}, "unknown target 'nosuch:thing'", "evaluators.relevance.model"),
    (RELEVANCE, {"judge": "nosuch"}, "unknown target 'nosuch'", "judge"),
    ({**RELEVANCE, "human_label": "stars"}, {}, "human_label names column 'stars'", "evaluators.relevance.human_label"),
])
def test_judge_configuration_mistakes_name_the_field(judged, builder, evaluator, overrides, message, field):
    judged(evaluator, **overrides)
    with pytest.raises(UserError, match=message) as info:
        api.run(builder.root / "promptgauge.yaml")
    assert info.value.field == field


@pytest.mark.slow
def test_judge_on_the_embedded_model(judged, builder):
    # A rubric judge: azure's prompts are ~2000 tokens, too long for a quick test on a 135M CPU model.
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "politeness.prompty").write_text(POLITENESS.replace("max_tokens: 60", "max_tokens: 40"))
    judged({"name": "politeness", "column_mapping": {"query": "${data.question}"}}, judge="local:smollm2",
           runner={"concurrency": 1, "timeout": 120, "retries": 0})
    report = api.run(builder.root / "promptgauge.yaml", limit=1)
    assert report.status == "finished"
    for row in results(report).values():
        verdict = row["politeness"]
        # A 135M model may or may not produce a usable verdict: either a score on the scale, or a row error
        # that keeps the raw reply -- never a crash.
        if verdict["error"] is None:
            assert 1 <= verdict["score"] <= 10 and verdict["details"]["politeness_result"] in ("pass", "fail")
        else:
            assert verdict["error"].startswith("JudgeReplyError") and "raw_reply" in verdict["details"]
    assert report.summary["manifest"]["evaluators"]["politeness"]["model"]["kind"] == "local"


def test_agreement_metrics_gate_a_comparison(judged, fake_openai, builder):
    fake_openai.responder = lambda req: '{"score": 4, "reason": "steady"}'
    variants = [{"name": n, "target": "python:judge_answers:answer"} for n in ("a", "b")]
    judged({**RELEVANCE, "repeats": 2}, variants=variants, baseline="a",
           gate={"rules": ["relevance.reliability.exact >= 1"]})
    run = api.run(builder.root / "promptgauge.yaml", limit=2)
    assert run.passed and run.summary["variants"]["b"]["metrics"]["relevance"]["reliability"]["exact"] == 1.0
    report = api.compare(f"{run.run_id}:a", f"{run.run_id}:b", suite=builder.root / "promptgauge.yaml")
    (rule,) = report.verdict["rules"]
    assert rule["value"] == 1.0 and report.passed
