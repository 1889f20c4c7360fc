"""The engine: every row through every variant and every evaluator, results stored as they exist.

asyncio at the core: a fixed pool of workers pulls (row, variant, repeat) items
from a lazy iterator, so memory does not grow with the dataset; each model call
has a timeout and retries with exponential backoff and jitter that honour
``Retry-After``; in-process models are serialised. Each result and score is
committed to the store when produced: Ctrl-C, SIGTERM or a crash keep what is
done, and ``resume`` continues a run with only what is missing.
"""

from __future__ import annotations

import asyncio
import platform
import random
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .datasets import Dataset, Row, load_dataset
from .errors import CallError, DatasetError, SuiteError, TemplateError, UserError
from .evaluators.models import ModelPool
from .evaluators.registry import BoundEvaluator, resolve
from .prompts import Prompt, load_prompt
from .store import Store
from .suite import COLUMN_REF, EvaluatorSpec, Suite, Variant
from .targets import Target, TargetFactory


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class Progress:
    """What a progress callback receives after every finished item."""

    total: int
    done: int = 0
    errors: int = 0
    skipped: int = 0


@dataclass
class Plan:
    """A suite made concrete: loaded dataset, prompts, targets and evaluators, all checked."""

    suite: Suite
    dataset: Dataset
    variants: list[Variant]
    prompts: dict[str, Prompt | None]
    targets: dict[str, Target]
    evaluators: list[BoundEvaluator]
    factory: TargetFactory
    limit: int | None = None
    models: ModelPool | None = None

    @property
    def rows(self) -> list[Row]:
        return self.dataset.rows[: self.limit] if self.limit else self.dataset.rows

    def total(self) -> int:
        return len(self.rows) * len(self.variants) * self.suite.runner.repeats

    def manifest(self) -> dict[str, Any]:
        """Everything the verdict rests on, by content hash (no secrets)."""
        s = self.suite
        return {
            "promptgauge": __version__,
            "python": platform.python_version(),
            "suite": {"name": s.name, "path": str(s.path) if s.path else None, "sha256": s.sha256},
            "dataset": {"path": _rel(self.dataset.path, s.root), "sha256": self.dataset.sha256,
                        "rows": len(self.rows)},
            "variants": {
                v.name: {
                    "target": v.target,
                    "target_info": self.targets[v.name].describe(),
                    "prompt": _rel(self.prompts[v.name].path, s.root) if self.prompts[v.name] else None,
                    "prompt_sha256": self.prompts[v.name].sha256 if self.prompts[v.name] else None,
                    "parameters": self.parameters(v),
                }
                for v in self.variants
            },
            "evaluators": {e.name: e.describe() for e in self.evaluators},
            "repeats": s.runner.repeats,
        }

    def parameters(self, variant: Variant) -> dict[str, Any]:
        prompt = self.prompts[variant.name]
        return {**(prompt.parameters if prompt else {}), **variant.parameters}


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def prepare(suite: Suite, *, variants: list[str] | None = None, limit: int | None = None,
            evaluators: dict[str, Any] | None = None) -> Plan:
    """Load and check everything a run needs, before any model call. Raises :class:`UserError`.

    *evaluators* (name -> callable) are evaluator instances from the Python API: one
    named like a suite entry replaces what that entry would build; others are added.
    """
    ds = suite.dataset
    dataset = load_dataset(suite.resolve(ds.path), id_column=ds.id_column, format=ds.format)
    chosen = [suite.variant(n) for n in variants] if variants else list(suite.variants)
    factory = TargetFactory(suite, timeout=suite.runner.timeout)
    prompts: dict[str, Prompt | None] = {}
    targets: dict[str, Target] = {}
    for v in chosen:
        try:
            prompts[v.name] = load_prompt(suite.resolve(v.prompt)) if v.prompt else None
            targets[v.name] = factory.get(v.target)
        except UserError as exc:
            if exc.field is None:
                exc.field = f"variants.{v.name}"
            if exc.file is None:
                exc.file = str(suite.path)
            raise _refresh(exc) from None
        if prompts[v.name] is None and targets[v.name].__class__.__name__ != "PythonTarget":
            raise SuiteError(f"variant '{v.name}' has no prompt: set 'prompt: flows/....prompty'",
                             file=suite.path, field=f"variants.{v.name}.prompt")
        _check_inputs(v, prompts[v.name], dataset, limit)
    instances = dict(evaluators or {})
    specs = list(suite.evaluators) + [EvaluatorSpec(name=n) for n in instances if n not in {e.name for e in suite.evaluators}]
    models = ModelPool(factory, suite.judge)
    bound_evaluators = []
    for spec in specs:
        try:
            bound = resolve(spec, root=suite.root, data_columns=dataset.columns, models=models,
                            instance=instances.get(spec.name))
        except UserError as exc:
            if exc.file is None:
                exc.file = str(suite.path)
            raise _refresh(exc) from None
        _check_rows_have(dataset, bound.data_columns, f"evaluators.{spec.name}.column_mapping", limit)
        bound_evaluators.append(bound)
    return Plan(suite, dataset, chosen, prompts, targets, bound_evaluators, factory, limit, models=models)


def _refresh(exc: UserError) -> UserError:
    exc.args = (exc.format(),)
    return exc


def template_inputs(variant: Variant, row: Row) -> dict[str, Any]:
    """The variables a variant's template sees for *row*."""
    if not variant.inputs:
        return dict(row.data)
    out = {}
    for name, ref in variant.inputs.items():
        m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
        out[name] = row.data.get(m.group(2)) if m and m.group(1) == "data" else ref
    return out


def _check_inputs(variant: Variant, prompt: Prompt | None, dataset: Dataset, limit: int | None) -> None:
    for name, ref in variant.inputs.items():
        m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
        if m and m.group(1) == "data" and m.group(2) not in dataset.columns:
            raise DatasetError(
                f"variant '{variant.name}' maps input '{name}' to {ref}, but the dataset has no column '{m.group(2)}'",
                file=dataset.path, hint="columns: " + ", ".join(dataset.columns),
            )
    if prompt is None:
        return
    needed = prompt.variables() - set(prompt.input_defaults)
    rows = dataset.rows[:limit] if limit else dataset.rows
    for row in rows:
        have = template_inputs(variant, row)
        missing = sorted(needed - set(have))
        if missing:
            raise TemplateError(
                f"template variable '{missing[0]}' is undefined for {dataset.where(row)} (row id {row.id})",
                file=prompt.path, hint="row has: " + (", ".join(sorted(have)) or "nothing"),
            )


def _check_rows_have(dataset: Dataset, columns: set[str], field: str, limit: int | None) -> None:
    rows = dataset.rows[:limit] if limit else dataset.rows
    for col in sorted(columns):
        for row in rows:
            if col not in row.data:
                raise DatasetError(
                    f"column '{col}' (needed by {field}) is missing", file=dataset.path,
                    line=row.line, hint="columns present: " + ", ".join(row.data),
                )


@dataclass
class RunOutcome:
    run_id: str
    status: str
    progress: Progress
    store_path: Path
    plan: Plan = field(repr=False)


class Engine:
    """Runs a :class:`Plan` into the store."""

    def __init__(self, plan: Plan, store: Store, run_id: str, *,
                 on_progress: Callable[[Progress], None] | None = None, concurrency: int | None = None,
                 seed: int | None = None) -> None:
        self.plan = plan
        self.store = store
        self.run_id = run_id
        self.on_progress = on_progress
        cfg = plan.suite.runner
        self.cfg = cfg
        self.concurrency = concurrency or cfg.concurrency
        self.rng = random.Random(seed)
        self._serial_locks: dict[str, asyncio.Lock] = {}
        if plan.models:  # judges and embeddings endpoints call their targets through _call, like variants
            plan.models.bind(self._call)

    async def run(self, skip: set[tuple[str, str, int]]) -> Progress:
        progress = Progress(total=self.plan.total())
        items = self._items(skip, progress)
        workers = [asyncio.create_task(self._worker(items, progress)) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return progress

    def _items(self, skip: set[tuple[str, str, int]], progress: Progress) -> Iterator[tuple[Row, Variant, int]]:
        for row in self.plan.rows:
            for variant in self.plan.variants:
                for rep in range(self.cfg.repeats):
                    if (row.id, variant.name, rep) in skip:
                        progress.skipped += 1
                        progress.done += 1
                        continue
                    yield row, variant, rep

    async def _worker(self, items: Iterator[tuple[Row, Variant, int]], progress: Progress) -> None:
        for row, variant, rep in items:
            ok = await self._process(row, variant, rep)
            progress.done += 1
            progress.errors += 0 if ok else 1
            if self.on_progress:
                self.on_progress(progress)

    async def _process(self, row: Row, variant: Variant, rep: int) -> bool:
        plan = self.plan
        prompt = plan.prompts[variant.name]
        inputs = template_inputs(variant, row)
        messages = prompt.render(inputs, where=plan.dataset.where(row)) if prompt else None
        params = plan.parameters(variant)
        if rep and "seed" in params:
            params = {**params, "seed": params["seed"] + rep}
        target = plan.targets[variant.name]
        completion, error, latency, attempts = await self._call(target, messages, params, inputs)
        outputs = None
        if completion is not None:
            outputs = {**completion.outputs, "latency_ms": latency,
                       "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
        self.store.put_result(
            self.run_id, row.id, variant.name, rep, row_index=row.index, inputs=row.data,
            output=completion.text if completion else None, outputs=outputs, error=error,
            latency_ms=latency, prompt_tokens=completion.prompt_tokens if completion else None,
            completion_tokens=completion.completion_tokens if completion else None, attempts=attempts,
        )
        if completion is None:
            return False
        for ev in plan.evaluators:
            outcome = await ev.evaluate(row.data, outputs)  # type: ignore[arg-type]
            self.store.put_score(self.run_id, row.id, variant.name, rep, ev.name, score=outcome.score,
                                 passed=outcome.passed, error=outcome.error, details=outcome.details)
        return True

    async def _call(self, target: Target, messages, params, inputs):  # noqa: ANN001
        """One model call with timeout and retries -> (completion, error, latency_ms, attempts)."""
        attempts = 0
        last_error = None
        for attempt in range(self.cfg.retries + 1):
            attempts += 1
            lock = self._serial_locks.setdefault(target.name, asyncio.Lock()) if target.serial else None
            try:
                if lock:
                    await lock.acquire()
                start = time.perf_counter()
                try:
                    completion = await asyncio.wait_for(target.complete(messages, params, inputs), self.cfg.timeout)
                finally:
                    if lock:
                        lock.release()
                return completion, None, (time.perf_counter() - start) * 1000.0, attempts
            except asyncio.TimeoutError:
                err = CallError(f"timeout after {self.cfg.timeout:g}s", retryable=True)
            except CallError as exc:
                err = exc
            last_error = str(err)
            if not err.retryable or attempt == self.cfg.retries:
                break
            await asyncio.sleep(self._backoff(attempt, err.retry_after))
        return None, f"{last_error} (after {attempts} attempt{'s' if attempts > 1 else ''})", None, attempts

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter, never shorter than the server's Retry-After."""
        ceiling = min(self.cfg.backoff_max, self.cfg.backoff_base * (2 ** attempt))
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.cfg.backoff_max, retry_after)))
        return delay


def execute(plan: Plan, store: Store, *, run_id: str | None = None, resume: bool = False,
            on_progress: Callable[[Progress], None] | None = None, concurrency: int | None = None,
            seed: int | None = None) -> RunOutcome:
    """Run a plan (sync wrapper). Ctrl-C / SIGTERM stop cleanly with status 'interrupted'."""
    suite = plan.suite
    manifest = plan.manifest()
    if resume:
        info = store.run(run_id, suite=suite.name)
        run_id = info.run_id
        old = info.manifest
        for key in ("suite", "dataset"):
            if old.get(key, {}).get("sha256") != manifest[key]["sha256"]:
                raise SuiteError(
                    f"cannot resume run {run_id}: the {key} changed since it started",
                    file=suite.path, hint="start a new run instead of --resume",
                )
        if set(old.get("variants", {})) != set(manifest["variants"]):
            raise SuiteError(f"cannot resume run {run_id}: it ran variants {', '.join(old['variants'])}",
                             file=suite.path, hint="resume with the same --variant selection")
        skip = store.completed(run_id, [e.name for e in plan.evaluators])
        store.set_status(run_id, "running")
    else:
        run_id = run_id or new_run_id()
        store.create_run(run_id, suite.name, str(suite.path) if suite.path else None, manifest,
                         suite.model_dump(mode="json"))
        skip = set()
    engine = Engine(plan, store, run_id, on_progress=on_progress, concurrency=concurrency, seed=seed)

    async def main() -> Progress:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if sys.platform != "win32" and task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await engine.run(skip)
        finally:
            await plan.factory.aclose()

    status = "failed"
    try:
        progress = asyncio.run(main())
        status = "finished"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise KeyboardInterrupt from None
    finally:
        store.set_status(run_id, status)
    return RunOutcome(run_id=run_id, status=status, progress=progress, store_path=store.path, plan=plan)
