"""Streamed answers (``stream: true``): assembled text and tool calls, time to first token and output
tokens per second as row metrics and gate metrics; the fake server streams chunked SSE with a
switchable delay per chunk. Deterministic request errors are not retried."""

from __future__ import annotations

import http.client
import json
import shutil
import sqlite3
import time
from pathlib import Path

import openai
import pytest
from conftest import run_cli

from promptgauge import api
from promptgauge.errors import call_error_for_status

PF = Path(__file__).parent / "flows" / "pf_examples"


def _results(root: Path) -> dict[tuple[str, str], tuple]:
    db = sqlite3.connect(root / ".promptgauge" / "promptgauge.db")
    run_id = db.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    return {(r[0], r[1]): r for r in db.execute(
        "SELECT row_id, variant, output, error, outputs, latency_ms, attempts, completion_tokens FROM results "
        "WHERE run_id=?", (run_id,))}


def test_fake_server_streams_chunked_events_with_a_delay_per_chunk(fake_openai):
    fake_openai.latency, fake_openai.chunk_latency = 0.05, 0.06
    conn = http.client.HTTPConnection("127.0.0.1", fake_openai.port, timeout=10)
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "REPLY: one two three four"}]}
    start = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.getheader("Transfer-Encoding") == "chunked" and resp.getheader("Content-Length") is None
    first_line = resp.readline()  # the first event arrives before the others are sent
    first_at = time.perf_counter() - start
    rest = resp.read()
    total = time.perf_counter() - start
    assert first_line.startswith(b"data: {")
    events = [json.loads(x[6:]) for x in (first_line + rest).split(b"\n\n") if x.startswith(b"data: {")]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "one two three four"
    assert rest.rstrip().endswith(b"data: [DONE]")
    # 4 words + opening and closing events: 6 events and [DONE], 0.06 s apart after the first
    assert total - first_at >= 5 * 0.06 * 0.9
    conn.close()
    # the real openai client reads it as a stream, chunk by chunk
    fake_openai.chunk_latency = 0.0
    client = openai.OpenAI(base_url=fake_openai.base_url, api_key="x", max_retries=0)
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**body) if c.choices)
    assert text == "one two three four"
    fake_openai.reset()
    assert fake_openai.chunk_latency == 0.0


STREAM_PROMPT = "---\nmodel:\n  parameters:\n    stream: true\n    temperature: 0\n---\nuser:\n{{question}}\n"


def test_streamed_prompt_is_assembled_and_measured(builder, fake_openai):
    fake_openai.latency, fake_openai.chunk_latency = 0.25, 0.04
    builder.dataset([{"id": "a", "question": "REPLY: Paris is the capital of France", "ground_truth": "Paris"},
                     {"id": "b", "question": "REPLY: Tokyo", "ground_truth": "Tokyo"}])
    (builder.root / "s.prompty").write_text(STREAM_PROMPT)
    builder.suite(variants=[{"name": "plain", "prompt": "b.prompty", "target": "fake"},
                            {"name": "streamed", "prompt": "s.prompty", "target": "fake"}],
                  baseline="plain", runner={"concurrency": 2, "timeout": 10, "retries": 0},
                  gate={"rules": ["latency_ms.ttft.p95 <= 800", "tokens_per_s.p50 >= 5",
                                  {"rule": "latency_ms.ttft.p95 <= 100", "variant": "streamed"}],
                        "variants": ["streamed"]})
    report = api.run(builder.root / "promptgauge.yaml")
    rows = _results(builder.root)
    out = json.loads(rows[("a", "streamed")][4])
    assert rows[("a", "streamed")][2] == "Paris is the capital of France" and rows[("a", "streamed")][3] is None
    assert rows[("a", "streamed")][7] == 6  # usage from the stream (stream_options.include_usage)
    # time to first token: the server's 0.25 s before the first byte; the whole answer: 6 words 0.04 s apart more
    assert 250 <= out["ttft_ms"] < rows[("a", "streamed")][5] - 150
    assert 5 <= out["tokens_per_s"] <= 1 / 0.04 * 1.05  # at most one token per 0.04 s
    assert "ttft_ms" not in json.loads(rows[("a", "plain")][4])  # not streamed: not measured
    stream_body = next(r.body for r in fake_openai.requests if r.body.get("stream"))
    assert stream_body["stream_options"] == {"include_usage": True}
    calls = report.summary["variants"]["streamed"]["calls"]
    assert calls["latency_ms"]["ttft"]["p95"] >= 250 and calls["tokens_per_s"]["p50"] >= 5
    assert "ttft" not in report.summary["variants"]["plain"]["calls"]["latency_ms"]
    verdict = {(r["rule"], r["variant"]): r for r in report.summary["gate"]["rules"]}
    assert verdict[("latency_ms.ttft.p95 <= 800", "streamed")]["passed"]
    assert verdict[("tokens_per_s.p50 >= 5", "streamed")]["passed"]
    assert not verdict[("latency_ms.ttft.p95 <= 100", "streamed")]["passed"]  # 250 ms is more: the rule bites
    assert not report.passed
    md = report.reports["markdown"].read_text()
    assert "| `streamed` | `latency_ms.ttft.p95` |" in md and "`plain` | `latency_ms.ttft" not in md


def test_a_ttft_rule_on_a_variant_that_did_not_stream_has_no_data(builder, fake_openai):
    builder.suite(gate={"rules": ["latency_ms.ttft.p95 <= 800"]})
    report = api.run(builder.root / "promptgauge.yaml")
    rule = report.summary["gate"]["rules"][0]
    assert not rule["passed"] and "no streamed answer" in rule["reason"]


def test_streamed_tool_calls_and_legacy_completions(builder, fake_openai):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    builder.dataset([{"id": "t", "question": 'TOOL: lookup {"city": "Paris"}\nREPLY: it is {tool:lookup}'}])
    builder.prompt("agent.prompty", "user:\n{{question}}\n",
                   front="model:\n  parameters:\n    stream: true\n    tools: " + json.dumps(tools) + "\n")
    builder.prompt("legacy.prompty", "{{question}}\nREPLY: old style answer\n",
                   front="model:\n  api: completion\n  parameters:\n    stream: true\n")
    (builder.root / "tools.py").write_text("def lookup(city):\n    return 'sunny in ' + city\n")
    builder.suite(tools={"lookup": "tools:lookup"},
                  variants=[{"name": "agent", "prompt": "agent.prompty", "target": "fake"},
                            {"name": "legacy", "prompt": "legacy.prompty", "target": "fake"}],
                  baseline="agent", evaluators=[{"name": "length", "params": {"max": 1000}}], gate={"rules": []})
    report = api.run(builder.root / "promptgauge.yaml")
    rows = _results(builder.root)
    agent = json.loads(rows[("t", "agent")][4])
    assert rows[("t", "agent")][3] is None, rows[("t", "agent")][3]
    calls = agent["trajectory"]["tool_calls"]
    assert [(c["name"], c["arguments"], c["result"]) for c in calls] == [("lookup", {"city": "Paris"}, "sunny in Paris")]
    assert rows[("t", "agent")][2] == "it is sunny in Paris"
    assert rows[("t", "legacy")][2] == "old style answer" and rows[("t", "legacy")][3] is None
    assert json.loads(rows[("t", "legacy")][4])["ttft_ms"] > 0
    assert all(r.body.get("stream") for r in fake_openai.requests)
    assert report.status == "finished"


@pytest.mark.parametrize(("status", "retryable"), [
    (400, False), (401, False), (403, False), (404, False), (422, False),
    (408, True), (409, True), (429, True), (500, True), (503, True),
])
def test_only_transient_statuses_are_retried(status, retryable):
    assert call_error_for_status(status, "x").retryable is retryable


def test_a_streamed_bad_request_is_not_retried(builder, fake_openai):
    # a tool message answering no tool call: the server says 400, which no retry can change
    builder.prompt("bad.prompty", "user:\n{{question}}\n\ntool:\nstray result\n",
                   front="model:\n  parameters:\n    stream: true\n")
    builder.suite(variants=[{"name": "bad", "prompt": "bad.prompty", "target": "fake"}], baseline="bad",
                  runner={"concurrency": 1, "timeout": 5, "retries": 3, "backoff_base": 0.01, "backoff_max": 0.02},
                  evaluators=[{"name": "length", "params": {"max": 1000}}], gate={"rules": []})
    api.run(builder.root / "promptgauge.yaml")
    rows = _results(builder.root)
    assert all(r[6] == 1 and "HTTP 400" in r[3] for r in rows.values()), rows
    assert fake_openai.request_count == 4  # one request per row, none retried


def test_promptflow_stream_output_prompty_runs_unchanged(builder, fake_openai, monkeypatch):
    """examples/prompty/format-output/stream_output.prompty: every row used to fail ('no choices'), retried."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake_openai.root_url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "test-key")
    shutil.copytree(PF / "prompty" / "format-output", builder.root / "fo")
    builder.suite(dataset="fo/data.jsonl", targets={}, variants=[{"name": "s", "prompt": "fo/stream_output.prompty"}],
                  baseline="s", evaluators=[{"name": "length", "params": {"max": 1000}}], gate={"rules": ["latency_ms.ttft.p95 <= 800"]})
    out = run_cli("run", "--no-progress", cwd=builder.root)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = _results(builder.root)
    questions = [json.loads(x)["question"] for x in (builder.root / "fo" / "data.jsonl").read_text().splitlines()]
    assert sorted(r[2] for r in rows.values()) == sorted(f"echo: {q}" for q in questions)
    assert all(r[6] == 1 and json.loads(r[4])["ttft_ms"] > 0 for r in rows.values())
    assert "ttft p50" in out.stdout


def test_a_stream_cut_short_is_a_retried_row_error_not_a_crash(builder, fake_openai):
    fake_openai.stream_cut = 3  # the connection drops after three events, every time
    (builder.root / "s.prompty").write_text(STREAM_PROMPT)
    builder.dataset([{"id": "a", "question": "REPLY: one two three four five six", "ground_truth": "x"}])
    builder.suite(variants=[{"name": "s", "prompt": "s.prompty", "target": "fake"}], baseline="s",
                  runner={"concurrency": 1, "timeout": 5, "retries": 1, "backoff_base": 0.01, "backoff_max": 0.02},
                  evaluators=[{"name": "length", "params": {"max": 100}}], gate={"rules": []})
    api.run(builder.root / "promptgauge.yaml")
    (row,) = _results(builder.root).values()
    assert row[2] is None and row[6] == 2 and "(after 2 attempts)" in row[3], row  # retried once, then recorded
    assert row[3].startswith("the stream broke off after 2 chunks: connection error"), row[3]
    assert fake_openai.request_count == 2
    fake_openai.stream_cut = None  # the same request, whole: the run succeeds
    api.run(builder.root / "promptgauge.yaml")
    (row,) = _results(builder.root).values()
    assert row[2] == "one two three four five six" and row[3] is None
