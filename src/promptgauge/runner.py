"""The engine: every row through every variant and every evaluator, results stored as they exist.

asyncio at the core: a fixed pool of workers pulls (row, variant, repeat) items
from a lazy iterator over the streamed dataset, so memory does not grow with
the dataset. Every model call -- a variant's target or an LLM judge -- goes
through :meth:`Engine._call`: cassette replay, the response cache, the
endpoint's rate limits (RPM/TPM, adaptive concurrency), the cost budget, a
timeout and retries with exponential backoff and jitter that honour
``Retry-After``; in-process models are serialised. A result and its scores are
committed together, in group commits at most :data:`COMMIT_SECONDS` apart:
Ctrl-C, SIGTERM or a crash keep everything done, ``kill -9`` loses at most
the last few milliseconds, and ``resume`` continues a run with only what is
missing.
"""

from __future__ import annotations

import asyncio
import fnmatch
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
from . import cache as cache_mod
from .cache import Cache
from .cassette import Cassette
from .cost import PriceTable, completion_budget, estimate_tokens
from .datasets import Dataset, Row, RowCheck, load_dataset, sample_dataset
from .errors import CallError, DatasetError, SuiteError, TemplateError, located
from .evaluators.models import ModelPool
from .evaluators.registry import BoundEvaluator, resolve
from .prompts import Prompt, load_prompt, load_sample
from .ratelimit import Limiter
from .store import Store
from .suite import COLUMN_REF, EvaluatorSpec, RunnerConfig, Suite, Variant
from .targets import Target, TargetFactory

#: Target kinds whose calls are model calls, priced by model.
MODEL_KINDS = ("openai", "azure", "local")
#: Results wait at most this long, or for this many others, before they are committed together.
COMMIT_SECONDS = 0.05
COMMIT_ITEMS = 128


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass
class Progress:
    """What a progress callback receives after every finished item."""

    total: int
    done: int = 0
    errors: int = 0
    skipped: int = 0
    #: Results copied from an earlier run of the same unchanged variant (see :func:`reuse`).
    reused: int = 0
    cached: int = 0
    cost_usd: float = 0.0


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
    prices: PriceTable = field(default_factory=PriceTable)
    models: ModelPool | None = None

    @property
    def n_rows(self) -> int:
        return min(len(self.dataset), self.limit) if self.limit else len(self.dataset)

    def rows(self) -> Iterator[Row]:
        return self.dataset.iter_rows(self.limit)

    def total(self) -> int:
        return self.n_rows * len(self.variants) * self.suite.runner.repeats

    def manifest(self) -> dict[str, Any]:
        """Everything the verdict rests on, by content hash (no secrets)."""
        s = self.suite
        return {
            "promptgauge": __version__,
            "python": platform.python_version(),
            "suite": {"name": s.name, "path": str(s.path) if s.path else None, "sha256": s.sha256},
            "dataset": {"path": _rel(self.dataset.path, s.root), "sha256": self.dataset.sha256,
                        "rows": self.n_rows},
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

    def model_of(self, variant: Variant) -> str | None:
        """The model a variant's calls are priced by (None for flows, apps and callables)."""
        info = self.targets[variant.name].describe()
        return info.get("model") if info.get("kind") in MODEL_KINDS else None


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def select_variants(suite: Suite, patterns: list[str] | None) -> list[Variant]:
    """The variants named by *patterns* (names or globs such as ``terse.*``), in suite order."""
    if not patterns:
        return list(suite.variants)
    chosen = []
    for pattern in patterns:
        hits = [v for v in suite.variants if fnmatch.fnmatchcase(v.name, pattern)]
        if not hits:
            suite.variant(pattern)  # raises, listing the variants
        chosen += [v for v in hits if v not in chosen]
    return [v for v in suite.variants if v in chosen]


def prepare(suite: Suite, *, variants: list[str] | None = None, limit: int | None = None,
            offline: bool = False, evaluators: dict[str, Any] | None = None) -> Plan:
    """Load and check everything a run needs, before any model call. Raises :class:`UserError`.

    *offline* (replaying a cassette): no API key is needed. *evaluators* (name -> callable) are
    evaluator instances from the Python API: one named like a suite entry replaces what that entry
    would build; others are added.
    """
    chosen = select_variants(suite, variants)
    factory = TargetFactory(suite, timeout=suite.runner.timeout, offline=offline)
    prompts: dict[str, Prompt | None] = {}
    targets: dict[str, Target] = {}
    for v in chosen:
        with located(file=suite.path, field=f"variants.{v.name}"):
            prompts[v.name] = load_prompt(suite.resolve(v.prompt)) if v.prompt else None
            if v.target:
                targets[v.name] = factory.get(v.target)
            elif prompts[v.name] is not None:
                targets[v.name] = factory.for_prompt(prompts[v.name], f"prompty:{v.name}")
            else:
                raise SuiteError(f"variant '{v.name}' needs a target: or a .prompty prompt with model.configuration")
        if prompts[v.name] is None and targets[v.name].describe().get("kind") in MODEL_KINDS:
            raise SuiteError(f"variant '{v.name}' has no prompt: set 'prompt: flows/....prompty'",
                             file=suite.path, field=f"variants.{v.name}.prompt")
    check = _row_check(chosen, prompts, limit)
    ds = suite.dataset
    if ds:
        dataset = load_dataset(suite.resolve(ds.path), id_column=ds.id_column, format=ds.format, check=check)
    else:
        dataset = _samples(suite, [prompts[v.name] for v in chosen], check)
    for v in chosen:
        _check_mapping(v, dataset)
    instances = dict(evaluators or {})
    specs = list(suite.evaluators) + [EvaluatorSpec(name=n) for n in instances if n not in {e.name for e in suite.evaluators}]
    models = ModelPool(factory, suite.judge)
    bound_evaluators = []
    for spec in specs:
        with located(file=suite.path):
            bound_evaluators.append(resolve(spec, root=suite.root, data_columns=dataset.columns, models=models,
                                            instance=instances.get(spec.name)))
    plan = Plan(suite, dataset, chosen, prompts, targets, bound_evaluators, factory, limit,
                PriceTable.from_config(suite.gate.prices), models=models)
    _check_columns(plan)
    return plan


def _samples(suite: Suite, prompts: list[Prompt | None], check: RowCheck) -> Dataset:
    """Without ``dataset:``, the prompty files' ``sample`` inputs are the rows (like ``pf flow test``)."""
    samples = {}
    for prompt in prompts:
        sample = load_sample(prompt) if prompt else None
        if sample is None:
            raise SuiteError("the suite has no dataset: and a variant's prompt has no sample", file=suite.path,
                             field="dataset", hint="set dataset: data.jsonl (or a sample: in every .prompty)")
        samples[prompt.path] = sample
    return sample_dataset(samples, check=check)


def template_inputs(variant: Variant, row: Row) -> dict[str, Any]:
    """The variables a variant's template sees for *row*."""
    if not variant.inputs:
        return dict(row.data)
    out = {}
    for name, ref in variant.inputs.items():
        m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
        out[name] = row.data.get(m.group(2)) if m and m.group(1) == "data" else ref
    return out


def _check_mapping(variant: Variant, dataset: Dataset) -> None:
    for name, ref in variant.inputs.items():
        m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
        if m and m.group(1) == "data" and m.group(2) not in dataset.columns:
            raise DatasetError(
                f"variant '{variant.name}' maps input '{name}' to {ref}, but the dataset has no column '{m.group(2)}'",
                file=dataset.path, hint="columns: " + ", ".join(dataset.columns),
            )


def _row_check(variants: list[Variant], prompts: dict[str, Prompt | None], limit: int | None) -> RowCheck:
    """Checks a row (one of the first *limit*) against every template: its variables and declared types."""
    needs = [(v, p, p.variables() - set(p.input_defaults)) for v in variants if (p := prompts[v.name]) is not None]

    def check(row: Row, where: Callable[[], str]) -> None:
        if limit and row.index >= limit:
            return
        for v, prompt, needed in needs:
            have = template_inputs(v, row) if v.inputs else row.data
            missing = sorted(needed - set(have))
            if missing:
                raise TemplateError(
                    f"template variable '{missing[0]}' is undefined for {where()} (row id {row.id})",
                    file=prompt.path, hint="row has: " + (", ".join(sorted(have)) or "nothing"),
                )
            prompt.check_row(have, lambda: f"{where()} (row id {row.id})")

    return check


def _check_columns(plan: Plan) -> None:
    """Every row has the columns the evaluators read (a row lacking one is found only when one does)."""
    for e in plan.evaluators:
        for col in sorted(e.data_columns - plan.dataset.common):
            for row in plan.rows():
                if col not in row.data:
                    raise DatasetError(
                        f"column '{col}' (needed by evaluators.{e.name}.column_mapping) is missing",
                        file=plan.dataset.path, line=row.line, hint="columns present: " + ", ".join(row.data),
                    )


@dataclass
class RunOutcome:
    run_id: str
    status: str
    progress: Progress
    store_path: Path
    plan: Plan = field(repr=False)


class Caller:
    """The single path of every model call (:meth:`_call`): a run's variants, LLM judges and embeddings
    endpoints alike. Without a plan, it serves evaluators' models alone (the monitor's judges)."""

    def __init__(self, runner: RunnerConfig, prices: PriceTable, *, models: ModelPool | None = None,
                 concurrency: int | None = None, seed: int | None = None, cache: Cache | None = None,
                 cassette: Cassette | None = None, max_cost: float | None = None) -> None:
        self.cfg = runner
        self.prices = prices
        self.concurrency = concurrency or runner.concurrency
        self.rng = random.Random(seed)
        self.cache = cache
        self.cassette = cassette
        self.max_cost = max_cost
        self.spent = 0.0
        self._reserved = 0.0
        #: Why calls stopped before the end ("budget"), or None.
        self.stop_reason: str | None = None
        self._serial_locks: dict[str, asyncio.Lock] = {}
        self._limiters: dict[str, Limiter] = {}
        self._info: dict[str, dict[str, Any]] = {}
        if models:  # judges and embeddings endpoints call their targets through _call, like variants
            models.bind(self._call)

    def describe(self, target: Target) -> dict[str, Any]:
        """``target.describe()``, asked once per target."""
        if target.name not in self._info:
            self._info[target.name] = target.describe()
        return self._info[target.name]

    async def _call(self, target: Target, messages, params, inputs, *, repeat: int = 0):  # noqa: ANN001
        """Every model call: replay, cache, budget, rate limits, timeout, retries.

        Returns ``(completion, error, latency_ms, attempts)``; ``completion.cached`` and
        ``completion.cost_usd`` say where it came from and what it cost.
        """
        start = time.perf_counter()
        req = key = None
        if target.cacheable and (self.cache or self.cassette):
            req = cache_mod.request(self.describe(target), messages, params, repeat)
            key = cache_mod.key_of(req)
            hit = None
            if self.cassette and self.cassette.mode == "replay":
                hit = self.cassette.replay(key, req)
            elif self.cache:
                hit = self.cache.get(key)
            if hit is not None:
                hit.cached, hit.cost_usd = True, 0.0
                if self.cassette and self.cassette.mode == "record":
                    self.cassette.record(key, req, hit)
                return hit, None, (time.perf_counter() - start) * 1000.0, 0
        info = self.describe(target)
        model = info.get("model") if info.get("kind") in MODEL_KINDS else None
        limiter = self._limiter(target)
        prompt_est = estimate_tokens(messages) if (limiter.tpm or self.max_cost) else 0
        tokens = prompt_est + completion_budget(params) if limiter.tpm else 0
        reserve = 0.0
        if self.max_cost is not None and model:
            reserve = self.prices.cost(model, prompt_est, completion_budget(params)) or 0.0
            if self.spent + self._reserved + reserve > self.max_cost:
                self.stop_reason = "budget"
                return None, "stopped: cost budget reached", None, 0
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
            if self.cache:
                self.cache.put(key, completion)
            if self.cassette:
                self.cassette.record(key, req, completion)
        return completion, None, latency, attempts

    async def _attempts(self, target: Target, messages, params, inputs, limiter: Limiter, tokens: int):  # noqa: ANN001
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
                    completion = await asyncio.wait_for(target.complete(messages, params, inputs), self.cfg.timeout)
                finally:
                    if lock:
                        lock.release()
            except asyncio.TimeoutError:
                err = CallError(f"timeout after {self.cfg.timeout:g}s", retryable=True)
            except CallError as exc:
                err = exc
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


class Engine(Caller):
    """Runs a :class:`Plan` into the store."""

    def __init__(self, plan: Plan, store: Store, run_id: str, *,
                 on_progress: Callable[[Progress], None] | None = None, concurrency: int | None = None,
                 seed: int | None = None, cache: Cache | None = None, cassette: Cassette | None = None,
                 max_cost: float | None = None) -> None:
        super().__init__(plan.suite.runner, plan.prices, models=plan.models, concurrency=concurrency, seed=seed,
                         cache=cache, cassette=cassette, max_cost=max_cost)
        self.plan = plan
        self.store = store
        self.run_id = run_id
        self.on_progress = on_progress
        self._pending: list[dict[str, Any]] = []
        self._pending_since = 0.0

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
        for row in self.plan.rows():
            for variant in self.plan.variants:
                for rep in range(self.cfg.repeats):
                    if (row.id, variant.name, rep) in skip:
                        progress.skipped += 1
                        progress.done += 1
                        continue
                    yield row, variant, rep

    async def _worker(self, items: Iterator[tuple[Row, Variant, int]], progress: Progress) -> None:
        for row, variant, rep in items:
            if self.stop_reason:
                return
            outcome = await self._process(row, variant, rep)
            if outcome is None:  # stopped before it finished: left for --resume
                return
            progress.done += 1
            progress.errors += 0 if outcome[0] else 1
            progress.cached += outcome[1]
            progress.cost_usd = self.spent
            if self.on_progress:
                self.on_progress(progress)

    async def _process(self, row: Row, variant: Variant, rep: int) -> tuple[bool, bool] | None:
        """One item, stored with its scores in one commit -> (succeeded, cached), or None when stopped."""
        plan = self.plan
        prompt = plan.prompts[variant.name]
        inputs = template_inputs(variant, row)
        target = plan.targets[variant.name]
        try:
            messages = prompt.render(inputs, where=plan.dataset.where(row)) if prompt else None
        except TemplateError as exc:  # checked before the run; a row can still fail at render time
            completion, error, latency, attempts = None, exc.format(), None, 0
        else:
            params = plan.parameters(variant)
            if rep and "seed" in params:
                params = {**params, "seed": params["seed"] + rep}
            completion, error, latency, attempts = await self._call(target, messages, params, inputs, repeat=rep)
        if self.stop_reason:
            return None
        if completion is not None and prompt is not None:
            try:
                completion = prompt.finish(completion)
            except CallError as exc:
                completion, error = None, str(exc)
        outputs = scores = None
        if completion is not None:
            outputs = {**completion.outputs, "latency_ms": latency, "prompt_tokens": completion.prompt_tokens,
                       "completion_tokens": completion.completion_tokens, "cost_usd": completion.cost_usd,
                       "cached": completion.cached}
            scores = []
            for ev in plan.evaluators:
                o = await ev.evaluate(row.data, outputs)  # type: ignore[arg-type]
                scores.append({"evaluator": ev.name, "score": o.score, "passed": o.passed, "error": o.error,
                               "details": o.details})
            if self.stop_reason:  # a judge hit the budget: keep nothing half-scored
                return None
        self._put(dict(
            row_id=row.id, variant=variant.name, repeat=rep, row_index=row.index, inputs=row.data,
            output=completion.text if completion else None, outputs=outputs, error=error,
            latency_ms=latency, prompt_tokens=completion.prompt_tokens if completion else None,
            completion_tokens=completion.completion_tokens if completion else None, attempts=attempts,
            scores=scores,
        ))
        return completion is not None, bool(completion and completion.cached)


@dataclass
class Options:
    """How to run: cache, cassette and budget choices (the CLI's flags)."""

    cache: bool = True
    refresh: bool = False
    record: Path | None = None
    replay: Path | None = None
    max_cost: float | None = None


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
    """Run a plan (sync wrapper). Ctrl-C / SIGTERM stop cleanly with status 'interrupted'."""
    suite = plan.suite
    opts = options or Options()
    max_cost = opts.max_cost if opts.max_cost is not None else suite.runner.max_cost
    check_budget(plan, max_cost)
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
        config = suite.model_dump(mode="json")
        store.create_run(run_id, suite.name, str(suite.path) if suite.path else None, manifest, config)
        skip = set()
    use_cache = opts.cache and suite.runner.cache and not opts.replay
    reused = 0
    if use_cache and not opts.refresh and not opts.record and not resume:
        reused = reuse(plan, store, run_id, manifest, config)
        skip = store.completed(run_id, [e.name for e in plan.evaluators]) if reused else skip
    cache = Cache(store.path.parent / "cache.db", refresh=opts.refresh) if use_cache else None
    cassette = Cassette(opts.replay, "replay") if opts.replay else Cassette(opts.record, "record") if opts.record else None
    engine = Engine(plan, store, run_id, on_progress=on_progress, concurrency=concurrency, seed=seed,
                    cache=cache, cassette=cassette, max_cost=max_cost)

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
    progress = Progress(total=plan.total())
    try:
        progress = asyncio.run(main())
        progress.reused = reused
        status = engine.stop_reason or "finished"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise KeyboardInterrupt from None
    finally:
        store.set_status(run_id, status)
        if cache:
            cache.close()
        if cassette:
            cassette.close()
    return RunOutcome(run_id=run_id, status=status, progress=progress, store_path=store.path, plan=plan)


def reuse(plan: Plan, store: Store, run_id: str, manifest: dict[str, Any], config: dict[str, Any]) -> int:
    """Copy, for every variant unchanged since a finished earlier run, that run's successful results.

    Unchanged means: same dataset (hash and rows), repeats, evaluators (code and settings), and the
    same variant -- prompt file, parameters, inputs, target kind and model. This is the response cache
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
            and old_m.get("evaluators") == new_m["evaluators"] and old_c.get("evaluators") == new_c["evaluators"]
            and variant_info(old_m) is not None and variant_info(old_m) == variant_info(new_m)
            and variant_spec(old_c) == variant_spec(new_c))


@dataclass
class Estimate:
    """What ``run --dry-run`` prints: calls, tokens and cost per variant, before any call."""

    variants: list[dict[str, Any]]
    rows: int
    repeats: int

    @property
    def calls(self) -> int:
        return sum(v["calls"] for v in self.variants)

    @property
    def cost_usd(self) -> float | None:
        costs = [v["cost_usd"] for v in self.variants]
        return None if any(c is None for c in costs) else sum(costs)


def estimate(plan: Plan, cache_path: Path | None = None) -> Estimate:
    """Rows x variants x repeats calls, estimated tokens and cost; calls already cached cost nothing."""
    cache = Cache(cache_path) if cache_path and cache_path.exists() else None
    repeats = plan.suite.runner.repeats
    out = []
    try:
        for v in plan.variants:
            prompt, target = plan.prompts[v.name], plan.targets[v.name]
            params = plan.parameters(v)
            model = plan.model_of(v)
            calls = cached = prompt_tokens = 0
            for row in plan.rows():
                messages = prompt.render(template_inputs(v, row), where=plan.dataset.where(row)) if prompt else None
                for rep in range(repeats):
                    p = {**params, "seed": params["seed"] + rep} if rep and "seed" in params else params
                    if cache and target.cacheable:
                        if cache_mod.key_of(cache_mod.request(target.describe(), messages, p, rep)) in cache:
                            cached += 1
                            continue
                    calls += 1
                    prompt_tokens += estimate_tokens(messages)
            completion_tokens = calls * completion_budget(params) if prompt else 0
            price = plan.prices.get(model)
            out.append({"variant": v.name, "target": target.name, "model": model, "calls": calls, "cached": cached,
                        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                        "cost_usd": price.cost(prompt_tokens, completion_tokens) if price else None})
    finally:
        if cache:
            cache.close()
    return Estimate(out, plan.n_rows, repeats)
