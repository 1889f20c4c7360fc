"""Seeds: every model call's sampling seed, and the order of a row's calls, derived from one run seed.

A run has one seed (``runner.seed``, ``promptgauge run --seed N``). Each call
that accepts a seed gets :func:`call_seed` of that base and what the call is
-- row id, variant, repeat, conversation turn, agent step, role -- so samples
are reproducible run to run and independent across rows, variants and repeats
(one shared seed would make a variant's sampling noise one draw shared by all
its rows). :func:`call_order` is the seeded per-row order of a row's calls, so
that no variant is systematically called first. Pure functions, no I/O.
"""

from __future__ import annotations

import contextvars
import hashlib
import random
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: ``runner.seeds``: a seed per call (the default), or today's one seed for every call.
PER_CALL, FIXED = "per_call", "fixed"

#: The row whose evaluators are running (its id), set by the engine so a judge's calls get seeds of that row.
current_row: contextvars.ContextVar[str | None] = contextvars.ContextVar("promptgauge_row", default=None)

_MASK = 0x7FFF_FFFF


def call_seed(base: int, row_id: str, variant: str, repeat: int = 0, turn: int = 0, step: int = 0,
              role: str = "target") -> int:
    """The seed of one call: a stable hash of its parts, in [0, 2**31) -- an int every provider takes.

    *role* is ``"target"`` for a variant's call, ``"user"`` for a simulated user, ``"judge:<evaluator>"``
    for an LLM judge; *turn* and *step* count a conversation's turns and an agent's tool-loop steps.
    """
    parts = "\x1f".join(str(p) for p in (int(base), row_id, variant, int(repeat), int(turn), int(step), role))
    return int.from_bytes(hashlib.sha256(parts.encode()).digest()[:4], "big") & _MASK


def base_seed(run_seed: int, parameters: dict[str, Any]) -> int:
    """A variant's (or a judge's) base: its ``parameters.seed`` if it sets one, else the run seed."""
    seed = parameters.get("seed")
    return int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else int(run_seed)


def target_parameters(parameters: dict[str, Any], *, mode: str, run_seed: int, row_id: str, variant: str,
                      repeat: int, turn: int = 0, step: int = 0) -> dict[str, Any]:
    """A variant's call parameters with the call's seed.

    ``per_call``: ``seed = call_seed(base, row, variant, repeat)``. ``fixed`` (the old behaviour): the
    parameters' own seed for every row, plus the repeat index for repeats.
    """
    if mode == FIXED:
        if repeat and "seed" in parameters:
            return {**parameters, "seed": parameters["seed"] + repeat}
        return parameters
    base = base_seed(run_seed, parameters)
    return {**parameters, "seed": call_seed(base, row_id, variant, repeat, turn=turn, step=step)}


def call_order(run_seed: int, row_id: str, items: Sequence[T]) -> list[T]:
    """*items* (a row's variant x repeat calls) in a seeded order of their own for this row."""
    out = list(items)
    random.Random(call_seed(run_seed, row_id, "", role="order")).shuffle(out)
    return out


def jitter_rng(run_seed: int) -> random.Random:
    """The random generator of retry backoff jitter, derived from the run seed."""
    return random.Random(call_seed(run_seed, "", "", role="backoff"))
