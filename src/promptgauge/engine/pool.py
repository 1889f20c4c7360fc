"""The worker pool: every (row, variant, repeat) item of a plan scored and stored.

A fixed pool of asyncio workers pulls items from a lazy iterator over the
streamed dataset, so memory does not grow with the dataset. A row's items come
in an order of their own, seeded by the run seed and the row id
(:func:`~.seeds.call_order`), so no variant is systematically called first and
order effects (prefix caches, warm-up, provider-side caching) favour none. Each item is
rendered, sent through the :class:`~.calls.Caller` and scored by every
evaluator; a result and its scores are committed together, in group commits
at most :data:`COMMIT_SECONDS` apart: Ctrl-C, SIGTERM or a crash keep
everything done, ``kill -9`` loses at most the last few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..datasets import Row
from ..errors import CallError, TemplateError
from ..store import Store
from ..suite import Variant
from . import seeds
from .agent import run_agent
from .calls import BUDGET_STOP, Caller
from .conversation import ConversationRun, Turns, conversation_mode, conversation_of, evaluate_per_turn, replay, score_stored, system_prefix
from .plan import Plan, template_inputs
from .simulator import simulate

#: Results wait at most this long, or for this many others, before they are committed together.
COMMIT_SECONDS = 0.05
COMMIT_ITEMS = 128


@dataclass
class Progress:
    """What a progress callback receives after every finished item."""

    total: int
    done: int = 0
    errors: int = 0
    skipped: int = 0
    #: Results copied from an earlier run of the same unchanged variant (see :func:`~.run.reuse`).
    reused: int = 0
    cached: int = 0
    cost_usd: float = 0.0


async def score_row(evaluators: list[Any], per_turn: set[str], row_id: str, data: dict[str, Any],
                    outputs: dict[str, Any]) -> list[dict[str, Any]]:
    """*evaluators*' scores of one item (in their order): ``{evaluator, score, passed, error, details}`` each.

    The same code scores an item in process and on a Ray worker (:mod:`.ray_executor`).
    """
    scores = []
    scoring = seeds.current_row.set(row_id)  # a judge's calls get this row's seeds
    try:
        for ev in evaluators:
            if ev.name in per_turn:
                o = await evaluate_per_turn(ev, data, outputs)
            else:
                o = await ev.evaluate(data, outputs)
            scores.append({"evaluator": ev.name, "score": o.score, "passed": o.passed, "error": o.error,
                           "details": o.details})
    finally:
        seeds.current_row.reset(scoring)
    return scores


class Executor(Protocol):
    """Where a run's work happens: the pool asks it how many items to keep in flight and to score each one.

    Every model call still goes through the driver's :class:`~.calls.Caller` and every result is committed
    by the driver (:meth:`Engine.flush`), whatever the executor.
    """

    def slots(self, concurrency: int) -> int:
        """Items in flight at once for a run with *concurrency* parallel model calls."""
        ...

    async def score(self, plan: Plan, row: Row, outputs: dict[str, Any]) -> list[dict[str, Any]]:
        """Every evaluator's score of one item, in the plan's evaluator order."""
        ...


class InProcess:
    """The default executor: items scored in this process, as many in flight as parallel calls."""

    def slots(self, concurrency: int) -> int:
        return concurrency

    async def score(self, plan: Plan, row: Row, outputs: dict[str, Any]) -> list[dict[str, Any]]:
        return await score_row(plan.evaluators, plan.per_turn, row.id, row.data, outputs)


IN_PROCESS = InProcess()


class Engine:
    """Runs a :class:`Plan` into the store under *run_id*, every model call through *caller*."""

    def __init__(self, plan: Plan, store: Store, run_id: str, caller: Caller, *,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.plan = plan
        self.store = store
        self.run_id = run_id
        self.caller = caller
        self.on_progress = on_progress
        self._pending: list[dict[str, Any]] = []
        self._pending_since = 0.0
        #: Sees each stored item's scores and may stop the run (:class:`~.checks.FailureWatch`); set by a run.
        self.watch: Any = None
        #: Where items are scored (and, for a Ray cluster, where models run): :class:`InProcess`, or a
        #: :class:`~.ray_executor.RayExecutor` set by a run with ``runner.executor: ray``.
        self.executor: Executor = IN_PROCESS
        #: At most ``caller.concurrency`` items calling models (and reserving budget) at once, when the
        #: executor keeps more items in flight (their scoring happening elsewhere).
        self._calling: asyncio.Semaphore | None = None

    async def run(self, skip: set[tuple[str, str, int]]) -> Progress:
        """Every item not in *skip* (``(row_id, variant, repeat)``), by ``caller.concurrency`` workers."""
        progress = Progress(total=self.plan.total())
        items = self._items(skip, progress)
        slots = self.executor.slots(self.caller.concurrency)
        if slots > self.caller.concurrency:  # more items in flight than calls: the others are being scored
            self._calling = asyncio.Semaphore(self.caller.concurrency)
        workers = [asyncio.create_task(self._worker(items, progress)) for _ in range(slots)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.flush()
        return progress

    def flush(self) -> None:
        """Commit the results waiting for their group commit."""
        if self._pending:
            with self.store.batch():
                for item in self._pending:
                    self.store.put_result(self.run_id, **item)
            self._pending.clear()

    def _put(self, item: dict[str, Any]) -> None:
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(item)
        if len(self._pending) >= COMMIT_ITEMS or time.monotonic() - self._pending_since >= COMMIT_SECONDS:
            self.flush()

    def _items(self, skip: set[tuple[str, str, int]], progress: Progress) -> Iterator[tuple[Row, Variant, int]]:
        if self.plan.limit is None and len(skip) >= progress.total:  # all done (same dataset and suite)
            progress.skipped = progress.done = progress.total
            return
        calls = [(v, rep) for v in self.plan.variants for rep in range(self.plan.suite.runner.repeats)]
        for row in self.plan.rows():
            for variant, rep in seeds.call_order(self.plan.run_seed, row.id, calls):
                if (row.id, variant.name, rep) in skip:
                    progress.skipped += 1
                    progress.done += 1
                    continue
                yield row, variant, rep

    async def _worker(self, items: Iterator[tuple[Row, Variant, int]], progress: Progress) -> None:
        for row, variant, rep in items:
            if self.caller.stop_reason:
                return
            outcome = await self.process(row, variant, rep)
            if outcome is None:  # stopped before it finished: left for --resume
                return
            progress.done += 1
            progress.errors += 0 if outcome[0] else 1
            progress.cached += outcome[1]
            progress.cost_usd = self.caller.spent
            if self.on_progress:
                self.on_progress(progress)
            # A target that answers without suspending (an async Python function) would let this worker
            # run every item in one step of the loop: the other workers starve, and the loop never drops
            # the cancelled timers of each call's timeout (one per row: ~100 B/row of memory that grows).
            await asyncio.sleep(0)

    async def process(self, row: Row, variant: Variant, repeat: int) -> tuple[bool, bool] | None:
        """One item: render, call, score, and queue its result with its scores for one commit.

        Returns ``(succeeded, cached)``, or None when the caller stopped (its budget) before the
        item was done. Call :meth:`flush` to commit what is queued.
        """
        plan = self.plan
        agent = None
        prompt = plan.prompts[variant.name]
        inputs = template_inputs(variant, row)
        target = plan.targets[variant.name]
        mode = conversation_mode(variant.conversation, row.data, plan.simulator is not None)
        try:
            if mode is not None:
                messages = system_prefix(prompt, inputs, plan.dataset.where(row)) if mode != "score" else None
            else:
                messages = prompt.render(inputs, where=plan.dataset.where(row)) if prompt else None
        except TemplateError as exc:  # checked before the run; a row can still fail at render time
            completion, error, latency, attempts = None, exc.format(), None, 0
        else:
            params = plan.call_parameters(variant, row.id, repeat)
            async with self._calling or contextlib.nullcontext():
                if mode is not None:  # a conversation: stored, replayed or with the simulated user
                    agent = await self._converse(mode, row, variant, target, messages, params, inputs, repeat)
                    completion, error, latency, attempts = agent.completion, agent.error, agent.latency_ms, agent.attempts
                elif variant.name in plan.agents:  # a tool loop: every model call of it goes through the caller
                    agent = await run_agent(self.caller, target, messages, params, inputs, plan.agents[variant.name],
                                            row.data, repeat=repeat,
                                            params_at=lambda step: plan.call_parameters(variant, row.id, repeat, step=step))
                    completion, error, latency, attempts = agent.completion, agent.error, agent.latency_ms, agent.attempts
                else:
                    completion, error, latency, attempts = await self.caller.call(target, messages, params, inputs,
                                                                                  repeat=repeat)
        if self.caller.stop_reason:
            return None
        if completion is not None and prompt is not None and mode is None:
            try:
                completion = prompt.finish(completion)
            except CallError as exc:
                completion, error = None, str(exc)
        outputs = scores = None
        if completion is None and agent is not None:  # a failed loop keeps its partial trajectory
            outputs = agent.outputs
        if completion is not None:
            outputs = {**completion.outputs, "latency_ms": latency, "prompt_tokens": completion.prompt_tokens,
                       "completion_tokens": completion.completion_tokens, "cost_usd": completion.cost_usd,
                       "cached": completion.cached}
            if completion.ttft_ms is not None:  # a streamed answer: ${target.ttft_ms}, ${target.tokens_per_s}
                outputs.update(ttft_ms=completion.ttft_ms, tokens_per_s=completion.tokens_per_s)
            scores = await self.executor.score(plan, row, outputs)
            if self.caller.stop_reason and any(BUDGET_STOP in (s["error"] or "") for s in scores):
                # a judge of this item hit the budget: keep nothing half-scored
                return None
        self._put({
            "row_id": row.id, "variant": variant.name, "repeat": repeat, "row_index": row.index, "inputs": row.data,
            "output": completion.text if completion else None, "outputs": outputs, "error": error,
            "latency_ms": latency, "prompt_tokens": completion.prompt_tokens if completion else None,
            "completion_tokens": completion.completion_tokens if completion else None, "attempts": attempts,
            "scores": scores,
        })
        if self.watch is not None and scores:
            self.watch.observe(variant.name, scores)
        return completion is not None, bool(completion and completion.cached)

    async def _converse(self, mode: str, row: Row, variant: Variant, target: Any, prefix: Any,
                        params: dict[str, Any], inputs: dict[str, Any], repeat: int) -> Any:
        """A conversation row (see :mod:`.conversation`): its :class:`~.conversation.ConversationRun`."""
        conversation = conversation_of(row.data)
        if mode == "score":
            if conversation is None:
                return ConversationRun(None, f"variant '{variant.name}' scores stored conversations "
                                       "(conversation: score), but this row has no 'messages'", None, 0, {})
            return score_stored(conversation)
        turns = Turns(self.caller, target, params, inputs, self.plan.agents.get(variant.name), row.data, repeat,
                      list(prefix or []), params_at=lambda turn, step: self.plan.call_parameters(
                          variant, row.id, repeat, turn=turn, step=step))
        if mode == "replay":
            return await replay(turns, conversation or [])
        return await simulate(self.plan.simulator, turns, row.id, variant.name,  # type: ignore[arg-type]
                              run_seed=self.plan.run_seed, mode=self.plan.suite.runner.seeds)

