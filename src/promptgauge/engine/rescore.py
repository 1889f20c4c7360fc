"""Rescoring: a stored run's outputs scored again by new or changed evaluators, without calling its targets.

:func:`rescore` reads every result of the source run (streamed), keeps its outputs and the scores of the
evaluators it does not recompute, scores the rest with the suite's evaluators -- an LLM judge's calls
through the session's :class:`~.calls.Caller` (response cache, cassette, budget, rate limits, each row's
seed from the source run's seed, so an unchanged judge repeats its calls) -- and stores the lot as a new
run whose manifest says where it came from (``rescored_from``). Compare and gate take it like any run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..datasets import Row
from ..errors import SuiteError
from ..evaluators.registry import BoundEvaluator
from ..store import RunInfo, Store
from . import seeds
from .aggregate import aggregate
from .conversation import evaluate_per_turn
from .pairs import judge_pairs
from .plan import Plan
from .pool import COMMIT_ITEMS, Progress
from .run import Options, new_run_id


@dataclass
class RescoreOutcome:
    """How a rescore ended: the new run, its status, which evaluators it scored, and its progress."""

    run_id: str
    source: str
    status: str
    evaluators: list[str]
    variants: list[str]
    progress: Progress
    notes: list[str] = field(default_factory=list)


def chosen_evaluators(plan: Plan, source: RunInfo, names: list[str] | None) -> list[BoundEvaluator]:
    """The evaluators to score again: *names* (each must be a suite evaluator), else every suite evaluator that
    is new or whose entry in the suite (type, params, mapping...) or recorded settings (code, judge model,
    parameters and prompt...) differ from the source run's."""
    by_name = {e.name: e for e in plan.evaluators + plan.pairwise}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise SuiteError(f"--evaluator {unknown[0]}: the suite has no evaluator of that name",
                             file=plan.suite.path, field="evaluators",
                             hint="the suite's evaluators: " + (", ".join(by_name) or "none"))
        return [by_name[n] for n in dict.fromkeys(names)]
    old = source.manifest.get("evaluators", {})
    old_specs = {e.get("name"): e for e in source.config.get("evaluators") or [] if isinstance(e, dict)}
    new_specs = {e.get("name"): e for e in plan.suite.stored_config().get("evaluators") or []}
    old_pairwise = {k: {x: y for x, y in v.items() if x != "baseline"} if isinstance(v, dict) else v
                    for k, v in (source.manifest.get("pairwise") or {}).items()}
    changed = [e for e in plan.evaluators + plan.pairwise
               if _comparable((old_pairwise if e.pairwise else old).get(e.name)) != _comparable(e.describe())
               or old_specs.get(e.name) != new_specs.get(e.name)]
    if not changed:
        raise SuiteError(f"nothing to rescore: every evaluator of the suite is unchanged since run {source.run_id}",
                         file=plan.suite.path, field="evaluators",
                         hint="name the ones to score again with --evaluator NAME")
    return changed


def _comparable(describe: dict[str, Any] | None) -> Any:
    """An evaluator's manifest entry without what does not change its scores (where its judge endpoint lives)."""
    if not isinstance(describe, dict):
        return describe
    out = dict(describe)
    for key in ("model",):
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if k != "endpoint"}
    if isinstance(out.get("judge"), dict) and isinstance(out["judge"].get("model"), dict):
        out["judge"] = {**out["judge"], "model": {k: v for k, v in out["judge"]["model"].items() if k != "endpoint"}}
    return out


def rescore(plan: Plan, store: Store, source: RunInfo, *, evaluators: list[str] | None = None,
            options: Options | None = None, concurrency: int | None = None,
            on_progress: Callable[[Progress], None] | None = None) -> RescoreOutcome:
    """Score the outputs of run *source* again with the chosen evaluators (see :func:`chosen_evaluators`),
    into a new run of *store*. No target is called. Ctrl-C / SIGTERM stop cleanly (status interrupted)."""
    if source.status not in ("finished", "budget", "interrupted"):
        raise SuiteError(f"run {source.run_id} is {source.status}: rescore a run that has stopped",
                         hint="wait for it to finish, or resume it first")
    chosen = chosen_evaluators(plan, source, evaluators)
    names = [e.name for e in chosen]
    pairwise = [e for e in chosen if e.pairwise]  # judged on (baseline, gated variant) pairs after the rows
    chosen = [e for e in chosen if not e.pairwise]
    opts = options or Options()
    manifest = dict(source.manifest)
    old_evs = dict(manifest.get("evaluators", {}))
    manifest["evaluators"] = {**old_evs, **{e.name: e.describe() for e in chosen}}
    if pairwise:
        manifest["pairwise"] = {**(manifest.get("pairwise") or {}),
                                **{e.name: {**e.describe(), "baseline": plan.suite.baseline} for e in pairwise}}
    manifest["suite"] = {"name": plan.suite.name, "path": str(plan.suite.path) if plan.suite.path else None,
                         "sha256": plan.suite.sha256}
    manifest["rescored_from"] = {"run_id": source.run_id, "evaluators": names,
                                 "suite_sha256": source.manifest.get("suite", {}).get("sha256")}
    config = dict(source.config)
    config["evaluators"] = plan.suite.stored_config().get("evaluators", config.get("evaluators"))
    run_id = new_run_id()
    store.create_run(run_id, source.suite, source.suite_path, manifest, config)
    variants = store.variants(source.run_id)
    seed = int(source.manifest.get("seed", plan.run_seed))
    use_cache = opts.cache and plan.suite.runner.cache and not opts.replay
    max_cost = opts.max_cost if opts.max_cost is not None else plan.suite.runner.max_cost
    session = plan.session
    caller = session.open(cache=store.path.parent / "cache.db" if use_cache else None, refresh=opts.refresh,
                          record=opts.record, replay=opts.replay, max_cost=max_cost, concurrency=concurrency,
                          seed=seed)
    reader = Store(store.path)
    total = sum(n for n, _ in (store.call_counts(source.run_id, v) for v in variants))
    progress = Progress(total=total)
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if pending:
            with store.batch():
                for item in pending:
                    store.put_result(run_id, **item)
            pending.clear()

    async def one(item: dict[str, Any], gate: asyncio.Semaphore) -> None:
        async with gate:
            kept = {ev: s for ev, s in item["scores"].items() if ev not in names}
            scores = [{"evaluator": ev, **s} for ev, s in kept.items()]
            outputs = item["outputs"]
            if outputs is not None and item["error"] is None:
                row = Row(item["row_id"], item["row_index"], 0, item["inputs"])
                token = seeds.current_row.set(row.id)  # a judge's calls get this row's seeds, as in the run
                try:
                    for ev in chosen:
                        o = await (evaluate_per_turn(ev, row.data, outputs) if ev.name in plan.per_turn
                                   else ev.evaluate(row.data, outputs))
                        scores.append({"evaluator": ev.name, "score": o.score, "passed": o.passed, "error": o.error,
                                       "details": o.details})
                finally:
                    seeds.current_row.reset(token)
            if caller.stop_reason:
                return
            pending.append({k: item[k] for k in ("row_id", "variant", "repeat", "row_index", "inputs", "output",
                                                 "outputs", "error", "latency_ms", "prompt_tokens",
                                                 "completion_tokens", "attempts")} | {"scores": scores})
            if len(pending) >= COMMIT_ITEMS:
                flush()
            progress.done += 1
            progress.errors += item["error"] is not None or any(s.get("error") for s in scores)
            progress.cost_usd = caller.spent
            if on_progress:
                on_progress(progress)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if sys.platform != "win32" and task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        gate = asyncio.Semaphore(caller.concurrency)
        batch: list[dict[str, Any]] = []
        try:
            for item in reader.iter_results(source.run_id):
                batch.append(item)
                if len(batch) >= 4 * caller.concurrency:
                    await asyncio.gather(*(one(i, gate) for i in batch))
                    batch.clear()
                    if caller.stop_reason:
                        return
            await asyncio.gather(*(one(i, gate) for i in batch))
            if pairwise and not caller.stop_reason:
                flush()
                await judge_pairs(dataclasses.replace(plan, pairwise=pairwise), store, run_id, caller)
        finally:
            await session.aclose()

    status = "failed"
    try:
        asyncio.run(main())
        status = caller.stop_reason or "finished"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise KeyboardInterrupt from None
    finally:
        flush()
        store.set_status(run_id, status)
        reader.close()
        session.close()
    notes = aggregate(plan, store, run_id, variants=variants, evaluators=chosen) if status == "finished" else []
    return RescoreOutcome(run_id, source.run_id, status, names, variants, progress,
                          notes=sorted(caller.notes) + notes)


def source_run(store: Store, ref: str) -> RunInfo:
    """The run *ref* names: a run id or a unique prefix, or ``latest``; :class:`~promptgauge.errors.StoreError`
    (exit 2) when there is none."""
    return store.run(None if ref == "latest" else ref)


__all__ = ["RescoreOutcome", "chosen_evaluators", "rescore", "source_run"]
