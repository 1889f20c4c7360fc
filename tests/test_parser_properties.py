"""Property tests of every parser a user feeds: suite YAML, datasets (JSONL, CSV, JSON), prompty front
matter and gate rules. Any input gives a result or a UserError (exit 2) -- never another exception."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptgauge.datasets import load_dataset
from promptgauge.engine import prepare
from promptgauge.errors import UserError
from promptgauge.gate import parse_rules
from promptgauge.prompts import load_prompt, load_sample
from promptgauge.suite import GatePolicy, load_policy, load_suite

#: PG_PROPERTY_EXAMPLES=2000 for a longer search (150 keep the suite quick).
SETTINGS = settings(max_examples=int(os.environ.get("PG_PROPERTY_EXAMPLES", "150")), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Scalars YAML can hold, and nested values made of them.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["", "a.prompty", "data.jsonl", "fake", "local:smollm2",
                                                          "${data.q}", "${target.response}", "${env:NOPE}", "f1"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)


def _safe(value):
    """No ``python:`` or ``flow:`` target (they would import or run code), no absolute paths."""
    text = json.dumps(value, default=str)
    return "python:" not in text and "flow:" not in text and ":/" not in text and '"/' not in text


SUITE_KEYS = ["name", "dataset", "variants", "matrix", "evaluators", "baseline", "gate", "runner", "targets",
              "judge", "store", "reports_dir", "description"]
VARIANT = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.sampled_from(["a", "b"]), st.text(max_size=5)), "prompt": st.one_of(st.just("a.prompty"), values),
    "target": st.one_of(st.sampled_from(["fake", "fake:m", "openai:m", "nope"]), values),
    "parameters": st.one_of(st.just({"temperature": 0}), values), "inputs": values})
EVALUATOR = st.one_of(st.sampled_from(["f1", "contains", "length", "regex", "exact_match", "nosuch"]),
                      st.fixed_dictionaries({"name": st.sampled_from(["f1", "contains", "length", "regex", "e"])}, optional={
                          "type": st.sampled_from(["contains", "length", "regex", "not-contains", "json_schema"]),
                          "params": st.one_of(st.dictionaries(st.sampled_from(["max", "min", "pattern", "value",
                                                                               "schema", "ignore_case", "unit"]),
                                                              scalars, max_size=3), values),
                          "column_mapping": st.one_of(st.dictionaries(st.sampled_from(["response", "value", "x"]),
                                                                      st.sampled_from(["${data.q}", "${data.nope}",
                                                                                       "${target.response}",
                                                                                       "${target.nope}", "lit"])),
                                                      values),
                          "threshold": scalars, "optional": scalars, "repeats": scalars}))
GATE = st.fixed_dictionaries({}, optional={
    "rules": st.lists(st.one_of(st.sampled_from(["f1.mean >= 0.5", "contains: no_regression()", "error_rate <= 0"]),
                                st.text(max_size=20), values), max_size=3),
    "required": values, "confidence": scalars, "prices": values, "variants": values,
    "on_inconclusive": st.one_of(st.sampled_from(["fail", "pass", "warn"]), scalars)})
SUITES = st.fixed_dictionaries({"name": st.one_of(st.just("s"), scalars)}, optional={
    "dataset": st.one_of(st.sampled_from(["data.jsonl", "data.csv", "data.json", "nope.jsonl"]), values),
    "variants": st.one_of(st.lists(VARIANT, max_size=2), values),
    "evaluators": st.one_of(st.lists(EVALUATOR, max_size=3), values),
    "baseline": scalars, "gate": st.one_of(GATE, values), "runner": values, "judge": scalars,
    "targets": st.one_of(st.just({"fake": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}}),
                         values),
    "matrix": values, "store": scalars,
    "export": st.one_of(st.lists(st.fixed_dictionaries({"to": st.one_of(st.sampled_from(["mlflow", "foundry"]), scalars)},
                                                       optional={"tracking_uri": scalars, "experiment": scalars,
                                                                 "path": scalars}), max_size=2), values),
}).filter(_safe)


def _project(root: Path) -> None:
    (root / "a.prompty").write_text("---\nmodel:\n  parameters:\n    temperature: 0\n---\nuser:\n{{q}}\n")
    (root / "data.jsonl").write_text('{"id": 1, "q": "hi", "ground_truth": "hi"}\n{"id": 2, "q": "yo"}\n')
    (root / "data.csv").write_text("id,q\n1,hi\n")
    (root / "data.json").write_text('[{"id": 1, "q": "hi"}]')


@SETTINGS
@given(SUITES)
def test_any_suite_loads_and_prepares_or_is_a_user_error(doc):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _project(root)
        path = root / "promptgauge.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        try:
            suite = load_suite(path)
            prepare(suite, offline=True)
        except UserError as exc:
            assert exc.format()


@SETTINGS
@given(st.text(max_size=200))
def test_any_suite_text_is_a_suite_or_a_user_error(text):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "promptgauge.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_suite(path)
            load_policy(path)
        except UserError:
            pass


lines_of_json = st.lists(st.one_of(values.map(lambda v: json.dumps(v, default=str)), st.text(max_size=30)), max_size=6)


@SETTINGS
@given(st.one_of(lines_of_json.map("\n".join), st.binary(max_size=120).map(lambda b: b.decode("latin-1"))),
       st.sampled_from(["jsonl", "csv", "json"]), st.sampled_from([None, "id", "q"]))
def test_any_dataset_file_is_rows_or_a_dataset_error(text, fmt, id_column):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data.{fmt}"
        path.write_bytes(text.encode("utf-8", "surrogatepass") if fmt != "csv" else text.encode("latin-1", "replace"))
        try:
            ds = load_dataset(path, id_column=id_column)
            rows = list(ds)
            assert len(rows) == len(ds) and all(isinstance(r.data, dict) for r in rows)
        except UserError:
            pass


@SETTINGS
@given(st.lists(values, max_size=5), st.sampled_from([None, "id"]))
def test_any_json_array_dataset_is_rows_or_a_dataset_error(items, id_column):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.json"
        path.write_text(json.dumps(items, default=str))
        try:
            rows = list(load_dataset(path, id_column=id_column))
            assert [r.data for r in rows] == [json.loads(json.dumps(i, default=str)) for i in items]
        except UserError:
            pass


FRONT = st.fixed_dictionaries({}, optional={
    "model": st.one_of(values, st.fixed_dictionaries({}, optional={
        "api": scalars, "response": scalars, "parameters": values,
        "configuration": st.one_of(values, st.fixed_dictionaries({"type": st.sampled_from(["openai", "azure_openai", "x"])},
                                                                 optional={"model": scalars, "api_key": scalars,
                                                                           "base_url": scalars}))})),
    "inputs": st.one_of(values, st.dictionaries(st.sampled_from(["q", "n"]), st.fixed_dictionaries(
        {}, optional={"type": scalars, "default": scalars}), max_size=2)),
    "sample": st.one_of(values, st.sampled_from(["sample.json", "${file:sample.json}", "nope.json"])),
    "outputs": values})
BODY = st.one_of(st.sampled_from(["user:\n{{q}}\n", "system:\nhi {{ n }}\nuser:\n{{q}}", "{% for x in q %}{{x}}{% endfor %}",
                                  "{{ q.__class__ }}", "{{", "{% if %}"]), st.text(max_size=40))


@SETTINGS
@given(st.one_of(FRONT.map(lambda f: yaml.safe_dump(f, allow_unicode=True)), st.text(max_size=80)), BODY,
       st.dictionaries(st.sampled_from(["q", "n"]), scalars, max_size=2))
def test_any_prompty_is_a_prompt_or_a_template_error(front, body, row):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sample.json").write_text('{"q": "hi"}')
        path = root / "p.prompty"
        path.write_text(f"---\n{front}\n---\n{body}", encoding="utf-8")
        try:
            prompt = load_prompt(path)
            load_sample(prompt)
            _ = prompt.parameters, prompt.deployment, prompt.configuration, prompt.json_output, prompt.variables()
            prompt.check_row(row, lambda: "row 1")
            prompt.render(row)
        except UserError:
            pass


EVALUATORS = ["f1", "contains", "exact_match"]


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=40), st.builds(
    lambda m, op, n: f"{m} {op} {n}", st.sampled_from(["f1.mean", "contains.pass_rate.delta.ci_low", "error_rate",
                                                       "cost.total", "f1", "nope.mean", "f1.ci_low"]),
    st.sampled_from([">=", "<", "==", "=>", "!"]), st.sampled_from(["0.5", "-1e3", "1e999", "x", ""])),
    st.builds(lambda m, a: f"{m}: no_regression({a})", st.sampled_from(["f1", "contains", "error_rate", "nope"]),
              st.one_of(st.text(max_size=20), st.builds(
                  lambda k, v: f"{k}={v}", st.sampled_from(["power", "alpha", "max_drop", "pwr"]),
                  st.sampled_from(["0.8", "0", "1", "-0.1", "1e-9", "x", "0.99999"]))))), max_size=4),
       st.one_of(st.none(), st.text(max_size=5)))
def test_any_gate_rule_parses_or_is_a_gate_error(rules, variant):
    try:
        policy = GatePolicy(rules=[{"rule": r, "variant": variant} if variant else r for r in rules])
        parse_rules(policy, EVALUATORS, variants=["a", "b"])
    except UserError:
        pass
    except ValueError as exc:  # pydantic's ValidationError: the policy model refusing a value
        assert type(exc).__name__ == "ValidationError"


@SETTINGS
@given(GATE.filter(_safe))
def test_any_gate_policy_file_is_a_policy_or_a_user_error(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gate.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        try:
            policy = load_policy(path)
            parse_rules(policy, EVALUATORS, file=path, in_suite=False)
        except UserError:
            pass
