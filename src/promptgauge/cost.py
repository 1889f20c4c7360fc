"""Token prices and cost: what a call cost, what a run will cost, and the budget that stops it.

Prices are USD per million tokens, ``{input: ..., output: ...}``, looked up by
model name: exact match first, then the longest known prefix (so
``gpt-4o-mini-2024-07-18`` is priced as ``gpt-4o-mini``). A configured table --
the suite's ``gate.prices`` (used by the run's budget and the gate's ``cost.*``
rules), the monitor's ``prices:`` -- adds to and overrides :data:`DEFAULT_PRICES`
(:meth:`PriceTable.from_config`). A model with no price has an unknown cost
(``None``), never a guessed one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: List prices (USD / 1M tokens) of common models when this table was written; override in the suite.
DEFAULT_PRICES: dict[str, dict[str, float]] = {
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4.1": {"input": 2.00, "output": 8.00},
    "gpt-4.1-mini": {"input": 0.40, "output": 1.60},
    "gpt-4.1-nano": {"input": 0.10, "output": 0.40},
    "gpt-35-turbo": {"input": 0.50, "output": 1.50},
    "gpt-3.5-turbo": {"input": 0.50, "output": 1.50},
    "smollm2": {"input": 0.0, "output": 0.0},
}

#: Characters per token for estimates before a call (no tokenizer is loaded for this).
CHARS_PER_TOKEN = 4
#: Completion tokens assumed per call when a variant sets no ``max_tokens``.
ASSUMED_COMPLETION_TOKENS = 256


@dataclass(frozen=True)
class Price:
    """USD per million input (prompt) and output (completion) tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int | None, completion_tokens: int | None) -> float:
        return ((prompt_tokens or 0) * self.input + (completion_tokens or 0) * self.output) / 1e6

    @classmethod
    def of(cls, value: Any) -> Price:
        """A price from a :class:`Price`, a ``{input, output}`` mapping or an object with those attributes."""
        if isinstance(value, Price):
            return value
        if isinstance(value, Mapping):
            return cls(**dict(value))
        return cls(float(value.input), float(value.output))


class PriceTable:
    """:data:`DEFAULT_PRICES` with *overrides* (name -> price) on top; see :meth:`get` for the lookup."""

    def __init__(self, overrides: Mapping[str, Any] | None = None) -> None:
        self.prices = {name: Price(**p) for name, p in DEFAULT_PRICES.items()}
        self.configured = {name: Price.of(p) for name, p in (overrides or {}).items()}
        self.prices.update(self.configured)

    @classmethod
    def from_config(cls, prices: Mapping[str, Any] | None) -> PriceTable:
        """The table of a file's ``prices:`` section (``gate.prices`` of a suite, ``prices:`` of a monitor)."""
        return cls(prices)

    def get(self, model: str | None) -> Price | None:
        if not model:
            return None
        if model in self.prices:
            return self.prices[model]
        prefixes = [n for n in self.prices if model.startswith(n)]
        return self.prices[max(prefixes, key=len)] if prefixes else None

    def cost(self, model: str | None, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        price = self.get(model)
        return None if price is None else price.cost(prompt_tokens, completion_tokens)

    def for_variant(self, variant: str, model: str | None) -> Price | None:
        """A variant's price: its own entry in the configured prices (exact name), else its model's."""
        return self.configured.get(variant) or self.get(model)


def estimate_tokens(messages: Any) -> int:
    """Rough prompt size of a chat (or prompt string) in tokens."""
    if messages is None:
        return 0
    if isinstance(messages, str):
        chars = len(messages)
    else:
        chars = sum(len(str(m.get("content") or "")) + 4 for m in messages)
    return max(1, chars // CHARS_PER_TOKEN)


def completion_budget(params: dict[str, Any]) -> int:
    """Completion tokens to expect: ``max_tokens`` (times ``n``) when set, else an assumption."""
    limit = params.get("max_tokens") or params.get("max_completion_tokens") or ASSUMED_COMPLETION_TOKENS
    return int(limit) * int(params.get("n") or 1)
