"""azure-ai-evaluation's agent evaluators on our judge: ``intent_resolution``, ``tool_call_accuracy``, ``task_adherence``.

Same inputs, prompts (``prompts/*.prompty``, copied from azure-ai-evaluation 1.18.10 with its
MIT notice), input handling (:mod:`.agent_text`, ported) and output keys as its
IntentResolutionEvaluator, ToolCallAccuracyEvaluator and TaskAdherenceEvaluator -- a test
runs both against the same scripted judge reply and compares the request and every key --
but the judge is called through the engine (:class:`~.models.EvaluatorModel`: cache, rate
limits, retries, cassettes) and its reply is read leniently: JSON as azure reads it, else
tags or a labelled number as the other judges do (:func:`~.judge.parse_reply`); a reply
without a usable score is the row's error, with the raw reply.

Inputs may be azure's (text, or its agent message format) or ours: a trajectory, OpenAI chat
messages, OpenAI function schemas, our tool calls -- converted by :func:`~.agent_format.azure_agent_inputs`.
A whole conversation may be given as both ``query`` and ``response`` (the default mapping,
``${target.messages}``): ``query`` keeps it up to the latest user message, ``response`` what
follows. Output keys (``intent_resolution`` shown; ``tool_call_accuracy`` adds
``gpt_tool_call_accuracy``): ``intent_resolution`` (1-5), ``_score``, ``_passed``, ``_result``
(pass at score >= threshold, default 3), ``_reason``, ``_status``, ``_threshold``,
``_properties`` (the judge's own ``properties``, token counts, finish reason, model,
``sample_input`` and ``sample_output``). A judge reply with ``"status": "skipped"``, a response
that stops at an unanswered ``function_call``, and for ``tool_call_accuracy`` no tool calls or
no definition for a called tool, give azure's not-applicable result (score ``None``,
``_result`` ``not_applicable``). Kept from azure for parity: ``task_adherence`` scores 0 or 1,
passes at 1 whatever the threshold, and reports ``task_adherence_threshold`` 3 unless a
threshold is set. Not kept: azure's canned definitions of its built-in tools (bing_grounding,
file_search, ...) -- call them with a definition, or the call is not applicable -- and
``tool_call_accuracy``'s ``_higher_is_better = False`` (azure's slip: its pass is score >= threshold).
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any, ClassVar

from .agent_format import azure_agent_inputs
from .agent_text import (
    AgentInputError,
    check_messages,
    check_score_is_valid,
    check_tool_calls,
    check_tool_definitions,
    conversation_text,
    is_intermediate_response,
    preprocess,
    response_text,
)
from .integrity import instruct, scan, seal
from .judge import JudgeReplyError, PromptyJudge, builtin_prompt, json_object, parse_reply

__all__ = ["AGENT_JUDGES", "IntentResolutionJudge", "TaskAdherenceJudge", "ToolCallAccuracyJudge"]

INTERMEDIATE = "Intermediate response. Please provide the agent's final response for evaluation."


def _reply_object(text: str | None, low: float, high: float) -> dict[str, Any]:
    """The judge's JSON object (bare, fenced or in prose); else score/reason/status read as the other judges do."""
    obj = json_object((text or "").strip())
    if obj is not None:
        return obj
    score, reason, status = parse_reply(text, low, high)
    return {"score": score, "reason": reason, "status": status}


def _jinja(value: Any) -> Any:
    """A prompt variable as azure's jinja template shows it: text as it is, anything else as ``str()``."""
    return value if isinstance(value, str) else str(value)


def _raise(error: AgentInputError | None) -> None:
    if error is not None:
        raise error


class _AgentJudge(PromptyJudge):
    """Shared by the agent judges: ask with azure's prompt, shape azure's result dict."""

    prompt_name = ""
    higher_is_better = True
    inputs: ClassVar[dict[str, str]] = {"query": "${target.messages}", "response": "${target.messages}"}

    async def _ask(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
        """The judge's reply object, azure's ``_properties`` for it, and the raw reply text.

        The inputs are sealed as data (:mod:`.integrity`); instruction-like text aimed at the grader
        in them comes back as ``obj["judge_injection"]``, which the result keeps (:meth:`_flag`)."""
        prompt = builtin_prompt(self.prompt_name)
        values = {k: _jinja(v) for k, v in inputs.items()}
        sealed = seal(values)
        messages = instruct(prompt.render(sealed.values), sealed)
        injection = scan(values)
        completion = await self.judge.complete(messages, {**prompt.parameters, **self.parameters})
        obj = _reply_object(completion.text, self.low, self.high)
        obj.pop("judge_injection", None)
        if injection:
            obj["judge_injection"] = injection
        properties = obj.get("properties")
        properties = copy.deepcopy(properties) if isinstance(properties, dict) else {}
        text = completion.text
        properties.update({
            "prompt_tokens": completion.prompt_tokens or 0,
            "completion_tokens": completion.completion_tokens or 0,
            "total_tokens": (completion.prompt_tokens or 0) + (completion.completion_tokens or 0),
            "finish_reason": completion.finish_reason or "",
            "model": completion.model or "",
            "sample_input": json.dumps([{"role": "user", "content": json.dumps(inputs, default=str)}]) if inputs else "",
            "sample_output": json.dumps([{"role": "assistant", "content": text}] if text else []),
        })
        return obj, properties, text

    @staticmethod
    def _flag(result: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
        """*result* with the ``judge_injection`` signals of the judged inputs, if any."""
        return {**result, "judge_injection": obj["judge_injection"]} if "judge_injection" in obj else result

    def _not_applicable(self, reason: str) -> dict[str, Any]:
        k = self.key
        return {k: None, f"{k}_score": None, f"{k}_passed": None, f"{k}_result": "not_applicable",
                f"{k}_reason": f"Not applicable: {reason}", f"{k}_status": "skipped", f"{k}_threshold": self.threshold,
                f"{k}_properties": None}

    def _scored(self, score: float, passed: bool, obj: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
        k = self.key
        return {k: score, f"{k}_score": score, f"{k}_passed": passed, f"{k}_result": "pass" if passed else "fail",
                f"{k}_reason": obj.get("reason", ""), f"{k}_status": "completed", f"{k}_threshold": self.threshold,
                f"{k}_properties": properties}

    @staticmethod
    def _conversation(query: Any, response: Any, tool_definitions: Any) -> tuple[Any, Any, Any]:
        """Query, response and tool definitions in azure's format, checked as azure checks them."""
        given = azure_agent_inputs(query=query, response=response, tool_definitions=tool_definitions)
        query, response, tools = given.get("query"), given.get("response"), given.get("tool_definitions")
        _raise(check_messages(query, "Query") or check_messages(response, "Response")
               or check_tool_definitions(tools, required=False))
        return query, response, tools


class IntentResolutionJudge(_AgentJudge):
    """Whether the agent's reply resolves the user's intent, 1-5 (azure's IntentResolutionEvaluator)."""

    key = prompt_name = "intent_resolution"

    async def __call__(self, *, query: Any, response: Any, tool_definitions: Any = None) -> dict[str, Any]:
        query, response, tools = self._conversation(query, response, tool_definitions)
        if is_intermediate_response(response):
            return self._not_applicable(INTERMEDIATE)
        inputs = {"query": conversation_text(preprocess(query)), "response": response_text(preprocess(response)),
                  "tool_definitions": tools}
        obj, properties, raw = await self._ask(inputs)
        if obj.get("status", "completed") == "skipped":
            return self._flag(self._not_applicable(obj.get("reason", "")), obj)
        score = obj.get("score", math.nan)
        if not check_score_is_valid(score, self.low, self.high):
            raise JudgeReplyError(f"Invalid score value: {score}. Expected a number in range [1, 5].", raw)
        score = float(score)
        return self._flag(self._scored(score, score >= self.threshold, obj, properties), obj)


class TaskAdherenceJudge(_AgentJudge):
    """Whether the agent's actions achieve the user's goal within the rules, 0 (material failure) or 1
    (azure's TaskAdherenceEvaluator: passes at 1, reports threshold 3 by default)."""

    key = prompt_name = "task_adherence"
    low, high = 0, 1

    async def __call__(self, *, query: Any, response: Any, tool_definitions: Any = None) -> dict[str, Any]:
        query, response, _ = self._conversation(query, response, tool_definitions)
        if is_intermediate_response(response):
            return self._not_applicable(INTERMEDIATE)
        query, response = preprocess(query), preprocess(response)
        history = conversation_text(query, include_system_messages=True)
        system_message, user_query = "", ""
        if isinstance(history, list):  # azure's fallback: a conversation it could not read
            for msg in history:
                if isinstance(msg, dict) and msg.get("role") == "system":
                    system_message = msg.get("content", "")
                elif isinstance(msg, dict) and msg.get("role") == "user":
                    user_query = msg.get("content", "")
        elif isinstance(history, str):
            user_query = history
        reply = response_text(response, include_tool_messages=True)
        assistant, tools = "", ""
        if isinstance(reply, list):
            assistant_parts: list[str] = []
            tool_parts: list[str] = []
            for msg in (m for m in reply if isinstance(m, dict)):
                if msg.get("role") == "assistant":
                    content = msg.get("content", "")
                    if not isinstance(content, list):
                        assistant_parts.append(str(content))
                        continue
                    for item in (i for i in content if isinstance(i, dict)):
                        if item.get("type", None) in ("text", "input_text", "output_text"):
                            assistant_parts.append(item.get("text", ""))
                        elif item.get("type") == "tool_call":
                            tool_parts.append(str(item.get("tool_call", "")))
                elif msg.get("role") == "tool":
                    tool_parts.append(str(msg))
            assistant, tools = "\n".join(assistant_parts), "\n".join(tool_parts)
        elif isinstance(reply, str):
            assistant = reply
        inputs = {"system_message": system_message, "query": user_query, "response": assistant, "tool_calls": tools}
        obj, properties, raw = await self._ask(inputs)
        if obj.get("status", "completed") == "skipped":
            return self._flag(self._not_applicable(obj.get("reason", "")), obj)
        try:
            score = float(obj.get("score", 0.0))
        except (TypeError, ValueError):
            raise JudgeReplyError(f"Invalid score value: {obj.get('score')!r}. Expected 0 or 1.", raw) from None
        return self._flag(self._scored(score, score >= 1.0, obj, properties), obj)


_NO_TOOL_CALLS = "No tool calls found in response or provided tool_calls."
_NO_DEFINITIONS = "Tool definitions input is required but not provided"
_DEFINITIONS_MISSING = "Tool definitions for all tool calls must be provided."


def _calls_in_response(response: Any) -> list[dict[str, Any]]:
    """azure's ``_parse_tools_from_response``: the response's ``tool_call`` items, each with its ``tool_result``."""
    calls, results = [], {}
    for message in response if isinstance(response, list) else []:
        content = message.get("content")
        if message.get("role") == "assistant" and isinstance(content, list):
            calls += [copy.deepcopy(c) for c in content if isinstance(c, dict) and c.get("type") == "tool_call"]
        elif (message.get("role") == "tool" and message.get("tool_call_id") and isinstance(content, list) and content
              and isinstance(content[0], dict) and content[0].get("type") == "tool_result"):
            results[message["tool_call_id"]] = content[0]
    for call in calls:
        if call.get("tool_call_id") in results:
            call["tool_result"] = results[call["tool_call_id"]]["tool_result"]
    return calls


def _definitions_needed(calls: list[Any], definitions: list[Any]) -> list[Any] | None:
    """The definitions to show the judge, or None when a call has no definition (azure's check)."""
    known = []
    for tool in definitions:
        functions = tool.get("functions") if isinstance(tool, dict) and tool.get("type") == "openapi" else None
        known += functions if functions else [tool]
    for call in calls:
        if not (isinstance(call, dict) and call.get("type") == "tool_call" and call.get("name")):
            return None
        if not any(isinstance(t, dict) and t.get("name") == call["name"] for t in known):
            return None
    return list(definitions)


class ToolCallAccuracyJudge(_AgentJudge):
    """Relevance, parameter correctness and efficiency of the agent's tool calls, 1-5 (azure's ToolCallAccuracyEvaluator).

    The calls judged are those in ``response`` (with their results), else ``tool_calls``.
    """

    key = prompt_name = "tool_call_accuracy"
    inputs: ClassVar[dict[str, str]] = {"query": "${target.messages}", "response": "${target.messages}",
                                        "tool_definitions": "${target.tool_definitions}"}

    async def __call__(self, *, query: Any, tool_definitions: Any, tool_calls: Any = None,
                       response: Any = None) -> dict[str, Any]:
        given = azure_agent_inputs(query=query, response=response, tool_definitions=tool_definitions,
                                   tool_calls=tool_calls)
        query, response = given.get("query"), given.get("response")
        definitions, calls = given.get("tool_definitions"), given.get("tool_calls")
        _raise(check_messages(query, "Query") or check_tool_definitions(definitions, required=True))
        response_error, calls_error = check_messages(response, "Response"), check_tool_calls(calls)
        if response_error and calls_error:
            raise calls_error if response_error.missing else response_error
        if response:
            calls = _calls_in_response(response) or calls
        if not calls:
            if not (response and isinstance(response, str)):
                return self._not_applicable(_NO_TOOL_CALLS)
            calls = response
        if isinstance(calls, str) or isinstance(definitions, str):
            needed = definitions
        else:
            needed = _definitions_needed(calls, definitions)
            if needed is None:
                return self._not_applicable(_DEFINITIONS_MISSING if definitions else _NO_DEFINITIONS)
        if not needed:
            return self._not_applicable(_NO_DEFINITIONS)
        inputs = {"query": preprocess(query), "tool_calls": calls, "tool_definitions": needed}
        obj, properties, raw = await self._ask(inputs)
        if obj.get("status", "completed") == "skipped":
            return self._flag(self._not_applicable(obj.get("reason", "")), obj)
        score = obj.get("score")
        if not score or not check_score_is_valid(score, self.low, self.high):
            raise JudgeReplyError(f"Invalid score value: {score}. Expected a number in range [1, 5].", raw)
        score = float(score)
        result = self._scored(score, score >= self.threshold, obj, properties)
        k = self.key
        order = [k, f"gpt_{k}", f"{k}_score", f"{k}_result", f"{k}_passed"]
        return self._flag({key: result.get(key, score) for key in order} | result, obj)


#: Agent judge names (as a suite's ``type:``) -> classes.
AGENT_JUDGES: dict[str, type] = {
    "intent_resolution": IntentResolutionJudge,
    "tool_call_accuracy": ToolCallAccuracyJudge,
    "task_adherence": TaskAdherenceJudge,
}
