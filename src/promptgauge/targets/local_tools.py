"""Tool calls on the embedded model: grammar-constrained function calling, in the chatml style.

The protocol is llama-cpp-python's ``chatml-function-calling`` chat handler's: the system message
lists the tools (``functions.<name>:`` and the JSON schema of its parameters) and asks the model to
begin its reply with ``message:`` or ``functions.<name>:``; a grammar makes it choose one of those,
and the arguments are generated under a grammar made from the tool's JSON schema
(``LlamaGrammar.from_json_schema``), so every call is well-formed JSON that fits the schema --
which tool, and which values, is still the model's choice.

It is implemented here, on the same ``Llama`` instance as plain chat, rather than by calling that
handler, because the handler (llama-cpp-python 0.3.x) cannot run a tool loop: its template drops
``role: tool`` messages (the model never sees a result), HTML-escapes every message (a JSON result
reaches the model as ``{&#34;status&#34;: ...}``), shows no tool descriptions, lists the tools only
when there is a system message, generates a ``message:`` reply under the wrong grammar (no text), keeps
the colon in a second call's name (no parallel calls), ignores the seed and makes random call ids.
Here: a tool result is shown as a user message ``Result of <name>:``; a tool's description goes
into its listed schema; a text answer (``message:``, or ``tool_choice: none``) is written from the
history without the tool listing and without the calls, only their results (a small model otherwise
repeats the listing's instructions or writes calls as text); ``tool_choice`` ``auto`` (default), ``none``, ``required`` and a named function are
honoured; the model makes one call per step unless ``parallel_tool_calls: true`` (then up to
:data:`MAX_PARALLEL`); call ids are made from the request, so equal requests give equal replies.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import CallError

#: Request parameters of tool calling: read here, never passed to plain chat.
TOOL_PARAMETERS = ("tools", "tool_choice", "parallel_tool_calls")
#: Calls per step at most with ``parallel_tool_calls: true``.
MAX_PARALLEL = 4
_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty")
# The instructions of llama-cpp-python's chatml-function-calling handler (MIT licence), unchanged.
_INSTRUCTIONS = (
    "\n\nYou can respond to users messages with either a single message or one or more function calls."
    "\n\nTo respond with a message begin the message with 'message:', use the following format:"
    "\n\nmessage:\n<message>"
    "\n\nTo respond with one or more function calls begin the message with 'functions.<function_name>:', "
    "use the following format:"
    '\n\nfunctions.<function_name>:\n{ "arg1": "value1", "arg2": "value2" }'
    '\nfunctions.<function_name>:\n{ "arg1": "value1", "arg2": "value2" }'
)
_grammars: dict[str, Any] = {}


def tool_chat(llm: Any, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """A chat completion with tools, in OpenAI's response shape, from the model *llm*."""
    tools = {t["function"]["name"]: t["function"] for t in params["tools"]}
    choice = params.get("tool_choice") or "auto"
    sampling = {k: params[k] for k in _SAMPLING if k in params}
    max_tokens = params.get("max_tokens") or 128
    stop = params.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    if params.get("seed") is not None:
        llm.set_seed(int(params["seed"]))
    prompt = render(messages, tools) + "<|im_start|>assistant\n"
    usage = {"prompt_tokens": len(llm.tokenize(prompt.encode(), special=True)), "completion_tokens": 0}

    def generate(text: str, grammar: str | None, limit: int, stops: list[str]) -> tuple[str, str | None]:
        out = llm.create_completion(prompt=text, grammar=_grammar(grammar) if grammar else None, max_tokens=limit,
                                    stop=["<|im_end|>", *stops], **sampling)
        usage["completion_tokens"] += (out.get("usage") or {}).get("completion_tokens") or 0
        return out["choices"][0]["text"], out["choices"][0].get("finish_reason")

    names = " | ".join(json.dumps(n) for n in tools)
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in tools:
            raise CallError(f"tool_choice names '{name}', which is not among the tools")
        first = f"functions.{name}:"
    elif choice == "none":
        first = "message:"
    elif choice in ("auto", "required"):
        rule = f'root ::= "functions." ({names}) ":"' + (' | "message:"' if choice == "auto" else "")
        first, _ = generate(prompt, rule, 32, [])
    else:
        raise CallError(f"tool_choice {choice!r} is not valid; use auto, none, required or a named function")
    calls: list[dict[str, Any]] = []
    content = None
    finish = "tool_calls"
    if first.startswith("message"):  # the answer is written from the history without the tool listing
        text, finish = generate(render(messages, {}) + "<|im_start|>assistant\n", None, max_tokens, stop)
        content = text.strip()
    else:
        name = first.removeprefix("functions.").removesuffix(":")
        while True:
            prompt += f"functions.{name}:\n"
            arguments, _ = generate(prompt, _schema_rule(tools[name]), max_tokens, [])
            calls.append({"name": name, "arguments": arguments.strip()})
            prompt += arguments.strip() + "\n"
            if params.get("parallel_tool_calls") is not True or len(calls) >= MAX_PARALLEL:
                break
            more, _ = generate(prompt, f'root ::= ("functions." ({names}) ":")?', 32, [])
            if not more.startswith("functions."):
                break
            name = more.removeprefix("functions.").removesuffix(":")
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, default=str)
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [{"id": _call_id(canonical, i), "type": "function", "function": c}
                                 for i, c in enumerate(calls)]
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": usage}


def render(messages: list[dict[str, Any]], tools: dict[str, dict[str, Any]]) -> str:
    """The chatml prompt: the tools (if any) listed in the (first) system message, tool calls and results in
    the history."""
    listing = "\n\nYou have access to the following functions:\n" + "".join(
        f"\nfunctions.{name}:\n{json.dumps(_described(f), ensure_ascii=False)}\n" for name, f in tools.items()
    ) + _INSTRUCTIONS if tools else ""
    if tools and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": ""}, *messages]
    names: dict[Any, str] = {}
    listed = False
    out = []
    for m in messages:
        role, content = m.get("role"), m.get("content") or ""
        if not isinstance(content, str):  # content parts: their texts
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
        if role == "system" and not listed:
            content, listed = (content + listing).lstrip("\n"), True
        elif role == "assistant":
            parts = [f"message:\n{content}" if tools else content] if content else []
            for call in m.get("tool_calls") or []:
                function = call.get("function") or {}
                names[call.get("id")] = function.get("name", "tool")
                if tools:  # without the listing, the results below say what was called
                    parts.append(f"functions.{function.get('name')}:\n{function.get('arguments')}")
            if not parts:
                continue
            content = "\n".join(parts)
        elif role == "tool":
            role, content = "user", f"Result of {names.get(m.get('tool_call_id'), 'tool')}:\n{content}"
        out.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
    return "".join(out)


def _described(function: dict[str, Any]) -> dict[str, Any]:
    """A tool's parameter schema with its description on top (how the model learns what the tool does)."""
    schema = dict(function.get("parameters") or {"type": "object", "properties": {}})
    if function.get("description"):
        schema = {"description": function["description"], **schema}
    return schema


def _schema_rule(function: dict[str, Any]) -> str:
    """The GBNF grammar of a tool's arguments: its JSON schema's (any JSON object if it has none usable)."""
    from llama_cpp import llama_grammar

    schema = function.get("parameters") or {"type": "object", "properties": {}}
    try:
        return llama_grammar.json_schema_to_gbnf(json.dumps(schema))
    except Exception:  # noqa: BLE001 - a schema the converter cannot read: any JSON
        return llama_grammar.JSON_GBNF


def _grammar(rule: str) -> Any:
    from llama_cpp import LlamaGrammar

    if rule not in _grammars:
        _grammars[rule] = LlamaGrammar.from_string(rule, verbose=False)
    return _grammars[rule]


def _call_id(canonical: str, index: int) -> str:
    """A tool call id made from the request: equal requests, equal ids."""
    return "call_" + hashlib.blake2b(f"{canonical}#{index}".encode(), digest_size=12).hexdigest()
