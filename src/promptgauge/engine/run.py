"""A run: a plan executed into the store -- new, resumed, or partly reused from an earlier run.

:func:`execute` opens the plan's session (response cache, cassette, cost
budget), copies what an earlier run of an unchanged variant already holds
(:func:`reuse`), runs the worker pool over what is left, and records the run's
status; ``resume`` continues a stopped run with only what is missing.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SuiteError
from ..store import Store
from .aggregate import aggregate
from .checks import FailureWatch
from .pairs import judge_pairs
from .plan import Plan
from .pool import Engine, Progress


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class RunOutcome:
    """How a run ended: its id, status (finished, budget, interrupted, failed) and progress."""

    run_id: str
    status: str
    progress: Progress
    store_path: Path
    plan: Plan = field(repr=False)
    #: What the run's calls noted (a Retry-After cut to ``runner.max_retry_wait``...).
    notes: list[str] = field(default_factory=list)


@dataclass
class Options:
    """How to run: cache, cassette and budget choices (the CLI's flags)."""

    cache: bool = True
    refresh: bool = False
    record: Path | None = None
    replay: Path | None = None
    max_cost: float | None = None
    #: Where the work runs: ``local`` or ``ray`` (default: the suite's ``runner.executor``).
    executor: str | None = None
    #: The Ray cluster to join (default: ``runner.ray.address``, else ``RAY_ADDRESS``, else a local one).
    ray_address: str | None = None
    #: A promptflow prompty's variable the row lacks is an error (``--strict-templates``), not empty.
    strict_templates: bool = False


def check_budget(plan: Plan, max_cost: float | None) -> None:
    """A budget needs a price for every model the run calls."""
    if max_cost is None:
        return
    for v in plan.variants:
        model = plan.model_of(v)
        if model and plan.prices.get(model) is None:
            raise SuiteError(f"--max-cost needs a price for model '{model}' (variant '{v.name}')",
                             file=plan.suite.gate_file or plan.suite.path, field="gate.prices",
                             hint=f"add gate: prices: {{{model}: {{input: USD_PER_1M, output: USD_PER_1M}}}}")


def execute(plan: Plan, store: Store, *, run_id: str | None = None, resume: bool = False,
            on_progress: Callable[[Progress], None] | None = None, concurrency: int | None = None,
            seed: int | None = None, options: Options | None = None) -> RunOutcome:
    """Run a plan (sync wrapper). Ctrl-C / SIGTERM stop cleanly with status 'interrupted'.

    *seed* sets the run seed (else the plan's); a resumed run keeps the seed it started with.
    """
    suite = plan.suite
    opts = options or Options()
    max_cost = opts.max_cost if opts.max_cost is not None else suite.runner.max_cost
    check_budget(plan, max_cost)
    if seed is not None:
        plan.seed = seed
    if resume:
        info = store.run(run_id, suite=suite.name)
        run_id = info.run_id
        old = info.manifest
        if plan.seed is None and "seed" in old:
            plan.seed = old["seed"]
        elif "seed" in old and old["seed"] != plan.run_seed:
            raise SuiteError(f"cannot resume run {run_id}: it runs with seed {old['seed']}, not {plan.run_seed}",
                             file=suite.path, hint=f"resume without --seed, or with --seed {old['seed']}")
    manifest = plan.manifest()
    if resume:
        for key in ("suite", "dataset"):
            if old.get(key, {}).get("sha256") != manifest[key]["sha256"]:
                raise SuiteError(
                    f"cannot resume run {run_id}: the {key} changed since it started",
                    file=suite.path, hint="start a new run instead of --resume",
                )
        if old.get("shard", {}).get("index") != manifest.get("shard", {}).get("index") or \
                old.get("shard", {}).get("count") != manifest.get("shard", {}).get("count"):
            was = f"shard {old['shard']['index']}/{old['shard']['count']}" if old.get("shard") else "all rows"
            raise SuiteError(f"cannot resume run {run_id}: it runs {was}", file=suite.path,
                             hint="resume with the same --shard K/N" if old.get("shard") else "resume without --shard")
        if set(old.get("variants", {})) != set(manifest["variants"]):
            raise SuiteError(f"cannot resume run {run_id}: it ran variants {', '.join(old['variants'])}",
                             file=suite.path, hint="resume with the same --variant selection")
        skip = store.completed(run_id, [e.name for e in plan.evaluators])
        store.set_status(run_id, "running")
    else:
        run_id = run_id or new_run_id()
        config = suite.stored_config()
        store.create_run(run_id, suite.name, str(suite.path) if suite.path else None, manifest, config)
        skip = set()
    use_cache = opts.cache and suite.runner.cache and not opts.replay
    reused = 0
    if use_cache and not opts.refresh and not opts.record and not resume and plan.shard is None:
        reused = reuse(plan, store, run_id, manifest, config)
        skip = store.completed(run_id, [e.name for e in plan.evaluators]) if reused else skip
    session = plan.session
    caller = session.open(cache=store.path.parent / "cache.db" if use_cache else None, refresh=opts.refresh,
                          record=opts.record, replay=opts.replay, max_cost=max_cost, concurrency=concurrency,
                          seed=plan.run_seed)
    engine = Engine(plan, store, run_id, caller, on_progress=on_progress)
    engine.watch = FailureWatch(suite, plan.n_rows * suite.runner.repeats)
    executor = None
    if (opts.executor or suite.runner.executor) == "ray":
        from .ray_executor import RayExecutor

        try:
            executor = engine.executor = RayExecutor(plan, suite.runner.ray, address=opts.ray_address,
                                                     offline=bool(opts.replay))
        except BaseException:
            session.close()
            store.set_status(run_id, "failed")
            raise

    async def main() -> Progress:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if sys.platform != "win32" and task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            progress = await engine.run(skip)
            if not caller.stop_reason:  # pairwise judges need both variants' rows
                await judge_pairs(plan, store, run_id, caller)
            return progress
        finally:
            await session.aclose()

    status = "failed"
    progress = Progress(total=plan.total())
    try:
        progress = asyncio.run(main())
        progress.reused = reused
        status = caller.stop_reason or "finished"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise KeyboardInterrupt from None
    finally:
        store.set_status(run_id, status)
        session.close()
        if executor is not None:
            executor.close()
    notes = aggregate(plan, store, run_id) if status == "finished" else []
    return RunOutcome(run_id=run_id, status=status, progress=progress, store_path=store.path, plan=plan,
                      notes=sorted(plan.notes) + sorted(caller.notes) + notes)


def reuse(plan: Plan, store: Store, run_id: str, manifest: dict[str, Any], config: dict[str, Any]) -> int:
    """Copy, for every variant unchanged since a finished earlier run, that run's successful results.

    Unchanged means: same dataset (hash and rows), repeats, run seed and seeding, evaluators (code and
    settings), and the same variant -- prompt file, parameters, inputs, target kind and model. This is the response cache
    at the level of a whole variant: a warm re-run of an unchanged suite then renders and looks up
    nothing. Errors are not copied, so they are run again.
    """
    earlier = [r for r in store.runs(suite=plan.suite.name, limit=20) if r.status == "finished" and r.run_id != run_id]
    copied = 0
    for v in plan.variants:
        if not plan.targets[v.name].cacheable:
            continue  # flows, apps and callables are the thing under test: always run them
        for run in earlier:
            if _same_variant(run.manifest, run.config, manifest, config, v.name):
                copied += store.copy_results(run.run_id, run_id, v.name)
                break
    return copied


def _same_variant(old_m: dict, old_c: dict, new_m: dict, new_c: dict, name: str) -> bool:
    def variant_spec(config: dict) -> dict | None:
        return next((dict(v, name=None) for v in config.get("variants", []) if v.get("name") == name), None)

    def variant_info(m: dict) -> dict | None:
        info = m.get("variants", {}).get(name)
        if info is None:
            return None
        return {**info, "target_info": {k: v for k, v in info["target_info"].items() if k != "endpoint"}}

    return (old_m.get("dataset") == new_m["dataset"] and old_m.get("repeats") == new_m["repeats"]
            and (old_m.get("seed"), old_m.get("seeds")) == (new_m["seed"], new_m["seeds"])
            and old_m.get("evaluators") == new_m["evaluators"] and old_c.get("evaluators") == new_c["evaluators"]
            and variant_info(old_m) is not None and variant_info(old_m) == variant_info(new_m)
            and variant_spec(old_c) == variant_spec(new_c))


