"""Production logs -> :class:`Record` s, through pluggable readers.

A reader turns one parsed JSON document (a JSONL line, or a whole JSON file)
into zero or more records, and raises :class:`BadRecord` for a document it
cannot use. Built in:

- ``openai`` -- request/response logs around ``chat.completions.create``:
  ``{"id", "timestamp", "request": {"model", "messages"}, "response": <ChatCompletion>,
  "latency_ms", "metadata": {...}, "error"}`` (also the Batch API output shape);
- ``otel`` -- OpenTelemetry spans with ``gen_ai.*`` attributes, as OTLP JSON
  (``resourceSpans``, the collector's file exporter) or the Python SDK's
  ``span.to_json()`` (console exporter);
- ``promptflow`` -- promptflow trace exports: line runs (``line_run_id``,
  ``inputs``, ``outputs``) or root spans with ``promptflow.function.*`` events.

A logged exchange with tool calls (OpenAI chat logs, GenAI spans) also gets its trajectory in
the record's outputs (:mod:`.agent_logs`), so trajectory evaluators and agent judges score it
as they score a run's results.

More readers: ``type: module:Class`` in the monitor file, a :class:`Reader` subclass.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import BadRecord, UserError
from .agent_logs import span_messages, tool_spans, trajectory_outputs


@dataclass
class Record:
    """One production call: what evaluators see as ``${data.*}`` and ``${target.*}``.

    ``fields`` hold everything else a reader found (route, user tier, model...):
    sampling strata and ``columns:`` mappings read them.
    """

    id: str
    ts: float  # seconds since the epoch, UTC
    data: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the production call itself failed

    def lookup(self, name: str) -> Any:
        """A value by name from outputs, data, then fields (``a.b`` walks into dicts); None if absent."""
        for source in (self.outputs, self.data, self.fields):
            if name in source:
                return source[name]
            cur: Any = source
            for part in name.split("."):
                if not isinstance(cur, dict) or part not in cur:
                    break
                cur = cur[part]
            else:
                return cur
        return None


def parse_time(value: Any) -> float:
    """ISO 8601 text (naive = UTC) or epoch seconds / ms / µs / ns -> epoch seconds."""
    if isinstance(value, bool) or value is None:
        raise BadRecord(f"timestamp {value!r} is not a time")
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_time(float(text))
        except (ValueError, BadRecord):
            pass
        try:
            t = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise BadRecord(f"timestamp {value!r} is neither ISO 8601 nor epoch seconds") from None
        return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, (int, float)):
        x = float(value)
        for limit, per_second in ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3)):  # ns, µs, ms after ~1973
            if x > limit:
                return x / per_second
        if x <= 0:
            raise BadRecord(f"timestamp {value!r} is not a time")
        return x
    raise BadRecord(f"timestamp {value!r} is not a time")


def content_id(doc: Any) -> str:
    """A stable id for a document without one: hash of its canonical JSON."""
    blob = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def message_text(content: Any) -> str:
    """Text of a chat message's ``content``: a string, or the text of its parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                text = part.get("text", part.get("content"))
                if isinstance(text, str):
                    texts.append(text)
        return "\n".join(texts)
    return json.dumps(content, ensure_ascii=False)


def chat_columns(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """``messages``, ``query`` (last user message) and ``system`` from a chat message list."""
    out: dict[str, Any] = {"messages": messages}
    for m in reversed(messages):
        if m.get("role") == "user":
            out["query"] = message_text(m.get("content"))
            break
    system = [message_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    if system:
        out["system"] = "\n".join(system)
    return out


def _first(doc: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if doc.get(k) is not None:
            return doc[k]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _scalars(values: dict[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    skip = set(skip)
    return {k: v for k, v in values.items() if k not in skip and isinstance(v, (str, int, float, bool))}


def _error_text(err: Any) -> str | None:
    if err in (None, "", False):
        return None
    if isinstance(err, dict):
        inner = err.get("error", err)
        if isinstance(inner, dict):
            return str(inner.get("message") or inner.get("code") or json.dumps(inner))
        return str(inner)
    return str(err)


class Reader:
    """Maps one parsed JSON document to records. Subclass and name it as ``type: module:Class``."""

    #: how files of this source are split into documents when the monitor file does not say:
    #: ``jsonl`` (one document per line, read incrementally) or ``json`` (whole file).
    default_format = "jsonl"

    def records(self, doc: Any) -> Iterable[Record]:
        raise NotImplementedError


class OpenAIChatReader(Reader):
    """Request/response logs an application writes around its ``openai`` chat calls."""

    _KNOWN: ClassVar[set[str]] = {"id", "request_id", "record_id", "custom_id", "timestamp", "time", "ts", "created_at", "request",
              "response", "messages", "metadata", "error", "latency_ms", "duration_ms", "context", "model",
              "cost", "cost_usd"}

    def records(self, doc: Any) -> Iterable[Record]:
        if not isinstance(doc, dict):
            raise BadRecord(f"expected a JSON object, got {type(doc).__name__}")
        request = doc.get("request") if isinstance(doc.get("request"), dict) else {}
        body = request.get("body") if isinstance(request.get("body"), dict) else request  # Batch API input
        response = doc.get("response")
        error = _error_text(doc.get("error"))
        if isinstance(response, dict) and isinstance(response.get("body"), dict):  # Batch API output
            status = response.get("status_code")
            if isinstance(status, int) and status >= 400:
                error = error or f"HTTP {status}: {_error_text(response['body']) or ''}".strip()
            response = response["body"]
        messages = body.get("messages", doc.get("messages"))
        if messages is None and response is None and error is None:
            raise BadRecord("no request.messages, response or error")
        if messages is not None and not (isinstance(messages, list) and all(isinstance(m, dict) for m in messages)):
            raise BadRecord("request.messages is not a list of {role, content} objects")
        data = chat_columns(messages or [])
        metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        context = _first(doc, "context") or metadata.get("context")
        if context is not None:
            data["context"] = context
        outputs: dict[str, Any] = {}
        reply: dict[str, Any] | None = None  # the logged call's assistant message
        resp_obj = response if isinstance(response, dict) else {}
        if isinstance(response, str):
            outputs["response"] = response
        elif resp_obj:
            if resp_obj.get("error") and not resp_obj.get("choices"):
                error = error or _error_text(resp_obj["error"])
            choices = resp_obj.get("choices") or []
            if choices and isinstance(choices[0], dict):
                choice = choices[0]
                msg = choice.get("message") or {}
                text = message_text(msg.get("content")) if "message" in choice else str(choice.get("text", ""))
                reply = {"role": "assistant", "content": msg.get("content") if "message" in choice else text,
                         **{k: msg[k] for k in ("tool_calls", "function_call") if msg.get(k)}}
                outputs["response"] = text
                if choice.get("finish_reason"):
                    outputs["finish_reason"] = choice["finish_reason"]
            elif error is None:
                raise BadRecord("response has no choices")
            usage = resp_obj.get("usage") or {}
            if isinstance(usage, dict):
                for ours, theirs in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
                    n = _number(usage.get(ours, usage.get(theirs)))
                    if n is not None:
                        outputs[ours] = int(n)
        elif response is not None:
            raise BadRecord(f"response is a {type(response).__name__}, expected a ChatCompletion object or text")
        if error is None and "response" not in outputs:
            raise BadRecord("no response text and no error")
        latency = _number(_first(doc, "latency_ms", "duration_ms"))
        if latency is not None:
            outputs["latency_ms"] = latency
        outputs.update(trajectory_outputs(
            (messages or []) + ([reply] if reply else []), tools=body.get("tools") or body.get("functions"),
            finish_reason=outputs.get("finish_reason"), prompt_tokens=outputs.get("prompt_tokens"),
            completion_tokens=outputs.get("completion_tokens"), latency_ms=latency, error=error,
            replied=reply is not None))
        cost = _number(_first(doc, "cost_usd", "cost"))
        if cost is not None:
            outputs["cost"] = cost
        model = resp_obj.get("model") or body.get("model") or doc.get("model")
        if model:
            outputs["model"] = model
        when = _first(doc, "timestamp", "time", "ts", "created_at")
        if when is None:
            when = resp_obj.get("created")
        if when is None:
            raise BadRecord("no timestamp (expected 'timestamp': ISO 8601 or epoch seconds)")
        rid = _first(doc, "id", "request_id", "record_id", "custom_id") or resp_obj.get("id") or content_id(doc)
        fields = {**_scalars(doc, self._KNOWN), **_scalars(metadata, {"context"})}
        if model:
            fields.setdefault("model", model)
        yield Record(id=str(rid), ts=parse_time(when), data=data, outputs=outputs, fields=fields, error=error)


# -- OpenTelemetry spans ------------------------------------------------------------------------------


@dataclass
class Span:
    """A span in one shape, whichever JSON encoding it came in."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: float
    end: float | None
    failed: bool
    status_text: str | None
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]


def _otlp_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "intValue" in v:
        return int(v["intValue"])
    if "arrayValue" in v:
        return [_otlp_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return _otlp_attrs(v["kvlistValue"].get("values", []))
    return None


def _otlp_attrs(items: Any) -> dict[str, Any]:
    if isinstance(items, dict):  # already flat
        return dict(items)
    return {a["key"]: _otlp_value(a.get("value")) for a in items or [] if isinstance(a, dict) and "key" in a}


def _hex_id(value: Any) -> str:
    text = str(value or "")
    return text.removeprefix("0x")


def iter_spans(doc: Any) -> Iterator[Span]:
    """Spans in an OTLP JSON export, a list of spans, or one ``span.to_json()`` object."""
    if isinstance(doc, list):
        for item in doc:
            yield from iter_spans(item)
        return
    if not isinstance(doc, dict):
        raise BadRecord(f"expected a span or an OTLP export object, got {type(doc).__name__}")
    if "resourceSpans" in doc:
        for rs in doc["resourceSpans"] or []:
            resource = _otlp_attrs((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
                for s in ss.get("spans") or []:
                    yield _otlp_span(s, resource)
        return
    if "context" in doc or "span_id" in doc:
        yield _sdk_span(doc)
        return
    raise BadRecord("neither an OTLP export ('resourceSpans') nor a span ('context', 'attributes')")


def _otlp_span(s: dict[str, Any], resource: dict[str, Any]) -> Span:
    try:
        start = parse_time(int(s["startTimeUnixNano"]))
    except (KeyError, TypeError, ValueError):
        raise BadRecord(f"span {s.get('spanId', '?')} has no valid startTimeUnixNano") from None
    end = int(s["endTimeUnixNano"]) / 1e9 if s.get("endTimeUnixNano") else None
    status = s.get("status") or {}
    failed = status.get("code") in (2, "STATUS_CODE_ERROR")
    events = [(e.get("name", ""), _otlp_attrs(e.get("attributes"))) for e in s.get("events") or []]
    return Span(_hex_id(s.get("traceId")), _hex_id(s.get("spanId")), _hex_id(s.get("parentSpanId")) or None,
                s.get("name", ""), start, end, failed, status.get("message"), _otlp_attrs(s.get("attributes")),
                events, resource)


def _sdk_span(s: dict[str, Any]) -> Span:
    ctx = s.get("context") or {}
    if s.get("start_time") is None:
        raise BadRecord("span has no start_time")
    start = parse_time(s["start_time"])
    end = parse_time(s["end_time"]) if s.get("end_time") else None
    status = s.get("status") or {}
    code = str(status.get("status_code", "")).upper()
    events = [(e.get("name", ""), dict(e.get("attributes") or {})) for e in s.get("events") or []]
    resource = (s.get("resource") or {}).get("attributes") or {}
    return Span(_hex_id(ctx.get("trace_id", s.get("trace_id"))), _hex_id(ctx.get("span_id", s.get("span_id"))),
                _hex_id(s.get("parent_id")) or None, s.get("name", ""), start, end, code in ("ERROR", "2"),
                status.get("description"), dict(s.get("attributes") or {}), events, dict(resource))


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _otel_messages(value: Any) -> list[dict[str, Any]]:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` (role + parts) -> chat messages."""
    out = []
    for m in _json_value(value) or []:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if "parts" in m:
            content = message_text([p for p in m["parts"] if isinstance(p, dict) and p.get("type", "text") == "text"])
        out.append({"role": m.get("role", "user"), "content": message_text(content),
                    **({"finish_reason": m["finish_reason"]} if m.get("finish_reason") else {})})
    return out


def _indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenLLMetry-style ``gen_ai.prompt.0.role`` / ``gen_ai.prompt.0.content`` attributes."""
    out: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if key.startswith(prefix + "."):
            idx, _, name = key[len(prefix) + 1:].partition(".")
            if idx.isdigit() and name in ("role", "content", "finish_reason"):
                out.setdefault(int(idx), {})[name] = value
    return [out[i] for i in sorted(out)]


_CHAT_OPERATIONS = {"chat", "text_completion", "generate_content"}


class OTelGenAIReader(Reader):
    """OpenTelemetry GenAI client spans: one record per chat / text-completion span."""

    def records(self, doc: Any) -> Iterable[Record]:
        spans = list(iter_spans(doc))
        executed = tool_spans(spans)  # execute_tool spans of the same export: results, errors, latencies
        for span in spans:
            record = self.from_span(span, executed)
            if record is not None:
                yield record

    def from_span(self, span: Span, executed: dict[str, dict[str, Any]] | None = None) -> Record | None:
        a = span.attributes
        if not any(k.startswith("gen_ai.") for k in a):
            return None
        op = a.get("gen_ai.operation.name")
        if op is not None and op not in _CHAT_OPERATIONS:
            return None
        events = {name: attrs for name, attrs in span.events}
        messages = _otel_messages(a["gen_ai.input.messages"]) if "gen_ai.input.messages" in a else []
        if "gen_ai.system_instructions" in a:
            sys_text = message_text(_json_value(a["gen_ai.system_instructions"]))
            messages.insert(0, {"role": "system", "content": sys_text})
        if not messages and "gen_ai.content.prompt" in events:
            messages = _otel_messages(events["gen_ai.content.prompt"].get("gen_ai.prompt"))
        if not messages:
            messages = [{"role": name.split(".")[1], "content": message_text(_json_value(attrs.get("content")))}
                        for name, attrs in span.events
                        if name in ("gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message",
                                    "gen_ai.tool.message")]
        if not messages:
            messages = [{"role": m.get("role", "user"), "content": message_text(m.get("content"))}
                        for m in _indexed(a, "gen_ai.prompt")]
        choices = _otel_messages(a["gen_ai.output.messages"]) if "gen_ai.output.messages" in a else []
        if not choices and "gen_ai.content.completion" in events:
            choices = _otel_messages(events["gen_ai.content.completion"].get("gen_ai.completion"))
        if not choices and "gen_ai.choice" in events:
            message = _json_value(events["gen_ai.choice"].get("message")) or {}
            choices = [{"content": message_text(message.get("content") if isinstance(message, dict) else message),
                        "finish_reason": events["gen_ai.choice"].get("finish_reason")}]
        if not choices:
            choices = _indexed(a, "gen_ai.completion")
        outputs: dict[str, Any] = {}
        if choices:
            outputs["response"] = message_text(choices[0].get("content"))
            reasons = a.get("gen_ai.response.finish_reasons")
            reason = choices[0].get("finish_reason") or (reasons[0] if isinstance(reasons, list) and reasons else None)
            if reason:
                outputs["finish_reason"] = reason
        error = None
        if span.failed or a.get("error.type"):
            error = span.status_text or str(a.get("error.type") or "span status ERROR")
        if error is None and "response" not in outputs:
            raise BadRecord(f"span {span.span_id}: no output messages recorded (is content capture on?)")
        for ours, keys in (("prompt_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
                           ("completion_tokens", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"))):
            n = _number(_first(a, *keys))
            if n is not None:
                outputs[ours] = int(n)
        if span.end is not None:
            outputs["latency_ms"] = max(0.0, (span.end - span.start) * 1000.0)
        model = a.get("gen_ai.response.model") or a.get("gen_ai.request.model")
        if model:
            outputs["model"] = model
        fields = {k: v for k, v in _scalars(a).items() if not k.startswith("gen_ai.")}
        fields.update(_scalars(span.resource))
        provider = a.get("gen_ai.provider.name") or a.get("gen_ai.system")
        fields.update({k: v for k, v in (("model", model), ("provider", provider), ("operation", op)) if v})
        given, reply = span_messages(a, span.events)
        outputs.update(trajectory_outputs(
            given + reply, tools=a.get("gen_ai.tool.definitions"), finish_reason=outputs.get("finish_reason"),
            prompt_tokens=outputs.get("prompt_tokens"), completion_tokens=outputs.get("completion_tokens"),
            latency_ms=outputs.get("latency_ms"), error=error, replied=bool(reply), executed=executed))
        return Record(id=span.span_id or content_id(a), ts=span.start, data=chat_columns(messages),
                      outputs=outputs, fields=fields, error=error)


# -- promptflow traces --------------------------------------------------------------------------------

_QUERY_KEYS = ("question", "query", "input", "chat_input", "user_input", "prompt")
_RESPONSE_KEYS = ("answer", "output", "response", "chat_output", "result")


def _flow_columns(inputs: Any, outputs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Flow inputs/outputs -> (data, outputs), with ``query`` and ``response`` picked by common names."""
    data = dict(inputs) if isinstance(inputs, dict) else ({"input": inputs} if inputs is not None else {})
    outs = dict(outputs) if isinstance(outputs, dict) else {}
    if "query" not in data:
        q = _first(data, *_QUERY_KEYS)
        strings = [v for v in data.values() if isinstance(v, str)]
        if q is None and len(strings) == 1:
            q = strings[0]
        if q is not None:
            data["query"] = message_text(q)
    if not isinstance(outputs, dict):
        outs["response"] = message_text(outputs)
    elif "response" not in outs or not isinstance(outs["response"], str):
        r = _first(outs, *_RESPONSE_KEYS)
        if r is None and len(outs) == 1:
            r = next(iter(outs.values()))
        if r is not None:
            outs["response"] = r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)
    return data, outs


class PromptflowTraceReader(Reader):
    """promptflow trace exports: line runs (the trace UI's rows) or the root spans of flow runs."""

    default_format = "json"

    def records(self, doc: Any) -> Iterable[Record]:
        if isinstance(doc, dict) and isinstance(doc.get("line_runs", doc.get("value")), list):
            doc = doc.get("line_runs", doc.get("value"))
        if isinstance(doc, list) and doc and all(isinstance(d, dict) and "line_run_id" in d for d in doc):
            for item in doc:
                yield from self.records(item)
            return
        if isinstance(doc, dict) and "line_run_id" in doc:
            record = self._line_run(doc)
            if record is not None:
                yield record
            return
        for span in iter_spans(doc):
            record = self._root_span(span)
            if record is not None:
                yield record

    def _line_run(self, d: dict[str, Any]) -> Record | None:
        status = str(d.get("status") or "").lower()
        if status == "running":
            return None  # not finished: picked up by a later pass, once exported again
        if d.get("start_time") is None:
            raise BadRecord(f"line run {d['line_run_id']} has no start_time")
        data, outputs = _flow_columns(d.get("inputs"), d.get("outputs"))
        duration = _number(d.get("duration"))
        if duration is not None:
            outputs["latency_ms"] = duration * 1000.0
        tokens = d.get("cumulative_token_count") or {}
        for ours, theirs in (("prompt_tokens", "prompt"), ("completion_tokens", "completion")):
            if _number(tokens.get(theirs)) is not None:
                outputs[ours] = int(tokens[theirs])
        error = None if status in ("ok", "completed", "") else f"line run status {d.get('status')}"
        if error is None and "response" not in outputs:
            raise BadRecord(f"line run {d['line_run_id']} has no outputs")
        fields = _scalars(d, {"line_run_id", "trace_id", "root_span_id", "start_time", "end_time", "duration",
                              "status", "inputs", "outputs"})
        return Record(id=str(d["line_run_id"]), ts=parse_time(d["start_time"]), data=data, outputs=outputs,
                      fields=fields, error=error)

    def _root_span(self, span: Span) -> Record | None:
        a = span.attributes
        if span.parent_id or a.get("framework") != "promptflow":
            return None
        events = {name: attrs for name, attrs in span.events}
        if "promptflow.function.inputs" not in events:
            raise BadRecord(f"span {span.span_id}: no promptflow.function.inputs event (export events with spans)")
        try:
            inputs = json.loads(events["promptflow.function.inputs"]["payload"])
            out_event = events.get("promptflow.function.output")
            output = json.loads(out_event["payload"]) if out_event else None
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise BadRecord(f"span {span.span_id}: event payload is not JSON ({exc})") from None
        data, outputs = _flow_columns(inputs, output)
        if span.end is not None:
            outputs["latency_ms"] = max(0.0, (span.end - span.start) * 1000.0)
        for ours, key in (("prompt_tokens", "prompt"), ("completion_tokens", "completion")):
            n = _number(_first(a, f"__computed__.cumulative_token_count.{key}", f"llm.usage.{key}_tokens"))
            if n is not None:
                outputs[ours] = int(n)
        error = (span.status_text or "span status ERROR") if span.failed else None
        if error is None and out_event is None:
            raise BadRecord(f"span {span.span_id}: no promptflow.function.output event")
        fields = {k: v for k, v in _scalars(a).items() if not k.startswith("__computed__")}
        fields.update(_scalars(span.resource))
        rid = a.get("line_run_id") or span.trace_id or span.span_id
        return Record(id=str(rid), ts=span.start, data=data, outputs=outputs, fields=fields, error=error)


READERS: dict[str, type[Reader]] = {
    "openai": OpenAIChatReader,
    "otel": OTelGenAIReader,
    "promptflow": PromptflowTraceReader,
}


def reader_for(kind: str, *, root: str, field: str) -> Reader:
    """A reader by builtin name or ``module:Class`` (imported with *root* on ``sys.path``)."""
    if kind in READERS:
        return READERS[kind]()
    module_name, sep, attr = kind.partition(":")
    if not sep:
        raise UserError(f"unknown source type '{kind}'", field=field,
                        hint=f"builtins: {', '.join(READERS)}; or module:Class (a promptgauge.monitor.Reader)")
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot load source reader '{kind}': {exc}", field=field) from None
    if not (isinstance(cls, type) and issubclass(cls, Reader)):
        raise UserError(f"'{kind}' is not a promptgauge.monitor.Reader subclass", field=field)
    return cls()
