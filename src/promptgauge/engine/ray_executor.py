"""The Ray executor (``runner.executor: ray``): a run's heavy work on a Ray cluster, the driver its only writer.

The driver plans the run and runs the worker pool exactly as in process (:class:`~.pool.Engine`); this
executor only changes *where* two kinds of work happen:

- **CPU-bound evaluators** (every evaluator that calls no model: NLP metrics, local embeddings, custom
  Python code) score items in Ray tasks, :attr:`RaySpec.batch_size` items per task. A worker process
  builds the suite's evaluators once (:func:`_evaluators`) and keeps them for the tasks it runs after.
  A task lost with its worker or node is run again elsewhere (Ray's task retries): scoring is a pure
  function of the item, and only the driver stores results, once, when a batch comes back -- so
  nothing is lost or stored twice.
- **In-process models** (``local:`` targets and local judges) run in Ray actors, :attr:`RaySpec.replicas`
  per model, each loading the model once; the driver's target is a :class:`RemoteTarget` that sends each
  call to the least busy replica. With ``calls: workers`` remote-model (HTTP) targets are sent to
  replicas too; by default they stay on the driver, which is I/O bound anyway.

Every model call still goes through the driver's :class:`~.calls.Caller`: the response cache and
cassettes, the cost budget, retries and the endpoint's one rate-limit state (RPM/TPM buckets and AIMD
concurrency of :mod:`promptgauge.ratelimit`) are the driver's, so they hold for the whole cluster
exactly as for one process, and a warm re-run makes no model call on any node. LLM judges, evaluators
given as instances from the Python API, and Python/flow targets stay on the driver.

Ray is started (or joined) with usage statistics off and without its dashboard: no telemetry, ever.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CallError, PromptGaugeError, SuiteError
from ..targets import Completion, Target
from .pool import score_row

if TYPE_CHECKING:
    from ..datasets import Row
    from ..suite import RaySpec
    from .plan import Plan

#: Environment every Ray process we start or join runs with: no usage statistics, no prompt about them.
NO_TELEMETRY = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0",
                "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
#: Target kinds that run in process (a model loaded by the process that calls it).
IN_PROCESS_KINDS = ("local",)
#: Remote-model kinds ``calls: workers`` sends to replicas.
REMOTE_KINDS = ("openai", "azure", "http")
#: Seconds a partly filled batch waits for more items before it is sent.
BATCH_WAIT = 0.02
#: Seconds the model replicas get to start (and load their model) before the run gives up.
REPLICA_START_SECONDS = 300.0
#: Batches in flight per cluster CPU (keeps every worker busy while results travel back).
BATCHES_PER_CPU = 2


def start_ray(address: str | None) -> tuple[Any, bool]:
    """Import Ray with telemetry off and join the cluster at *address* (else ``RAY_ADDRESS``, else a new
    local one without dashboard). Returns ``(ray, started)``: *started* when this call connected."""
    os.environ.update(NO_TELEMETRY)  # read by Ray when it is imported and when it starts processes
    try:
        import ray
    except ImportError:
        raise SuiteError("runner.executor: ray needs Ray", field="runner.executor",
                         hint="pip install 'promptgauge[ray]'") from None
    if ray.is_initialized():
        return ray, False
    kwargs: dict[str, Any] = {"configure_logging": False, "log_to_driver": False, "logging_level": "ERROR",
                              "runtime_env": {"env_vars": dict(NO_TELEMETRY)}}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise SuiteError(f"cannot join the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {exc}",
                         field="runner.ray.address",
                         hint="start it with: ray start --head --disable-usage-stats --include-dashboard=false") from None
    return ray, True


# -- on the workers -----------------------------------------------------------------------------------------

#: The evaluators a worker process built, by suite file, its hash and the evaluator names.
_BUILT: dict[tuple[Any, ...], tuple[list[Any], set[str]]] = {}


def _evaluators(suite_path: str, sha256: str, names: tuple[str, ...], columns: tuple[str, ...]) -> tuple[list[Any], set[str]]:
    """The suite's evaluators *names*, built once per worker process (checked against the driver's suite hash)."""
    key = (suite_path, sha256, names, columns)
    if key not in _BUILT:
        from ..suite import load_suite
        from .session import Session

        if not Path(suite_path).is_file():
            raise SuiteError("a Ray worker cannot read the suite file: every node needs the suite folder at the same "
                             "path (a shared volume, the image, or runtime_env working_dir)", file=suite_path)
        suite = load_suite(suite_path)
        if suite.sha256 != sha256:
            raise SuiteError("a Ray worker reads another version of the suite file than the driver", file=suite_path)
        session = Session.for_suite(suite, offline=True)
        specs = {e.name: e for e in suite.evaluators}
        _BUILT[key] = ([session.evaluator(specs[n], data_columns=list(columns)) for n in names],
                       {e.name for e in suite.evaluators if e.per_turn})
    return _BUILT[key]


def score_batch(suite: tuple[str, str, tuple[str, ...], tuple[str, ...]],
                items: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """A Ray task: the scores of *items* (``(row_id, data, outputs)``) by the suite's CPU-bound evaluators."""
    evaluators, per_turn = _evaluators(*suite)

    async def run() -> list[list[dict[str, Any]]]:
        return [await score_row(evaluators, per_turn, row_id, data, outputs) for row_id, data, outputs in items]

    return asyncio.run(run())


class Replica:
    """A Ray actor holding one target (an in-process model, loaded once) that the driver's calls go to."""

    def __init__(self, suite_path: str, recipe: tuple[str, ...], offline: bool, threads: int) -> None:
        from ..prompts import load_prompt
        from ..suite import load_suite
        from ..targets import TargetFactory

        os.environ["PROMPTGAUGE_LOCAL_THREADS"] = str(max(1, threads))
        suite = load_suite(suite_path)
        factory = TargetFactory(suite.root, suite.targets, timeout=suite.runner.timeout, offline=offline)
        self.target = factory.get(recipe[1]) if recipe[0] == "ref" else factory.for_prompt(load_prompt(recipe[1]),
                                                                                            recipe[2])

    async def complete(self, messages: Any, parameters: dict[str, Any], inputs: dict[str, Any]) -> tuple[str, Any]:
        try:
            completion = await self.target.complete(messages, parameters, inputs)
        except CallError as exc:
            return "error", {"message": str(exc), "retryable": exc.retryable, "retry_after": exc.retry_after,
                             "throttled": exc.throttled}
        return "ok", completion.to_dict()

    def pid(self) -> int:
        return os.getpid()


# -- on the driver -------------------------------------------------------------------------------------------

class RemoteTarget:
    """The driver's face of a target whose calls run in :class:`Replica` actors: the same name, description
    (so the same cache keys), seeds and rate limits as the target it stands for, not serialised here (each
    replica takes one call at a time)."""

    serial = False

    def __init__(self, target: Target, replicas: list[Any]) -> None:
        self.inner = target
        self.name = target.name
        self.cacheable = target.cacheable
        self.seeded = getattr(target, "seeded", False)
        self.rpm = getattr(target, "rpm", None)
        self.tpm = getattr(target, "tpm", None)
        self.replicas = replicas
        self.busy = [0] * len(replicas)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    async def complete(self, messages: Any, parameters: dict[str, Any], inputs: dict[str, Any]) -> Completion:
        i = min(range(len(self.replicas)), key=self.busy.__getitem__)
        self.busy[i] += 1
        try:
            kind, payload = await self.replicas[i].complete.remote(messages, parameters, inputs)
        except CallError:
            raise
        except Exception as exc:  # noqa: BLE001 - the replica is gone for good: the Caller retries the call
            raise CallError(f"Ray replica of '{self.name}' failed: {type(exc).__name__}: {exc}", retryable=True) from None
        finally:
            self.busy[i] -= 1
        if kind == "error":
            raise CallError(payload["message"], retryable=payload["retryable"], retry_after=payload["retry_after"],
                            throttled=payload["throttled"])
        return Completion.from_dict(payload)

    async def aclose(self) -> None:
        await self.inner.aclose()


class RayExecutor:
    """Scores items in Ray tasks and runs in-process models in Ray actors (see the module's description)."""

    def __init__(self, plan: Plan, spec: RaySpec, *, address: str | None = None, offline: bool = False) -> None:
        suite = plan.suite
        if suite.path is None:
            raise SuiteError("runner.executor: ray needs the suite as a file (its workers read it)")
        self.spec = spec
        self.ray, self._started = start_ray(address if address is not None else spec.address)
        ray = self.ray
        resources = ray.cluster_resources()
        self.cpus = max(1, int(resources.get("CPU", 1)))
        self.nodes = max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
        self._suite_path = str(Path(suite.path).resolve())
        self.replicas: dict[tuple[str, ...], list[Any]] = {}
        self.reserved = 0.0  # CPUs the model replicas hold
        self._place_models(plan, offline)
        remote = [e for e in plan.evaluators if e.model is None and e.name not in plan.instances]
        # Scoring tasks need a CPU the replicas do not hold; without one, items are scored on the driver.
        self.remote = remote if self.cpus - self.reserved >= 1 else []
        self.here = [e for e in plan.evaluators if e not in self.remote]
        self._suite_key = (self._suite_path, suite.sha256, tuple(e.name for e in self.remote),
                           tuple(plan.dataset.columns))
        self._task = ray.remote(score_batch).options(num_cpus=1, max_retries=10, retry_exceptions=False)
        self._queue: list[tuple[tuple[str, dict[str, Any], dict[str, Any]], asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Task] = set()

    # -- models -----------------------------------------------------------------------------------------
    def _place_models(self, plan: Plan, offline: bool) -> None:
        """Replace every in-process model (and, with ``calls: workers``, every remote model) the run calls --
        variants' targets and judges' -- by a :class:`RemoteTarget` on replicas."""
        kinds = IN_PROCESS_KINDS + (REMOTE_KINDS if self.spec.calls == "workers" else ())
        suite, session = plan.suite, plan.session
        wrapped: dict[int, Target] = {}

        def wrap(target: Target, recipe: tuple[str, ...]) -> Target:
            if target.describe().get("kind") not in kinds:
                return target
            if id(target) not in wrapped:
                wrapped[id(target)] = RemoteTarget(target, self._replicas(recipe, target, offline))
            return wrapped[id(target)]

        for v in plan.variants:
            recipe = ("ref", v.target) if v.target else ("prompt", str(suite.resolve(v.prompt)), f"prompty:{v.name}")
            plan.targets[v.name] = wrap(plan.targets[v.name], recipe)
        session.replace_targets(lambda ref, target: wrap(target, ("ref", ref)))

    def _replicas(self, recipe: tuple[str, ...], target: Target, offline: bool) -> list[Any]:
        serial = getattr(target, "serial", False)
        n = self.spec.replicas or (self.nodes if serial else 1)
        cls = self.ray.remote(Replica).options(
            num_cpus=self.spec.replica_cpus if serial else 0, num_gpus=self.spec.replica_gpus if serial else 0,
            max_restarts=-1, max_task_retries=-1, max_concurrency=1 if serial else 256, scheduling_strategy="SPREAD")
        threads = max(1, int(self.spec.replica_cpus))
        replicas = [cls.remote(str(Path(self.suite_path).resolve()), recipe, offline, threads) for _ in range(n)]
        # Ready before the first call, so that start-up (a model load) is not taken for a slow call.
        try:
            self.pids = self.ray.get([r.pid.remote() for r in replicas], timeout=REPLICA_START_SECONDS)
        except self.ray.exceptions.GetTimeoutError:
            raise SuiteError(f"{n} replica(s) of target '{target.name}' did not start within "
                             f"{REPLICA_START_SECONDS:g} s: the cluster has {self.cpus} CPUs and each replica asks for "
                             f"{self.spec.replica_cpus:g} CPUs and {self.spec.replica_gpus:g} GPUs",
                             field="runner.ray.replicas", hint="ask for fewer replicas or less replica_cpus") from None
        except self.ray.exceptions.RayActorError as exc:
            raise SuiteError(f"a replica of target '{target.name}' failed to start: {exc}",
                             field="runner.ray") from None
        self.replicas[recipe] = replicas
        self.reserved += n * (self.spec.replica_cpus if serial else 0)
        return replicas

    @property
    def suite_path(self) -> str:
        return self._suite_path

    # -- scoring ----------------------------------------------------------------------------------------
    def slots(self, concurrency: int) -> int:
        """Enough items in flight to keep :data:`BATCHES_PER_CPU` batches per cluster CPU busy."""
        if not self.remote:
            return concurrency
        return max(concurrency, self.spec.batch_size * self.cpus * BATCHES_PER_CPU)

    async def score(self, plan: Plan, row: Row, outputs: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.remote:
            return await score_row(plan.evaluators, plan.per_turn, row.id, row.data, outputs)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append(((row.id, row.data, outputs), future))
        if len(self._queue) >= self.spec.batch_size:
            self._send()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(BATCH_WAIT, self._send)
        here = await score_row(self.here, plan.per_turn, row.id, row.data, outputs) if self.here else []
        there = await future
        by_name = {s["evaluator"]: s for s in here + there}
        return [by_name[e.name] for e in plan.evaluators]

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._queue = self._queue, []
        if not batch:
            return
        ref = self._task.remote(self._suite_key, [item for item, _ in batch])
        task = asyncio.ensure_future(self._collect(ref, [f for _, f in batch]))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _collect(self, ref: Any, futures: list[asyncio.Future]) -> None:
        try:
            results = await ref
        except Exception as exc:  # noqa: BLE001 - retries exhausted: the items fail the run (resume redoes them)
            cause = getattr(exc, "cause", None)  # a RayTaskError's own exception (a suite the workers cannot read)
            for f in futures:
                if not f.done():
                    f.set_exception(cause if isinstance(cause, PromptGaugeError) else exc)
            return
        for f, scores in zip(futures, results):
            if not f.done():
                f.set_result(scores)

    def close(self) -> None:
        """Leave the cluster (a local one started for this run stops; actors of this run end with it)."""
        if self._timer is not None:
            self._timer.cancel()
        for task in self._pending:
            task.cancel()
        if self._started:
            self.ray.shutdown()
