"""Per-endpoint rate limits: RPM and TPM budgets, and adaptive concurrency (AIMD).

Every call to an endpoint first takes a slot from its :class:`Limiter`:

- concurrency starts at the run's ``concurrency`` and is halved on an HTTP 429
  (at most once per round of in-flight calls), then grows back by one call per
  ``limit`` successes -- additive increase, multiplicative decrease;
- a ``Retry-After`` pauses the whole endpoint, not just the call that got it;
- ``rpm`` / ``tpm`` are token buckets refilled continuously; a call reserves its
  estimated tokens and is charged its real usage when it returns.
"""

from __future__ import annotations

import asyncio
import time


class _Bucket:
    """A token bucket holding at most one minute's budget, refilled continuously."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until *amount* is available (0 when it is, now)."""
        self._refill()
        amount = min(amount, self.capacity)
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount


class Limiter:
    """The budget of one endpoint, shared by every call (targets and judges) that goes to it."""

    def __init__(self, max_concurrency: int, *, rpm: int | None = None, tpm: int | None = None) -> None:
        self.max = float(max_concurrency)
        self.limit = float(max_concurrency)
        self.in_flight = 0
        self.rpm = _Bucket(rpm) if rpm else None
        self.tpm = _Bucket(tpm) if tpm else None
        self.paused_until = 0.0
        self.throttles = 0
        self._cond = asyncio.Condition()
        self._round = 0  # calls that were in flight at the last decrease and have not returned yet

    async def acquire(self, tokens: int = 0) -> None:
        async with self._cond:
            while True:
                wait = self.paused_until - time.monotonic()
                if self.in_flight >= int(self.limit):
                    await self._cond.wait()
                    continue
                wait = max(wait, self.rpm.wait_for(1) if self.rpm else 0.0,
                           self.tpm.wait_for(tokens) if self.tpm else 0.0)
                if wait <= 0:
                    break
                try:
                    await asyncio.wait_for(self._cond.wait(), wait)
                except TimeoutError:
                    pass
            self.in_flight += 1
            if self.rpm:
                self.rpm.take(1)
            if self.tpm:
                self.tpm.take(tokens)

    async def release(self, *, ok: bool, throttled: bool = False, retry_after: float | None = None,
                      reserved: int = 0, used: int | None = None) -> None:
        async with self._cond:
            self.in_flight -= 1
            if self.tpm and used is not None:
                self.tpm.take(used - reserved)
            in_round = self._round > 0  # sent before the last decrease: already accounted for
            self._round = max(0, self._round - 1)
            if throttled:
                self.throttles += 1
                if not in_round:
                    self.limit = max(1.0, self.limit / 2)
                    self._round = self.in_flight
                if retry_after:
                    self.paused_until = max(self.paused_until, time.monotonic() + retry_after)
            elif ok:
                self.limit = min(self.max, self.limit + 1.0 / self.limit)
            self._cond.notify(max(1, int(self.limit) - self.in_flight))
