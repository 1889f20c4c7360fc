"""Readers: OpenAI chat logs, OpenTelemetry GenAI spans, promptflow traces, plugins; malformed input."""

from __future__ import annotations

import json

import pytest
from monitor_helpers import T0, append, chat_line, iso, write_config

from promptgauge.errors import MonitorError, UserError
from promptgauge.monitor import BadRecord, load_monitor_config, run_pass
from promptgauge.monitor.sources import OpenAIChatReader, OTelGenAIReader, PromptflowTraceReader, parse_time


def _kv(key, value):
    v = {"stringValue": value} if isinstance(value, str) else {"intValue": str(value)}
    return {"key": key, "value": v}


def otlp_export(spans):
    """An OTLP/JSON ExportTraceServiceRequest as the collector's file exporter writes it."""
    return {"resourceSpans": [{"resource": {"attributes": [_kv("service.name", "shop")]},
                               "scopeSpans": [{"scope": {"name": "openai"}, "spans": spans}]}]}


def otlp_span(span_id, start_s, *, attrs, status=None, events=()):
    return {"traceId": "ab" * 16, "spanId": span_id, "name": "chat gpt-4o", "kind": 3,
            "startTimeUnixNano": str(int(start_s * 1e9)), "endTimeUnixNano": str(int((start_s + 0.8) * 1e9)),
            "attributes": [_kv(k, v) for k, v in attrs.items()], "events": list(events),
            "status": status or {"code": 1}}


def test_parse_time_accepts_iso_and_epoch_units():
    assert parse_time("2025-03-01T00:00:00Z") == parse_time("2025-03-01T01:00:00+01:00") == T0
    assert parse_time(T0) == parse_time(T0 * 1000) == parse_time(int(T0 * 1e9)) == parse_time(str(T0)) == T0
    with pytest.raises(BadRecord):
        parse_time("yesterday")


def test_openai_reader_shapes():
    rec = next(iter(OpenAIChatReader().records(chat_line("r1", T0, "What is 2+2?", '{"a": 4}', route="math"))))
    assert rec.id == "r1" and rec.ts == T0 and rec.data["query"] == "What is 2+2?"
    assert rec.data["system"] == "Answer in JSON." and rec.outputs["response"] == '{"a": 4}'
    assert rec.outputs["prompt_tokens"] == 12 and rec.outputs["latency_ms"] == 200.0 and rec.fields["route"] == "math"
    batch = {"custom_id": "req-7", "response": {"status_code": 200, "body": {
        "id": "chatcmpl-1", "created": 1740787200, "model": "m", "choices": [{"message": {"content": "hi"}}]}},
        "request": {"body": {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}}}
    rec = next(iter(OpenAIChatReader().records(batch)))
    assert (rec.id, rec.ts, rec.data["query"], rec.outputs["response"]) == ("req-7", T0, "hello", "hi")
    failed = next(iter(OpenAIChatReader().records(chat_line("r2", T0, "q", None, error="HTTP 429: slow down"))))
    assert failed.error == "HTTP 429: slow down" and "response" not in failed.outputs
    for bad, why in (({"timestamp": iso(T0)}, "no request.messages"),
                     ({"request": {"messages": "hi"}, "response": "x", "timestamp": 1}, "not a list"),
                     ({"messages": [], "response": "x"}, "no timestamp")):
        with pytest.raises(BadRecord, match=why):
            list(OpenAIChatReader().records(bad))


def test_otel_reader_current_and_older_conventions():
    new = otlp_span("01" * 8, T0, attrs={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 20, "gen_ai.usage.output_tokens": 7, "app.route": "billing",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Refund?"}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "finish_reason": "stop",
                                               "parts": [{"type": "text", "content": "Sure."}]}])})
    old = otlp_span("02" * 8, T0 + 5, attrs={"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                                             "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Hi",
                                             "gen_ai.completion.0.content": "Hello!"})
    events = otlp_span("03" * 8, T0 + 9, attrs={"gen_ai.operation.name": "chat"}, events=[
        {"name": "gen_ai.content.prompt", "attributes": [_kv("gen_ai.prompt", json.dumps([{"role": "user", "content": "Yo"}]))]},
        {"name": "gen_ai.content.completion", "attributes": [_kv("gen_ai.completion", json.dumps([{"role": "assistant", "content": "Hey"}]))]}])
    failed = otlp_span("04" * 8, T0 + 12, attrs={"gen_ai.operation.name": "chat", "error.type": "timeout"},
                       status={"code": 2, "message": "deadline exceeded"})
    embed = otlp_span("05" * 8, T0, attrs={"gen_ai.operation.name": "embeddings"})
    plain = otlp_span("06" * 8, T0, attrs={"http.method": "GET"})
    recs = list(OTelGenAIReader().records(otlp_export([new, old, events, failed, embed, plain])))
    assert [r.id for r in recs] == ["01" * 8, "02" * 8, "03" * 8, "04" * 8]
    r = recs[0]
    assert (r.data["query"], r.outputs["response"], r.outputs["finish_reason"]) == ("Refund?", "Sure.", "stop")
    assert r.outputs["prompt_tokens"] == 20 and r.outputs["latency_ms"] == pytest.approx(800, abs=1)
    assert r.fields["app.route"] == "billing" and r.fields["service.name"] == "shop" and r.ts == T0
    assert (recs[1].data["query"], recs[1].outputs["response"]) == ("Hi", "Hello!")
    assert (recs[2].data["query"], recs[2].outputs["response"]) == ("Yo", "Hey")
    assert recs[3].error == "deadline exceeded"


def test_otel_sdk_console_export_read_as_concatenated_json(tmp_path):
    span = {"name": "chat gpt-4o", "context": {"trace_id": "0x" + "a" * 32, "span_id": "0x" + "b" * 16},
            "kind": "SpanKind.CLIENT", "parent_id": None, "start_time": iso(T0 + 60), "end_time": iso(T0 + 61),
            "status": {"status_code": "UNSET"}, "attributes": {
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "route": "faq",
                "gen_ai.input.messages": [{"role": "user", "parts": [{"type": "text", "content": "Q?"}]}],
                "gen_ai.output.messages": [{"role": "assistant", "parts": [{"type": "text", "content": "{}"}]}]},
            "events": [], "resource": {"attributes": {"service.name": "shop"}}}
    second = json.loads(json.dumps(span))
    second["context"]["span_id"] = "0x" + "c" * 16
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "spans.json").write_text(json.dumps(span, indent=4) + "\n" + json.dumps(second, indent=4))
    cfg = write_config(tmp_path, sources=[{"name": "otel", "type": "otel", "path": "logs/spans.json", "format": "json"}],
                       sampling={"stratify_by": "route"})
    r = run_pass(load_monitor_config(cfg))
    assert r.report["pass"]["total"]["records"] == 2 and r.report["windows"][0]["metrics"]["json_valid.pass_rate"]["value"] == 1.0
    assert run_pass(load_monitor_config(cfg)).report["pass"]["total"]["documents"] == 0  # unchanged file


def test_promptflow_line_runs_and_root_spans():
    line_runs = [
        {"line_run_id": "lr-1", "trace_id": "t1", "root_span_id": "s1", "inputs": {"question": "What is X?",
         "chat_history": []}, "outputs": {"answer": "X is Y."}, "start_time": "2025-03-01T00:00:00",
         "end_time": "2025-03-01T00:00:02", "status": "Ok", "duration": 2.0, "name": "chat", "kind": "Flow",
         "collection": "default", "cumulative_token_count": {"prompt": 30, "completion": 5, "total": 35}},
        {"line_run_id": "lr-2", "inputs": {"question": "?"}, "outputs": None, "start_time": iso(T0),
         "status": "Running"},
    ]
    recs = list(PromptflowTraceReader().records(line_runs))
    assert len(recs) == 1  # a running line run is left for a later export
    r = recs[0]
    assert (r.id, r.ts, r.data["query"], r.outputs["response"]) == ("lr-1", T0, "What is X?", "X is Y.")
    assert r.outputs["latency_ms"] == 2000 and r.outputs["prompt_tokens"] == 30 and r.data["chat_history"] == []
    root = {"name": "chat", "context": {"trace_id": "t2", "span_id": "s2"}, "parent_id": None,
            "start_time": iso(T0 + 1), "end_time": iso(T0 + 3), "status": {"status_code": "Ok"},
            "attributes": {"framework": "promptflow", "span_type": "Flow", "line_run_id": "lr-3"},
            "events": [{"name": "promptflow.function.inputs", "attributes": {"payload": json.dumps({"query": "Hi"})}},
                       {"name": "promptflow.function.output", "attributes": {"payload": json.dumps("Hello")}}]}
    child = {**root, "parent_id": "s2", "context": {"trace_id": "t2", "span_id": "s3"}}
    recs = list(PromptflowTraceReader().records([root, child]))
    assert [(r.id, r.data["query"], r.outputs["response"]) for r in recs] == [("lr-3", "Hi", "Hello")]
    assert recs[0].outputs["latency_ms"] == pytest.approx(2000)


def test_malformed_lines_are_skipped_with_line_numbers(tmp_path):
    cfg = write_config(tmp_path)
    log = tmp_path / "logs" / "app.jsonl"
    append(log, [chat_line("a", T0, "q", "{}")])
    with log.open("a") as f:
        f.write("{broken json\n\n")
        f.write(json.dumps({"timestamp": iso(T0)}) + "\n")
        f.write(json.dumps([1, 2]) + "\n")
        f.write(json.dumps(chat_line("b", T0 + 1, "q", "{}")) + "\n")
        f.write(json.dumps({**chat_line("c", T0, "q", "{}"), "timestamp": "last tuesday"}) + "\n")
    r = run_pass(load_monitor_config(cfg))
    assert r.report["pass"]["total"]["records"] == 2
    got = [(m["line"], m["reason"]) for m in r.report["malformed"]]
    assert [line for line, _ in got] == [2, 4, 5, 7]
    assert "not valid JSON" in got[0][1] and "no request.messages" in got[1][1] and "expected a JSON object" in got[2][1]
    assert "neither ISO 8601" in got[3][1]
    md = r.reports["markdown"].read_text()
    assert "| app | " in md and "| 7 | timestamp 'last tuesday'" in md


PLUGIN = '''
from promptgauge.monitor import BadRecord, Reader, Record

class CsvishReader(Reader):
    """One record per {"t", "q", "a"} object."""

    def records(self, doc):
        if "t" not in doc:
            raise BadRecord("no t")
        yield Record(id=str(doc["t"]), ts=float(doc["t"]), data={"query": doc["q"]}, outputs={"response": doc["a"]})
'''


def test_pluggable_reader(tmp_path):
    (tmp_path / "my_reader.py").write_text(PLUGIN)
    cfg = write_config(tmp_path, sources=[{"name": "x", "type": "my_reader:CsvishReader", "path": "logs/x.jsonl"}])
    (tmp_path / "logs" / "x.jsonl").write_text(
        "".join(json.dumps(d) + "\n" for d in ({"t": T0, "q": "a", "a": "{}"}, {"q": "no time"})))
    r = run_pass(load_monitor_config(cfg))
    assert r.report["pass"]["total"]["records"] == 1 and r.report["malformed"][0]["reason"] == "no t"
    bad = write_config(tmp_path, sources=[{"name": "x", "type": "nosuch", "path": "logs/x.jsonl"}])
    with pytest.raises(UserError, match="unknown source type 'nosuch'"):
        run_pass(load_monitor_config(bad))


def test_config_errors_name_file_line_and_field(tmp_path):
    path = write_config(tmp_path, alerts=[{"metric": "json_valid.pass_rate", "below": 0.8, "drop": 0.1}])
    with pytest.raises(MonitorError, match=r"monitor.yaml:\d+, field 'alerts\[0\]'.*either a threshold"):
        load_monitor_config(path)
    path = write_config(tmp_path, alerts=[{"metric": "nope.mean", "alpha": 0.05}])
    with pytest.raises(MonitorError, match="unknown metric 'nope.mean'; valid: records"):
        load_monitor_config(path)
    path = write_config(tmp_path, evaluators=["exact_match"], alerts=[])
    with pytest.raises(UserError, match="no column 'ground_truth'.*query, messages, system, context"):
        run_pass(load_monitor_config(path))
    path = write_config(tmp_path, window="hourly")
    with pytest.raises(MonitorError, match="not a duration"):
        load_monitor_config(path)


def test_rule_errors_point_at_the_alerts_section(tmp_path):
    path = write_config(tmp_path, reference=None, alerts=[{"metric": "json_valid.pass_rate", "alpha": 0.01}])
    text = path.read_text()
    line = text.splitlines().index("alerts:") + 1
    with pytest.raises(MonitorError, match=rf"monitor.yaml:{line}, field 'alerts': .*no 'reference:'"):
        load_monitor_config(path)


def test_no_logs_yet_is_no_data_not_healthy(tmp_path):
    r = run_pass(load_monitor_config(write_config(tmp_path)))
    assert r.status == "no_data" and r.exit_code == 4  # nothing passes on nothing
    assert r.report["latest_window"] is None and r.report["windows"] == []
    assert "No windows with data yet." in r.reports["html"].read_text()
    with pytest.raises(MonitorError, match="monitor names use letters"):
        load_monitor_config(write_config(tmp_path, name="../x"))


def test_an_empty_existing_log_is_no_data_and_too_few_records_inconclusive(tmp_path):
    """Nothing passes on nothing: an existing but empty log says NO DATA, exit 4 (not healthy, not an input
    error); a latest window whose every rule lacks records says INCONCLUSIVE, exit 4."""
    from conftest import run_cli

    cfg = write_config(tmp_path, sources=[{"name": "app", "type": "openai", "path": "logs/app.jsonl"}],
                       reference=None, min_n=5, alerts=[{"metric": "json_valid.pass_rate", "below": 0.5}])
    (tmp_path / "logs" / "app.jsonl").write_text("")
    p = run_cli("monitor", "--config", str(cfg), "--once", cwd=tmp_path)
    assert p.returncode == 4, p.stdout + p.stderr
    assert "NO DATA" in p.stdout and "healthy" not in p.stdout.replace("not healthy", "")
    report = json.loads(next(tmp_path.rglob("monitor.json")).read_text())
    assert report["status"] == "no_data"
    append(tmp_path / "logs" / "app.jsonl", [chat_line(f"r{i}", T0 + i, "q", '{"a": 1}') for i in range(3)])
    p = run_cli("monitor", "--config", str(cfg), "--once", cwd=tmp_path)
    assert p.returncode == 4, p.stdout + p.stderr
    assert "INCONCLUSIVE" in p.stdout and "n=3 < min_n 5" in p.stdout
    append(tmp_path / "logs" / "app.jsonl", [chat_line(f"s{i}", T0 + 10 + i, "q", '{"a": 1}') for i in range(3)])
    p = run_cli("monitor", "--config", str(cfg), "--once", cwd=tmp_path)
    assert p.returncode == 0 and "healthy" in p.stdout, p.stdout + p.stderr
