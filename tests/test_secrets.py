"""No secret is written anywhere: a canary set through every way a secret can enter a run is looked for
in every file the run and the verbs after it write -- store, cache, cassettes, every report, logs."""

from __future__ import annotations

import json
import sqlite3

import pytest
from conftest import run_cli

from promptgauge.public import digest, public_headers, public_parameters, public_url, scrub

CANARIES = {
    "PG_CANARY_KEY": "sk-canary-apikey-7f3a9c2e11",  # api_key_env
    "PG_CANARY_QUERY": "canary-query-code-5d81b0e4",  # ${env:} in a url's query
    "PG_CANARY_USER": "canary-userinfo-pw-92ce41aa",  # ${env:} in a base_url's userinfo
    "PG_CANARY_URL": "canary-http-url-token-3b7719",  # ${env:} in an http target's url
    "PG_CANARY_HDR": "canary-openai-header-0a6f2d",  # ${env:} in an openai target's headers
    "PG_CANARY_HTTP_HDR": "canary-http-header-c4e820",  # ${env:} in an http target's headers
    "PG_CANARY_AZ": "canary-azure-endpoint-pw-61d9",  # ${env:} in an azure_endpoint's userinfo
    "PG_CANARY_JUDGE": "sk-canary-judge-key-88e1f0",  # a judge's api_key_env
}


def _files(root):
    return [p for p in root.rglob("*") if p.is_file()]


def _assert_no_canary(root, *texts: str) -> int:
    scanned = 0
    for path in _files(root):
        data = path.read_bytes()
        scanned += 1
        for name, value in CANARIES.items():
            assert value.encode() not in data, f"{name} leaked into {path}"
    for text in texts:
        for name, value in CANARIES.items():
            assert value not in text, f"{name} leaked into the output"
    return scanned


def test_no_secret_in_any_file_a_run_writes(builder, fake_openai, tmp_path):
    base = fake_openai.base_url
    host = base.split("//", 1)[1]
    targets = {
        "keyed": {"type": "openai", "model": "gpt-4o-mini", "api_key_env": "PG_CANARY_KEY",
                  "base_url": f"http://user:${{env:PG_CANARY_USER}}@{host}",
                  "headers": {"X-Canary": "${env:PG_CANARY_HDR}"}},
        "app": {"type": "http",
                "url": base + "/chat/completions?token=${env:PG_CANARY_URL}&code=${env:PG_CANARY_QUERY}",
                "response": "choices.0.message.content", "headers": {"Authorization": "Bearer ${env:PG_CANARY_HTTP_HDR}"}},
        "az": {"type": "azure", "azure_endpoint": "http://u:${env:PG_CANARY_AZ}@" + fake_openai.root_url.split("//")[1],
               "api_version": "2024-06-01", "api_key_env": "PG_CANARY_KEY"},
        "judge": {"type": "openai", "model": "gpt-4o-mini", "base_url": base, "api_key_env": "PG_CANARY_JUDGE"},
    }
    fake_openai.responder = lambda req: ('{"score": 4, "reason": "ok"}' if "relevance" in json.dumps(req).lower()
                                         else fake_openai.default_reply(req))
    builder.suite(
        targets=targets, judge="judge",
        variants=[{"name": "a", "prompt": "a.prompty", "target": "keyed"},
                  {"name": "b", "prompt": "b.prompty", "target": "app"},
                  {"name": "c", "prompt": "b.prompty", "target": "az:dep"}],
        baseline="a", evaluators=[{"name": "contains"}, {"name": "relevance", "optional": True,
                                                          "column_mapping": {"query": "${data.question}"}}],
        gate={"rules": ["contains.pass_rate >= 0"]})
    env = dict(CANARIES)
    outputs = []
    for args in (["run", "--no-progress", "--record", "cassettes/run.jsonl"],
                 ["run", "--no-progress"],  # from the cache, reusing results
                 ["ci", "--out", "ci-out", "--no-cache"],
                 ["compare", "latest:a", "latest:b"],
                 ["promote", "--baseline", "a", "b"],
                 ["runs"],
                 ["--debug", "run", "--no-progress", "--replay", "cassettes/run.jsonl", "--variant", "a"]):
        proc = run_cli(*args, cwd=builder.root, env=env)
        assert proc.returncode in (0, 1), (args, proc.stdout + proc.stderr)
        outputs += [proc.stdout, proc.stderr]
        if args[0] == "run" and "--record" in args:  # every way in was really used, and worked
            summary = json.loads(next((builder.root / "reports").glob("*/summary.json")).read_text())
            assert all(v["calls"]["errors"] == 0 for v in summary["variants"].values()), summary["variants"]
    # the http target's server errors, and a failing endpoint, end up in stored error texts
    fake_openai.fail_next("500", n=50)
    proc = run_cli("run", "--no-progress", "--no-cache", "--variant", "b", cwd=builder.root, env=env)
    outputs += [proc.stdout, proc.stderr]
    (builder.root / "logs").mkdir()
    (builder.root / "logs" / "run.log").write_text("".join(outputs))
    # the server did get the secrets: they were used, just never written
    sent = json.dumps([r.body for r in fake_openai.requests])
    assert "canary" not in sent  # (bodies hold no secret either; headers and URLs carried them)
    scanned = _assert_no_canary(builder.root, *outputs)
    assert scanned >= 20  # store, cache, cassette, reports of run/ci/compare/promote, promotion record, logs
    con = sqlite3.connect(builder.root / ".promptgauge" / "promptgauge.db")
    manifest = json.loads(con.execute("SELECT manifest FROM runs ORDER BY created_at LIMIT 1").fetchone()[0])
    config = json.loads(con.execute("SELECT config FROM runs ORDER BY created_at LIMIT 1").fetchone()[0])
    # described by the template, without userinfo and query values
    assert manifest["variants"]["a"]["target_info"]["endpoint"] == f"http://{host}"
    assert manifest["variants"]["b"]["target_info"]["endpoint"] == base + "/chat/completions?token=&code="
    assert manifest["variants"]["c"]["target_info"]["endpoint"] == fake_openai.root_url
    assert config["targets"]["keyed"]["headers"] == {"X-Canary": "${env:PG_CANARY_HDR}"}


def test_literal_header_values_are_not_stored(builder, fake_openai):
    builder.suite(targets={"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "m",
                                    "headers": {"X-Literal": "literal-secret-value-123"}}})
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode in (0, 1), proc.stderr
    for path in _files(builder.root):
        if path.name != "promptgauge.yaml":
            assert b"literal-secret-value-123" not in path.read_bytes(), path


def test_literal_secrets_in_call_parameters_are_not_stored(builder, fake_openai):
    """A variant's (or a judge's) per-request ``extra_headers`` and secret-named parameters reach the endpoint but
    no file: the manifest, the stored suite, the cache, the cassette and every report mask them."""
    secret, other = "literal-param-header-5e0c", "literal-param-header-77d1"
    builder.suite(
        targets={"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "m"}},
        variants=[{"name": "a", "prompt": "a.prompty", "target": "fake",
                   "parameters": {"extra_headers": {"X-Tenant-Key": secret}, "max_tokens": 20}},
                  {"name": "b", "prompt": "a.prompty", "target": "fake",
                   "parameters": {"extra_headers": {"X-Tenant-Key": other}, "max_tokens": 20}}],
        baseline="a", evaluators=[{"name": "contains"}], gate={"rules": ["contains.pass_rate >= 0"]})
    proc = run_cli("run", "--no-progress", "--record", "cassettes/run.jsonl", cwd=builder.root)
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads(next((builder.root / "reports").glob("*/summary.json")).read_text())
    assert all(v["calls"]["errors"] == 0 for v in summary["variants"].values()), summary["variants"]
    # both header values were distinct requests (not one cache entry answering the other), none written anywhere
    rows = len((builder.root / "data.jsonl").read_text().splitlines())
    assert len(fake_openai.requests) == 2 * rows
    for path in _files(builder.root):
        if path.name != "promptgauge.yaml":
            data = path.read_bytes()
            assert secret.encode() not in data and other.encode() not in data, path
    con = sqlite3.connect(builder.root / ".promptgauge" / "promptgauge.db")
    manifest = json.loads(con.execute("SELECT manifest FROM runs").fetchone()[0])
    assert manifest["variants"]["a"]["parameters"]["extra_headers"] == {"X-Tenant-Key": "***"}
    assert manifest["variants"]["a"]["parameters"]["max_tokens"] == 20


def test_public_parameters_masks_headers_and_secret_names_only():
    params = {"max_tokens": 9, "api_key_env": "KEY", "api_key": "sk-1", "extra_headers": {"A": "v", "B": "${env:B}"},
              "nested": {"access_token": "t", "tokens_per_s": 3}, "tools": [{"client_secret": "s", "name": "x"}]}
    assert public_parameters(params) == {
        "max_tokens": 9, "api_key_env": "KEY", "api_key": "***", "extra_headers": {"A": "***", "B": "${env:B}"},
        "nested": {"access_token": "***", "tokens_per_s": 3}, "tools": [{"client_secret": "***", "name": "x"}]}
    assert public_parameters({"api_key": "a"}, digest) != public_parameters({"api_key": "b"}, digest)


@pytest.mark.parametrize(("url", "public"), [
    ("https://u:p@host:8443/v1?code=${env:K}&x=1#frag", "https://host:8443/v1?code=&x="),
    ("http://${env:HOST}/v1", "http://${env:HOST}/v1"),
    ("https://host/v1?sk-bare-token", "https://host/v1"),
    ("${env:WHOLE_URL}", "${env:WHOLE_URL}"),
    ("http://u:p@[::1?x=1", "http://[::1"),
])
def test_public_url(url, public):
    assert public_url(url) == public


def test_public_headers_and_scrub():
    assert public_headers({"A": "${env:X}", "B": "Bearer ${env:X}", "C": "plain"}) == {
        "A": "${env:X}", "B": "***", "C": "***"}
    assert scrub("code=abcdef and abc", {"abcdef", "abc"}) == "code=*** and abc"
