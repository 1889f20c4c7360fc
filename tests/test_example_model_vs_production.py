"""The shipped model-vs-production example, end to end on the fake server: run, gate, promote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_cli

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "model-vs-production"
CANDIDATE = "ft:gpt-4o-mini-2024-07-18:acme:support:c4nd1d8"


def responder(broken: set[str]):
    """Both models give the reference answer, except the candidate on the *broken* questions."""
    rows = [json.loads(x) for x in (EXAMPLE / "datasets/support.jsonl").read_text().splitlines()]
    answers = {r["question"]: (r["id"], r["ground_truth"]) for r in rows}

    def respond(request: dict) -> str:
        rid, answer = answers[request["messages"][-1]["content"]]
        return "Sorry, I am not sure." if request["model"] == CANDIDATE and rid in broken else answer

    return respond


@pytest.mark.slow
def test_candidate_model_is_gated_and_promoted(tmp_path, fake_openai):
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".promptgauge", "reports", "baselines", "promotions"))
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "test-key"}

    # a candidate that forgets a third of the facts is blocked
    fake_openai.responder = responder({"refund-window", "free-storage", "max-file", "trash-days", "2fa", "share-limit",
                                       "versions"})
    proc = run_cli("run", "--no-progress", cwd=root, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSION: contains.pass_rate fell" in proc.stdout and "gate: FAIL" in proc.stdout
    proc = run_cli("promote", cwd=root, env=env)
    assert proc.returncode == 1 and "not promoted" in proc.stdout
    assert not (root / "promotions").exists() and not (root / "baselines").exists()

    # a candidate as good as production passes every rule and is promoted
    fake_openai.responder = responder(set())  # the same requests now answer differently: bypass the cache
    proc = run_cli("run", "--no-progress", "--no-cache", cwd=root, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("promote", cwd=root, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 20 rows cannot rule out a 2-point drop: promoted with the gate's warning (gate.yaml: on_inconclusive: warn)
    assert "INCONCLUSIVE" in proc.stdout, proc.stdout
    record = json.loads((root / "promotions/support-answers/latest.json").read_text())
    assert record["promoted"]["variant"] == "candidate"
    assert record["promoted"]["model"]["model"] == CANDIDATE
    assert record["promoted"]["prompt"]["path"] == "flows/support.prompty"
    assert record["evidence"]["baseline"]["variant"] == "production"
    assert {r["rule"] for r in record["verdict"]["rules"]} >= {"contains: no_regression(max_drop=0.02, alpha=0.05)",
                                                              "cost.per_row <= 0.0005", "required: f1"}
    assert record["verdict"]["policy"]["file"].endswith("gate.yaml")
    assert "test-key" not in json.dumps(record) and "test-key" not in (root / "baselines/support-answers.json").read_text()
