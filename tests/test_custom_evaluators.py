"""Custom evaluators from the project's evaluators/ folder: functions and classes, sync and async,
found by name; an evaluator failing on a row fails only that row."""

from __future__ import annotations

import pytest

from promptgauge import api
from promptgauge.errors import EvaluatorError
from promptgauge.store import Store

CHECKS = '''
import asyncio

def has_digit(*, response):
    return any(c.isdigit() for c in response)

async def shouting(*, response):
    await asyncio.sleep(0)
    return {"upper_share": sum(c.isupper() for c in response) / max(1, len(response))}

class MinWords:
    def __init__(self, *, n):
        self.n = n
    def __call__(self, *, response):
        return {"words": len(response.split()), "min_words_result": "pass" if len(response.split()) >= self.n else "fail"}

class Echoes:
    """An async class evaluator through __acall__: does the answer repeat the ground truth?"""
    async def __acall__(self, *, response, ground_truth):
        return {"echoes": ground_truth.lower() in response.lower()}

def fragile(*, response):
    if response.startswith("Rome"):
        raise RuntimeError("cannot score Rome")
    return 1.0

def wrong_type(*, response):
    return "great"
'''


@pytest.fixture
def custom(builder):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "checks.py").write_text(CHECKS)
    (builder.root / "evaluators" / "tone.py").write_text("def tone(*, response, mood='calm'):\n    return {'tone': 1.0}\n")
    return builder


def test_custom_evaluators_score_and_isolate_errors(custom, fake_openai):
    custom.suite(
        variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None, gate={"rules": []},
        evaluators=[{"name": "has_digit"}, {"name": "shouting"}, {"name": "long", "type": "MinWords", "params": {"n": 2}},
                    {"name": "Echoes"}, {"name": "fragile"}, {"name": "wrong_type", "optional": True}, {"name": "tone"},
                    {"name": "by_path", "type": "evaluators.checks:has_digit"}],
    )
    report = api.run(custom.root / "promptgauge.yaml")
    store = Store(report.store_path)
    try:
        rows = {r["row_id"]: r["scores"] for r in store.iter_results(report.run_id)}
    finally:
        store.close()
    # Replies: Paris, Tokyo, "Rome, of course.", Barcelona; ground truths Paris, Tokyo, Rome, Madrid.
    assert [rows[k]["has_digit"]["passed"] for k in ("fr", "jp", "it", "es")] == [False] * 4
    assert rows["fr"]["shouting"]["score"] == pytest.approx(1 / 5)
    assert rows["it"]["long"]["passed"] is True and rows["fr"]["long"]["passed"] is False
    assert rows["it"]["long"]["score"] == 3.0
    assert [rows[k]["Echoes"]["passed"] for k in ("fr", "jp", "it", "es")] == [True, True, True, False]
    assert rows["it"]["fragile"]["error"] == "RuntimeError: cannot score Rome"
    assert all(rows[k]["fragile"]["score"] == 1.0 for k in ("fr", "jp", "es"))
    assert "expected a dict, a number or a bool" in rows["fr"]["wrong_type"]["error"]
    assert rows["fr"]["tone"]["score"] == 1.0 and rows["fr"]["by_path"]["passed"] is False
    manifest = report.summary["manifest"]["evaluators"]
    assert manifest["has_digit"]["source"] == "evaluators/checks.py" and manifest["tone"]["source"] == "evaluators/tone.py"
    assert manifest["by_path"]["source"] == "evaluators.checks:has_digit"
    assert report.summary["variants"]["a"]["metrics"]["fragile"]["errors"] == 1
    # wrong_type fails on every row: marked optional, the gate says it was skipped (else the run would stop)
    skipped = [r for r in report.summary["gate"]["rules"] if r["reason"].startswith("SKIPPED")]
    assert [r["rule"] for r in skipped] == ["scored: wrong_type"] and report.passed


@pytest.mark.parametrize("evaluator, message", [
    ({"name": "nosuch"}, "unknown evaluator 'nosuch'"),
    ({"name": "long", "type": "MinWords"}, "cannot build evaluator 'MinWords'"),
    ({"name": "tone", "column_mapping": {"voice": "${data.question}"}}, "column_mapping names voice"),
    ({"name": "has_digit", "model": "fake"}, "'model:' does not apply|already built"),
])
def test_custom_evaluator_mistakes_are_user_errors(custom, evaluator, message):
    custom.suite(evaluators=[evaluator])
    with pytest.raises(EvaluatorError, match=message):
        api.run(custom.root / "promptgauge.yaml")


def test_broken_evaluator_file_names_the_file(custom):
    (custom.root / "evaluators" / "broken.py").write_text("def broken(:\n")
    custom.suite(evaluators=[{"name": "broken"}])
    with pytest.raises(EvaluatorError, match="cannot load evaluator file: SyntaxError") as info:
        api.run(custom.root / "promptgauge.yaml")
    assert info.value.file.endswith("broken.py")
