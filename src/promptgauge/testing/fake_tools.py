"""Tool calls of the fake OpenAI server: scripted per request, in-band, validated like OpenAI's.

What :mod:`.fake_server` answers to a chat request with ``tools``: a :class:`ToolRule` script (Python
rules or a ``--tool-script`` JSON file, :func:`load_tool_script`), or the request's own in-band
``TOOL: <name> <arguments>`` lines (``TOOL@1:`` for the second step), filled with the tool results the
history holds (``{tool:NAME}``, ``{tool_results}``); and the checks OpenAI makes of tools, tool choice and
tool messages (an unanswered tool call, a tool message without its call: 400). Pure functions and
values, no server; :mod:`.fake_server` re-exports the public names.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["ToolAnswer", "ToolCall", "ToolRule", "ToolScriptEntry", "load_tool_script", "tool_call_id"]

_TOOL_LINE = re.compile(r"^[ \t]*TOOL(?:@(\d+))?:[ \t]*([^\s{]+)[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_TOOL_TEMPLATE = re.compile(r"\{tool:([^{}\s]+)\}|\{tool_results\}")
_DIRECTIVE_ROLES = frozenset({"system", "developer", "user"})
_TOOL_CHOICES = ("none", "auto", "required")


class _BadRequest(Exception):
    """The request body is not what the endpoint accepts (answered with 400, naming `param` if given)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _content_text(content: Any) -> str:
    """Text of a chat message content: a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _last_user_text(request: Mapping[str, Any]) -> str:
    """The last user message of a chat request, or the prompt of a completion request."""
    if "messages" in request:
        users = [m for m in request["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        return _content_text(users[-1].get("content")) if users else ""
    prompt = request.get("prompt")
    return prompt if isinstance(prompt, str) else ""



# -- tool calls ------------------------------------------------------------------


class ToolCall(NamedTuple):
    """One tool call the fake model makes.

    `arguments` is a mapping (sent JSON-encoded) or a string sent verbatim, so a
    string that is not JSON scripts malformed arguments. The name need not be one
    of the request's tools (that scripts an unknown tool).

        ToolCall("lookup_order", {"order_id": 42})
        ToolCall("lookup_order", '{"order_id": 4')   # malformed JSON
    """

    name: str
    arguments: Mapping[str, Any] | str = "{}"

    def arguments_json(self) -> str:
        """The ``function.arguments`` string sent to the client."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


ToolAnswer = Sequence[ToolCall] | str
"""What a tool-script entry answers: tool calls (several = parallel calls) or the final text."""

ToolScriptEntry = Callable[[dict[str, Any]], "Sequence[ToolCall | tuple[str, Any]] | str | None"]
"""A tool-script entry: ``(request_json) -> tool calls | final text | None``; None or [] = not mine, ask the next."""


def _as_tool_call(call: Any) -> ToolCall:
    """A `ToolCall` from a ToolCall, a ``(name, arguments)`` pair or a ``{name, arguments}`` mapping."""
    if isinstance(call, ToolCall):
        result = call
    elif isinstance(call, Mapping):
        result = ToolCall(call["name"], call.get("arguments", "{}"))
    elif isinstance(call, Sequence) and not isinstance(call, str) and 1 <= len(call) <= 2:
        result = ToolCall(*call)
    else:
        raise TypeError(f"a tool call is a ToolCall, a (name, arguments) pair or a mapping, got {call!r}")
    if not isinstance(result.name, str) or not isinstance(result.arguments, Mapping | str):
        raise TypeError(f"a tool call needs a string name and a mapping or string of arguments, got {call!r}")
    return result


def _as_tool_answer(answer: Any) -> tuple[ToolCall, ...] | str | None:
    """Normalise what a script entry returned; an empty list counts as no answer."""
    if answer is None or isinstance(answer, str):
        return answer
    calls = tuple(_as_tool_call(call) for call in answer)
    return calls or None


@dataclass(frozen=True)
class ToolRule:
    """A tool-script rule: when a request matches every condition given, answer with `calls` or `reply`.

    Conditions (None = any):
        match: regular expression searched in the last user message.
        step: number of assistant messages with ``tool_calls`` already in the conversation.
        has_tool_results: whether the conversation has ``role: "tool"`` messages.
        when: ``(request_json) -> bool`` for anything else (model, tools offered, ...).
    Answer (exactly one):
        calls: tool calls, each a `ToolCall`, a ``(name, arguments)`` pair or a
            ``{"name", "arguments"}`` mapping; several are parallel calls.
        reply: the final text; ``{tool:<name>}`` is replaced by the latest result of
            that tool in the conversation and ``{tool_results}`` by every result since
            the last user message, one ``<name>: <result>`` line each.

        ToolRule(match=r"order \\d+", step=0, calls=[("lookup_order", {"order_id": 42})])
        ToolRule(has_tool_results=True, reply="Order status: {tool:lookup_order}")
    """

    calls: Sequence[ToolCall | tuple[str, Any] | Mapping[str, Any]] | None = None
    reply: str | None = None
    match: str | re.Pattern[str] | None = None
    step: int | None = None
    has_tool_results: bool | None = None
    when: Callable[[dict[str, Any]], bool] | None = None
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.calls is None) == (self.reply is None):
            raise ValueError("a ToolRule answers with exactly one of calls=[...] or reply='...'")
        if self.calls is not None:
            calls = tuple(_as_tool_call(call) for call in self.calls)
            if not calls:
                raise ValueError("ToolRule(calls=...) needs at least one tool call")
            object.__setattr__(self, "calls", calls)
        if self.match is not None:
            object.__setattr__(self, "_pattern", re.compile(self.match))

    def __call__(self, request: dict[str, Any]) -> tuple[ToolCall, ...] | str | None:
        """This rule's answer if `request` matches it, else None."""
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        if self._pattern is not None and not self._pattern.search(_last_user_text(request)):
            return None
        if self.step is not None and _tool_steps(messages) != self.step:
            return None
        if self.has_tool_results is not None and self.has_tool_results != any(
            m.get("role") == "tool" for m in messages
        ):
            return None
        if self.when is not None and not self.when(request):
            return None
        if self.reply is not None:
            return _fill_tool_template(self.reply, messages)
        return self.calls  # type: ignore[return-value]  # normalised in __post_init__

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolRule:
        """A rule from JSON-like data: the keys are the constructor's, but `when`.

            {"match": "order", "step": 0, "calls": [{"name": "lookup_order", "arguments": {"order_id": 42}}]}
            {"has_tool_results": true, "reply": "Order status: {tool:lookup_order}"}
        """
        allowed = {"calls", "reply", "match", "step", "has_tool_results"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown tool rule keys {unknown}; allowed: {sorted(allowed)}")
        return cls(**data)


def load_tool_script(path: str) -> list[ToolRule]:
    """Tool rules from a JSON file holding a list of `ToolRule.from_dict` objects."""
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    if not isinstance(data, list):
        raise TypeError(f"{path}: a tool script is a JSON list of rule objects")
    return [ToolRule.from_dict(item) for item in data]


def tool_call_id(messages: Sequence[Any], index: int) -> str:
    """The id of the `index`-th tool call answering `messages`: ``call_`` + a hash of both.

    The same conversation gets the same ids on every server, streamed or not.
    """
    canonical = json.dumps(list(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.blake2b(f"{canonical}#{index}".encode(), digest_size=12).hexdigest()
    return "call_" + digest


def _tool_steps(messages: Sequence[Mapping[str, Any]]) -> int:
    """Assistant messages with tool calls among `messages`."""
    return sum(1 for m in messages if m.get("role") == "assistant" and m.get("tool_calls"))


def _tool_results(messages: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, str]]:
    """``(message index, tool name, result text)`` of every ``role: "tool"`` message."""
    names: dict[Any, str] = {}
    results = []
    for index, message in enumerate(messages):
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                names[call.get("id")] = str(call["function"].get("name"))
        if message.get("role") == "tool":
            name = names.get(message.get("tool_call_id")) or str(message.get("name") or "tool")
            results.append((index, name, _content_text(message.get("content"))))
    return results


def _last_user_index(messages: Sequence[Mapping[str, Any]]) -> int:
    """Index of the last user message, -1 if none."""
    return max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)


def _quote_tool_results(messages: Sequence[Mapping[str, Any]]) -> str:
    """The tool results since the last user message, one ``<name>: <result>`` line each ("" if none)."""
    since = _last_user_index(messages)
    return "\n".join(f"{name}: {text}" for index, name, text in _tool_results(messages) if index > since)


def _fill_tool_template(text: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """Replace ``{tool:<name>}`` and ``{tool_results}``; placeholders with nothing to fill stay as they are."""
    if "{tool" not in text:
        return text
    latest = {name: result for _, name, result in _tool_results(messages)}
    quoted = _quote_tool_results(messages)

    def fill(match: re.Match[str]) -> str:
        if match[1] is None:
            return quoted or match[0]
        return latest.get(match[1], match[0])

    return _TOOL_TEMPLATE.sub(fill, text)


def _inband_tool_calls(messages: Sequence[Mapping[str, Any]]) -> tuple[ToolCall, ...] | None:
    """The calls of the ``TOOL:`` lines for this step, from the latest system/user message with such lines."""
    anchor, lines = -1, []
    for index, message in enumerate(messages):
        if message.get("role") in _DIRECTIVE_ROLES:
            found = _TOOL_LINE.findall(_content_text(message.get("content")))
            if found:
                anchor, lines = index, found
    if anchor < 0:
        return None
    step = _tool_steps(messages[anchor + 1 :])
    calls = tuple(ToolCall(name, arguments or "{}") for at, name, arguments in lines if int(at or 0) == step)
    return calls or None


def _placeholder_arguments(schema: Any) -> Any:
    """Schema-valid filler for a forced call nobody scripted: each required property's first enum value or zero."""
    if not isinstance(schema, Mapping):
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    type_ = schema.get("type", "object")
    if isinstance(type_, list):
        type_ = type_[0] if type_ else "object"
    if type_ == "object":
        properties = schema.get("properties") or {}
        return {name: _placeholder_arguments(properties.get(name)) for name in schema.get("required") or []}
    return {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "null": None}.get(type_, {})


def _validate_tools(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request's function definitions, after OpenAI's checks of ``tools``, ``tool_choice``, ``parallel_tool_calls``."""
    tools = request.get("tools")
    if tools is None:
        for key in ("tool_choice", "parallel_tool_calls"):
            if request.get(key) is not None:
                raise _BadRequest(f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified.", key)
        return []
    if not isinstance(tools, list) or not tools:
        raise _BadRequest("Invalid 'tools': expected a non-empty array of function tools.", "tools")
    functions = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function" or not isinstance(function.get("name"), str):
            raise _BadRequest(
                f"Invalid 'tools[{index}]': expected {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}.",
                f"tools[{index}]",
            )
        functions.append(function)
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if choice.get("type") != "function" or not isinstance(name, str):
            raise _BadRequest(
                "Invalid value for 'tool_choice': expected {\"type\": \"function\", \"function\": {\"name\": ...}}.",
                "tool_choice",
            )
        if name not in {f["name"] for f in functions}:
            raise _BadRequest(f"Invalid value for 'tool_choice': function '{name}' is not in 'tools'.", "tool_choice")
    elif choice is not None and choice not in _TOOL_CHOICES:
        raise _BadRequest(f"Invalid value for 'tool_choice': {choice!r}; expected one of {_TOOL_CHOICES}.", "tool_choice")
    return functions


def _validate_tool_messages(messages: Sequence[Any]) -> None:
    """OpenAI's pairing rule: tool messages answer the tool calls of the assistant message right before them, all of them."""
    open_ids: list[Any] | None = None  # ids of the assistant tool calls the following tool messages answer
    unanswered: list[Any] = []
    opened_at = -1
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool":
            call_id = message.get("tool_call_id")
            if open_ids is None:
                raise _BadRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                    f"messages.[{index}].role",
                )
            if not isinstance(call_id, str):
                raise _BadRequest(
                    f"Missing required parameter: 'messages.[{index}].tool_call_id'.", f"messages.[{index}].tool_call_id"
                )
            if call_id not in open_ids:
                raise _BadRequest(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    f"messages.[{index}].tool_call_id",
                )
            if call_id in unanswered:
                unanswered.remove(call_id)
            continue
        _check_answered(unanswered, opened_at)
        open_ids = None
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        if calls:
            if not isinstance(calls, list):
                raise _BadRequest("Invalid 'tool_calls': expected an array.", f"messages.[{index}].tool_calls")
            open_ids = [call.get("id") if isinstance(call, dict) else None for call in calls]
            unanswered, opened_at = list(open_ids), index
    _check_answered(unanswered, opened_at)


def _check_answered(unanswered: Sequence[Any], opened_at: int) -> None:
    """400 if tool calls of the assistant message at `opened_at` got no tool message."""
    if unanswered:
        raise _BadRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: "
            f"{', '.join(map(str, unanswered))}",
            f"messages.[{opened_at}].role",
        )


