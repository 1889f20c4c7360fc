"""Checks that used to come too late or never: each is exit 2 naming the field, before any model call
(or, for what only the first answers show, after the first few rows)."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import run_cli


def _run(builder, *args: str, env: dict[str, str] | None = None):
    return run_cli("run", "--no-progress", *args, cwd=builder.root, env=env)


def _exit_2(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("where", ["target", "judge"])
def test_api_key_env_naming_an_unset_variable_is_exit_2_before_any_call(builder, fake_openai, where):
    targets = {"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "m"},
               "keyed": {"type": "openai", "base_url": fake_openai.base_url, "model": "m",
                         "api_key_env": "PG_UNSET_KEY_XYZ"}}
    if where == "target":
        builder.suite(targets=targets, variants=[{"name": "a", "prompt": "a.prompty", "target": "keyed"}],
                      baseline=None)
    else:
        builder.suite(targets=targets, judge="keyed", variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}],
                      baseline=None, evaluators=[{"name": "relevance"}], gate={"rules": []})
    proc = _run(builder)
    _exit_2(proc, "PG_UNSET_KEY_XYZ", "targets.keyed.api_key_env", "is not set")
    assert fake_openai.request_count == 0


def test_api_key_env_and_env_reference_behave_the_same(builder, fake_openai):
    builder.suite(targets={"keyed": {"type": "openai", "base_url": fake_openai.base_url + "?k=${env:PG_UNSET_B}",
                                     "model": "m"}},
                  variants=[{"name": "a", "prompt": "a.prompty", "target": "keyed"}], baseline=None)
    _exit_2(_run(builder), "PG_UNSET_B", "is not set")
    assert fake_openai.request_count == 0


def test_prompty_api_key_reference_to_an_unset_variable(builder, fake_openai):
    builder.prompt("k.prompty", "user:\n{{question}}\n", front=(
        "model:\n  api: chat\n  configuration:\n    type: openai\n    model: m\n"
        f"    base_url: {fake_openai.base_url}\n    api_key: ${{env:PG_UNSET_C}}\n"))
    builder.suite(variants=[{"name": "a", "prompt": "k.prompty"}], baseline=None)
    _exit_2(_run(builder), "PG_UNSET_C", "k.prompty", "model.configuration.api_key")
    assert fake_openai.request_count == 0


@pytest.mark.parametrize(("evaluator", "needles"), [
    ({"name": "length", "params": {"max": "ten"}}, ["evaluators.length.params.max", "'ten'", "int"]),
    ({"name": "length", "params": {"maximum": 10}}, ["evaluators.length.params.maximum", "no parameter", "max"]),
    ({"name": "contains", "params": {"ignore_case": [1, 2]}}, ["evaluators.contains.params.ignore_case", "bool"]),
    ({"name": "rx", "type": "regex", "params": {"pattern": "(", "fullmatch": True}},
     ["evaluators.rx.params", "invalid regular expression"]),
    ({"name": "lat", "type": "latency", "params": {"budget_ms": {"a": 1}}}, ["evaluators.lat.params.budget_ms"]),
])
def test_evaluator_params_are_checked_against_the_signature(builder, fake_openai, evaluator, needles):
    builder.suite(evaluators=[evaluator], gate={"rules": []})
    _exit_2(_run(builder), "promptgauge.yaml", *needles)
    assert fake_openai.request_count == 0


def test_custom_evaluator_params_are_checked_too(builder, fake_openai):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "short.py").write_text(
        "class Short:\n    def __init__(self, *, limit: int = 3):\n        self.limit = limit\n"
        "    def __call__(self, *, response):\n        return {'short': len(response.split()) <= self.limit}\n"
        "def words(*, response, factor: float = 1.0):\n    return {'words': factor * len(response.split())}\n")
    builder.suite(evaluators=[{"name": "s", "type": "Short", "params": {"limit": "three"}}], gate={"rules": []})
    _exit_2(_run(builder), "evaluators.s.params.limit")
    builder.suite(evaluators=[{"name": "words", "params": {"factor": "x"}}], gate={"rules": []})
    _exit_2(_run(builder), "evaluators.words.params.factor")
    builder.suite(evaluators=[{"name": "s", "type": "Short", "params": {"limit": "5"}}], gate={"rules": []})
    assert _run(builder).returncode == 0  # a number written as text is taken as the number


def test_mapping_to_a_target_output_that_never_exists_stops_early(builder, fake_openai):
    rows = [{"id": f"r{i}", "question": f"q{i}", "ground_truth": "x"} for i in range(40)]
    builder.dataset(rows)
    builder.suite(evaluators=[{"name": "contains", "column_mapping": {"response": "${target.nope}"}}],
                  gate={"rules": []}, runner={"concurrency": 1, "timeout": 2, "retries": 0})
    proc = _run(builder)
    _exit_2(proc, "evaluators.contains.column_mapping", "${target.nope}", "the target gave: response")
    assert fake_openai.request_count < 20  # stopped early, not after 80 calls
    con = sqlite3.connect(builder.root / ".promptgauge" / "promptgauge.db")
    assert con.execute("SELECT status FROM runs").fetchone()[0] == "failed"


def test_evaluator_that_errors_on_every_row_stops_the_run(builder, fake_openai):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "broken.py").write_text("def broken(*, response):\n    return 1 / 0\n")
    builder.dataset([{"id": f"r{i}", "question": f"q{i}", "ground_truth": "x"} for i in range(30)])
    builder.suite(evaluators=[{"name": "broken"}, {"name": "contains"}], gate={"rules": []},
                  runner={"concurrency": 1, "timeout": 2, "retries": 0})
    proc = _run(builder)
    _exit_2(proc, "evaluator 'broken' failed on each of the first 5 rows", "ZeroDivisionError", "evaluators.broken")
    assert fake_openai.request_count < 15


def test_a_few_rows_with_an_always_failing_evaluator_still_exit_2(builder, fake_openai):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "broken.py").write_text("def broken(*, response):\n    raise ValueError('nope')\n")
    builder.suite(evaluators=[{"name": "broken"}], gate={"rules": []})  # 4 rows per variant
    _exit_2(_run(builder), "evaluator 'broken' failed on each of the first 4 rows", "nope")


def test_an_optional_evaluator_that_always_fails_is_skipped_loudly(builder, fake_openai):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "broken.py").write_text("def broken(*, response):\n    raise ValueError('nope')\n")
    builder.suite(evaluators=[{"name": "broken", "optional": True}, {"name": "contains"}],
                  gate={"rules": ["contains.pass_rate >= 0.5"]})
    proc = _run(builder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SKIPPED" in proc.stdout and "broken" in proc.stdout


def test_unknown_prompty_parameter_is_exit_2_naming_the_prompty_and_parameter(builder, fake_openai):
    builder.prompt("a.prompty", "user:\n{{question}}\n", front="model:\n  parameters:\n    temperature: 0\n"
                   "    max_tokenz: 5\n")
    builder.suite()
    _exit_2(_run(builder), "a.prompty", "model.parameters.max_tokenz", "max_tokens")
    assert fake_openai.request_count == 0


def test_unknown_variant_parameter_names_the_suite_field(builder, fake_openai):
    builder.suite(variants=[{"name": "a", "prompt": "a.prompty", "target": "fake", "parameters": {"temprature": 1}}],
                  baseline=None)
    _exit_2(_run(builder), "promptgauge.yaml", "variants.a.parameters.temprature")
    assert fake_openai.request_count == 0
