"""Deterministic evaluators: each verdict and score, the not- modifier, bad parameters, and a real run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from promptgauge.errors import EvaluatorError
from promptgauge.evaluators.registry import BoundEvaluator, Outcome, resolve
from promptgauge.suite import EvaluatorSpec


def bound(tmp_path: Path, columns: tuple[str, ...] = ("question",), **spec: Any) -> BoundEvaluator:
    return resolve(EvaluatorSpec(**spec), root=tmp_path, data_columns=list(columns))


def score(ev: BoundEvaluator, response: Any, outputs: dict[str, Any] | None = None, **data: Any) -> Outcome:
    return asyncio.run(ev.evaluate(data, {"response": response, **(outputs or {})}))


@pytest.mark.parametrize("spec, response, data, expected", [
    ({"name": "equals", "params": {"ignore_case": True}}, " paris ", {"ground_truth": "Paris"}, (1.0, True)),
    ({"name": "equals"}, "paris", {"ground_truth": "Paris"}, (0.0, False)),
    ({"name": "contains"}, "It is PARIS.", {"ground_truth": "Paris"}, (1.0, True)),
    ({"name": "contains", "params": {"ignore_case": False}}, "It is PARIS.", {"ground_truth": "Paris"}, (0.0, False)),
    ({"name": "contains", "params": {"value": "capital"}}, "The capital", {"ground_truth": "x"}, (1.0, True)),
    ({"name": "contains_any", "params": {"values": ["Rome", "Paris"]}}, "paris!", {}, (1.0, True)),
    ({"name": "contains_any", "params": {"values": "Rome, Milan"}}, "Paris", {}, (0.0, False)),
    ({"name": "contains_all", "params": {"values": ["red", "green", "blue", "white"]}}, "Red, green and blue", {},
     (0.75, False)),
    ({"name": "contains_all", "params": {"values": ["red", "blue"]}}, "red blue", {}, (1.0, True)),
    ({"name": "starts_with", "params": {"value": "Yes"}}, "  Yes, it is.", {}, (1.0, True)),
    ({"name": "starts_with", "params": {"value": "Yes"}}, "yes, it is.", {}, (0.0, False)),
    ({"name": "starts_with", "params": {"value": "Yes", "ignore_case": True}}, "yes, it is.", {}, (1.0, True)),
    ({"name": "regex", "params": {"pattern": r"\d{4}"}}, "in 1889", {}, (1.0, True)),
    ({"name": "regex", "params": {"pattern": r"\d{4}", "fullmatch": True}}, "in 1889", {}, (0.0, False)),
    ({"name": "json_valid"}, '```json\n{"a": 1}\n```', {}, (1.0, True)),
    ({"name": "json_valid"}, "{'a': 1}", {}, (0.0, False)),
    ({"name": "length", "params": {"max": 3, "unit": "words"}}, "one two three four", {}, (4.0, False)),
    ({"name": "length", "params": {"min": 2, "max": 5}}, "abcd", {}, (4.0, True)),
])
def test_deterministic_verdicts(tmp_path, spec, response, data, expected):
    outcome = score(bound(tmp_path, columns=tuple(data), **spec), response, **data)
    assert outcome.error is None
    assert (outcome.score, outcome.passed) == expected


def test_json_schema_names_the_failing_path(tmp_path):
    schema = {"type": "object", "required": ["city", "population"],
              "properties": {"city": {"type": "string"}, "population": {"type": "integer", "minimum": 0}}}
    ev = bound(tmp_path, name="json_schema", params={"schema": schema})
    ok = score(ev, '{"city": "Paris", "population": 2100000}')
    assert (ok.score, ok.passed) == (1.0, True)
    bad = score(ev, '{"city": "Paris", "population": -5}')
    assert (bad.score, bad.passed) == (0.0, False)
    assert bad.details["json_schema_reason"].startswith("at population:")
    not_json = score(ev, "Paris has 2.1 million people")
    assert not_json.passed is False and not_json.details["json_schema_reason"].startswith("not JSON")
    # A schema given as a JSON string works too.
    assert score(bound(tmp_path, name="json_schema", params={"schema": json.dumps(schema)}),
                 '{"city": "Rome", "population": 1}').passed is True


def test_latency_and_cost_budgets(tmp_path):
    lat = bound(tmp_path, name="latency", params={"budget_ms": 100})
    assert score(lat, "x", {"latency_ms": 80.0}).passed is True
    slow = score(lat, "x", {"latency_ms": 120.0})
    assert (slow.score, slow.passed) == (120.0, False)
    cost = bound(tmp_path, name="cost", params={"prompt_price": 2.0, "completion_price": 10.0, "budget": 0.001})
    cheap = score(cost, "x", {"prompt_tokens": 100, "completion_tokens": 50})
    assert cheap.score == pytest.approx((100 * 2 + 50 * 10) / 1e6) and cheap.passed is True
    assert score(cost, "x", {"prompt_tokens": 1000, "completion_tokens": 100}).passed is False
    unknown = score(cost, "x", {"prompt_tokens": None, "completion_tokens": None})
    assert unknown.error and "no token counts" in unknown.error


@pytest.mark.parametrize("kind", ["not-contains", "not_contains"])
def test_not_modifier_flips_verdict_and_score(tmp_path, kind):
    ev = bound(tmp_path, name="no_london", type=kind, params={"value": "London"})
    assert ev.negate
    assert (score(ev, "Paris").score, score(ev, "Paris").passed) == (1.0, True)
    assert (score(ev, "london!").score, score(ev, "london!").passed) == (0.0, False)


def test_not_modifier_needs_a_verdict(tmp_path):
    ev = bound(tmp_path, name="not-latency")
    outcome = score(ev, "x", {"latency_ms": 5.0})
    assert outcome.error and "no pass/fail" in outcome.error


@pytest.mark.parametrize("spec, message", [
    ({"name": "regex", "params": {"pattern": "("}}, "invalid regular expression"),
    ({"name": "json_schema", "params": {"schema": {"type": "nope"}}}, "not a valid JSON Schema"),
    ({"name": "length", "params": {"unit": "lines", "max": 3}}, "unit must be"),
    ({"name": "length"}, "needs 'min', 'max'"),
    ({"name": "contains", "params": {"nope": 1}}, "evaluator 'contains' has no parameter 'nope'"),
    ({"name": "length", "params": {"max": "ten"}}, "'ten' is not a valid value"),
    ({"name": "relevance", "column_mapping": {"query": "${data.question}"}}, "no judge model is set"),
    ({"name": "contains", "model": "fake"}, "calls no model"),
])
def test_bad_parameters_are_user_errors(tmp_path, spec, message):
    with pytest.raises(EvaluatorError, match=message):
        bound(tmp_path, **spec)


def test_deterministic_evaluators_in_a_run(builder, fake_openai):
    from promptgauge import api

    builder.suite(evaluators=[
        {"name": "equals", "params": {"ignore_case": True}},
        {"name": "no_barcelona", "type": "not-contains", "params": {"value": "Barcelona"}},
        {"name": "short", "type": "length", "params": {"max": 2, "unit": "words"}},
        {"name": "capital", "type": "contains_any", "params": {"values": ["Paris", "Tokyo", "Rome", "Madrid"]}},
    ], gate={"rules": ["no_barcelona.pass_rate >= 0.75"]}, variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}],
        baseline=None)
    report = api.run(builder.root / "promptgauge.yaml", reports_dir=builder.root / "reports")
    m = report.summary["variants"]["a"]["metrics"]
    # Replies: Paris, Tokyo, "Rome, of course.", Barcelona.
    assert m["equals"]["pass_rate"] == 0.5
    assert m["no_barcelona"]["pass_rate"] == 0.75 and report.passed
    assert m["short"]["pass_rate"] == 0.75 and m["short"]["max"] == 3.0
    assert m["capital"]["pass_rate"] == 0.75
