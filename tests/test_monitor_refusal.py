"""The ``refusal`` check used to watch production answers."""

from __future__ import annotations

import pytest

from promptgauge.evaluators.refusal import RefusalEvaluator

REFUSALS = ["I'm sorry, but I can't help with that.", "I cannot assist with this request.", "Sorry, I can't do that.",
            "As an AI language model, I cannot browse.", "I\u2019m unable to share that.", "I am not allowed to say."]
ANSWERS = ["Sure! Here is the JSON: {}", "I'm sorry to hear about your order; it ships today.", "I can help with that.",
           '{"answer": "I cannot"}', "Yes. " + "x" * 400 + " I cannot help with that."]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_fail(text):
    assert RefusalEvaluator()(response=text) == {"refusal": 1.0, "refusal_result": "fail"}


@pytest.mark.parametrize("text", ANSWERS)
def test_answers_pass(text):
    assert RefusalEvaluator()(response=text) == {"refusal": 0.0, "refusal_result": "pass"}


def test_custom_patterns_and_bad_patterns():
    ev = RefusalEvaluator(patterns=[r"ne peux pas"])
    assert ev(response="Je ne peux pas répondre.")["refusal"] == 1.0
    with pytest.raises(ValueError, match="invalid refusal pattern"):
        RefusalEvaluator(patterns=["("])
