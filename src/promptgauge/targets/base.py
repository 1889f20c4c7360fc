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

    @property
    def outputs(self) -> dict[str, Any]:
        return {"response": self.text, **self.extra}


class Target(Protocol):
    """Something that turns a rendered prompt (or a row's inputs) into a :class:`Completion`."""

    name: str
    #: True when calls must not overlap (an in-process model); the runner serialises them.
    serial: bool

    async def complete(self, messages: list[dict[str, str]] | None, parameters: dict[str, Any], inputs: dict[str, Any]) -> Completion:
        ...

    async def aclose(self) -> None:
        ...

    def describe(self) -> dict[str, Any]:
        """What the manifest records about this target (never a secret)."""
        ...
