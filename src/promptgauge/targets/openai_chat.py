"""Chat (and legacy text) completions through the openai SDK: OpenAI, Azure OpenAI, any compatible server.

Tool calling passes through: ``tools``, ``tool_choice`` and ``parallel_tool_calls`` are
request parameters like any other, and the assistant's ``tool_calls`` come back on the
:class:`Completion` (the engine's tool loop, :mod:`promptgauge.engine.agent`, runs them).

``stream: true`` (a prompty's ``model.parameters``, or a variant's ``parameters``) streams the
answer: the chunks are read as they come and assembled -- the text of every choice, and tool
calls sent in pieces -- and the completion records the time to its first token (``ttft_ms``,
from the request) and its output tokens per second after it (``tokens_per_s``: the tokens after the first over the time
from the first to the last). The request asks
for usage in the stream (``stream_options: {include_usage: true}``) unless the parameters set
``stream_options``; without usage, each content chunk counts as a token.

The SDK's own retries are off (``max_retries=0``): the runner owns retries so
that backoff, ``Retry-After`` and error accounting are the same for every
target. Lower-layer errors become :class:`CallError` here, in one place.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Collection
from typing import Any

import httpx
import openai

from ..errors import CallError, TargetError, call_error_for_status, retry_after_seconds
from ..public import scrub
from .base import Completion


@functools.cache
def sdk_parameters(api: str) -> frozenset[str]:
    """The parameters the openai SDK's ``create`` takes for *api* (``chat`` or ``completion``), besides the
    model and the messages / prompt that a target fills in itself."""
    from openai.resources.chat.completions import AsyncCompletions as Chat
    from openai.resources.completions import AsyncCompletions as Legacy

    sig = inspect.signature((Chat if api == "chat" else Legacy).create)
    return frozenset(n for n in sig.parameters if n not in ("self", "model", "messages", "prompt"))


def check_sdk_parameters(parameters: dict[str, Any], api: str) -> None:
    """A parameter the SDK does not take would raise ``TypeError`` on every call: a :class:`TargetError`
    naming it instead, before any call."""
    valid = sdk_parameters(api)
    for name in parameters:
        if name not in valid:
            raise TargetError(f"unknown model parameter '{name}': the openai SDK's {api} API does not take it",
                              field=name, hint="valid: " + ", ".join(sorted(valid)))


def to_call_error(exc: Exception) -> CallError:
    """Map an openai SDK exception to a :class:`CallError` with retry advice."""
    if isinstance(exc, openai.APITimeoutError):
        return CallError("timeout: the server did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return CallError(f"connection error: {exc}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return call_error_for_status(exc.status_code, _short(exc.message), retry_after_seconds(exc.response.headers))
    if isinstance(exc, openai.APIResponseValidationError):
        return CallError(f"invalid response from server: {_short(str(exc))}", retryable=True)
    if isinstance(exc, ValueError):  # JSONDecodeError on a malformed body
        return CallError(f"malformed response from server: {_short(str(exc))}", retryable=True)
    return CallError(f"{type(exc).__name__}: {_short(str(exc))}", retryable=False)


def _tool_call(call: Any) -> dict[str, Any]:
    """An SDK tool call as the plain dict the history, the cache and the trajectory keep."""
    function = getattr(call, "function", None)
    return {"id": call.id, "type": getattr(call, "type", None) or "function",
            "function": {"name": getattr(function, "name", None) or "",
                         "arguments": getattr(function, "arguments", None) or ""}}


async def _assemble(stream: Any, start: float, *, legacy: bool) -> Completion:
    """Read a streamed answer to its end: every choice's text, tool calls (their pieces joined by
    index), finish reasons, usage; and the time to the first token and the output rate after it."""
    texts: dict[int, list[str]] = {}
    calls: dict[int, dict[str, Any]] = {}
    finish: dict[int, str | None] = {}
    usage = model = None
    first = last = None
    pieces = 0
    try:
        async for chunk in stream:
            model = getattr(chunk, "model", None) or model
            usage = getattr(chunk, "usage", None) or usage
            for choice in getattr(chunk, "choices", None) or ():
                if legacy:
                    text, deltas = getattr(choice, "text", None), None
                else:
                    delta = getattr(choice, "delta", None)
                    text, deltas = getattr(delta, "content", None), getattr(delta, "tool_calls", None)
                if text or deltas:
                    last = time.perf_counter()
                    first = first or last
                    pieces += 1
                if text:
                    texts.setdefault(choice.index, []).append(text)
                else:
                    texts.setdefault(choice.index, [])
                for d in deltas or () if choice.index == 0 else ():
                    call = calls.setdefault(d.index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                    call["id"] = d.id or call["id"]
                    function = getattr(d, "function", None)
                    call["function"]["name"] += getattr(function, "name", None) or ""
                    call["function"]["arguments"] += getattr(function, "arguments", None) or ""
                if getattr(choice, "finish_reason", None):
                    finish[choice.index] = choice.finish_reason
    except (openai.OpenAIError, httpx.HTTPError, ValueError) as exc:
        raise CallError(f"the stream broke off after {pieces} chunk{'s' if pieces != 1 else ''}: "
                        f"{to_call_error(exc)}", retryable=True) from None
    finally:
        await stream.close()  # also when reading it failed: the connection goes back
    if not texts:
        raise CallError("the stream ended without an answer (no choices)", retryable=True)
    choices = ["".join(texts[i]) for i in sorted(texts)]
    completion_tokens = usage.completion_tokens if usage else None
    generated = completion_tokens if completion_tokens is not None else pieces
    rate = None
    if first is not None and last is not None and last > first and generated > 1:
        rate = (generated - 1) / (last - first)  # the tokens after the first, over the time they took
    return Completion(
        text=choices[0], prompt_tokens=usage.prompt_tokens if usage else None, completion_tokens=completion_tokens,
        model=model, finish_reason=finish.get(0), choices=choices,
        tool_calls=[calls[i] for i in sorted(calls)] or None,
        ttft_ms=(first - start) * 1000.0 if first is not None else None, tokens_per_s=rate,
    )


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OpenAIChatTarget:
    """``openai:MODEL``, ``azure:DEPLOYMENT`` or a named ``targets:`` entry of type openai/azure."""

    serial = False
    cacheable = True
    seeded = True  # the engine gives each call a ``seed`` parameter (best-effort determinism at the provider)

    def __init__(self, name: str, client: openai.AsyncOpenAI, model: str, *, kind: str, endpoint: str | None,
                 rpm: int | None = None, tpm: int | None = None, secrets: Collection[str] = ()) -> None:
        self.name = name
        self.client = client  # owned by the TargetFactory, shared per endpoint
        self.model = model
        self.kind = kind
        self.endpoint = endpoint  # as it may be written (promptgauge.public.public_url): no secret
        self.secrets = secrets  # expanded values and keys, scrubbed from error texts
        self.rpm = rpm
        self.tpm = tpm

    def check_parameters(self, parameters: dict[str, Any], api: str = "chat") -> None:
        """Raise :class:`TargetError` (``field`` = the parameter) for a parameter the SDK does not take."""
        check_sdk_parameters(parameters, api)

    async def complete(self, messages, parameters, inputs) -> Completion:
        """A chat completion; a prompt string (``api: completion``) goes to the legacy completions API."""
        stream = parameters.get("stream") is True
        if stream and "stream_options" not in parameters:
            parameters = {**parameters, "stream_options": {"include_usage": True}}
        start = time.perf_counter()
        try:
            if isinstance(messages, str):
                resp = await self.client.completions.create(model=self.model, prompt=messages, **parameters)
            else:
                resp = await self.client.chat.completions.create(model=self.model, messages=messages, **parameters)
            if stream:
                return await _assemble(resp, start, legacy=isinstance(messages, str))
        except CallError as exc:  # a stream that broke off
            exc.args = (scrub(str(exc), self.secrets),)
            raise
        except (openai.OpenAIError, ValueError, httpx.HTTPError) as exc:
            err = to_call_error(exc)
            err.args = (scrub(str(err), self.secrets),)
            raise err from None
        except TypeError as exc:  # a parameter the SDK does not take (checked before the run; a last guard)
            raise CallError(f"the openai SDK refused the request: {_short(str(exc))}") from None
        if not getattr(resp, "choices", None):
            raise CallError("response has no choices", retryable=True)
        texts = [(c.text if isinstance(messages, str) else c.message.content) or "" for c in resp.choices]
        usage = resp.usage
        calls = None if isinstance(messages, str) else getattr(resp.choices[0].message, "tool_calls", None)
        return Completion(
            text=texts[0],
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            model=resp.model,
            finish_reason=resp.choices[0].finish_reason,
            choices=texts,
            tool_calls=[_tool_call(c) for c in calls] if calls else None,
        )

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "endpoint": self.endpoint}
