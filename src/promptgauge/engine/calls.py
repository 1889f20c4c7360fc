"""The call path: every model call -- a variant's target, an LLM judge, an embeddings endpoint.

:meth:`Caller.call` is the single way a model is called: cassette replay, the
response cache, the cost budget, the endpoint's rate limits (RPM/TPM, adaptive
concurrency), a timeout and retries with exponential backoff and jitter that
honour ``Retry-After``; in-process models are serialised. The cache and the
cassette keep completions as dicts, with the call's ``latency_ms``: a hit keeps the
original call's latency and tokens. An LLM judge's calls get their seeds here
(:meth:`Caller.judge_call`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from .. import cache as cache_mod
from ..cache import Cache
from ..cost import PriceTable, completion_budget, estimate_tokens
from ..errors import CallError
from ..evaluators.models import ModelPool, evaluator_name, fixed_seed, repeat_index
from ..ratelimit import Limiter
from ..suite import RunnerConfig
from ..targets import Completion, Target
from . import seeds
from .cassette import Cassette

#: Target kinds whose calls are model calls, priced by model.
MODEL_KINDS = ("openai", "azure", "local")

#: The error of a call the cost budget stopped before it was made.
BUDGET_STOP = "stopped: cost budget reached"

#: What a call returns: ``(completion, error, latency_ms, attempts)`` -- a completion or an error.
CallResult = tuple[Completion | None, str | None, float | None, int]


def priced_model(info: dict[str, Any]) -> str | None:
    """The model a target's calls are priced by, from its ``describe()`` (None for flows, apps, callables)."""
    return info.get("model") if info.get("kind") in MODEL_KINDS else None


class Caller:
    """The single path of every model call (:meth:`call`): a run's variants, LLM judges and embeddings
    endpoints alike. Given *models*, it binds the evaluators' models to that path (:meth:`judge_call`).

    *seed* is the run seed (default ``runner.seed``): judges' seeds and the backoff jitter derive from it.
    """

    def __init__(self, runner: RunnerConfig, prices: PriceTable, *, models: ModelPool | None = None,
                 concurrency: int | None = None, seed: int | None = None, cache: Cache | None = None,
                 cassette: Cassette | None = None, max_cost: float | None = None) -> None:
        self.cfg = runner
        self.prices = prices
        self.concurrency = concurrency or runner.concurrency
        #: The run seed.
        self.seed = runner.seed if seed is None else seed
        self.rng = seeds.jitter_rng(self.seed)
        self.cache = cache
        self.cassette = cassette
        self.max_cost = max_cost
        self.spent = 0.0
        self._reserved = 0.0
        #: Why calls stopped before the end ("budget"), or None.
        self.stop_reason: str | None = None
        #: What a run should know about its calls (a Retry-After cut to ``runner.max_retry_wait``...).
        self.notes: set[str] = set()
        self._serial_locks: dict[str, asyncio.Lock] = {}
        self._limiters: dict[str, Limiter] = {}
        self._info: dict[str, dict[str, Any]] = {}
        if models:  # judges and embeddings endpoints call their targets through call(), like variants
            models.bind(self.judge_call)

    def describe(self, target: Target) -> dict[str, Any]:
        """``target.describe()``, asked once per target."""
        if target.name not in self._info:
            self._info[target.name] = target.describe()
        return self._info[target.name]

    async def judge_call(self, target: Target, messages: Any, params: dict[str, Any],
                         inputs: dict[str, Any]) -> CallResult:
        """An evaluator's model call (an LLM judge's, an embeddings endpoint's) through :meth:`call`.

        A judge's call on a target that takes a seed gets ``call_seed(base, row, "", repeat,
        role="judge:<evaluator>")``: the base is the parameters' ``seed`` or the run seed, the row the
        one being scored (``seeds.current_row``; else a hash of the messages), the repeat the
        evaluator's (``repeats: n``). It does not depend on the variant: equal outputs of two variants
        get the same judgement. ``runner.seeds: fixed``: the parameters' seed, plus the repeat index.
        A target that takes no seed (an embeddings endpoint) gets the parameters as they are.
        """
        rep = repeat_index.get()
        if not getattr(target, "seeded", False):
            pass  # an embeddings endpoint, a function: no seed to give
        elif self.cfg.seeds == seeds.FIXED:
            params = fixed_seed(params, rep)
        else:
            row = seeds.current_row.get()
            if row is None:
                row = hashlib.sha256(json.dumps(messages, sort_keys=True, default=str).encode()).hexdigest()
            seed = seeds.call_seed(seeds.base_seed(self.seed, params), row, "", rep,
                                   role=f"judge:{evaluator_name.get()}")
            params = {**params, "seed": seed}
        return await self.call(target, messages, params, inputs)

    async def call(self, target: Target, messages: Any, params: dict[str, Any], inputs: dict[str, Any], *,
                   repeat: int = 0) -> CallResult:
        """Every model call: replay, cache, budget, rate limits, timeout, retries.

        Returns ``(completion, error, latency_ms, attempts)``; ``completion.cached`` and
        ``completion.cost_usd`` say where it came from and what it cost. A cached completion comes
        with the latency of the call that made it (or, for entries stored without one, the lookup's).
        """
        start = time.perf_counter()
        req = key = None
        if target.cacheable and (self.cache or self.cassette):
            req = cache_mod.request(self.describe(target), messages, params, repeat)
            key = cache_mod.key_of(req)
            data = self._lookup(key, req)
            if data is not None:
                hit, latency = _from_entry(data)
                hit.cached, hit.cost_usd = True, 0.0
                if latency is None:
                    latency = (time.perf_counter() - start) * 1000.0
                if self.cassette and self.cassette.mode == "record":
                    self.cassette.record(key, req, data)
                return hit, None, latency, 0
        model = priced_model(self.describe(target))
        limiter = self._limiter(target)
        prompt_est = estimate_tokens(messages) if (limiter.tpm or self.max_cost) else 0
        tokens = prompt_est + completion_budget(params) if limiter.tpm else 0
        reserve = 0.0
        if self.max_cost is not None and model:
            reserve = self.prices.cost(model, prompt_est, completion_budget(params)) or 0.0
            if self.spent + self._reserved + reserve > self.max_cost:
                self.stop_reason = "budget"
                return None, BUDGET_STOP, None, 0
        self._reserved += reserve
        try:
            completion, error, latency, attempts = await self._attempts(target, messages, params, inputs, limiter,
                                                                        tokens)
        finally:
            self._reserved -= reserve
        if completion is None:
            return None, error, latency, attempts
        completion.cost_usd = self.prices.cost(model, completion.prompt_tokens, completion.completion_tokens)
        self.spent += completion.cost_usd or 0.0
        if key is not None:
            data = {**completion.to_dict(), "latency_ms": latency}
            if self.cache:
                self.cache.put(key, data)
            if self.cassette:
                self.cassette.record(key, req, data)
        return completion, None, latency, attempts

    def _lookup(self, key: str, req: dict[str, Any]) -> dict[str, Any] | None:
        """The entry a cassette being replayed (else the cache) holds for *key*, or None."""
        if self.cassette and self.cassette.mode == "replay":
            return self.cassette.replay(key, req)
        if self.cache:
            return self.cache.get(key)
        return None

    async def _attempts(self, target: Target, messages: Any, params: dict[str, Any], inputs: dict[str, Any],
                        limiter: Limiter, tokens: int) -> CallResult:
        """The call itself with timeout and retries -> (completion, error, latency_ms, attempts)."""
        attempts = 0
        last_error = None
        for attempt in range(self.cfg.retries + 1):
            attempts += 1
            lock = self._serial_locks.setdefault(target.name, asyncio.Lock()) if target.serial else None
            await limiter.acquire(tokens)
            err: CallError
            try:
                if lock:
                    await lock.acquire()
                start = time.perf_counter()
                try:
                    async with asyncio.timeout(self.cfg.timeout):  # unlike wait_for, no task of its own
                        completion = await target.complete(messages, params, inputs)
                finally:
                    if lock:
                        lock.release()
            except TimeoutError:
                err = CallError(f"timeout after {self.cfg.timeout:g}s", retryable=True)
            except CallError as exc:
                err = self._capped(target, exc)
            except BaseException:
                await limiter.release(ok=False, reserved=tokens)
                raise
            else:
                used = (completion.prompt_tokens or 0) + (completion.completion_tokens or 0)
                await limiter.release(ok=True, reserved=tokens, used=used or None)
                return completion, None, (time.perf_counter() - start) * 1000.0, attempts
            await limiter.release(ok=False, throttled=err.throttled, retry_after=err.retry_after, reserved=tokens)
            last_error = str(err)
            if not err.retryable or attempt == self.cfg.retries:
                break
            await asyncio.sleep(self._backoff(attempt, err.retry_after))
        return None, f"{last_error} (after {attempts} attempt{'s' if attempts > 1 else ''})", None, attempts

    def _capped(self, target: Target, err: CallError) -> CallError:
        """A ``Retry-After`` longer than ``runner.max_retry_wait`` is cut to it (for the retry and the
        endpoint's pause alike), and noted."""
        cap = self.cfg.max_retry_wait
        if err.retry_after is not None and err.retry_after > cap:
            self.notes.add(f"target '{target.name}' asked to wait {err.retry_after:g} s (Retry-After); waited "
                           f"{cap:g} s (runner.max_retry_wait)")
            err.retry_after = cap
        return err

    def _limiter(self, target: Target) -> Limiter:
        """The limiter of the target's endpoint (one per endpoint, shared by targets and judges)."""
        key = self.describe(target).get("endpoint") or target.name
        if key not in self._limiters:
            self._limiters[key] = Limiter(self.concurrency, rpm=getattr(target, "rpm", None),
                                          tpm=getattr(target, "tpm", None))
        return self._limiters[key]

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter, never shorter than the server's Retry-After."""
        ceiling = min(self.cfg.backoff_max, self.cfg.backoff_base * (2 ** attempt))
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.cfg.backoff_max, retry_after)))
        return delay


def _from_entry(data: dict[str, Any]) -> tuple[Completion, float | None]:
    """A cache or cassette entry -> the completion and the latency of the call that made it (None if unknown)."""
    data = dict(data)
    latency = data.pop("latency_ms", None)
    return Completion.from_dict(data), latency
