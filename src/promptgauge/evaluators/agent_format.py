"""Agent shapes: tool calls and messages from our trajectories, OpenAI chat messages and azure's agent format.

Evaluators of agents accept whatever shape a column holds -- a row of a suite may carry
a trajectory from the engine, a logged OpenAI exchange or messages produced by
azure-ai-evaluation's ``AIAgentConverter`` -- so everything is read here:

- :func:`tool_calls`: the tool calls of a trajectory (``{"messages", "steps", "tool_calls", ...}``,
  see ``AGENT_DESIGN.md``), of a message list (OpenAI ``tool_calls`` / ``function_call``, or azure
  ``tool_call`` / ``function_call`` content items), or a bare list of calls (ours, OpenAI's
  ``{"function": {...}}``, azure's flat ``{"type": "tool_call", "name", "arguments"}``). A JSON
  string of any of these is parsed first. :func:`step_count` counts model calls.
- :func:`to_azure_agent_messages`: azure's agent message format (typed content lists; one
  ``tool_call`` item per call, with ``arguments`` as an object; tool results as ``tool_result``
  items, JSON-decoded when they are JSON, as azure's converter does). Arguments that are not a
  JSON object (malformed JSON included) become ``{"arguments_raw": TEXT}``: azure's format
  requires an object. Messages whose content is already a typed list are kept as they are.
- :func:`to_azure_tool_definitions` (OpenAI function schemas -> azure's flat ``{name, type,
  description, parameters}``), :func:`to_azure_tool_calls`, and :func:`azure_agent_inputs`, which
  turns a row's ``query`` / ``response`` / ``tool_definitions`` / ``tool_calls`` into what
  azure's agent evaluators take -- a whole conversation given as ``query`` is cut after its latest
  user message, one given as ``response`` keeps only what follows it, as azure's converter splits
  a thread -- so those classes can be fed our trajectories (:class:`AzureAgentEvaluator`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar

__all__ = [
    "AzureAgentEvaluator",
    "ToolCall",
    "azure_agent_inputs",
    "step_count",
    "to_azure_agent_messages",
    "to_azure_tool_calls",
    "to_azure_tool_definitions",
    "tool_calls",
]

_CALL_TYPES = ("tool_call", "function_call")


@dataclass
class ToolCall:
    """One tool call, whatever shape it came in.

    ``arguments`` is the parsed JSON (``None`` when the text was not valid JSON; then ``raw``
    holds it); ``step`` is the model call that emitted it (calls of one step were emitted in
    parallel); ``error`` is what the engine recorded when the call failed.
    """

    name: str
    arguments: Any
    raw: str | None = None
    step: int = 0
    id: str | None = None
    error: str | None = None
    result: Any = None

    def describe(self) -> str:
        """``name({"a": 1})`` -- how reasons show a call."""
        if self.arguments is None:
            return f"{self.name}(<malformed JSON: {self.raw!r:.60}>)"
        return f"{self.name}({json.dumps(self.arguments, ensure_ascii=False, sort_keys=True, default=str)})"


def load_json(value: Any) -> Any:
    """A column value that may be JSON text (CSV datasets): parsed when it looks like a JSON list or object."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_arguments(value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str):
        try:
            return json.loads(value), value
        except ValueError:
            return None, value
    return value, None


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def _messages_of(value: Any) -> list[dict[str, Any]] | None:
    """The message list a value holds (a trajectory, ``{"messages": [...]}`` or a list), else None."""
    value = load_json(value)
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return value["messages"]
    if isinstance(value, dict) and "role" in value:
        return [value]
    return value if _is_messages(value) else None


def _one_call(item: Any, index: int, step: int | None = None) -> ToolCall:
    """A call in any of the bare shapes (ours, OpenAI's, azure's flat or nested)."""
    if isinstance(item, str):
        return ToolCall(name=item, arguments={}, step=index if step is None else step)
    if not isinstance(item, dict):
        raise TypeError(f"tool call {index} is a {type(item).__name__}, not an object")
    inner = item.get("tool_call") if isinstance(item.get("tool_call"), dict) else item
    function = inner.get("function") if isinstance(inner.get("function"), dict) else None
    source = function if function is not None else inner
    name = source.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"tool call {index} has no name: {json.dumps(item, default=str)[:120]}")
    if "arguments" in source:
        arguments, raw = _parse_arguments(source["arguments"])
    else:
        arguments, raw = {}, None
    if arguments is None and raw is None:
        raw = item.get("arguments_raw")
    own_step = item.get("step")
    return ToolCall(
        name=name, arguments=arguments, raw=raw,
        step=own_step if isinstance(own_step, int) else (index if step is None else step),
        id=inner.get("id") or item.get("tool_call_id") or item.get("id"),
        error=item.get("error") or (item.get("status") if item.get("status") in ("failed", "incomplete") else None),
        result=item.get("result", item.get("tool_result")),
    )


def _calls_in_messages(messages: list[dict[str, Any]]) -> list[ToolCall]:
    calls: list[ToolCall] = []
    step = -1
    for message in messages:
        if message.get("role") != "assistant":
            continue
        step += 1
        items: list[Any] = list(message.get("tool_calls") or [])
        if isinstance(message.get("function_call"), dict):
            items.append({"function": message["function_call"]})
        content = message.get("content")
        if isinstance(content, list):
            items += [c for c in content if isinstance(c, dict) and c.get("type") in _CALL_TYPES]
        calls += [_one_call(item, len(calls), step) for item in items]
    return calls


def tool_calls(value: Any) -> list[ToolCall]:
    """Every tool call in *value* (see the module docstring for the shapes), in the order they were emitted.

    A bare list of calls without ``step`` fields puts each call in its own step. In a conversation's
    trajectory (calls with a ``turn``) steps restart each turn: a call's step becomes its model call's
    place in the whole conversation, so a later turn's calls come after an earlier turn's.
    """
    value = load_json(value)
    if value is None:
        return []
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list) and "role" not in value:
        calls = [_one_call(item, i) for i, item in enumerate(value["tool_calls"])]
        turns = [item.get("turn") if isinstance(item, dict) else None for item in value["tool_calls"]]
        if any(isinstance(t, int) for t in turns):  # a conversation: steps count per turn, so order by (turn, step)
            keys = [(t if isinstance(t, int) else -1, c.step) for t, c in zip(turns, calls, strict=True)]
            rank = {k: i for i, k in enumerate(sorted(set(keys)))}
            calls = [replace(c, step=rank[k]) for c, k in zip(calls, keys, strict=True)]
        return calls
    messages = _messages_of(value)
    if messages is not None:
        return _calls_in_messages(messages)
    if isinstance(value, list):
        return [_one_call(item, i) for i, item in enumerate(value)]
    raise ValueError(f"cannot read tool calls from a {type(value).__name__}; expected a trajectory, messages "
                     "or a list of tool calls")


def step_count(value: Any) -> int | None:
    """Model calls in a trajectory (its ``steps``), or assistant messages after the latest user message
    of a message list; ``None`` for a bare list of calls (it does not say)."""
    value = load_json(value)
    if isinstance(value, dict) and isinstance(value.get("steps"), list):
        return len(value["steps"])
    messages = _messages_of(value)
    if messages is None:
        return None
    return sum(m.get("role") == "assistant" for m in _after_latest_user(messages))


def _latest_user(messages: list[dict[str, Any]]) -> int:
    return max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)


def _after_latest_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return messages[_latest_user(messages) + 1:]


# -- azure-ai-evaluation's agent format ----------------------------------------------------------


def _safe_loads(text: Any) -> Any:
    """azure's converter: a tool result that is JSON is decoded, any other text stays text."""
    if not isinstance(text, str):
        return "" if text is None else text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [copy.deepcopy(p) for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text")]
    return []


def _azure_call(call: ToolCall, index: int) -> dict[str, Any]:
    arguments = call.arguments if isinstance(call.arguments, dict) else {
        "arguments_raw": call.raw if call.raw is not None else json.dumps(call.arguments, default=str)}
    return {"type": "tool_call", "tool_call_id": call.id or f"call_{index}", "name": call.name,
            "arguments": copy.deepcopy(arguments)}


def _azure_message(message: dict[str, Any], counter: list[int]) -> dict[str, Any] | None:
    role, content = message.get("role"), message.get("content")
    typed = isinstance(content, list) and all(isinstance(c, dict) and "type" in c for c in content) and content
    if typed and not message.get("tool_calls") and not message.get("function_call"):
        return copy.deepcopy(message)  # already azure's format
    if role in ("system", "developer"):
        return {"role": role, "content": content if isinstance(content, str) else
                "\n".join(p.get("text", "") for p in _text_parts(content))}
    if role == "user":
        return {"role": "user", "content": _text_parts(content) or [{"type": "text", "text": ""}]}
    if role == "assistant":
        items = [p for p in _text_parts(content) if p.get("text")]
        for call in _calls_in_messages([message]):
            items.append(_azure_call(call, counter[0]))
            counter[0] += 1
        return {"role": "assistant", "content": items or [{"type": "text", "text": ""}]}
    if role in ("tool", "function"):
        text = content if not isinstance(content, list) else "\n".join(p.get("text", "") for p in _text_parts(content))
        return {"role": "tool", "tool_call_id": message.get("tool_call_id") or message.get("name") or "",
                "content": [{"type": "tool_result", "tool_result": _safe_loads(text)}]}
    return None


def to_azure_agent_messages(value: Any) -> list[dict[str, Any]]:
    """Our trajectory, or OpenAI chat messages (or azure's, returned as they are), in azure's agent format."""
    messages = _messages_of(value)
    if messages is None:
        raise ValueError(f"expected a trajectory or a list of messages, not a {type(load_json(value)).__name__}")
    counter = [0]
    converted = [_azure_message(m, counter) for m in messages]
    return [m for m in converted if m is not None]


def to_azure_tool_definitions(value: Any) -> Any:
    """OpenAI function schemas (``{"type": "function", "function": {...}}``) in azure's flat form; others as they are."""
    value = load_json(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return value
    out = []
    for tool in value:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict) and "name" not in tool:
            fn = tool["function"]
            flat = {"name": fn.get("name"), "type": "function"}
            if fn.get("description") is not None:
                flat["description"] = fn["description"]
            flat["parameters"] = copy.deepcopy(fn.get("parameters") or {})
            out.append(flat)
        else:
            out.append(copy.deepcopy(tool))
    return out


def to_azure_tool_calls(value: Any) -> Any:
    """Tool calls (any shape :func:`tool_calls` reads) as azure's flat ``tool_call`` items; text stays text."""
    value = load_json(value)
    if value is None or isinstance(value, str):
        return value
    return [_azure_call(call, i) for i, call in enumerate(tool_calls(value))]


def _cut(value: Any, part: str) -> Any:
    """A query (up to the latest user message) or a response (after it) in azure's format; text as it is."""
    value = load_json(value)
    if value is None or isinstance(value, str) or _messages_of(value) is None:
        return copy.deepcopy(value)
    messages = to_azure_agent_messages(value)
    i = _latest_user(messages)
    if i < 0:
        return messages
    return messages[:i + 1] if part == "query" else messages[i + 1:]


def azure_agent_inputs(*, query: Any = None, response: Any = None, tool_definitions: Any = None,
                       tool_calls: Any = None) -> dict[str, Any]:
    """What azure's agent evaluators take, from our shapes (``None`` inputs are left out)."""
    inputs = {"query": _cut(query, "query"), "response": _cut(response, "response"),
              "tool_definitions": to_azure_tool_definitions(tool_definitions),
              "tool_calls": to_azure_tool_calls(tool_calls)}
    return {k: v for k, v in inputs.items() if v is not None}


class AzureAgentEvaluator:
    """One of azure-ai-evaluation's own agent evaluators, fed our trajectories.

    In a suite: ``type: promptgauge.evaluators.agent_format:AzureAgentEvaluator`` with
    ``params: {evaluator: IntentResolutionEvaluator}`` (any class of ``azure.ai.evaluation``);
    it is built with the suite's judge as ``model_config``, like any azure evaluator, and
    its inputs go through :func:`azure_agent_inputs` first. Default column mapping: the
    agent's messages as query and response (map ``tool_definitions``, which ToolCallAccuracy needs).
    """

    inputs: ClassVar[dict[str, str]] = {"query": "${target.messages}", "response": "${target.messages}"}
    higher_is_better = True

    def __init__(self, model_config: dict[str, Any], *, evaluator: str, threshold: float | None = None,
                 **kwargs: Any) -> None:
        import azure.ai.evaluation as azure_evaluation

        cls = getattr(azure_evaluation, evaluator, None)
        if cls is None:
            raise ValueError(f"azure.ai.evaluation has no evaluator '{evaluator}'")
        if threshold is not None:
            kwargs["threshold"] = threshold
        self.evaluator = cls(model_config, **kwargs)
        self._acall = self.evaluator._to_async()

    async def __call__(self, *, query: Any, response: Any = None, tool_definitions: Any = None,
                       tool_calls: Any = None) -> dict[str, Any]:
        return await self._acall(**azure_agent_inputs(query=query, response=response,
                                                      tool_definitions=tool_definitions, tool_calls=tool_calls))
