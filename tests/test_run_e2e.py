"""End to end: the real CLI against the real fake OpenAI server, through the real openai client."""

from __future__ import annotations

import json
import sqlite3

from conftest import run_cli


def chatty_responder(replies: dict[str, str]):
    """Variant 'a' (system prompt 'Answer briefly.') gets the bare answer, 'b' a sentence around it."""

    def respond(request: dict) -> str:
        msgs = request["messages"]
        answer = replies.get(msgs[-1]["content"], "no idea")
        brief = any(m["role"] == "system" and "briefly" in m["content"] for m in msgs)
        return answer if brief else f"I think it is {answer}"

    return respond


def test_run_exact_scores_gate_and_reports(builder, fake_openai):
    from conftest import capital_replies

    fake_openai.responder = chatty_responder(capital_replies())
    builder.suite()
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # gate judges 'b': exact_match 0/4 < 0.5
    assert "gate: FAIL" in proc.stdout
    assert "Traceback" not in proc.stderr

    run_dir = next((builder.root / "reports").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    a, b = summary["variants"]["a"]["metrics"], summary["variants"]["b"]["metrics"]
    # a: Paris, Tokyo exact; "Rome, of course." contains only; Barcelona neither.
    assert a["exact_match"]["pass_rate"] == 0.5 and a["exact_match"]["mean"] == 0.5
    assert a["contains"]["pass_rate"] == 0.75
    assert b["exact_match"]["pass_rate"] == 0.0
    assert b["contains"]["pass_rate"] == 0.75
    assert summary["variants"]["a"]["calls"] == summary["variants"]["a"]["calls"] | {"n": 4, "errors": 0}
    # 4 tokens-ish usage recorded from the server's usage block
    assert summary["variants"]["b"]["calls"]["tokens"]["completion"] == sum(
        len(f"I think it is {x}".split()) for x in ("Paris", "Tokyo", "Rome, of course.", "Barcelona"))
    gate = summary["gate"]
    assert gate["passed"] is False and gate["variants"] == ["b"]
    assert gate["rules"][0]["value"] == 0.0 and gate["rules"][0]["passed"] is False

    lines = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 8
    by_key = {(x["row_id"], x["variant"]): x for x in lines}
    assert by_key[("it", "a")]["output"] == "Rome, of course."
    assert by_key[("it", "a")]["scores"]["exact_match"]["passed"] is False
    assert by_key[("it", "a")]["scores"]["contains"]["passed"] is True
    assert by_key[("fr", "b")]["output"] == "I think it is Paris"
    assert by_key[("fr", "b")]["latency_ms"] > 0

    md = (run_dir / "report.md").read_text()
    assert "❌ **FAIL**" in md and summary["manifest"]["dataset"]["sha256"][:12] in md

    # The same suite gating variant 'a' passes: exit code 0.
    builder.suite(gate={"rules": ["exact_match.pass_rate >= 0.5"], "variants": ["a"]})
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gate: PASS" in proc.stdout


def test_messages_sent_are_the_rendered_prompt(builder, fake_openai):
    builder.suite()
    proc = run_cli("run", "--no-progress", "--variant", "a", "--limit", "1", cwd=builder.root)
    assert proc.returncode == 0, proc.stderr
    (req,) = [r.body for r in fake_openai.requests if r.path.endswith("/chat/completions")]
    assert req["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert req["model"] == "gpt-4o-mini" and req["temperature"] == 0


def test_store_has_manifest_and_no_secrets(builder, fake_openai):
    secret = "sk-test-SECRET-do-not-store-1234567890"
    targets = {"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "m", "api_key_env": "PG_KEY"}}
    builder.suite(targets=targets)
    proc = run_cli("run", "--no-progress", cwd=builder.root, env={"PG_KEY": secret})
    assert proc.returncode in (0, 1), proc.stderr
    db = builder.root / ".promptgauge" / "promptgauge.db"
    con = sqlite3.connect(db)
    (manifest,) = con.execute("SELECT manifest FROM runs").fetchone()
    m = json.loads(manifest)
    assert len(m["dataset"]["sha256"]) == 64 and m["dataset"]["rows"] == 4
    assert len(m["variants"]["a"]["prompt_sha256"]) == 64
    assert m["variants"]["a"]["target_info"] == {"kind": "openai", "model": "m", "endpoint": fake_openai.base_url}
    con.close()
    for path in [db, *builder.root.glob("reports/*/*")]:
        assert secret.encode() not in path.read_bytes(), path
    assert secret not in proc.stdout + proc.stderr


def test_missing_api_key_is_a_clear_error(builder, fake_openai):
    targets = {"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "m", "api_key_env": "PG_NOPE"}}
    builder.suite(targets=targets)
    env = {"PG_NOPE": ""}
    proc = run_cli("run", "--no-progress", cwd=builder.root, env=env)
    # An empty key with an explicit base_url is allowed (local servers); a missing one for OpenAI is not.
    assert proc.returncode in (0, 1)
    builder.suite(variants=[{"name": "a", "prompt": "a.prompty", "target": "openai:gpt-4o-mini"}], baseline=None)
    proc = run_cli("run", "--no-progress", cwd=builder.root, env={"OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    assert proc.returncode == 2
    assert "OPENAI_API_KEY" in proc.stderr and "Traceback" not in proc.stderr


def test_python_callable_target_and_custom_evaluator(builder, fake_openai):
    (builder.root / "myapp.py").write_text(
        "def answer(question):\n    return {'response': question.split()[-1].rstrip('?'), 'n_words': len(question.split())}\n")
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "checks.py").write_text(
        "def short(*, response, limit=1):\n    return {'words': len(response.split()), 'passed': len(response.split()) <= limit}\n"
        "class Echo:\n    def __init__(self, key='n_words'):\n        self.key = key\n"
        "    def __call__(self, *, n_words):\n        return {'value': n_words}\n")
    builder.suite(
        variants=[{"name": "py", "target": "python:myapp:answer"}], baseline=None,
        evaluators=[{"name": "short"}, {"name": "echo", "type": "Echo", "column_mapping": {"n_words": "${target.n_words}"}},
                    {"name": "em", "type": "exact_match", "column_mapping": {"ground_truth": "${data.country}"}}],
        gate={"rules": ["short.pass_rate >= 1", "em.pass_rate == 1"]},
    )
    (builder.root / "data.jsonl").write_text(
        json.dumps({"id": 1, "question": "Capital of France?", "country": "France"}) + "\n")
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(next((builder.root / "reports").glob("*/summary.json")).read_text())
    m = summary["variants"]["py"]["metrics"]
    assert m["short"]["pass_rate"] == 1.0 and m["echo"]["mean"] == 3.0 and m["em"]["passed"] == 1


def test_evaluator_error_is_isolated_per_row(builder, fake_openai):
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "boom.py").write_text(
        "def boom(*, response):\n    if 'Tokyo' in response:\n        raise RuntimeError('cannot score Tokyo')\n"
        "    return {'ok': True}\n")
    builder.suite(evaluators=[{"name": "boom"}], gate={"rules": ["boom.errors <= 0"], "variants": ["a"]})
    proc = run_cli("run", "--no-progress", "--variant", "a", cwd=builder.root)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the gate rule sees the error
    summary = json.loads(next((builder.root / "reports").glob("*/summary.json")).read_text())
    m = summary["variants"]["a"]["metrics"]["boom"]
    assert (m["n"], m["errors"], m["passed"]) == (3, 1, 3)
    assert m["pass_rate"] == 0.75  # the failed row counts as not passed
    rows = [json.loads(x) for x in next((builder.root / "reports").glob("*/results.jsonl")).read_text().splitlines()]
    jp = next(r for r in rows if r["row_id"] == "jp")
    assert "cannot score Tokyo" in jp["scores"]["boom"]["error"]


def test_azure_openai_target(builder, fake_openai):
    targets = {"az": {"type": "azure", "azure_endpoint": fake_openai.root_url, "api_version": "2024-06-01",
                      "api_key_env": "PG_AZ_KEY"}}
    builder.suite(targets=targets, variants=[{"name": "a", "prompt": "a.prompty", "target": "az:my-deployment"}],
                  baseline=None, gate={"rules": ["contains.pass_rate >= 0.75"]})
    proc = run_cli("run", "--no-progress", cwd=builder.root, env={"PG_AZ_KEY": "k"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    paths = {r.path for r in fake_openai.requests}
    assert paths == {"/openai/deployments/my-deployment/chat/completions"}
