"""What every target returns, and the small interface the runner relies on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Completion:
    """One model (or flow) output. ``outputs`` feeds ``${target.<name>}`` column references."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Every choice's text (several when the request asked for ``n > 1``).
    choices: list[str] | None = None
    #: The tool calls the model asked for, in OpenAI's shape (``[{"id", "type": "function", "function":
    #: {"name", "arguments"}}]``, arguments as the model's text); None when it asked for none.
    tool_calls: list[dict[str, Any]] | None = None
    #: A streamed answer's time to its first token (ms, from the request) and output tokens per second
    #: after it (None when the answer was not streamed). Kept in the cache, like the call's latency.
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    #: Set by the runner, not stored in the cache: answered from cache/cassette, and what the call cost.
    cached: bool = field(default=False, compare=False)
    cost_usd: float | None = field(default=None, compare=False)

    @property
    def outputs(self) -> dict[str, Any]:
        return {"response": self.text, **self.extra}

    @property
    def message(self) -> dict[str, Any]:
        """The assistant message to append to the chat history (OpenAI's shape, tool calls included)."""
        if not self.tool_calls:
            return {"role": "assistant", "content": self.text}
        return {"role": "assistant", "content": self.text or None, "tool_calls": self.tool_calls}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as the cache and cassettes keep it (a completion without tool calls, or not streamed,
        has no such key)."""
        # Built field by field: dataclasses.asdict deep-copies every value, which cost a tool loop's
        # every call ~0.05 ms for nothing -- the dict is serialised at once (cache, cassette).
        data = {"text": self.text, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "model": self.model, "finish_reason": self.finish_reason, "extra": dict(self.extra),
                "choices": None if self.choices is None else list(self.choices)}
        if self.tool_calls is not None:
            data["tool_calls"] = [{**c, "function": dict(c["function"])} if isinstance(c.get("function"), dict)
                                  else dict(c) for c in self.tool_calls]
        for key in ("ttft_ms", "tokens_per_s"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        return cls(**data)


class Target(Protocol):
    """Something that turns a rendered prompt (or a row's inputs) into a :class:`Completion`."""

    name: str
    #: True when calls must not overlap (an in-process model); the runner serialises them.
    serial: bool
    #: True when equal requests may be answered from the cache (models yes; user code and apps no).
    cacheable: bool
    #: True when the target takes a ``seed`` parameter; the engine then gives each call its own
    #: (``engine.seeds``). Read with ``getattr(target, "seeded", False)``: a target may leave it out.
    seeded: bool

    async def complete(self, messages: list[dict[str, str]] | str | None, parameters: dict[str, Any],
                       inputs: dict[str, Any]) -> Completion:
        """*messages* is a chat, or a prompt string for a completion API, or None (flows get *inputs*)."""
        ...

    async def aclose(self) -> None:
        ...

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this target (never a secret)."""
        ...
