"""Exports: each variant as an MLflow run in a real local MLflow store (read back with MlflowClient), and
azure-ai-evaluation's evaluate() output shape, compared key for key with az-eval's own evaluate()."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli

from promptgauge import api
from promptgauge.errors import UserError

CANARY_KEY = "sk-export-canary-7f3a91"
CANARY_HEADER = "Bearer hdr-export-canary-55c1"


def _client(db: Path):
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{db}")


@pytest.fixture
def two_variants(builder, fake_openai):
    """A finished run of the builder's suite: variant a (baseline) and b, gated; a key and a literal header
    value that must never be exported."""
    targets = {"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "gpt-4o-mini",
                        "api_key_env": "PG_EXPORT_KEY"}}
    builder.suite(targets=targets, variants=[
        {"name": "a", "prompt": "a.prompty", "target": "fake"},
        {"name": "b", "prompt": "b.prompty", "target": "fake",
         "parameters": {"temperature": 0, "extra_headers": {"X-Trace": CANARY_HEADER}}}],
        evaluators=[{"name": "exact_match", "params": {"ignore_case": True}},
                    {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
                    {"name": "f1"}])
    env = {"PG_EXPORT_KEY": CANARY_KEY}
    proc = run_cli("run", "--no-progress", cwd=builder.root, env=env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    report = json.loads(next((builder.root / "reports").glob("*/summary.json")).read_text())
    return report, env


@pytest.mark.slow  # MLflow creates and migrates a sqlite store (~15 s)
def test_mlflow_export_logs_each_variant_to_a_real_store(builder, two_variants):
    summary, env = two_variants
    run_id = summary["run_id"]
    proc = run_cli("export", "mlflow", run_id, "--tracking-uri", "sqlite:///mlflow.db", cwd=builder.root, env=env,
                   timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    client = _client(builder.root / "mlflow.db")
    exp = client.get_experiment_by_name("t")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"a", "b"}
    manifest = summary["manifest"]
    for name, r in runs.items():
        p, m, t = r.data.params, r.data.metrics, r.data.tags
        assert r.info.status == "FINISHED"
        # params: what the verdict rests on
        assert p["run_id"] == run_id and p["variant"] == name and p["suite"] == "t"
        assert p["dataset.sha256"] == manifest["dataset"]["sha256"] and p["dataset.rows"] == "4"
        assert p["prompt.sha256"] == manifest["variants"][name]["prompt_sha256"]
        assert p["prompt.path"] == manifest["variants"][name]["prompt"]
        assert p["model.model"] == "gpt-4o-mini" and p["parameters.temperature"] == "0"
        assert p["suite"] == "t" and p["evaluators.f1"]
        # metrics: every aggregate, with CI bounds
        agg = summary["variants"][name]
        for ev in ("exact_match", "contains", "f1"):
            for stat in ("n", "mean", "pass_rate", "errors", "error_rate"):
                if agg["metrics"][ev][stat] is not None:
                    assert m[f"{ev}.{stat}"] == pytest.approx(agg["metrics"][ev][stat]), (name, ev, stat)
            assert m[f"{ev}.mean.ci_low"] <= m[f"{ev}.mean"] <= m[f"{ev}.mean.ci_high"]
        assert m["exact_match.pass_rate.ci_low"] <= m["exact_match.pass_rate"] <= m["exact_match.pass_rate.ci_high"]
        assert m["error_rate"] == agg["calls"]["error_rate"] and m["latency_ms.p95"] == pytest.approx(agg["calls"]["latency_ms"]["p95"])
        assert m["tokens.total"] == agg["calls"]["tokens"]["total"] and "latency_ms.mean.ci_low" in m
        # tags: verdict and suite
        assert t["promptgauge.suite"] == "t" and t["promptgauge.run_id"] == run_id
        # artifacts: the reports and the variant's rows
        files = {f.path for f in client.list_artifacts(r.info.run_id)}
        assert {"report.html", "report.json", "summary.json", "rows.csv"} <= files
    gate = summary["gate"]
    assert runs["a"].data.tags["promptgauge.verdict"] == "not gated"
    assert runs["b"].data.tags["promptgauge.verdict"] == ("passed" if gate["passed"] else "failed")
    # the gated variant carries its change vs. the baseline, with CI
    mb = runs["b"].data.metrics
    assert mb["exact_match.pass_rate.delta.ci_low"] <= mb["exact_match.pass_rate.delta"] <= mb["exact_match.pass_rate.delta.ci_high"]
    # the rows table: one line per row, with outputs and scores
    local = Path(client.download_artifacts(runs["b"].info.run_id, "rows.csv", str(builder.root / "dl")))
    import csv

    rows = list(csv.DictReader(local.open()))
    assert [r["row_id"] for r in rows] == ["fr", "jp", "it", "es"]
    assert rows[0]["output"] == "Paris" and rows[0]["contains.passed"] == "True" and rows[3]["contains.passed"] == "False"
    report = json.loads(Path(client.download_artifacts(runs["b"].info.run_id, "report.json",
                                                       str(builder.root / "dl2"))).read_text())
    assert report["run_id"] == run_id and report["verdict"]["passed"] == gate["passed"]
    # Exporting again updates the same MLflow runs: no duplicates.
    again = run_cli("export", "mlflow", f"{run_id[:8]}:b", "--tracking-uri", "sqlite:///mlflow.db", cwd=builder.root,
                    env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(r.info.run_name for r in client.search_runs([exp.experiment_id])) == ["a", "b"]
    assert runs["b"].info.run_id in again.stdout
    # No secret in anything exported: the MLflow database (params, metrics, tags), the artifacts.
    assert CANARY_KEY.encode() not in (builder.root / "mlflow.db").read_bytes()
    assert CANARY_HEADER.encode() not in (builder.root / "mlflow.db").read_bytes()
    for path in (builder.root / "mlruns").rglob("*"):
        if path.is_file():
            assert CANARY_KEY.encode() not in path.read_bytes(), path
    assert runs["b"].data.params["parameters.extra_headers.X-Trace"] == "***"


@pytest.mark.parametrize(("args", "message"), [
    (["mlflow", "nosuchrun", "--tracking-uri", "sqlite:///m.db"], "no run 'nosuchrun' in the store"),
    (["mlflow", "latest:zz", "--tracking-uri", "sqlite:///m.db"], "has no variant 'zz'"),
    (["mlflow", "latest", "--tracking-uri", "http://127.0.0.1:9"], "cannot use the MLflow tracking store at http://127.0.0.1:9"),
    (["mlflow", "latest", "--tracking-uri", "https://user:pw-canary@127.0.0.1:9/x?token=tk-canary"], "tracking store at https://127.0.0.1:9/x?token="),
    (["foundry", "latest", "-o", "reports"], "is a folder"),
    (["foundry", "latest", "--store", "nope.db"], "no store here"),
])
def test_bad_export_input_is_exit_2(builder, two_variants, args, message):
    proc = run_cli("export", *args, cwd=builder.root, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "canary" not in proc.stderr


BLOCK_MLFLOW = """
import sys
class _NoMlflow:
    def find_spec(self, name, path=None, target=None):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoMlflow())
from promptgauge.cli import main
main(sys.argv[1:])
"""


def test_missing_mlflow_is_exit_2_naming_the_extra(builder, two_variants):
    import subprocess

    for args in (["export", "mlflow", "latest"], ["run", "--no-progress"]):
        if args[0] == "run":
            builder.suite(export=[{"to": "mlflow", "tracking_uri": "sqlite:///m.db"}])
        proc = subprocess.run([sys.executable, "-c", BLOCK_MLFLOW, *args], cwd=builder.root, capture_output=True,
                              text=True, timeout=120, env={**os.environ, **two_variants[1]})
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "promptgauge[mlflow]" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "export[0]" in proc.stderr  # the suite's entry, named before any call
    assert len(list((builder.root / "reports").iterdir())) == 1  # the second run never started


@pytest.mark.slow  # MLflow creates and migrates a sqlite store (~15 s)
def test_suite_export_section_runs_after_every_run(builder, fake_openai, tmp_path):
    builder.suite(export=[{"to": "mlflow", "tracking_uri": "sqlite:///mlflow.db", "experiment": "capitals"},
                          {"to": "foundry", "path": "out/foundry.json"}])
    proc = run_cli("run", "--no-progress", cwd=builder.root, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "exported to mlflow" in proc.stdout and "exported to foundry" in proc.stdout
    docs = {v: json.loads((builder.root / "out" / f"foundry.{v}.json").read_text()) for v in ("a", "b")}
    assert len(docs["a"]["rows"]) == 4
    assert docs["a"]["metrics"] == {"contains.contains": 0.75, "contains.binary_aggregate": 0.75,
                                    "exact_match.exact_match": 0.5, "exact_match.binary_aggregate": 0.5}
    client = _client(builder.root / "mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("capitals").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["a", "b"]
    # An unreachable tracking store is found before any model call: exit 2, nothing run.
    calls = fake_openai.request_count
    builder.suite(export=[{"to": "mlflow", "tracking_uri": "http://127.0.0.1:9"}])
    proc = run_cli("run", "--no-progress", cwd=builder.root, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}, timeout=300)
    assert proc.returncode == 2 and "export[0]" in proc.stderr and "127.0.0.1:9" in proc.stderr, proc.stderr
    assert fake_openai.request_count == calls


def test_export_keys_are_checked(builder):
    builder.suite(export=[{"to": "foundry", "tracking_uri": "sqlite:///m.db"}])
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2 and "'tracking_uri' does not apply to an export to foundry" in proc.stderr, proc.stderr
    builder.suite(export=[{"to": "wandb"}])
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2 and "export" in proc.stderr and "'mlflow' or 'foundry'" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------- foundry vs. az-eval's evaluate()

ANSWER = '''
def answer(query):
    """The target: a dict, as azure-ai-evaluation's evaluate(target=...) takes one."""
    words = {"q1": "Paris is the capital", "q2": "Tokyo", "q3": "it is Rome", "q4": "Madrid or Barcelona"}
    return {"response": words[query], "extra": len(query)}


def num(response):
    return len(response) / 10


def flag(response):
    return "is" in response
'''

ROWS = [{"id": "r1", "query": "q1", "ground_truth": "Paris"}, {"id": "r2", "query": "q2", "ground_truth": "Kyoto"},
        {"id": "r3", "query": "q3", "ground_truth": "Rome"}, {"id": "r4", "query": "q4", "ground_truth": "Madrid"}]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@pytest.mark.slow
def test_foundry_export_matches_azure_ai_evaluation_evaluate_key_for_key(builder, monkeypatch, tmp_path):
    (builder.root / "app.py").write_text(ANSWER)
    data = builder.dataset(ROWS)
    mapping = {"response": "${target.response}", "ground_truth": "${data.ground_truth}"}
    builder.suite(variants=[{"name": "v", "target": "python:app:answer"}], baseline=None, gate={"rules": []},
                  evaluators=[{"name": "f1", "column_mapping": mapping},  # ours
                              {"name": "azf1", "type": "azure.ai.evaluation:F1ScoreEvaluator", "column_mapping": mapping},
                              {"name": "num", "type": "app:num", "column_mapping": {"response": "${target.response}"}},
                              {"name": "flag", "type": "app:flag", "column_mapping": {"response": "${target.response}"}}])
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("export", "foundry", "latest", "-o", "foundry.json", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ours = json.loads((builder.root / "foundry.json").read_text())

    # The same data, target and evaluators through azure-ai-evaluation's own evaluate().
    from azure.ai.evaluation import F1ScoreEvaluator, evaluate

    from promptgauge.evaluators.nlp import F1ScoreEvaluator as OurF1

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(builder.root))
    monkeypatch.delitem(sys.modules, "app", raising=False)  # another test's app.py may be loaded under that name
    import app  # noqa: PLC0415 - the suite's module, as the run imported it

    our_f1 = OurF1()

    def f1(response, ground_truth):  # our builtin; az-eval reads **kwargs in a signature as a required column
        return our_f1(response=response, ground_truth=ground_truth)

    theirs = evaluate(data=str(data), target=app.answer,
                      evaluators={"f1": f1, "azf1": F1ScoreEvaluator(), "num": app.num, "flag": app.flag},
                      evaluator_config={"default": {"column_mapping": mapping},
                                        "num": {"column_mapping": {"response": "${target.response}"}},
                                        "flag": {"column_mapping": {"response": "${target.response}"}}})
    assert set(ours) == set(theirs) == {"rows", "metrics", "studio_url"}
    assert len(ours["rows"]) == len(theirs["rows"]) == 4
    for mine, az in zip(ours["rows"], theirs["rows"]):
        assert list(mine) == list(az) or set(mine) == set(az), (sorted(mine), sorted(az))
        for key in az:
            assert _same(mine[key], az[key]), (key, mine[key], az[key])
    assert set(ours["metrics"]) == set(theirs["metrics"])
    for key, value in theirs["metrics"].items():
        assert _same(ours["metrics"][key], value), (key, ours["metrics"][key], value)
    assert ours["metrics"]["azf1.binary_aggregate"] == theirs["metrics"]["azf1.binary_aggregate"] == 0.75


def test_foundry_export_of_a_failed_row_and_several_variants(builder, fake_openai):
    fake_openai.fail_at(2, "500", n=2)  # the second request fails, and its retry
    builder.suite(runner={"concurrency": 1, "timeout": 2, "retries": 1, "backoff_base": 0.01, "backoff_max": 0.05})
    run_cli("run", "--no-progress", cwd=builder.root)
    proc = run_cli("export", "foundry", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = next(p for p in (builder.root / "reports").iterdir() if p.is_dir())
    docs = [json.loads((folder / f"foundry.{v}.json").read_text()) for v in ("a", "b")]
    rows = docs[0]["rows"] + docs[1]["rows"]
    assert len(rows) == 8 and all(set(r) == set(docs[0]["rows"][0]) for r in docs[0]["rows"])
    failed = [r for r in rows if r["outputs.response"] is None]
    assert len(failed) == 1 and failed[0]["outputs.contains.contains"] is None  # no score: null, as in az-eval's table
    assert sum(r["outputs.contains.contains"] is not None for r in rows) == 7
    assert {r["inputs.id"] for r in docs[0]["rows"]} == {"fr", "jp", "it", "es"}
    assert all(set(r["inputs.line_number"] for r in d["rows"]) == {0, 1, 2, 3} for d in docs)


def test_export_library_function_rejects_unknown_target(builder, two_variants):
    with pytest.raises(UserError, match="unknown export target 'wandb'"):
        api.export("wandb", suite=builder.root / "promptgauge.yaml")


@pytest.mark.slow  # MLflow creates and migrates a sqlite store (~15 s)
def test_a_run_whose_every_call_failed_exports_what_there_is(builder, fake_openai):
    fake_openai.set_faults(1.0, kinds=("500",))
    builder.suite(runner={"concurrency": 2, "timeout": 2, "retries": 0})
    assert run_cli("run", "--no-progress", cwd=builder.root).returncode == 1
    proc = run_cli("export", "mlflow", "--tracking-uri", "sqlite:///mlflow.db", cwd=builder.root, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    client = _client(builder.root / "mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    for r in runs:
        m = r.data.metrics
        assert m["error_rate"] == 1.0 and m["exact_match.n"] == 0 and "exact_match.mean" not in m
        assert r.data.tags["promptgauge.verdict"] in ("not gated", "failed")
    proc = run_cli("export", "foundry", "latest:b", "-o", "b.json", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((builder.root / "b.json").read_text())
    assert len(doc["rows"]) == 4 and doc["metrics"] == {} and all(set(r) == {"inputs.id", "inputs.question",
                                                                            "inputs.ground_truth", "inputs.line_number"}
                                                                   for r in doc["rows"])
