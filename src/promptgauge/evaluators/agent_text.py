"""azure-ai-evaluation's handling of agent inputs, ported so that our agent judges send its exact prompts.

From azure-ai-evaluation 1.18.10 (MIT License, Copyright (c) Microsoft Corporation; see
``prompts/NOTICE-agent.md``), kept close to the original:

- the input checks of its ``ConversationValidator``, ``ToolDefinitionsValidator`` and
  ``ToolCallsValidator`` (same messages; :class:`AgentInputError` instead of its exception);
- message preprocessing (MCP approval messages dropped, ``function_call`` / ``openapi_call``
  content types renamed to ``tool_call`` / ``tool_result``) -- on a copy: the row is not changed;
- the intermediate-response check (a response ending in a ``function_call``);
- the text its IntentResolution and TaskAdherence evaluators put in their prompts
  (``User turn 1:`` ... ``[TOOL_CALL] name(a=1)``), with its fallbacks: a conversation it cannot
  parse goes into the prompt as it is.
"""

from __future__ import annotations

import copy
import json
from typing import Any

MALFORMED_HISTORY = ("Malformed Conversation History: Query parameter representing conversation history should "
                     "have exactly one more user query than agent responses")


class AgentInputError(ValueError):
    """An input azure-ai-evaluation's validators reject; ``missing`` marks its MISSING_FIELD category."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


# -- input checks -----------------------------------------------------------------------------

_USER_TYPES = ("text", "input_text")
_ASSISTANT_TYPES = ("text", "output_text", "tool_call", "function_call", "mcp_approval_request", "openapi_call")
_CALL_TYPES = ("tool_call", "function_call", "openapi_call", "mcp_approval_request")
_TOOL_TYPES = ("tool_result", "function_call_output", "mcp_approval_response", "openapi_call_output")


def _field(item: dict[str, Any], name: str, kind: type, context: str) -> AgentInputError | None:
    if name not in item:
        return AgentInputError(f"Each {context} must contain a '{name}' field.")
    if not isinstance(item[name], kind):
        what = {str: "a string", dict: "a dictionary", list: "a list"}[kind]
        return AgentInputError(f"The '{name}' field must be {what} in {context}.")
    return None


def _check_call_item(item: dict[str, Any]) -> AgentInputError | None:
    if item.get("type") not in _CALL_TYPES:
        return AgentInputError(f"The content item must be of type {list(_CALL_TYPES)} in tool_call content item.")
    if item["type"] == "mcp_approval_request":
        return None
    return (_field(item, "name", str, "tool_call content items") or _field(item, "arguments", dict, "tool_call content items")
            or _field(item, "tool_call_id", str, "tool_call content items"))


def _check_text_item(item: dict[str, Any], role: str) -> AgentInputError | None:
    if "text" not in item:
        return AgentInputError(f"Each content item must contain a 'text' field for message with role '{role}'.")
    if not isinstance(item["text"], str):
        return AgentInputError("The 'text' field must be a string in content items.")
    return None


def _check_message(message: dict[str, Any]) -> AgentInputError | None:
    for name in ("role", "content"):
        if name not in message:
            return AgentInputError(f"Each message must contain a '{name}' field.")
    role, content = message["role"], message["content"]
    if not (isinstance(content, str) or (isinstance(content, list) and all(i and isinstance(i, dict) for i in content))):
        return AgentInputError("The 'content' field must be a string or a list of dictionaries messages.")
    if len(content) == 0:
        return AgentInputError("The 'content' field can't be empty.")
    if isinstance(content, list) and not all("type" in i for i in content):
        return AgentInputError("Each content item in the 'content' list must contain a 'type' field.")
    if role in ("user", "system", "developer") and isinstance(content, list):
        for item in content:
            if item["type"] not in _USER_TYPES:
                return AgentInputError(f"Invalid content type '{item['type']}' for message with role '{role}'. "
                                       "Must be 'text' or 'input_text'.")
            if error := _check_text_item(item, role):
                return error
    elif role == "assistant" and isinstance(content, list):
        for item in content:
            if item["type"] not in _ASSISTANT_TYPES:
                return AgentInputError(f"Invalid content type '{item['type']}' for message with role 'assistant'. "
                                       f"Must be one of {list(_ASSISTANT_TYPES)}.")
            if item["type"] in ("text", "output_text"):
                error = _check_text_item(item, "assistant")
            elif item["type"] in ("tool_call", "function_call", "openapi_call"):
                error = _check_call_item(item)
            else:
                error = None
            if error:
                return error
    elif role == "tool":
        if not isinstance(content, list):
            return AgentInputError("The 'content' field must be a list of dictionaries messages for role 'tool'.")
        if error := _field(message, "tool_call_id", str, "content items for role 'tool'"):
            return error
        for item in content:
            if item["type"] not in _TOOL_TYPES:
                return AgentInputError(f"Invalid content type '{item['type']}' for message with role 'tool'. "
                                       f"Must be one of {list(_TOOL_TYPES)}.")
            if item["type"] != "mcp_approval_response" and item["type"] not in item:
                return AgentInputError(f"Each content items for role 'tool' must contain a '{item['type']}' field.")
    return None


def check_messages(value: Any, name: str) -> AgentInputError | None:
    """azure's check of a ``query`` / ``response``: non-empty text, or a list of well-formed messages."""
    if value is None:
        return AgentInputError(f"{name} is a required input and cannot be None.", missing=True)
    if isinstance(value, str):
        return AgentInputError(f"{name} string cannot be empty.", missing=True) if value == "" else None
    if not isinstance(value, list):
        return AgentInputError(f"{name} must be a string or a list of messages.")
    if not value:
        return AgentInputError(f"{name} list cannot be empty.", missing=True)
    if not all(isinstance(m, dict) for m in value):
        return AgentInputError(f"Each message in the {name.lower()} list must be a dictionary.")
    return next((e for e in map(_check_message, value) if e), None)


def _check_definition(tool: Any) -> AgentInputError | None:
    if not isinstance(tool, dict):
        return AgentInputError("Each tool definition must be a dictionary.")
    return _field(tool, "name", str, "tool definitions") or _field(tool, "parameters", dict, "tool definitions")


def check_tool_definitions(value: Any, *, required: bool) -> AgentInputError | None:
    """azure's check of ``tool_definitions`` (a list of ``{name, parameters, ...}``; openapi tools with ``functions``)."""
    if not value:
        return AgentInputError("Tool definitions input is required but not provided.", missing=True) if required else None
    if isinstance(value, str):
        return None
    if not isinstance(value, list):
        return AgentInputError("Tool definitions must be provided as a list of dictionaries.")
    for tool in value:
        if not isinstance(tool, dict):
            return AgentInputError("Each tool definition must be a dictionary.")
        if tool.get("type") == "openapi":
            error = _field(tool, "functions", list, "openapi tool definition")
            error = error or next((e for e in map(_check_definition, tool.get("functions", [])) if e), None)
        else:
            error = _check_definition(tool)
        if error:
            return error
    return None


def check_tool_calls(value: Any) -> AgentInputError | None:
    """azure's check of ``tool_calls``: text, or a list of ``tool_call`` items."""
    if not value:
        return AgentInputError("No tool calls found in response or provided tool_calls.", missing=True)
    if isinstance(value, str):
        return None
    if not isinstance(value, list):
        return AgentInputError("Tool calls must be provided as a list of dictionaries.")
    for call in value:
        if not call or not isinstance(call, dict):
            return AgentInputError("Each tool call must be a dictionary.")
        if error := _check_call_item(call):
            return error
    return None


# -- preprocessing ----------------------------------------------------------------------------


def is_intermediate_response(response: Any) -> bool:
    """The response stops at a call the agent has not had answered yet (``function_call`` / MCP approval request)."""
    if isinstance(response, list) and response:
        last = response[-1]
        if isinstance(last, dict) and last.get("role") == "assistant":
            content = last.get("content", [])
            if isinstance(content, list) and content and isinstance(content[-1], dict):
                return content[-1].get("type") in ("function_call", "mcp_approval_request")
    return False


def _approval(msg: Any) -> bool:
    if not (isinstance(msg, dict) and isinstance(msg.get("content"), list)):
        return False
    kinds = {c.get("type") for c in msg["content"] if isinstance(c, dict)}
    return (msg.get("role") == "assistant" and "mcp_approval_request" in kinds) or (
        msg.get("role") == "tool" and "mcp_approval_response" in kinds)


_RENAMES = {"function_call": ("tool_call", "function_call", "tool_call"),
            "function_call_output": ("tool_result", "function_call_output", "tool_result"),
            "openapi_call": ("tool_call", None, None),
            "openapi_call_output": ("tool_result", "openapi_call_output", "tool_result")}


def preprocess(messages: Any) -> Any:
    """A copy of *messages* without MCP approval messages and with azure's content type names."""
    if not isinstance(messages, list):
        return messages
    messages = [copy.deepcopy(m) for m in messages if not _approval(m)]
    for msg in messages:
        if not isinstance(msg, dict) or not isinstance(msg.get("content"), list):
            continue
        for item in msg["content"]:
            if isinstance(item, dict) and item.get("type") in _RENAMES:
                new_type, old_key, new_key = _RENAMES[item["type"]]
                item["type"] = new_type
                if old_key and old_key in item:
                    item[new_key] = item.pop(old_key)
    return messages


def check_score_is_valid(score: Any, low: float = 1, high: float = 5) -> bool:
    """azure's check: the score converts to a number in ``[low, high]``."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        return False
    return low <= value <= high


# -- the text azure's prompts show ------------------------------------------------------------


def _texts(content: Any) -> list[Any]:
    return [item["text"] for item in content if "text" in item]


def _system_text(content: Any) -> Any:
    return "\n".join(_texts(content)) if isinstance(content, list) else content


def _format_value(v: Any) -> Any:
    if v is None:
        return "None"
    if isinstance(v, str):
        return f'"{v}"'
    return v


def _stringify_tool_result(result: Any) -> str:
    if result is None:
        return ""
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(result)


def _agent_lines(messages: list[dict[str, Any]], include_tool_messages: bool = False) -> list[Any]:
    lines: list[Any] = []
    results = {}
    if include_tool_messages:
        for msg in messages:
            if msg.get("role") == "tool" and "tool_call_id" in msg:
                for content in msg.get("content", []):
                    if content.get("type") == "tool_result":
                        results[msg["tool_call_id"]] = f"[TOOL_RESULT] {_stringify_tool_result(content.get('tool_result'))}"
    for msg in messages:
        if msg.get("role") == "assistant" and "content" in msg:
            lines.extend(_texts(msg["content"]))
            if not include_tool_messages:
                continue
            for content in msg.get("content", []):
                if content.get("type") != "tool_call":
                    continue
                if "tool_call" in content and "function" in content.get("tool_call", {}):
                    tc = content.get("tool_call", {})
                    name, args, call_id = tc.get("function", {}).get("name", ""), tc.get("function", {}).get("arguments", {}), tc.get("id")
                else:
                    name, args, call_id = content.get("name", ""), content.get("arguments", {}), content.get("tool_call_id")
                lines.append(f"[TOOL_CALL] {name}({', '.join(f'{k}={_format_value(v)}' for k, v in args.items())})")
                if call_id in results:
                    lines.append(results[call_id])
    return lines


def _history(query: Any, include_system_messages: bool, include_tool_messages: bool) -> dict[str, Any]:
    user_queries: list[Any] = []
    agent_responses: list[Any] = []
    cur_query: list[Any] = []
    cur_response: list[Any] = []
    system_message = None
    for msg in query:
        role = msg.get("role")
        if not role:
            continue
        if include_system_messages and role == "system":
            system_message = _system_text(msg.get("content", ""))
        elif role == "user" and "content" in msg:
            if cur_response:
                agent_responses.append([_agent_lines(cur_response, include_tool_messages)])
                cur_response = []
            text = _texts(msg["content"])
            if text:
                cur_query.append(text)
        elif role in ("assistant", "tool"):
            if cur_query:
                user_queries.append(cur_query)
                cur_query = []
            cur_response.append(msg)
    if cur_query:
        user_queries.append(cur_query)
    if cur_response:
        agent_responses.append([_agent_lines(cur_response, include_tool_messages)])
    if len(user_queries) != len(agent_responses) + 1:
        raise ValueError(MALFORMED_HISTORY)
    result: dict[str, Any] = {"user_queries": user_queries, "agent_responses": agent_responses}
    if include_system_messages and system_message:
        result["system_message"] = system_message
    return result


def _indent(lines: list[Any]) -> str:
    out = ""
    for msg in lines:
        for sub in msg if isinstance(msg, list) else [msg]:
            out += "  " + "\n  ".join(sub.split("\n")) + "\n"
    return out


def _pretty(history: dict[str, Any]) -> str:
    text = ""
    if history.get("system_message"):
        text += "SYSTEM_PROMPT:\n  " + history["system_message"] + "\n\n"
    for i, (user, agent) in enumerate(zip(history["user_queries"], history["agent_responses"] + [None])):
        text += f"User turn {i + 1}:\n" + _indent(user) + "\n"
        if agent:
            text += f"Agent turn {i + 1}:\n" + _indent(agent) + "\n"
    return text


def conversation_text(query: Any, *, include_system_messages: bool = False, include_tool_messages: bool = False) -> Any:
    """azure's ``reformat_conversation_history``: ``User turn 1: ...`` text, or *query* unchanged if it cannot be read."""
    try:
        return _pretty(_history(query, include_system_messages, include_tool_messages))
    except Exception:  # azure falls back to the raw input on any parsing failure  # noqa: BLE001
        return query


def response_text(response: Any, *, include_tool_messages: bool = False) -> Any:
    """azure's ``reformat_agent_response``: the agent's text (and ``[TOOL_CALL]`` lines), or *response* unchanged."""
    try:
        if response is None or response == []:
            return ""
        lines = _agent_lines(response, include_tool_messages)
        return "\n".join(lines) if lines else response
    except Exception:  # noqa: BLE001 - azure falls back to the raw input on any parsing failure
        return response
