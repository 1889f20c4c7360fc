"""examples/kuberay/rayjob.yaml: checked against a RayJob schema (a minimal one written from KubeRay's CRD
fields: tests/data/kuberay-rayjob.schema.json), and its entrypoint is a promptgauge command that parses."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

EXAMPLE = REPO / "examples" / "kuberay" / "rayjob.yaml"
SCHEMA = REPO / "tests" / "data" / "kuberay-rayjob.schema.json"
CHECK = [sys.executable, "-m", "check_jsonschema", "--schemafile", str(SCHEMA)]


def test_rayjob_example_matches_the_schema() -> None:
    res = subprocess.run([*CHECK, str(EXAMPLE)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize(("old", "new"), [("entrypoint:", "entrypont:"), ("workerGroupSpecs:", "workerGroupSpec:"),
                                          ("replicas: 4", "replicas: four"), ("kind: RayJob", "kind: RayCluster"),
                                          ("cpu: \"4\"", "cpu: four"), ("mountPath: /suite}", "mountpath: /suite}")])
def test_the_schema_check_can_fail(old: str, new: str, tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert old in text
    broken = tmp_path / "rayjob.yaml"
    broken.write_text(text.replace(old, new, 1))
    assert subprocess.run([*CHECK, str(broken)], capture_output=True, text=True).returncode == 1


def test_rayjob_entrypoint_is_a_promptgauge_run_on_ray_without_telemetry() -> None:
    job = yaml.safe_load(EXAMPLE.read_text())
    args = shlex.split(job["spec"]["entrypoint"])
    assert args[:2] == ["promptgauge", "run"] and "--executor" in args and args[args.index("--executor") + 1] == "ray"
    res = subprocess.run([sys.executable, "-m", "promptgauge", *args[1:], "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr  # every option it uses exists
    cluster = job["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        assert group["rayStartParams"]["disable-usage-stats"] == "true"
        for container in group["template"]["spec"]["containers"]:
            assert {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"} in container["env"]
            assert {m["mountPath"] for m in container["volumeMounts"]} == {"/suite"}  # the suite at one path everywhere
