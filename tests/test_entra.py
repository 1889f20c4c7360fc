"""Entra ID for Azure OpenAI: bearer tokens from a token credential reach the real fake server, in variants,
judges, embedding endpoints and the monitor; tokens are refreshed before they expire and never written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitor_helpers import T0, append, chat_line, write_config

from promptgauge import api
from promptgauge.engine import prepare
from promptgauge.errors import TargetError, UserError
from promptgauge.monitor import load_monitor_config, run_pass
from promptgauge.suite import load_suite
from promptgauge.targets.entra import SCOPE
from promptgauge.testing.fake_server import IDENTITY_HEADER

#: A token credential as a workload (or a test) names it with ``credential: fakecred:FakeCredential``:
#: azure-identity's protocol, get_token(*scopes) -> AccessToken(token, expires_on). Tokens are deterministic
#: (the server in the test process accepts them), each one logged to PG_FAKECRED_LOG when set.
FAKECRED = '''
import json, os, time
from azure.core.credentials import AccessToken

ISSUED = []
#: Seconds each token lives, in order; later ones 3600. 200 s is inside azure-core's 5-minute refresh window.
LIFETIMES = [200.0]


def token(n):
    return f"pgfake-entra-token-{n:02d}-Zq8x"


def _issue(scopes):
    n = len(ISSUED) + 1
    life = LIFETIMES[n - 1] if n <= len(LIFETIMES) else 3600.0
    t = AccessToken(token(n), int(time.time() + life))
    ISSUED.append({"token": t.token, "scopes": list(scopes), "expires_on": t.expires_on, "at": time.time()})
    if os.environ.get("PG_FAKECRED_LOG"):
        with open(os.environ["PG_FAKECRED_LOG"], "a") as f:
            f.write(json.dumps(ISSUED[-1]) + "\\n")
    return t


class FakeCredential:
    def get_token(self, *scopes, **kwargs):
        return _issue(scopes)


class AsyncFakeCredential:
    async def get_token(self, *scopes, **kwargs):
        return _issue(scopes)

    async def close(self):
        pass


def make():
    return FakeCredential()


not_a_credential = object()
'''

TOKENS = {f"pgfake-entra-token-{n:02d}-Zq8x" for n in range(1, 60)}
TOKEN_MARK = "pgfake-entra-token"


def _judge_or_default(server):
    return lambda req: ('{"score": 4, "reason": "ok"}' if "relevance" in json.dumps(req).lower()
                        else server.default_reply(req))


@pytest.fixture
def entra(builder, fake_openai, monkeypatch):
    """A suite folder with the fake credential module; the server takes only its bearer tokens."""
    for var in ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
                "AZURE_TENANT_ID", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        monkeypatch.delenv(var, raising=False)
    (builder.root / "fakecred.py").write_text(FAKECRED)
    fake_openai.bearer_tokens = TOKENS
    fake_openai.responder = _judge_or_default(fake_openai)

    def target(**extra: Any) -> dict[str, Any]:
        return {"type": "azure", "azure_endpoint": fake_openai.root_url, "api_version": "2024-06-01", **extra}

    return target


def _suite(builder, target: dict[str, Any], **overrides: Any):
    doc = dict(
        targets={"az": target}, judge="az:judge-dep",
        variants=[{"name": "a", "prompt": "a.prompty", "target": "az:chat-dep"},
                  {"name": "b", "prompt": "b.prompty", "target": "az:chat-dep"}],
        evaluators=[{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
                    {"name": "relevance", "column_mapping": {"query": "${data.question}"}},
                    {"name": "embedding_similarity", "target": "az:emb-dep"}],
        gate={"rules": ["contains.pass_rate >= 0.5"]},
        runner={"concurrency": 1, "timeout": 5, "retries": 0})
    doc.update(overrides)
    return builder.suite(**doc)


@pytest.mark.parametrize("credential", ["fakecred:FakeCredential", "fakecred:AsyncFakeCredential", "fakecred:make"])
def test_bearer_tokens_reach_the_server_from_variants_judges_and_embeddings(entra, builder, fake_openai, credential):
    _suite(builder, entra(credential=credential))
    report = api.run(builder.root / "promptgauge.yaml")
    assert report.status == "finished" and report.passed
    for variant in ("a", "b"):
        metrics = report.summary["variants"][variant]["metrics"]
        assert all(m["errors"] == 0 and m["n"] == 4 for m in metrics.values()), metrics
    paths = [r.path for r in fake_openai.requests]
    assert {"/openai/deployments/chat-dep/chat/completions", "/openai/deployments/judge-dep/chat/completions",
            "/openai/deployments/emb-dep/embeddings"} <= set(paths)
    issued = sys.modules["fakecred"].ISSUED
    # One credential for the endpoint, asked for the Cognitive Services scope; the first token (200 s to live,
    # inside the refresh window) is replaced before its expiry by a second one, which is then reused.
    assert [i["scopes"] for i in issued] == [[SCOPE], [SCOPE]], issued
    assert all(i["expires_on"] > i["at"] for i in issued)
    auth = fake_openai.authorizations
    assert len(auth) == len(paths) and paths.count("/openai/deployments/chat-dep/chat/completions") == 8
    assert auth[0] == f"Bearer {issued[0]['token']}"
    assert auth[1:] == [f"Bearer {issued[1]['token']}"] * (len(auth) - 1)


def test_no_token_in_any_file_a_run_writes(entra, builder, fake_openai, tmp_path_factory):
    _suite(builder, entra(credential="fakecred:FakeCredential"), runner={"concurrency": 4, "timeout": 5, "retries": 0})
    log = tmp_path_factory.mktemp("credlog") / "issued.jsonl"
    env = {"PG_FAKECRED_LOG": str(log)}
    outs = [run_cli("run", "--no-progress", "--record", "cassettes/run.jsonl", cwd=builder.root, env=env),
            run_cli("ci", "--out", "ci-out", cwd=builder.root, env=env)]
    for proc in outs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert TOKEN_MARK not in proc.stdout + proc.stderr
    tokens = {json.loads(line)["token"] for line in log.read_text().splitlines()}
    assert tokens and all(a in {f"Bearer {t}" for t in tokens} for a in fake_openai.authorizations), (log.read_text(), fake_openai.authorizations)
    scanned = [p for p in builder.root.rglob("*") if p.is_file() and not p.name.startswith("fakecred")]
    names = {p.name for p in scanned}
    assert {"promptgauge.db", "cache.db", "run.jsonl", "report.html", "report.json", "summary.json",
            "results.jsonl", "rows.csv"} <= names
    for path in scanned:
        data = path.read_bytes()
        assert TOKEN_MARK.encode() not in data, path
        assert all(t.encode() not in data for t in tokens), path


def test_managed_identity_client_id_through_default_azure_credential(entra, builder, fake_openai, tmp_path):
    """DefaultAzureCredential end to end, offline: a user-assigned managed identity's token comes from the fake
    server's App Service identity endpoint, with the client id the target names, and reaches the chat calls."""
    fake_openai.bearer_tokens = set()  # only the tokens its identity endpoint issues
    _suite(builder, entra(managed_identity_client_id="${env:PG_MI_CLIENT}"), evaluators=[
        {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}])
    env = {"IDENTITY_ENDPOINT": fake_openai.identity_endpoint, "IDENTITY_HEADER": IDENTITY_HEADER,
           "PG_MI_CLIENT": "client-id-0042"}
    proc = run_cli("run", "--no-progress", cwd=builder.root, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert fake_openai.identity_requests[0] == {"api-version": "2019-08-01", "resource": "https://cognitiveservices.azure.com",
                                               "client_id": "client-id-0042"}
    assert len(fake_openai.issued_tokens) == 1
    assert set(fake_openai.authorizations) == {f"Bearer {fake_openai.issued_tokens[0]}"}
    assert fake_openai.request_count == 8


def test_a_target_without_key_defaults_to_entra_and_a_key_wins(entra, builder, fake_openai, monkeypatch):
    # No key anywhere: DefaultAzureCredential (its managed identity here).
    monkeypatch.setenv("IDENTITY_ENDPOINT", fake_openai.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    fake_openai.bearer_tokens = set()
    evaluators = [{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}]
    _suite(builder, entra(), evaluators=evaluators)
    assert api.run(builder.root / "promptgauge.yaml").status == "finished"
    assert fake_openai.identity_requests and "client_id" not in fake_openai.identity_requests[0]
    assert all(a and a.startswith("Bearer fake-mi-token-") for a in fake_openai.authorizations)
    # With AZURE_OPENAI_API_KEY set, the key is used (as before); auth: key insists on it.
    fake_openai.reset()
    fake_openai.api_key = "the-azure-key"
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "the-azure-key")
    _suite(builder, entra(auth="key"), evaluators=evaluators, runner={"cache": False})
    assert api.run(builder.root / "promptgauge.yaml").status == "finished"
    assert fake_openai.request_count == 8 and set(fake_openai.authorizations) == {None}  # api-key header, no bearer
    assert not fake_openai.identity_requests
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    with pytest.raises(TargetError, match="set AZURE_OPENAI_API_KEY"):
        api.run(builder.root / "promptgauge.yaml")


def test_auth_entra_forces_tokens_even_with_a_key_in_the_environment(entra, builder, fake_openai, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "a-key-that-must-not-be-sent")
    _suite(builder, entra(auth="entra", credential="fakecred:FakeCredential"),
           evaluators=[{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}])
    assert api.run(builder.root / "promptgauge.yaml").status == "finished"
    assert all(a and a.startswith(f"Bearer {TOKEN_MARK}") for a in fake_openai.authorizations)
    assert fake_openai.request_count == 8


@pytest.mark.parametrize(("target", "field", "message"), [
    ({"auth": "entra", "api_key_env": "PG_K"}, "targets.az.api_key_env", "auth: entra uses bearer tokens"),
    ({"auth": "key", "credential": "fakecred:make"}, "targets.az.credential", "is for Entra ID, but this target has auth: key"),
    ({"credential": "fakecred:not_a_credential"}, "targets.az.credential", "is not a token credential"),
    ({"credential": "nosuchmodule:cred"}, "targets.az.credential", "cannot import module 'nosuchmodule'"),
    ({"credential": "sys:exit"}, "targets.az.credential", "cannot make a credential with sys:exit()"),
    ({"type": "openai", "base_url": "http://127.0.0.1:9/v1", "credential": "fakecred:make"}, "targets.az.credential",
     "is for azure targets"),
])
def test_bad_auth_settings_are_exit_2_naming_the_field(entra, builder, target, field, message):
    _suite(builder, {**entra(), **target}, evaluators=[{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}])
    proc = run_cli("run", "--no-progress", cwd=builder.root, env={"PG_K": "k"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and field in proc.stderr and "Traceback" not in proc.stderr


def test_suite_key_is_checked_by_the_schema(entra, builder):
    _suite(builder, entra(auth="token"))
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2 and "auth" in proc.stderr and "'key' or 'entra'" in proc.stderr, proc.stderr


BLOCK_AZURE_IDENTITY = """
import sys
class _NoAzureIdentity:
    def find_spec(self, name, path=None, target=None):
        if name == "azure.identity" or name.startswith("azure.identity."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoAzureIdentity())
from promptgauge.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize("target", [{}, {"auth": "entra"}, {"credential": "fakecred:FakeCredential"}])
def test_missing_azure_identity_is_exit_2_naming_the_extra(entra, builder, target):
    _suite(builder, entra(**target), evaluators=[{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}])
    env = {k: v for k, v in os.environ.items() if k != "AZURE_OPENAI_API_KEY"}
    proc = subprocess.run([sys.executable, "-c", BLOCK_AZURE_IDENTITY, "run", "--no-progress"], cwd=builder.root,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "promptgauge[azure]" in proc.stderr and "azure-identity" in proc.stderr and "targets.az" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_monitor_judges_use_entra(entra, builder, fake_openai, tmp_path):
    (tmp_path / "logs").mkdir(exist_ok=True)
    append(tmp_path / "logs" / "app.jsonl", [chat_line(f"r{k}", T0 + 60 * k, f"question {k}", f"Answer {k}.")
                                            for k in range(3)])
    cfg = write_config(tmp_path, evaluators=["relevance"], judge="az:judge-dep",
                       targets={"az": entra(credential="fakecred:FakeCredential")},
                       alerts=[{"metric": "relevance.mean", "below": 1.0}],
                       runner={"concurrency": 1, "timeout": 5, "retries": 0})
    run_pass(load_monitor_config(cfg))
    assert fake_openai.request_count == 3
    assert {r.path for r in fake_openai.requests} == {"/openai/deployments/judge-dep/chat/completions"}
    issued = [i["token"] for i in sys.modules["fakecred"].ISSUED]
    assert fake_openai.authorizations == [f"Bearer {issued[0]}", f"Bearer {issued[1]}", f"Bearer {issued[1]}"]
    for path in Path(tmp_path).rglob("*"):
        if path.is_file() and not path.name.startswith("fakecred"):
            assert TOKEN_MARK.encode() not in path.read_bytes(), path


def test_azure_ai_evaluation_judges_get_the_targets_credential(entra, builder, fake_openai):
    """An azure-ai-evaluation evaluator on an Entra ID judge target is built with its credential (no key)."""
    fake_openai.responder = lambda req: json.dumps({"reason": "fine", "score": 4, "status": "completed"})
    (builder.root / "numbered.py").write_text("def answer(question, **_):\n    return 'Answer to ' + question\n")
    _suite(builder, entra(credential="fakecred:FakeCredential"), judge="az:judge-dep",
           variants=[{"name": "a", "target": "python:numbered:answer"}], baseline=None, gate={"rules": []},
           evaluators=[{"name": "az", "type": "azure.ai.evaluation:RelevanceEvaluator",
                        "column_mapping": {"query": "${data.question}"}}])
    report = api.run(builder.root / "promptgauge.yaml")
    m = report.summary["variants"]["a"]["metrics"]["az"]
    assert (m["n"], m["errors"], m["mean"]) == (4, 0, 4.0)
    issued = {f"Bearer {i['token']}" for i in sys.modules["fakecred"].ISSUED}
    assert fake_openai.request_count == 4 and set(fake_openai.authorizations) <= issued
    assert TOKEN_MARK not in json.dumps(report.summary)


AUTH_SETTINGS = st.fixed_dictionaries({}, optional={
    "auth": st.one_of(st.sampled_from(["key", "entra", "Entra", ""]), st.integers(), st.none()),
    "credential": st.one_of(st.sampled_from(["fakecred:FakeCredential", "fakecred:make", "fakecred:not_a_credential",
                                             "fakecred:nope", "nomod:x", "fakecred", ":", "fakecred:"]),
                            st.text(max_size=8).filter(lambda t: ":" not in t), st.integers(), st.lists(st.integers())),
    "managed_identity_client_id": st.one_of(st.text(max_size=8), st.just("${env:PG_NOPE_MI}"), st.integers()),
    "api_key_env": st.one_of(st.sampled_from(["PG_SET_KEY", "PG_UNSET_KEY"]), st.integers()),
    "type": st.sampled_from(["azure", "openai"]),
})


@settings(max_examples=int(os.environ.get("PG_PROPERTY_EXAMPLES", "150")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(AUTH_SETTINGS)
def test_any_auth_settings_prepare_or_are_a_user_error(entra, builder, monkeypatch, extra):
    monkeypatch.setenv("PG_SET_KEY", "k")
    monkeypatch.delenv("PG_UNSET_KEY", raising=False)
    path = _suite(builder, {**entra(), **extra}, evaluators=[{"name": "contains", "params": {"value": "x"}}])
    try:
        prepare(load_suite(path))
    except UserError as exc:
        assert exc.format()


AZURE_DAG = """inputs:
  question: {type: string}
outputs:
  answer: {type: string, reference: "${chat.output}"}
nodes:
- name: chat
  type: llm
  source: {type: code, path: chat.jinja2}
  inputs: {deployment_name: flow-dep, temperature: 0, question: "${inputs.question}"}
  connection: aoai_connection
  api: chat
"""


@pytest.mark.slow
def test_flow_llm_nodes_get_the_targets_credential(entra, builder, fake_openai):
    """A promptflow connection mapped to an Entra ID target: the flow's LLM node calls Azure OpenAI with the
    target's bearer tokens (promptflow's AzureOpenAIConnection, auth_mode meid_token, our token provider)."""
    (builder.root / "flow").mkdir()
    (builder.root / "flow" / "flow.dag.yaml").write_text(AZURE_DAG)
    (builder.root / "flow" / "chat.jinja2").write_text("user:\n{{question}}\n")
    _suite(builder, entra(credential="fakecred:FakeCredential"), evaluators=[
        {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}],
        targets={"az": entra(credential="fakecred:FakeCredential"),
                 "f": {"type": "flow", "flow": "flow", "connections": {"aoai_connection": "az"}}},
        variants=[{"name": "f", "target": "f"}], baseline=None, gate={"rules": []})
    report = api.run(builder.root / "promptgauge.yaml")
    assert report.summary["variants"]["f"]["calls"]["errors"] == 0, report.summary
    assert {r.path for r in fake_openai.requests} == {"/openai/deployments/flow-dep/chat/completions"}
    issued = {f"Bearer {i['token']}" for i in sys.modules["fakecred"].ISSUED}
    assert fake_openai.request_count == 4 and set(fake_openai.authorizations) <= issued


def test_imported_entra_connection_becomes_an_entra_target(tmp_path):
    from promptgauge.pfimport import import_connection

    conn = tmp_path / "aoai.yml"
    conn.write_text("$schema: https://azuremlschemas.azureedge.net/promptflow/latest/AzureOpenAIConnection.schema.json\n"
                    "name: aoai\ntype: azure_open_ai\napi_base: https://x.openai.azure.com\napi_type: azure\n"
                    "api_version: 2024-06-01\nauth_mode: meid_token\n")
    name, target, notes = import_connection(conn)
    assert name == "aoai" and target == {"type": "azure", "azure_endpoint": "https://x.openai.azure.com",
                                         "api_version": "2024-06-01", "auth": "entra"}
    assert any("auth: entra" in n for n in notes)
    conn.write_text(conn.read_text().replace("auth_mode: meid_token\n", "api_key: ${env:AOAI_KEY}\n"))
    assert import_connection(conn)[1]["api_key_env"] == "AOAI_KEY" and "auth" not in import_connection(conn)[1]
