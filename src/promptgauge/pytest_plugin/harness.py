"""What the pytest plugin stands on: a per-process harness, results whose scores explain themselves.

:class:`Harness` pushes one row through one variant with the engine's own
:class:`~promptgauge.engine.Engine` (rendering, timeouts, retries, store
writes) and records everything under the pytest session's run. A result
already in the session's store is reused, and a per-key lock keeps parallel
pytest-xdist workers from calling the model twice for the same row and variant.

:class:`Score` and :class:`Result` (:mod:`.result`) explain themselves, so
``assert result.f1 >= 0.6`` and :func:`assert_score` can say why a row failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import platform
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..datasets import Dataset, Row, content_id, load_dataset
from ..engine import Agent, Caller, Engine, Plan, Session, current_row, new_run_id, prepare_agent
from ..errors import CallFailed, DatasetError, SuiteError, UserError, located
from ..evaluators.registry import BoundEvaluator
from ..files import check_output, relative
from ..metrics import OPS, THRESHOLD
from ..prompts import load_prompt
from ..store import Store
from ..suite import COLUMN_REF, EvaluatorSpec, Suite, Variant, load_suite
from ..targets import Target
from .result import SHOWN_CHARS, Result, Score

__all__ = ["SHOWN_CHARS", "DatasetRow", "Harness", "Result", "Score", "assert_score", "load_rows", "parse_condition"]

try:  # cross-process locks; without them (Windows) xdist workers may rarely repeat a call
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class DatasetRow(Row):
    """A dataset row handed to a test; remembers its dataset, so rows of different files stay apart."""

    dataset: Dataset | None = field(default=None, repr=False, compare=False)


def load_rows(path: Path, mapping: dict[str, str] | None = None) -> list[tuple[DatasetRow, dict[str, Any]]]:
    """Rows of a dataset file, each with the test arguments *mapping* picks from it.

    *mapping* is ``{argument: "${data.column}"}``; a bad reference or a row
    without the column raises :class:`~promptgauge.errors.DatasetError` naming
    file, line and column.
    """
    dataset = load_dataset(path)
    refs = {}
    for arg, ref in (mapping or {}).items():
        m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
        if m is None or m.group(1) != "data":
            raise DatasetError(f"mapping '{arg}': {ref!r} is not a dataset column reference", file=path,
                               hint="write ${data.<column>}; columns: " + ", ".join(dataset.columns))
        refs[arg] = m.group(2)
    out = []
    for row in dataset.iter_rows():
        values = {}
        for arg, column in refs.items():
            if column not in row.data:
                raise DatasetError(f"column '{column}' (mapped to test argument '{arg}') is missing", file=path,
                                   line=row.line, hint="columns present: " + ", ".join(row.data))
            values[arg] = row.data[column]
        out.append((DatasetRow(row.id, row.index, row.line, row.data, dataset=dataset), values))
    return out


def parse_condition(condition: str | float) -> tuple[str, float]:
    """``">= 4"`` -> ``(">=", 4.0)``; a bare number means ``>=``."""
    if isinstance(condition, (int, float)) and not isinstance(condition, bool):
        return ">=", float(condition)
    m = THRESHOLD.match(f"score {condition}") if isinstance(condition, str) else None
    if m is None:
        raise UserError(f"condition {condition!r} is not 'OP NUMBER'",
                        hint="e.g. '>= 4' or 0.6; OP is one of " + " ".join(OPS))
    return m.group(2), float(m.group(3))


class Harness:
    """One test process's way into the engine: suite, session store and run, one event loop.

    Model calls go through the engine's :class:`~promptgauge.engine.Session`: its response
    cache (the suite store's ``cache.db``, shared with ``promptgauge run``: a rerun calls no
    model for an unchanged request), or a cassette it answers from (*replay*, offline, no API
    key) or records into.
    """

    def __init__(self, suite: str | Path | Suite, run_id: str | None = None, *, store: str | Path | None = None,
                 record: Path | None = None, replay: Path | None = None) -> None:
        self.suite = suite if isinstance(suite, Suite) else load_suite(suite)
        self.run_id = run_id or new_run_id()
        path = check_output(Path(store) if store else session_store(self.suite), "sqlite", "session store")
        self.lock_path = lock_path(path, self.run_id)
        with locked(self.lock_path, "open"):  # xdist workers: SQLite may refuse two first switches to WAL at once
            self.store = Store(path)
        use_cache = self.suite.runner.cache and replay is None
        #: The targets, the judges' models and the call path (cache, cassette, retries) of every call.
        self.session = Session.for_suite(self.suite, offline=replay is not None)
        self.caller: Caller = self.session.open(
            cache=self.suite.resolve(self.suite.store).parent / "cache.db" if use_cache else None,
            record=record, replay=replay)
        self.loop = asyncio.new_event_loop()
        self.calls = 0  #: model calls this process made
        self.hits = 0  #: results this process took from the session's store or the response cache instead
        self._variants: dict[str, tuple[Variant, Any, Target]] = {}
        self._agents: dict[str, Agent] = {}  # the tool loops of variants whose prompts declare tools
        self._evaluators: dict[tuple[str, tuple[str, ...]], BoundEvaluator] = {}
        self._run_created = False

    def _ensure_run(self) -> None:
        """Create the session's run on first use (``--collect-only`` leaves no run behind)."""
        if self._run_created:
            return
        self._run_created = True
        s = self.suite
        manifest = {"promptgauge": __version__, "python": platform.python_version(), "source": "pytest",
                    "suite": {"name": s.name, "path": str(s.path) if s.path else None, "sha256": s.sha256},
                    "variants": {}, "evaluators": {}, "datasets": {}, "seed": s.runner.seed,
                    "seeds": s.runner.seeds}
        with contextlib.suppress(sqlite3.IntegrityError):  # another xdist worker created it first
            self.store.create_run(self.run_id, s.name, str(s.path) if s.path else None, manifest,
                                  s.stored_config())

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.session.aclose())
        finally:
            self.loop.close()
            self.store.close()
            self.session.close()

    # -- what to evaluate ---------------------------------------------------------------------
    def row_key(self, row: Row | dict[str, Any]) -> tuple[str, Row]:
        """The row's name in the session (store, baseline) and the row itself.

        Rows of the suite's dataset keep their id; rows of another dataset file are
        ``<file stem>/<id>``; a dict is a row with its ``id`` or a content hash.
        """
        if isinstance(row, dict):
            rid = str(row["id"]) if row.get("id") not in (None, "") else content_id(row)
            return rid, Row(rid, 0, 0, dict(row))
        if not isinstance(row, Row):
            raise UserError(f"evaluate() takes a dataset row or a dict of inputs, not {type(row).__name__}")
        dataset = getattr(row, "dataset", None)
        if dataset is None or dataset.path.resolve() == self.suite.resolve(self.suite.dataset.path).resolve():
            return row.id, row
        return f"{dataset.path.stem}/{row.id}", row

    def variant(self, variant: str | Variant | Callable[..., Any]) -> tuple[Variant, Any, Target]:
        """A suite variant by name, a :class:`Variant` built in code, or a Python callable as target."""
        target: Target | None = None
        if isinstance(variant, str):
            v = self.suite.variant(variant)
        elif isinstance(variant, Variant):
            v = variant
        elif callable(variant):
            from ..targets.python import PythonTarget

            ref = f"{variant.__module__}:{variant.__qualname__}"
            try:
                v = Variant(name=variant.__name__, target=f"python:{ref}")
            except ValueError:
                raise UserError(f"cannot name a variant after {variant!r}",
                                hint="use a def-function, or Variant(name=..., target=...)") from None
            target = PythonTarget(v.target, variant, ref)
        else:
            raise UserError(f"a variant is a name, a Variant or a callable, not {type(variant).__name__}",
                            hint="variants of the suite: " + ", ".join(x.name for x in self.suite.variants))
        known = self._variants.get(v.name)
        if known is not None:
            same_func = target is None or getattr(known[2], "func", None) is target.func  # type: ignore[attr-defined]
            if known[0] != v or not same_func:
                raise SuiteError(f"two different variants are named '{v.name}' in this test session",
                                 hint="give variants built in code their own names")
            return known
        with located(field=f"variants.{v.name}"):
            prompt = load_prompt(self.suite.resolve(v.prompt)) if v.prompt else None
            target = target or self.session.target(v.target)
        if prompt is None and target.__class__.__name__ != "PythonTarget":
            raise SuiteError(f"variant '{v.name}' has no prompt", hint="set prompt: flows/....prompty")
        self._variants[v.name] = (v, prompt, target)
        agent = prepare_agent(self.suite, v, prompt, target, {**(prompt.parameters if prompt else {}), **v.parameters},
                              None)
        if agent is not None:  # a tool loop: evaluate() runs it like a run does
            self._agents[v.name] = agent
        self.store.update_manifest(self.run_id, "variants", self._plan((v, prompt, target)).manifest()["variants"])
        return self._variants[v.name]

    def _plan(self, variant: tuple[Variant, Any, Target] | None = None, evaluators: Sequence[BoundEvaluator] = (),
              dataset: Dataset | None = None) -> Plan:
        """A plan of one variant (or none) for the engine: what it renders, calls and scores."""
        v, prompt, target = variant or (None, None, None)
        return Plan(self.suite, dataset or _rows_dataset(Path("<test>"), []), [v] if v else [],
                    {v.name: prompt} if v else {}, {v.name: target} if v else {}, list(evaluators), self.session,
                    agents={v.name: self._agents[v.name]} if v and v.name in self._agents else {})

    def evaluators(self, names: list[str] | None, columns: list[str]) -> list[BoundEvaluator]:
        """The suite's evaluators (or those named; a name not in the suite is a builtin or custom one)."""
        specs = {e.name: e for e in self.suite.evaluators}
        chosen = [specs.get(n) or EvaluatorSpec(name=n) for n in names] if names is not None else list(specs.values())
        out = []
        for spec in chosen:
            key = (spec.name, tuple(sorted(columns)))
            if key not in self._evaluators:
                with located(file=self.suite.path if spec in self.suite.evaluators else None):
                    bound = self.session.evaluator(spec, data_columns=columns)
                self._evaluators[key] = bound
                if not bound.pairwise:  # a pairwise judge's verdicts have their own section (_judge_pair)
                    self.store.update_manifest(self.run_id, "evaluators", {
                        bound.name: {"source": bound.source, "sha256": bound.sha256, "threshold": bound.threshold}})
            out.append(self._evaluators[key])
        return out

    # -- evaluating ---------------------------------------------------------------------------
    def evaluate(self, row: Row | dict[str, Any], variant: str | Variant | Callable[..., Any], *,
                 evaluators: list[str] | None = None) -> tuple[str, Result]:
        """Score *row* on *variant*: from the session's store if it is there, else by calling the model.

        Returns the row's session key and the :class:`Result`. Raises
        :class:`UserError` for bad input and :class:`CallFailed` when the
        model call failed after the engine's retries.
        """
        self._ensure_run()
        key, row = self.row_key(row)
        chosen = self.variant(variant)
        v = chosen[0]
        every = self.evaluators(evaluators, list(row.data))
        bound = [ev for ev in every if not ev.pairwise]
        dataset = getattr(row, "dataset", None)
        if dataset is not None:
            self._note_dataset(dataset.path)
        stored_row = Row(key, row.index, row.line, row.data)
        with locked(self.lock_path, f"{v.name}\0{key}"):
            item = self._stored(key, v.name, row)
            if item is None or item["error"]:  # a failed call is tried again, not cached
                engine = Engine(self._plan(chosen, bound, dataset), self.store, self.run_id, self.caller)
                done = self.loop.run_until_complete(engine.process(stored_row, v, 0))
                engine.flush()
                if done is not None and done[1]:
                    self.hits += 1
                else:
                    self.calls += 1
                item = self._stored(key, v.name, row)
                assert item is not None, "the engine stores every result it processes"
            else:
                self.hits += 1
                self._score_missing(item, row, stored_row, v, bound)
        if item["error"]:
            raise CallFailed(f"the model call failed for row {row.id} (variant {v.name}): {item['error']}")
        pairwise = [ev for ev in every if ev.pairwise]
        if pairwise and self.suite.baseline and v.name != self.suite.baseline:
            self._judge_pair(item, row, stored_row, v, pairwise)
            bound = every
        return key, self._result(item, row, v.name, bound, dataset.where(row) if dataset else "")

    def _judge_pair(self, item: dict[str, Any], row: Row, stored_row: Row, v: Variant,
                    pairwise: list[BoundEvaluator]) -> None:
        """Pairwise judges on this row: the variant's answer against the baseline variant's (evaluated,
        or taken from the session, first), in both orders, through the engine's call path."""
        missing = [ev for ev in pairwise if ev.name not in item["scores"]]
        if not missing:
            return
        baseline = self.suite.baseline
        try:
            _, base = self.evaluate(row, baseline, evaluators=[])  # type: ignore[arg-type]
        except CallFailed as exc:
            base = None
            why = f"no pair: the baseline variant '{baseline}' has no answer for this row ({exc})"
        for ev in missing:
            if base is None:
                outcome_score, passed, error, details = None, None, why, None
            else:
                o = self.loop.run_until_complete(_scoring(stored_row.id, ev.evaluate(row.data, item["outputs"] or {},
                                                                                     baseline=base.outputs)))
                outcome_score, passed, error = o.score, o.passed, o.error
                details = {**(o.details or {}), "baseline_variant": baseline}
            self.store.put_score(self.run_id, stored_row.id, v.name, 0, ev.name, score=outcome_score, passed=passed,
                                 error=error, details=details)
            item["scores"][ev.name] = {"score": outcome_score, "passed": passed, "error": error, "details": details}
            self.store.update_manifest(self.run_id, "pairwise", {ev.name: {**ev.describe(), "baseline": baseline}})

    def _stored(self, key: str, variant: str, row: Row) -> dict[str, Any] | None:
        item = next(self.store.iter_results(self.run_id, row_id=key, variant=variant), None)
        if item is None:
            return None
        if _canonical(item["inputs"]) != _canonical(row.data):
            raise DatasetError(f"two different rows are named '{key}' in this test session", row=row.line or None,
                               hint="row ids must be unique within a dataset file")
        return item

    def _score_missing(self, item: dict[str, Any], row: Row, stored_row: Row, v: Variant,
                       bound: list[BoundEvaluator]) -> None:
        for ev in bound:
            if ev.name not in item["scores"]:
                outcome = self.loop.run_until_complete(_scoring(stored_row.id, ev.evaluate(row.data,
                                                                                         item["outputs"] or {})))
                self.store.put_score(self.run_id, stored_row.id, v.name, 0, ev.name, score=outcome.score,
                                     passed=outcome.passed, error=outcome.error, details=outcome.details)
                item["scores"][ev.name] = {"score": outcome.score, "passed": outcome.passed,
                                           "error": outcome.error, "details": outcome.details}

    def _result(self, item: dict[str, Any], row: Row, variant: str, bound: list[BoundEvaluator],
                where: str) -> Result:
        result = Result(row, variant, item["output"], item["outputs"] or {}, where=where)
        for ev in bound:
            s = item["scores"][ev.name]
            result.scores[ev.name] = Score(ev.name, s["score"], passed=s["passed"], error=s["error"],
                                           details=s["details"], result=result)
        return result

    def score_output(self, output: str, evaluator: str, data: dict[str, Any], *,
                     outputs: dict[str, Any] | None = None, result: Result | None = None) -> Score:
        """Score an *output* with one evaluator, without calling the variant; *data* fills ``${data.*}``.

        A judge's model is called through the engine (retries, timeout) like any call.
        """
        self._ensure_run()
        [ev] = self.evaluators([evaluator], list(data))
        row_id = result.row.id if result is not None and result.row is not None else str(data.get("id", ""))
        outcome = self.loop.run_until_complete(_scoring(row_id or None, ev.evaluate(data, {**(outputs or {}),
                                                                                          "response": output})))
        if result is None:
            result = Result(Row(str(data.get("id", "")), 0, 0, data) if data else None, "", output)
        return Score(evaluator, outcome.score, passed=outcome.passed, error=outcome.error, details=outcome.details,
                     result=result)

    def _note_dataset(self, path: Path) -> None:
        rel = relative(path, self.suite.root)
        if rel not in self.__dict__.setdefault("_datasets", set()):
            self._datasets.add(rel)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self.store.update_manifest(self.run_id, "datasets", {rel: digest})


async def _scoring(row_id: str | None, scored: Awaitable[Any]) -> Any:
    """Await an evaluator's scoring of row *row_id*: a judge's calls get that row's seeds."""
    current_row.set(row_id)  # this task's context only
    return await scored


def _rows_dataset(path: Path, rows: list[Row]) -> Dataset:
    """A dataset of rows already read, for the engine (it names a row by *path* in messages)."""
    return Dataset(path, list(rows[0].data) if rows else [], "", len(rows), "sample", records=[r.data for r in rows])


def session_store(suite: Suite) -> Path:
    """pytest sessions are runs of their own store, next to the suite's (``pytest.db``).

    So ``promptgauge compare``/``runs``/``run --resume`` on the suite's store never pick
    a test session as the latest run; ``promptgauge runs --store .../pytest.db`` lists them.
    """
    return suite.resolve(suite.store).with_name("pytest.db")


def lock_path(store: Path, run_id: str) -> Path:
    """The file whose byte locks keep a session's processes from calling the model twice for one row."""
    return store.parent / f".{run_id}.lock"


@contextlib.contextmanager
def locked(path: Path, name: str) -> Iterator[None]:
    """Hold the lock *name* across processes: one byte of the file at *path* (POSIX; elsewhere a no-op)."""
    if fcntl is None:
        yield
        return
    offset = int(hashlib.sha256(name.encode()).hexdigest()[:12], 16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX, 1, offset)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN, 1, offset)


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)


#: The harness of the running pytest session in this process (set by the plugin).
active: Harness | None = None


def assert_score(output: Result | str, evaluator: str, condition: str | float = ">= 1", *,
                 row: Row | dict[str, Any] | None = None, **columns: Any) -> Score:
    """Assert that *evaluator*'s score of *output* meets *condition* (``">= 4"``, ``"< 0.2"``, ``0.6``).

    *output* is a :class:`Result` from ``evaluate`` (its score, if the suite's
    evaluators gave one) or a plain string. The evaluator's ``${data.*}`` columns come
    from the result's row (or *row*), with *columns* added (a judge's ``query=...``).
    Any evaluator works, the suite's or not (an LLM judge calls the suite's ``judge:``).
    A failure names the input, the output, the score, the threshold and the evaluator's
    reason. Returns the score.
    """
    __tracebackhide__ = True
    try:
        score, op, threshold = _score_for(output, evaluator, condition, row, columns)
    except UserError as exc:
        error = str(exc)
    else:
        if not OPS[op](float(score), threshold):
            if score.result is not None:
                score.result.explained = True
            raise AssertionError("\n".join(score.explain(op, threshold)))
        return score
    import pytest

    pytest.fail(f"promptgauge: {error}", pytrace=False)


def _score_for(output: Result | str, evaluator: str, condition: str | float, row: Row | dict[str, Any] | None,
               columns: dict[str, Any]) -> tuple[Score, str, float]:
    op, threshold = parse_condition(condition)
    if not isinstance(output, Result):
        data = {**(row.data if isinstance(row, Row) else row or {}), **columns}
        return _active().score_output(str(output), evaluator, data), op, threshold
    if evaluator in output.scores and not columns:
        return output.scores[evaluator], op, threshold
    data = {**(output.row.data if output.row is not None else {}), **columns}
    score = _active().score_output(output.output or "", evaluator, data, outputs=output.outputs, result=output)
    output.scores[evaluator] = score
    return score, op, threshold


def _active() -> Harness:
    if active is None:
        raise UserError("no promptgauge session is active", hint="run this under pytest with promptgauge installed")
    return active
