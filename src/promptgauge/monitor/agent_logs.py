"""Logged tool-calling traffic -> the trajectory a suite's results carry, so the monitor scores production agents
with the same trajectory evaluators and agent judges (``${target.trajectory}``, ``${target.tool_calls}``,
``${target.messages}``, ``${target.tool_definitions}``).

A logged model call that involves tools -- the request declares ``tools``, or a message holds tool calls or
tool results, or the reply asks for tools -- becomes a record whose outputs add:

- ``trajectory``: ``messages`` (the whole exchange in OpenAI chat format: the request's messages and the
  reply), ``steps`` (one per assistant message of the current turn, i.e. after the latest user message;
  latency and tokens only on the logged call, the last step), ``tool_calls`` (the current turn's calls in
  emitted order, each with its parsed arguments, its result from the matching tool message, and its error),
  ``stop_reason`` (``answer``; ``tool_calls`` when the logged reply asks for tools -- the exchange goes on in
  a later call; ``error`` when the call failed);
- ``messages`` and ``tool_calls`` (the same lists), and ``tool_definitions`` (the request's ``tools``).

Readers hand over OpenAI chat messages; :func:`parts_messages`, :func:`event_messages` and
:func:`indexed_messages` read the OpenTelemetry GenAI conventions' shapes into them (``role`` + ``parts``
with ``tool_call`` / ``tool_call_response`` parts; ``gen_ai.*.message`` / ``gen_ai.choice`` events with
``tool_calls``; OpenLLMetry's ``gen_ai.prompt.N.tool_calls.M.*`` attributes), and :func:`tool_spans` the
results, errors and latencies of ``execute_tool`` spans.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["event_messages", "has_tools", "indexed_messages", "parts_messages", "span_messages", "tool_spans",
           "trajectory_outputs"]

_CALL_PARTS = ("tool_call", "function_call")
_RESULT_PARTS = ("tool_call_response", "tool_result", "function_call_output")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        return "\n".join(str(p.get("text", p.get("content", ""))) for p in value if p.get("type", "text") == "text")
    return json.dumps(value, ensure_ascii=False)


def _loads(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _call(cid: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """An OpenAI ``tool_calls`` item; arguments kept as text (objects as JSON)."""
    raw = arguments if isinstance(arguments, str) else json.dumps({} if arguments is None else arguments,
                                                                   ensure_ascii=False)
    return {"id": None if cid is None else str(cid), "type": "function", "function": {"name": str(name), "arguments": raw}}


def has_tools(messages: list[dict[str, Any]], tools: Any = None) -> bool:
    """Whether an exchange involves tools (declared, called or answered)."""
    return bool(tools) or any(m.get("tool_calls") or m.get("function_call") or m.get("role") in ("tool", "function")
                              for m in messages)


# -- OpenTelemetry shapes -> OpenAI chat messages ---------------------------------------------------------------


def parts_messages(value: Any) -> list[dict[str, Any]]:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` (``{role, parts}``) as chat messages, tool calls
    and tool results included (a message with several tool results becomes one tool message each)."""
    out: list[dict[str, Any]] = []
    for m in _loads(value) or []:
        if not isinstance(m, dict):
            continue
        role = m.get("role", "user")
        parts = m.get("parts")
        if not isinstance(parts, list):  # OpenAI-style {role, content, tool_calls, tool_call_id}
            msg = {"role": role, "content": _text(m.get("content"))}
            if m.get("tool_calls") and (calls := _openai_calls(m["tool_calls"])):
                msg.update(content=msg["content"] or None, tool_calls=calls)
            if m.get("tool_call_id") is not None:
                msg["tool_call_id"] = str(m["tool_call_id"])
            out.append(msg)
            continue
        texts = [p for p in parts if isinstance(p, dict) and p.get("type", "text") == "text"]
        calls = [_call(p.get("id"), p.get("name"), p.get("arguments")) for p in parts
                 if isinstance(p, dict) and p.get("type") in _CALL_PARTS]
        results = [p for p in parts if isinstance(p, dict) and p.get("type") in _RESULT_PARTS]
        if results:
            out += [{"role": "tool", "tool_call_id": None if p.get("id") is None else str(p.get("id")),
                     "content": _text(p.get("response", p.get("result", p.get("output"))))} for p in results]
            if not texts and not calls:
                continue
        msg: dict[str, Any] = {"role": role, "content": _text(texts) if texts else None if calls else ""}
        if calls:
            msg["tool_calls"] = calls
        if m.get("finish_reason"):
            msg["finish_reason"] = m["finish_reason"]
        out.append(msg)
    return out


def _openai_calls(value: Any) -> list[dict[str, Any]]:
    calls = []
    for c in _loads(value) or []:
        if isinstance(c, dict):
            fn = c.get("function") if isinstance(c.get("function"), dict) else c
            calls.append(_call(c.get("id"), fn.get("name"), fn.get("arguments")))
    return calls


def event_messages(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """``gen_ai.{system,user,assistant,tool}.message`` and ``gen_ai.choice`` events as chat messages (their
    ``tool_calls`` and a tool message's ``id`` included)."""
    out = []
    for name, attrs in events:
        if name == "gen_ai.choice":
            body = _loads(attrs.get("message")) or {}
            body = body if isinstance(body, dict) else {"content": body}
            role, content, calls, cid = "assistant", body.get("content"), body.get("tool_calls"), None
        elif name.startswith("gen_ai.") and name.endswith(".message") and name.count(".") == 2:
            role, content, calls, cid = name.split(".")[1], _loads(attrs.get("content")), attrs.get("tool_calls"), \
                attrs.get("id")
        else:
            continue
        msg: dict[str, Any] = {"role": role, "content": _text(content)}
        if calls and (parsed := _openai_calls(calls)):
            msg["tool_calls"] = parsed
            msg["content"] = msg["content"] or None
        if role == "tool":
            msg["tool_call_id"] = None if cid is None else str(cid)
        out.append(msg)
    return out


def indexed_messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """OpenLLMetry's ``gen_ai.prompt.N.role`` / ``.content`` / ``.tool_call_id`` / ``.tool_calls.M.{id,name,
    arguments}`` attributes as chat messages."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix + "."):
            continue
        idx, _, rest = key[len(prefix) + 1:].partition(".")
        if not idx.isdigit():
            continue
        item = found.setdefault(int(idx), {"calls": {}})
        if rest in ("role", "content", "tool_call_id", "finish_reason"):
            item[rest] = value
        elif rest.startswith("tool_calls."):
            j, _, field = rest[len("tool_calls."):].partition(".")
            if j.isdigit() and field in ("id", "name", "arguments"):
                item["calls"].setdefault(int(j), {})[field] = value
    out = []
    for i in sorted(found):
        item = found[i]
        msg: dict[str, Any] = {"role": item.get("role", "assistant" if prefix.endswith("completion") else "user"),
                               "content": _text(item.get("content"))}
        if item["calls"]:
            msg["tool_calls"] = [_call(c.get("id"), c.get("name"), c.get("arguments"))
                                 for _, c in sorted(item["calls"].items())]
            msg["content"] = msg["content"] or None
        if item.get("tool_call_id") is not None:
            msg["tool_call_id"] = str(item["tool_call_id"])
        out.append(msg)
    return out


def span_messages(attrs: dict[str, Any], events: list[tuple[str, dict[str, Any]]]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A GenAI span's input and output messages in chat format, tool calls and results included, from
    whichever convention it was recorded in (the same order of preference as the monitor's reader)."""
    by_name = dict(events)
    if "gen_ai.input.messages" in attrs:
        given = parts_messages(attrs["gen_ai.input.messages"])
        if "gen_ai.system_instructions" in attrs:
            given.insert(0, {"role": "system", "content": _text(_loads(attrs["gen_ai.system_instructions"]))})
    elif "gen_ai.content.prompt" in by_name:
        given = parts_messages(by_name["gen_ai.content.prompt"].get("gen_ai.prompt"))
    else:
        given = event_messages([e for e in events if e[0] != "gen_ai.choice"]) or \
            indexed_messages(attrs, "gen_ai.prompt")
    if "gen_ai.output.messages" in attrs:
        reply = parts_messages(attrs["gen_ai.output.messages"])
    elif "gen_ai.content.completion" in by_name:
        reply = parts_messages(by_name["gen_ai.content.completion"].get("gen_ai.completion"))
    else:
        reply = event_messages([e for e in events if e[0] == "gen_ai.choice"]) or \
            indexed_messages(attrs, "gen_ai.completion")
    return given, reply[:1]


def tool_spans(spans: list[Any]) -> dict[str, dict[str, Any]]:
    """``execute_tool`` spans by ``gen_ai.tool.call.id``: the tool's ``result``, ``error`` and ``latency_ms``."""
    out = {}
    for s in spans:
        a = s.attributes
        cid = a.get("gen_ai.tool.call.id")
        if a.get("gen_ai.operation.name") != "execute_tool" or cid is None:
            continue
        failed = s.failed or a.get("error.type")
        out[str(cid)] = {
            "name": a.get("gen_ai.tool.name"),
            "result": _text(_loads(a["gen_ai.tool.call.result"])) if "gen_ai.tool.call.result" in a else None,
            "error": f"tool failed: {s.status_text or a.get('error.type') or 'span status ERROR'}" if failed else None,
            "latency_ms": None if s.end is None else max(0.0, (s.end - s.start) * 1000.0)}
    return out


# -- the trajectory -------------------------------------------------------------------------------------------


def _arguments(raw: str) -> tuple[Any, str | None]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return None, f"malformed JSON arguments: {exc}"
    return value, None


def trajectory_outputs(messages: list[dict[str, Any]], *, tools: Any = None, finish_reason: str | None = None,
                       prompt_tokens: int | None = None, completion_tokens: int | None = None,
                       latency_ms: float | None = None, error: str | None = None, replied: bool = True,
                       executed: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The outputs a logged exchange adds (see the module docstring); ``{}`` when it involves no tools.

    *messages* are the request's messages followed by the reply (*replied*: the last message is the
    logged call's reply, whose step gets its latency, tokens and finish reason); *executed* are
    :func:`tool_spans` results, which fill a call's result, error and latency.
    """
    if not has_tools(messages, tools):
        return {}
    messages = [dict(m) for m in messages]
    start = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1) + 1
    results: dict[Any, str] = {}
    for m in messages[start:]:
        if m.get("role") == "tool" and m.get("tool_call_id") is not None:
            results[m["tool_call_id"]] = _text(m.get("content"))
    assistants = [(i, m) for i, m in enumerate(messages) if i >= start and m.get("role") == "assistant"]
    steps, calls = [], []
    for k, (i, m) in enumerate(assistants):
        items = list(m.get("tool_calls") or [])
        if isinstance(m.get("function_call"), dict):  # the legacy single call: its result is the next function message
            nxt = next((x for x in messages[i + 1:] if x.get("role") == "function"), {})
            items.append({"id": None, "function": m["function_call"], "_result": _text(nxt.get("content"))})
        ids = []
        for j, item in enumerate(items):
            fn = item.get("function") if isinstance(item.get("function"), dict) else {}
            cid = item.get("id") or f"call_{k}_{j}"
            raw = fn.get("arguments") if isinstance(fn.get("arguments"), str) else json.dumps(fn.get("arguments"))
            parsed, bad = _arguments(raw)
            ran = (executed or {}).get(cid, {})
            result = results.get(item.get("id"), item.get("_result"))
            calls.append({"id": cid, "step": k, "name": str(fn.get("name")), "arguments": parsed, "arguments_raw": raw,
                          "result": result if result is not None else ran.get("result"),
                          "error": bad or ran.get("error"), "latency_ms": ran.get("latency_ms")})
            ids.append(cid)
        last = replied and k == len(assistants) - 1
        steps.append({"step": k, "latency_ms": latency_ms if last else None,
                      "prompt_tokens": prompt_tokens if last else None,
                      "completion_tokens": completion_tokens if last else None, "cached": False,
                      "finish_reason": (finish_reason if last and finish_reason else "tool_calls" if ids else "stop"),
                      "tool_calls": ids})
    for m in messages:
        m.pop("finish_reason", None)
    pending = replied and bool(assistants) and bool(steps[-1]["tool_calls"])
    trajectory = {"messages": messages, "steps": steps, "tool_calls": calls,
                  "stop_reason": "error" if error else "tool_calls" if pending else "answer"}
    out = {"trajectory": trajectory, "messages": messages, "tool_calls": calls}
    if tools:
        out["tool_definitions"] = _loads(tools)
    return out
