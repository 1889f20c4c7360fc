"""Which records get scored: reproducible, stratified, capped per window.

A record is in the sample when a hash of (seed, record id) falls under its
stratum's rate -- the same record gets the same answer in every pass, process
and order -- and its window and stratum have not reached ``cap_per_window``
yet (records count against the cap in log order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from .config import SamplingConfig


def window_start(ts: float, size: int) -> int:
    """Start (epoch seconds, UTC-aligned) of the window of *size* seconds holding *ts*."""
    return int(ts // size) * size


def unit_hash(seed: int, record_id: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, record id)."""
    digest = hashlib.sha256(f"{seed}\x00{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Sampler:
    """Decides, record by record, whether to score it; ``count`` gives the sampled counts already stored."""

    def __init__(self, cfg: SamplingConfig, count: Callable[[int, str | None], int]) -> None:
        self.cfg = cfg
        self._count = count
        self._taken: dict[tuple[int, str | None], int] = {}

    def rate(self, stratum: str | None) -> float:
        return self.cfg.rates.get(stratum, self.cfg.rate) if stratum is not None else self.cfg.rate

    def take(self, record_id: str, window: int, stratum: str | None) -> bool:
        if unit_hash(self.cfg.seed, record_id) >= self.rate(stratum):
            return False
        if self.cfg.cap_per_window is None:
            return True
        key = (window, stratum)
        if key not in self._taken:
            self._taken[key] = self._count(window, stratum)
        if self._taken[key] >= self.cfg.cap_per_window:
            return False
        self._taken[key] += 1
        return True
