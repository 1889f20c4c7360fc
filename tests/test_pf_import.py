"""``promptgauge import``: promptflow run.yml (and connection) files -> a suite a user can commit, which then
runs; the run.yml parser ends in a suite or a clear UserError for any input (property test)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptgauge.errors import UserError
from promptgauge.pfimport import RUN_KEYS, import_connection, import_runs
from promptgauge.suite import load_suite

PF = Path(__file__).parent / "flows" / "pf_examples"
SETTINGS = settings(max_examples=int(os.environ.get("PG_PROPERTY_EXAMPLES", "150")), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture
def ex(tmp_path):
    shutil.copytree(PF, tmp_path / "ex")
    return tmp_path


def test_import_a_flow_run_and_its_evaluation_run_then_run_the_suite(ex, fake_openai):
    """flows/standard/basic/run.yml (unchanged) + an evaluation run over it, as web-classification's
    run_evaluation.yml is written; the connection file names an environment variable for its key."""
    (ex / "conn.yaml").write_text(yaml.safe_dump({
        "name": "open_ai_connection", "type": "azure_open_ai", "api_key": "${env:MY_AOAI_KEY}",
        "api_base": fake_openai.root_url, "api_type": "azure", "api_version": "2024-02-01"}))
    (ex / "run_evaluation.yml").write_text(
        "flow: ex/flows/evaluation/eval-classification-accuracy\ndata: ex/flows/standard/basic/data.jsonl\n"
        "run: basic_variant_0_20240101  # replace with your run name\n"
        "column_mapping:\n  groundtruth: ${data.text}\n  prediction: ${run.outputs.output}\n")
    out = run_cli("import", "ex/flows/standard/basic/run.yml", "run_evaluation.yml", "--connection", "conn.yaml",
                  cwd=ex)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (ex / "promptgauge.yaml").read_text()
    assert "MY_AOAI_KEY" in text and "test-key" not in text
    suite = yaml.safe_load(text)
    assert suite["dataset"] == "ex/flows/standard/basic/data.jsonl"
    (variant,) = suite["variants"]
    target = suite["targets"][variant["target"]]
    assert target == {"type": "flow", "flow": "ex/flows/standard/basic", "environment": {
        "AZURE_OPENAI_API_KEY": "${env:MY_AOAI_KEY}", "AZURE_OPENAI_API_BASE": fake_openai.root_url,
        "AZURE_OPENAI_API_TYPE": "azure"}}
    assert variant["inputs"] == {"text": "${data.text}"}
    assert suite["targets"]["open_ai_connection"] == {"type": "azure", "azure_endpoint": fake_openai.root_url,
                                                      "api_version": "2024-02-01", "api_key_env": "MY_AOAI_KEY"}
    (ev,) = suite["evaluators"]
    assert ev["type"] == "flow:ex/flows/evaluation/eval-classification-accuracy"
    assert ev["column_mapping"] == {"groundtruth": "${data.text}", "prediction": "${target.output}"}
    load_suite(ex / "promptgauge.yaml")
    # the imported suite runs as it is, the key only in the environment
    fake_openai.responder = lambda req: "Python Hello World!" if "Python" in (req.get("prompt") or "") else "no"
    env = {"MY_AOAI_KEY": "secret-key-123"}
    out = run_cli("run", "--no-progress", cwd=ex, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(next((ex / "reports").glob("*/summary.json")).read_text())
    metrics = summary["variants"][variant["name"]]["metrics"][ev["name"]]
    assert metrics["aggregates"] == {"accuracy": 0.33}  # one of three texts answered right
    for path in [ex / "promptgauge.yaml", *(ex / "reports").rglob("*.*"), ex / ".promptgauge" / "promptgauge.db"]:
        assert b"secret-key-123" not in path.read_bytes(), path
    # an existing suite is kept unless --force
    again = run_cli("import", "ex/flows/standard/basic/run.yml", cwd=ex)
    assert again.returncode == 2 and "--force" in again.stderr


def test_import_prompty_and_flex_runs_unchanged(ex, fake_openai):
    out = run_cli("import", "ex/prompty/basic/run.yml", "-o", "p.yaml", cwd=ex)
    assert out.returncode == 0, out.stderr
    suite = yaml.safe_load((ex / "p.yaml").read_text())
    assert suite["variants"] == [{"name": "basic", "prompt": "ex/prompty/basic/basic.prompty",
                                  "inputs": {"question": "${data.question}"}}]
    assert "environment_variables of a prompty run are not needed" in out.stderr
    out = run_cli("run", "p.yaml", "--no-progress", cwd=ex,
                  env={"AZURE_OPENAI_ENDPOINT": fake_openai.root_url, "AZURE_OPENAI_API_KEY": "k" * 8})
    assert out.returncode == 0, out.stdout + out.stderr
    out = run_cli("import", "ex/flex-flows/basic/run.yml", "-o", "f.yaml", cwd=ex)
    assert out.returncode == 0, out.stderr
    suite = yaml.safe_load((ex / "f.yaml").read_text())
    (target,) = suite["targets"].values()
    assert target["flow"] == "ex/flex-flows/basic/flow.flex.yaml" or target["flow"] == "ex/flex-flows/basic"


@pytest.mark.parametrize(("run", "message"), [
    ("flow: nowhere\n", "flow not found"),
    ("data: d.jsonl\n", "needs 'flow:'"),
    ("flow: ex/prompty/basic/basic.prompty\nfoo: 1\n", "unknown run key 'foo'"),
    ("flow: ex/prompty/basic/basic.prompty\ndata: missing.jsonl\n", "data file not found"),
    ("flow: ex/prompty/basic/basic.prompty\ncolumn_mapping: [1]\n", "'column_mapping' must be a mapping"),
    ("flow: ex/prompty/basic/basic.prompty\ncolumn_mapping:\n  q: ${run.outputs.x}\n", "refers to 'run'"),
    ("flow: ex/flows/standard/basic\nconnections:\n  llm:\n    connection: other\n", "no --connection file gives it"),
    ("flow: ex/flows/evaluation/eval-classification-accuracy\nrun: base\n", "give the run.yml of the run they evaluate"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("flow: [\n", "YAML"),
])
def test_bad_run_files_are_clear_errors(ex, run, message):
    (ex / "run.yml").write_text(run)
    out = run_cli("import", "run.yml", cwd=ex)
    assert out.returncode == 2 and message in out.stderr and "run.yml" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (ex / "promptgauge.yaml").exists()


def test_a_connection_key_value_is_never_copied(ex):
    (ex / "conn.yaml").write_text("name: my conn\ntype: open_ai\napi_key: sk-literal-secret-value\n")
    (ex / "run.yml").write_text("flow: ex/flows/standard/basic\nenvironment_variables:\n  OPENAI_API_KEY: sk-also-secret\n"
                                "  PLAIN: value\n  FROM_CONN: ${my conn.api_key}\n")
    imported = import_runs([ex / "run.yml"], connections=[ex / "conn.yaml"], out=ex / "promptgauge.yaml")
    assert "secret" not in imported.text
    env = next(t for t in imported.suite["targets"].values() if t["type"] == "flow")["environment"]
    assert env["OPENAI_API_KEY"] == "${env:OPENAI_API_KEY}" and env["PLAIN"] == "value"
    assert imported.suite["targets"]["my-conn"]["api_key_env"] == "MY_CONN_API_KEY"
    assert any("MY_CONN_API_KEY" in n for n in imported.notes)


# -- property test: any run.yml ends in a suite or a UserError -------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=12),
                    st.sampled_from(["", ".", "ex/prompty/basic/basic.prompty", "ex/flows/standard/basic",
                                     "ex/flows/evaluation/eval-classification-accuracy", "ex/flex-flows/basic",
                                     "ex/prompty/basic/data.jsonl", "${data.q}", "${run.outputs.x}", "${c.api_key}",
                                     "${node.variant_0}", "${env:X}", "base_run"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)
run_docs = st.dictionaries(st.sampled_from(list(RUN_KEYS) + ["other"]), values, max_size=6)


@SETTINGS
@given(st.one_of(run_docs.map(lambda d: yaml.safe_dump(d, allow_unicode=True)), st.text(max_size=60)),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(["name", "type", "api_key", "api_base", "api_version"]),
                                            scalars, max_size=5)))
def test_any_run_file_is_a_suite_or_a_user_error(text, connection):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(PF / "prompty" / "basic", root / "ex" / "prompty" / "basic")
        shutil.copytree(PF / "flows", root / "ex" / "flows")
        shutil.copytree(PF / "flex-flows", root / "ex" / "flex-flows")
        (root / "run.yml").write_text(text, encoding="utf-8")
        conns = []
        if connection is not None:
            (root / "c.yaml").write_text(yaml.safe_dump(connection), encoding="utf-8")
            conns = [root / "c.yaml"]
        try:
            imported = import_runs([root / "run.yml"], connections=conns, out=root / "promptgauge.yaml")
        except UserError:
            return
        (root / "promptgauge.yaml").write_text(imported.text, encoding="utf-8")
        try:
            load_suite(root / "promptgauge.yaml")  # what import writes is a suite (or a clear error naming it)
        except UserError:
            pass


def test_promptflows_own_connection_files_become_targets_without_keys(ex):
    """connections/azure_openai.yml and openai.yml, unchanged: api_key "<user-input>" is not a key to copy."""
    (ex / "run.yml").write_text("flow: ex/flows/standard/basic\nconnections:\n  llm:\n    connection: open_ai_connection\n"
                                "    deployment_name: gpt-35-turbo-instruct\n")
    imported = import_runs([ex / "run.yml"], connections=[ex / "ex" / "connections" / "azure_openai.yml"],
                           out=ex / "promptgauge.yaml")
    target = imported.suite["targets"]["open_ai_connection"]
    assert target == {"type": "azure", "azure_endpoint": "aoai-api-endpoint", "api_key_env": "OPEN_AI_CONNECTION_API_KEY",
                      "model": "gpt-35-turbo-instruct"}
    assert "<user-input>" not in imported.text
    assert any("OPEN_AI_CONNECTION_API_KEY" in n for n in imported.notes)
    name, target, _ = import_connection(ex / "ex" / "connections" / "openai.yml")
    assert name == "open_ai_connection" and target == {"type": "openai", "api_key_env": "OPEN_AI_CONNECTION_API_KEY"}
