"""``promptgauge ci`` and the pipeline examples in examples/ci: schema-checked, and their commands run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SuiteBuilder, run_cli

from promptgauge import api

EXAMPLES = REPO / "examples" / "ci"


def test_ci_writes_junit_markdown_and_reports_and_exits_with_the_gate(builder: SuiteBuilder) -> None:
    builder.suite(gate={"rules": ["exact_match.pass_rate >= 0.5", "contains.pass_rate >= 0.9"]})
    res = run_cli("ci", "--out", "out", cwd=builder.root)
    assert res.returncode == 1, res.stderr
    out = builder.root / "out"
    assert {p.name for p in out.iterdir()} == {"junit.xml", "report.md", "report.html", "report.json", "rows.csv",
                                               "summary.json", "results.jsonl"}
    assert f"junit: {Path('out') / 'junit.xml'}" in res.stdout
    gate = ET.parse(out / "junit.xml").getroot().find("testsuite[@name='gate']")
    assert (gate.get("tests"), gate.get("failures")) == ("2", "1")
    cases = {c.get("name"): c for c in gate.iter("testcase")}
    assert cases["exact_match.pass_rate >= 0.5"].find("failure") is None
    failure = cases["contains.pass_rate >= 0.9"].find("failure")
    assert failure.get("message") == "contains.pass_rate = 0.75 misses >= 0.9"
    summary = json.loads((out / "summary.json").read_text())
    run_dir = builder.root / "reports" / summary["run_id"]
    assert all((out / p.name).read_bytes() == p.read_bytes() for p in run_dir.iterdir())  # the run's own reports
    assert "Gate verdict: ❌ **FAIL**" in (out / "report.md").read_text()


def test_ci_from_the_library_and_on_bad_input(builder: SuiteBuilder) -> None:
    report = api.ci(builder.suite(), out=builder.root / "ci")
    assert report.passed and report.reports["junit"] == builder.root / "ci" / "junit.xml"
    assert report.reports["markdown"].read_text().startswith(f"# promptgauge run {report.run_id} — suite t")
    builder.suite(variants=[{"name": "a", "prompt": "missing.prompty", "target": "fake"}])
    res = run_cli("ci", cwd=builder.root)
    assert res.returncode == 2 and "missing.prompty, field 'variants.a': prompt file not found" in res.stderr
    assert "Traceback" not in res.stderr


def load(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


@pytest.mark.parametrize(("name", "schema"), [("github-actions.yml", "vendor.github-workflows"),
                                               ("azure-pipelines.yml", "vendor.azure-pipelines")])
def test_pipeline_examples_match_their_schemas(name: str, schema: str, tmp_path: Path) -> None:
    """The vendored GitHub Actions / Azure Pipelines schemas of check-jsonschema (offline)."""
    check = [sys.executable, "-m", "check_jsonschema", "--regex-variant", "python", "--builtin-schema", schema]
    res = subprocess.run([*check, str(EXAMPLES / name)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    broken = tmp_path / name  # the check can fail: a misspelt key is caught
    broken.write_text((EXAMPLES / name).read_text().replace("steps:", "step:", 1))
    assert subprocess.run([*check, str(broken)], capture_output=True, text=True).returncode == 1


def github_steps() -> list[dict]:
    [job] = load("github-actions.yml")["jobs"].values()
    return job["steps"]


def azure_steps() -> list[dict]:
    return load("azure-pipelines.yml")["steps"]


#: Steps the tests do not run, and why.
NOT_RUN = {"Install": "the test environment is installed already (pip needs the network)",
           "Comment on the pull request": "needs GitHub's API"}


def test_both_pipelines_run_the_same_commands() -> None:
    def scripts(steps: list[dict], key: str, name: str) -> dict[str, str]:
        return {s[name]: " ".join(s[key].split()) for s in steps if key in s}

    github, azure = scripts(github_steps(), "run", "name"), scripts(azure_steps(), "script", "displayName")
    for step in ("Install", "Gate the suite", "Regression tests"):
        assert github[step] == azure[step]
    uses = {s["uses"].split("@")[0] for s in github_steps() if "uses" in s}
    assert uses == {"actions/checkout", "actions/setup-python", "actions/upload-artifact"}
    tasks = {s["task"] for s in azure_steps() if "task" in s}
    assert tasks == {"UsePythonVersion@0", "PublishTestResults@2", "PublishPipelineArtifact@1"}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A checkout of this repository with a 2-row dataset, so the pipelines' commands run in ~a minute."""
    ws = tmp_path / "checkout"
    ws.mkdir()
    for name in ("promptgauge.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, ws / name)
    for name in ("flows", "evaluators", "examples"):
        shutil.copytree(REPO / name, ws / name, ignore=shutil.ignore_patterns("__pycache__"))
    (ws / "datasets").mkdir()
    rows = (REPO / "datasets" / "capitals.jsonl").read_text().splitlines()[:2]
    (ws / "datasets" / "capitals.jsonl").write_text("\n".join(rows) + "\n")
    return ws


def shell(script: str, cwd: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(["bash", "--noprofile", "--norc", *flags, "-c", script], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PATH": path, **env}, timeout=900)


@pytest.mark.slow
def test_github_actions_commands_run_on_the_embedded_model(workspace: Path) -> None:
    summary = workspace.parent / "step_summary.md"
    ran = []
    for step in github_steps():
        if "run" not in step or step["name"] in NOT_RUN:
            continue
        assert "${{" not in step["run"], f"{step['name']}: uses GitHub expressions the test cannot evaluate"
        res = shell(step["run"], workspace, {"GITHUB_STEP_SUMMARY": str(summary)}, "-eo", "pipefail")  # GitHub's bash
        assert res.returncode == 0, f"{step['name']}:\n{res.stdout}\n{res.stderr}"
        ran.append(step["name"])
    assert ran == ["Gate the suite", "Regression tests", "Job summary"]
    out = workspace / "promptgauge-report"
    gate = ET.parse(out / "junit.xml").getroot().find("testsuite[@name='gate']")
    assert (gate.get("tests"), gate.get("failures")) == ("4", "0")
    tests = ET.parse(out / "pytest-junit.xml").getroot().find("testsuite")
    names = [c.get("name") for c in tests.iter("testcase")]
    assert names[:4] == ["test_answers[cap-01]", "test_answers[cap-02]", "test_smoke[france]", "test_smoke[japan]"]
    assert "promptgauge-baseline[terse-contains.pass_rate]" in names and tests.get("failures") == "0"
    comment = (out / "comment.md").read_text()
    assert comment == summary.read_text()
    # the suite's gate, then the baseline snapshot's: 2 rows cannot rule out a drop, and both say so (and pass)
    assert comment.count("Gate verdict: ⚠️ **INCONCLUSIVE (passes with a warning)**") == 2, comment
    assert "baselines/test_capitals.terse.json" in comment


def test_azure_pipelines_summary_step(tmp_path: Path) -> None:
    """Azure's own script: it uploads the reports the shared commands (run above) write."""
    out = tmp_path / "promptgauge-report"
    (out / "pytest").mkdir(parents=True)
    for report in (out / "report.md", out / "pytest" / "report.md"):
        report.write_text("# report\n")
    [summary] = [s for s in azure_steps() if s.get("displayName") == "Summary"]
    script = summary["script"].replace("$(System.DefaultWorkingDirectory)", str(tmp_path))  # an Azure macro
    res = shell(script, tmp_path, {})
    assert res.returncode == 0
    commands = re.findall(r"^##vso\[task\.uploadsummary\](.+)$", res.stdout, re.MULTILINE)
    assert [Path(c) for c in commands] == [out / "report.md", out / "pytest" / "report.md"]
