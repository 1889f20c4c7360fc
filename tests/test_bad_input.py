"""Bad input: one clear message naming file, line/row and field; exit code 2; no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from promptgauge.cli import main


def cli(capsys, root: Path, *args: str) -> tuple[int, str]:
    """Run the CLI in-process (fast); return (exit code, stderr)."""
    import os

    old = os.getcwd()
    os.chdir(root)
    try:
        with pytest.raises(SystemExit) as exc:
            main(["run", "--no-progress", *args])
    finally:
        os.chdir(old)
    return exc.value.code, capsys.readouterr().err


def test_yaml_syntax_error(builder, capsys):
    (builder.root / "promptgauge.yaml").write_text("name: t\ndataset: data.jsonl\nvariants:\n  - name: [a\n")
    code, err = cli(capsys, builder.root)
    assert code == 2
    assert "promptgauge.yaml:5" in err and "YAML syntax error" in err


def test_unknown_field_names_line_and_valid_fields(builder, capsys):
    path = builder.suite()
    text = path.read_text().replace("  prompt: b.prompty", "  prompt: b.prompty\n  temprature: 0.2")
    path.write_text(text)
    line = text.splitlines().index("  temprature: 0.2") + 1
    code, err = cli(capsys, builder.root)
    assert code == 2
    assert f"promptgauge.yaml:{line}" in err
    assert "variants[1].temprature" in err and "unknown field 'temprature'" in err
    assert "parameters" in err  # the valid fields are listed


def test_unknown_evaluator(builder, capsys):
    builder.suite(evaluators=[{"name": "exact_mtach"}])
    code, err = cli(capsys, builder.root)
    assert code == 2
    assert "unknown evaluator 'exact_mtach'" in err and "exact_match" in err and "promptgauge.yaml" in err


def test_missing_dataset_file(builder, capsys):
    builder.suite(dataset="nope.jsonl")
    code, err = cli(capsys, builder.root)
    assert code == 2 and "nope.jsonl" in err and "not found" in err


def test_malformed_jsonl_line(builder, capsys):
    (builder.root / "data.jsonl").write_text('{"question": "q1", "ground_truth": "a"}\n{"question": "q2",\n')
    builder.suite()
    code, err = cli(capsys, builder.root)
    assert code == 2 and "data.jsonl:2" in err and "malformed JSON" in err


def test_missing_mapped_column(builder, capsys):
    builder.suite(evaluators=[{"name": "contains", "column_mapping": {"value": "${data.answer}"}}])
    code, err = cli(capsys, builder.root)
    assert code == 2
    assert "no column 'answer'" in err and "evaluators.contains.column_mapping.value" in err
    assert "ground_truth" in err  # lists the columns that exist


def test_column_missing_in_one_row_names_the_line(builder, capsys):
    rows = [{"id": 1, "question": "q", "ground_truth": "x"}, {"id": 2, "question": "q2"}]
    builder.dataset(rows)
    builder.suite(evaluators=[{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}])
    code, err = cli(capsys, builder.root)
    assert code == 2 and "data.jsonl:2" in err and "ground_truth" in err


def test_undefined_template_variable(builder, capsys):
    builder.prompt("b.prompty", "user:\n{{ questoin }}\n")
    builder.suite()
    code, err = cli(capsys, builder.root)
    assert code == 2
    assert "b.prompty" in err and "'questoin' is undefined" in err and "data.jsonl:1" in err
    assert "question" in err  # what the row does have


def test_unknown_target(builder, capsys):
    builder.suite(variants=[{"name": "a", "prompt": "a.prompty", "target": "gpt5"}], baseline=None)
    code, err = cli(capsys, builder.root)
    assert code == 2 and "unknown target 'gpt5'" in err and "local:smollm2" in err and "variants.a" in err


def test_non_utf8_dataset(builder, capsys):
    (builder.root / "data.jsonl").write_bytes(b'{"question": "ok"}\n{"question": "caf\xe9"}\n')
    builder.suite()
    code, err = cli(capsys, builder.root)
    assert code == 2 and "data.jsonl:2" in err and "UTF-8" in err


def test_empty_dataset(builder, capsys):
    (builder.root / "data.jsonl").write_text("\n\n")
    builder.suite()
    code, err = cli(capsys, builder.root)
    assert code == 2 and "dataset is empty" in err


def test_empty_csv_dataset(builder, capsys):
    (builder.root / "data.csv").write_text("")
    builder.suite(dataset="data.csv")
    code, err = cli(capsys, builder.root)
    assert code == 2 and "dataset is empty" in err


def test_duplicate_row_ids(builder, capsys):
    builder.dataset([{"id": 1, "question": "q", "ground_truth": "a"}, {"id": 1, "question": "r", "ground_truth": "b"}])
    builder.suite()
    code, err = cli(capsys, builder.root)
    assert code == 2 and "duplicate row id '1'" in err and "data.jsonl:2" in err


def test_malformed_and_unknown_gate_rules(builder, capsys):
    builder.suite(gate={"rules": ["exact_match.pass_rate >== 0.5"]})
    code, err = cli(capsys, builder.root)
    assert code == 2 and "malformed rule" in err and "gate.rules[0]" in err
    builder.suite(gate={"rules": ["relevance.mean >= 3"]})
    code, err = cli(capsys, builder.root)
    assert code == 2 and "unknown metric 'relevance.mean'" in err


def test_literal_api_key_in_suite_is_refused(builder, capsys):
    targets = {"fake": {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "sk-123"}}
    builder.suite(targets=targets)
    code, err = cli(capsys, builder.root)
    assert code == 2 and "unknown field 'api_key'" in err and "api_key_env" in err


def test_unknown_variant_selected(builder, capsys):
    builder.suite()
    code, err = cli(capsys, builder.root, "--variant", "zzz")
    assert code == 2 and "unknown variant 'zzz'" in err and "a, b" in err


def test_csv_dataset_works(builder, fake_openai, capsys):
    (builder.root / "data.csv").write_text("id,question,ground_truth\nfr,What is the capital of France?,Paris\n")
    builder.suite(dataset="data.csv", gate={"rules": []})
    code, err = cli(capsys, builder.root)
    assert code == 0, err


def test_subprocess_error_output_has_no_traceback_but_debug_does(builder):
    builder.suite(evaluators=[{"name": "nope"}])
    proc = run_cli("run", cwd=builder.root)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3
    proc = run_cli("--debug", "run", cwd=builder.root)
    assert proc.returncode == 2 and "Traceback" in proc.stderr
