"""Chat (and legacy text) completions through the openai SDK: OpenAI, Azure OpenAI, any compatible server.

Tool calling passes through: ``tools``, ``tool_choice`` and ``parallel_tool_calls`` are
request parameters like any other, and the assistant's ``tool_calls`` come back on the
:class:`Completion` (the engine's tool loop, :mod:`promptgauge.engine.agent`, runs them).

The SDK's own retries are off (``max_retries=0``): the runner owns retries so
that backoff, ``Retry-After`` and error accounting are the same for every
target. Lower-layer errors become :class:`CallError` here, in one place.
"""

from __future__ import annotations

from typing import Any

import openai

from ..errors import CallError, call_error_for_status, retry_after_seconds
from .base import Completion


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


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OpenAIChatTarget:
    """``openai:MODEL``, ``azure:DEPLOYMENT`` or a named ``targets:`` entry of type openai/azure."""

    serial = False
    cacheable = True
    seeded = True  # the engine gives each call a ``seed`` parameter (best-effort determinism at the provider)

    def __init__(self, name: str, client: openai.AsyncOpenAI, model: str, *, kind: str, endpoint: str | None,
                 rpm: int | None = None, tpm: int | None = None) -> None:
        self.name = name
        self.client = client  # owned by the TargetFactory, shared per endpoint
        self.model = model
        self.kind = kind
        self.endpoint = endpoint
        self.rpm = rpm
        self.tpm = tpm

    async def complete(self, messages, parameters, inputs) -> Completion:
        """A chat completion; a prompt string (``api: completion``) goes to the legacy completions API."""
        try:
            if isinstance(messages, str):
                resp = await self.client.completions.create(model=self.model, prompt=messages, **parameters)
            else:
                resp = await self.client.chat.completions.create(model=self.model, messages=messages, **parameters)
        except (openai.OpenAIError, ValueError) as exc:
            raise to_call_error(exc) from exc
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
