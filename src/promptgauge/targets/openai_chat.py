"""Chat (and legacy text) completions through the openai SDK: OpenAI, Azure OpenAI, any compatible server.

The SDK's own retries are off (``max_retries=0``): the runner owns retries so
that backoff, ``Retry-After`` and error accounting are the same for every
target. Lower-layer errors become :class:`CallError` here, in one place.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import openai

from ..errors import CallError
from .base import Completion


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, ``retry-after`` (seconds or HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def to_call_error(exc: Exception) -> CallError:
    """Map an openai SDK exception to a :class:`CallError` with retry advice."""
    if isinstance(exc, openai.APITimeoutError):
        return CallError("timeout: the server did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return CallError(f"connection error: {exc}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = retry_after_seconds(exc.response.headers)
        retryable = status in (408, 409, 429) or status >= 500
        return CallError(f"HTTP {status}: {_short(exc.message)}", retryable=retryable, retry_after=retry_after,
                         throttled=status == 429)
    if isinstance(exc, openai.APIResponseValidationError):
        return CallError(f"invalid response from server: {_short(str(exc))}", retryable=True)
    if isinstance(exc, ValueError):  # JSONDecodeError on a malformed body
        return CallError(f"malformed response from server: {_short(str(exc))}", retryable=True)
    return CallError(f"{type(exc).__name__}: {_short(str(exc))}", retryable=False)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class OpenAIChatTarget:
    """``openai:MODEL``, ``azure:DEPLOYMENT`` or a named ``targets:`` entry of type openai/azure."""

    serial = False
    cacheable = True

    def __init__(self, name: str, client: openai.AsyncOpenAI, model: str, *, kind: str, endpoint: str | None,
                 rpm: int | None = None, tpm: int | None = None) -> None:
        self.name = name
        self.client = client  # owned by the TargetFactory, shared per endpoint
        self.model = model
        self.kind = kind
        self.endpoint = endpoint
        self.rpm = rpm
        self.tpm = tpm

    async def complete(self, messages, parameters, inputs) -> Completion:  # noqa: ANN001 - see Target
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
        return Completion(
            text=texts[0],
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            model=resp.model,
            finish_reason=resp.choices[0].finish_reason,
            choices=texts,
        )

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "endpoint": self.endpoint}
