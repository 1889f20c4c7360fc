"""Finding evaluators by name and binding their column mappings (their outputs: :mod:`.outcome`).

An evaluator is a plain callable ``(**columns) -> dict`` -- the azure-ai-evaluation
contract -- so builtins, the project's own ``evaluators/*.py`` and
azure-ai-evaluation classes (``azure.ai.evaluation:RelevanceEvaluator``) plug in
the same way. Lookup order for a suite's ``type:``: builtin name (``not-NAME``
negates a deterministic builtin), then ``module:attribute``, then in the suite's
``evaluators/`` folder: ``NAME.py``, ``NAME.prompty`` (a rubric judge), any
other ``*.py`` defining ``NAME``; ``flow:PATH`` is a promptflow evaluation flow (:mod:`.flow`).

A class is built with the entry's ``params`` plus what its constructor asks
for: ``judge`` (an :class:`~.models.EvaluatorModel` for the entry's ``target:``
or the suite's ``judge:``), ``embedder`` (one for ``target:``, if set),
``model_config`` (azure-ai-evaluation classes: the judge as a model
configuration) and ``threshold`` (the entry's ``threshold:``).

Which way a score is better is the entry's ``higher_is_better:``, else the
evaluator's own ``higher_is_better`` (azure-ai-evaluation's ``_higher_is_better``)
attribute, else higher; the run manifest records it for comparisons and the gate.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import inspect
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EvaluatorError, located
from ..suite import COLUMN_REF, EvaluatorSpec
from ..telemetry import silence_loaded
from .azure import AzureEvaluator, is_azure_evaluator, judge_credential, model_config
from .builtin import BUILTINS
from .judge import JUDGES, RubricJudge, judge_evidence
from .models import EvaluatorModel, ModelPool, evaluator_name, repeat_index
from .outcome import Outcome, combine, negated, normalise

_NOT = re.compile(r"^not[-_]")
#: ``type: flow:PATH``: a promptflow evaluation flow (:mod:`.flow`).
FLOW_PREFIX = "flow:"


def builtin_evaluators() -> dict[str, type]:
    """Builtin evaluators: name -> class (the heavier families imported when first asked for)."""
    from .agent import AGENT_JUDGES
    from .embedding import EmbeddingSimilarityEvaluator
    from .nlp import EVALUATORS as NLP
    from .pairwise import PairwiseJudge
    from .refusal import EVALUATORS as REFUSAL
    from .trajectory import TRAJECTORY_EVALUATORS

    return {**BUILTINS, **NLP, **REFUSAL, **JUDGES, **TRAJECTORY_EVALUATORS, **AGENT_JUDGES,
            "embedding_similarity": EmbeddingSimilarityEvaluator, "pairwise": PairwiseJudge}


@dataclass
class BoundEvaluator:
    """An evaluator instance with its resolved column mapping, ready to score rows."""

    name: str
    func: Callable[..., Any]
    mapping: dict[str, Any]
    threshold: float | None = None
    is_async: bool = False
    source: str = "builtin"
    sha256: str | None = None
    data_columns: set[str] = field(default_factory=set)
    model: EvaluatorModel | None = None
    repeats: int = 1
    human_label: str | None = None
    negate: bool = False
    higher_is_better: bool = True

    @property
    def pairwise(self) -> bool:
        """A pairwise judge: run by the engine on (baseline, candidate) pairs of rows, not row by row."""
        return bool(getattr(self.func, "pairwise", False))

    def arguments(self, data: dict[str, Any], outputs: dict[str, Any],
                  baseline: dict[str, Any] | None = None) -> dict[str, Any]:
        """Keyword arguments for one row; a missing ``${target.x}`` (or ``${baseline.x}``) raises ``KeyError``."""
        kwargs = {}
        for param, ref in self.mapping.items():
            m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
            if m is None:
                kwargs[param] = ref
            elif m.group(1) == "data":
                kwargs[param] = _lookup(data, m.group(2), ref)
            elif m.group(1) == "baseline":
                kwargs[param] = _lookup(_agent_outputs(baseline or {}), m.group(2), ref, "the baseline gave: ")
            else:
                kwargs[param] = _lookup(_agent_outputs(outputs), m.group(2), ref, "the target gave: ")
        return kwargs

    def describe(self) -> dict[str, Any]:
        """What the run manifest records about this evaluator."""
        judge = judge_evidence(self.func, self.model)
        return {"source": self.source, "sha256": self.sha256, "threshold": self.threshold,
                "model": self.model.describe() if self.model else None, "repeats": self.repeats,
                "human_label": self.human_label, "higher_is_better": self.higher_is_better,
                **({"judge": judge} if judge is not None else {}),
                **({"judge_prompt": self.func.describe_prompt(), "mapping": self.mapping} if self.pairwise else {})}

    async def evaluate(self, data: dict[str, Any], outputs: dict[str, Any],
                       baseline: dict[str, Any] | None = None) -> Outcome:
        """Score one row (``repeats`` times); any failure is returned as an :class:`Outcome` error, never raised.

        *baseline* is the baseline variant's outputs for the row (``${baseline.x}``: pairwise judges)."""
        try:
            kwargs = self.arguments(data, outputs, baseline)
        except KeyError as exc:
            return Outcome(error=f"KeyError: {exc}")
        outcomes = []
        named = evaluator_name.set(self.name)
        try:
            for i in range(self.repeats):
                token = repeat_index.set(i)
                try:
                    outcomes.append(await self._once(kwargs))
                finally:
                    repeat_index.reset(token)
        finally:
            evaluator_name.reset(named)
        return outcomes[0] if self.repeats == 1 else combine(outcomes, self.threshold, self.higher_is_better)

    async def _once(self, kwargs: dict[str, Any]) -> Outcome:
        try:
            if self.is_async:
                raw = await self.func(**kwargs)
            elif self.source == "builtin":
                raw = self.func(**kwargs)
            else:
                raw = await asyncio.to_thread(self.func, **kwargs)
            outcome = normalise(raw, self.threshold, self.higher_is_better)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an evaluator failing on one row must not stop the run
            details = getattr(exc, "details", None)
            return Outcome(error=f"{type(exc).__name__}: {exc}", details=details if isinstance(details, dict) else None)
        return negated(outcome) if self.negate else outcome


#: Target outputs of a tool loop that are parts of its trajectory: ``${target.messages}``, ``${target.tool_calls}``.
TRAJECTORY_PARTS = ("messages", "tool_calls")
#: The target outputs only a tool loop (or a target returning a trajectory) has.
AGENT_OUTPUTS = ("trajectory", *TRAJECTORY_PARTS, "tool_definitions")


def _agent_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """*outputs* with ``messages`` and ``tool_calls`` taken from the trajectory when the target gave none."""
    trajectory = outputs.get("trajectory")
    if not isinstance(trajectory, dict) or all(k in outputs for k in TRAJECTORY_PARTS):
        return outputs
    return {**{k: trajectory[k] for k in TRAJECTORY_PARTS if k in trajectory}, **outputs}


def _lookup(values: dict[str, Any], path: str, ref: str, have: str = "") -> Any:
    cur: Any = values
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif cur is values and part in AGENT_OUTPUTS:
            raise KeyError(f"{ref} is not available for this row: only a variant whose prompt declares tools "
                           "(a tool loop) has it; the target outputs of this row are " + ", ".join(sorted(values)))
        else:
            listed = f" ({have}{', '.join(map(str, values))})" if have else ""
            raise KeyError(f"{ref} is not available for this row{listed}")
    return cur


def resolve(spec: EvaluatorSpec, *, root: Path, data_columns: list[str], models: ModelPool | None = None,
            instance: Any = None) -> BoundEvaluator:
    """Build the evaluator a suite entry names (or wrap *instance*) and check its mapping against the dataset."""
    kind = spec.kind
    negate = False
    if instance is not None:
        cls = type(instance)
        found = _Found(instance, f"instance:{cls.__module__}.{cls.__qualname__}", None, factory=False)
    else:
        if _NOT.match(kind) and kind not in builtin_evaluators() and kind[4:] in BUILTINS:
            negate, kind = True, kind[4:]
        found = _find(kind, root)
    func, model = _instantiate(found, spec, kind, models, root)
    own_direction = _higher_is_better(func, found.obj)
    if is_azure_evaluator(func):
        func = AzureEvaluator(func, _signature(func) or inspect.Signature())
    params = _call_params(func)
    mapping: dict[str, Any] = {}
    defaults = getattr(found.obj, "inputs", None) or getattr(func, "inputs", None) or {}
    for param in params:
        if param in spec.column_mapping:
            mapping[param] = spec.column_mapping[param]
        elif param in defaults:
            mapping[param] = defaults[param]
        elif param == "response":
            mapping[param] = "${target.response}"
        elif param in data_columns:
            mapping[param] = f"${{data.{param}}}"
    unknown = set(spec.column_mapping) - set(params) if not _takes_kwargs(func) else set()
    if unknown:
        raise EvaluatorError(
            f"column_mapping names {', '.join(sorted(unknown))}, which evaluator '{kind}' does not take",
            field=f"evaluators.{spec.name}.column_mapping", hint="it takes: " + ", ".join(params),
        )
    for param, required in params.items():
        if required and param not in mapping:
            raise EvaluatorError(
                f"evaluator '{spec.name}' needs '{param}' but nothing maps it",
                field=f"evaluators.{spec.name}.column_mapping",
                hint=f"add e.g. {param}: ${{data.{param}}}; dataset columns: {', '.join(data_columns)}",
            )
    pairwise = bool(getattr(func, "pairwise", False))
    for param, ref in mapping.items():
        if isinstance(ref, str) and ref.startswith("${baseline.") and not pairwise:
            raise EvaluatorError(
                f"evaluator '{spec.name}' maps {param} to {ref}, but only a pairwise judge sees the baseline's output",
                field=f"evaluators.{spec.name}.column_mapping.{param}",
                hint="use type: pairwise, or ${target.<output>} / ${data.<column>}")
    data_cols = set()
    for param, ref in list(mapping.items()):
        m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
        if m and m.group(1) == "data":
            data_cols.add(m.group(2).split(".")[0])
            if m.group(2).split(".")[0] not in data_columns:
                if param in spec.column_mapping or params.get(param):
                    raise EvaluatorError(
                        f"evaluator '{spec.name}' maps {param} to {ref}, but the dataset has no column "
                        f"'{m.group(2)}'", field=f"evaluators.{spec.name}.column_mapping.{param}",
                        hint="dataset columns: " + ", ".join(data_columns),
                    )
                del mapping[param]  # optional parameter whose default column is absent
                data_cols.discard(m.group(2).split(".")[0])
    if spec.human_label is not None and spec.human_label not in data_columns:
        raise EvaluatorError(
            f"human_label names column '{spec.human_label}', which the dataset does not have",
            field=f"evaluators.{spec.name}.human_label", hint="dataset columns: " + ", ".join(data_columns),
        )
    is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004
    if hasattr(func, "__acall__"):
        func, is_async = func.__acall__, True
    return BoundEvaluator(
        name=spec.name, func=func, mapping=mapping, threshold=spec.threshold, is_async=is_async,
        source=found.source, sha256=found.sha256, data_columns=data_cols, model=model, repeats=spec.repeats,
        human_label=spec.human_label, negate=negate,
        higher_is_better=spec.higher_is_better if spec.higher_is_better is not None else negate or own_direction,
    )


def _higher_is_better(*objs: Any) -> bool:
    """What an evaluator (instance, class or function) says: ``higher_is_better``, or azure's ``_higher_is_better``."""
    for obj in objs:
        for attr in ("higher_is_better", "_higher_is_better"):
            if isinstance(value := getattr(obj, attr, None), bool):
                return value
    return True


@dataclass
class _Found:
    """What a ``type:`` names: a class or factory to build (``factory``), or a ready callable."""

    obj: Any
    source: str
    sha256: str | None
    factory: bool


def _find(kind: str, root: Path) -> _Found:
    builtins = builtin_evaluators()
    if kind in builtins:
        return _Found(builtins[kind], "builtin", None, factory=True)
    folder = root / "evaluators"
    if kind.startswith(FLOW_PREFIX):  # a promptflow evaluation flow: flow:PATH
        from .flow import FlowEvaluator, PromptyFlowEvaluator

        path = root / kind[len(FLOW_PREFIX):].strip()
        if not path.exists():
            raise EvaluatorError(f"flow not found: {path}", hint="type: flow:PATH names a flow.dag.yaml, "
                                 "flow.flex.yaml or their folder, relative to the suite")
        if path.suffix == ".prompty":  # promptflow runs a prompty as a flow too
            return _Found(functools.partial(PromptyFlowEvaluator, path), kind, _file_sha(str(path)), factory=True)
        return _Found(functools.partial(FlowEvaluator, path), kind, _tree_sha(path), factory=True)
    if ":" in kind:
        module_name, _, attr = kind.partition(":")
        try:
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            module = importlib.import_module(module_name)
            silence_loaded()  # azure-ai-evaluation loads promptflow's telemetry handler
        except ImportError as exc:
            hint = "install it with: pip install 'promptgauge[azure]'" if module_name.startswith("azure.ai") else None
            raise EvaluatorError(f"cannot import '{module_name}' for evaluator '{kind}': {exc}", hint=hint) from None
        obj = _getattr_path(module, attr, kind)
        return _Found(obj, kind, _file_sha(getattr(module, "__file__", None)), factory=inspect.isclass(obj))
    if folder.is_dir():
        prompty = folder / f"{kind}.prompty"
        candidates = [folder / f"{kind}.py", prompty] + sorted(p for p in folder.glob("*.py") if p.stem != kind)
        for path in candidates:
            if not path.is_file():
                continue
            source, sha = str(path.relative_to(root)), _file_sha(str(path))
            if path == prompty:
                return _Found(functools.partial(RubricJudge, path), source, sha, factory=True)
            module = _load_module(path)
            silence_loaded()
            if hasattr(module, kind):
                obj = getattr(module, kind)
                return _Found(obj, source, sha, factory=inspect.isclass(obj))
    known = sorted(builtins)
    raise EvaluatorError(
        f"unknown evaluator '{kind}'",
        hint=f"builtins: {', '.join(known)}; or define '{kind}' in {folder}/*.py or {folder}/{kind}.prompty; "
        "or use module:attribute",
    )


_modules: dict[Path, Any] = {}


def _load_module(path: Path) -> Any:
    path = path.resolve()
    if path not in _modules:
        name = "promptgauge_user_evaluators." + path.stem
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - whatever the user's module raises is reported
            raise EvaluatorError(f"cannot load evaluator file: {type(exc).__name__}: {exc}", file=path) from None
        _modules[path] = module
    return _modules[path]


def _getattr_path(module: Any, attr: str, kind: str) -> Any:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise EvaluatorError(f"'{module.__name__}' has no attribute '{attr}' (evaluator '{kind}')")
        obj = getattr(obj, part)
    return obj


def _tree_sha(path: Path) -> str:
    """A digest of a flow's folder (every file in it but hidden ones and caches), so an edit to its code
    changes the evaluator."""
    folder = path if path.is_dir() else path.parent
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file() and not any(
            part.startswith(".") or part == "__pycache__" for part in p.relative_to(folder).parts)):
        digest.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def _file_sha(path: str | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _instantiate(found: _Found, spec: EvaluatorSpec, kind: str, models: ModelPool | None,
                 root: Path | None = None) -> tuple[Callable[..., Any], EvaluatorModel | None]:
    """The evaluator callable, and the model it calls (if any)."""
    field = f"evaluators.{spec.name}"
    target_field, key = spec.target_field, spec.target_field.rpartition(".")[2]
    if not found.factory:
        if spec.target:
            raise EvaluatorError(f"evaluator '{kind}' is already built, so '{key}:' cannot apply", field=target_field)
        if not callable(found.obj):
            raise EvaluatorError(f"'{kind}' is not callable")
        params = check_params(found.obj, spec.params, kind, field) if spec.params else {}
        return (functools.partial(found.obj, **params) if params else found.obj), None
    try:
        accepts = inspect.signature(found.obj).parameters
    except (TypeError, ValueError):
        accepts = {}
    kwargs = check_params(found.obj, spec.params, kind, field)
    model = None
    pool = models or ModelPool(None)
    if "targets" in accepts and "targets" not in kwargs:  # a flow evaluator's connections are suite targets
        kwargs["targets"] = pool.factory
    if "model_pool" in accepts and "model_pool" not in kwargs:  # an evaluation prompty: its own model, or target:
        kwargs["model_pool"] = pool
        if spec.target:
            kwargs["model_ref"] = spec.target
    elif "judge" in accepts and "judge" not in kwargs:
        model = kwargs["judge"] = pool.judge(spec.target, spec.name)
    elif "model_config" in accepts and "model_config" not in kwargs:
        model = pool.judge(spec.target, spec.name)
        with located(field=target_field if spec.target else "judge"):
            kwargs["model_config"] = model_config(model)
        if "credential" in accepts and "credential" not in kwargs and (cred := judge_credential(model)) is not None:
            kwargs["credential"] = cred  # an Entra ID judge target: its token credential
    elif "embedder" in accepts and "embedder" not in kwargs and spec.target:
        model = kwargs["embedder"] = pool.get(spec.target, field=target_field)
        with located(field=target_field):
            model.embeddings  # noqa: B018 - a target without an embeddings endpoint fails here, not on every row
    elif spec.target:
        raise EvaluatorError(f"evaluator '{kind}' calls no model, so '{key}:' does not apply", field=target_field)
    if "root" in accepts and "root" not in kwargs and root is not None:  # files its params name are the suite's
        kwargs["root"] = root
    if "threshold" in accepts and "threshold" not in kwargs and spec.threshold is not None:
        kwargs["threshold"] = spec.threshold
    try:
        with located(field=field + ".params"):
            return found.obj(**kwargs), model
    except TypeError as exc:
        raise EvaluatorError(f"cannot build evaluator '{kind}': {exc}", field=field + ".params") from None
    except ValueError as exc:
        raise EvaluatorError(str(exc), field=field + ".params") from None


def check_params(obj: Any, params: dict[str, Any], kind: str, field: str) -> dict[str, Any]:
    """*params* checked against what *obj* (an evaluator class, factory or function) declares, before any row.

    A name it does not take (unless it takes ``**kwargs``) or a value its annotation rejects
    (``length`` with ``max: ten``) is an :class:`EvaluatorError` naming ``params.NAME``. Values
    are validated as pydantic does in lax mode (``"10"`` for an ``int`` becomes 10; a number
    for a ``str`` becomes its text); unannotated or ``Any`` parameters take anything.
    """
    if not params:
        return {}
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return dict(params)
    declared = {n: p for n, p in sig.parameters.items()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    hints = _type_hints(obj)
    out = {}
    for name, value in params.items():
        where = f"{field}.params.{name}"
        if name not in declared:
            if open_ended:
                out[name] = value
                continue
            raise EvaluatorError(f"evaluator '{kind}' has no parameter '{name}'", field=where,
                                 hint="its parameters: " + (", ".join(declared) or "none"))
        out[name] = _validated(value, hints.get(name), where)
    return out


def _type_hints(obj: Any) -> dict[str, Any]:
    """The resolved annotations of a callable's parameters (of ``__init__`` for a class); {} if unresolvable."""
    target = obj.func if isinstance(obj, functools.partial) else obj
    target = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - a user's annotation we cannot resolve is not checked
        return {}


def _validated(value: Any, annotation: Any, where: str) -> Any:
    if annotation is None or annotation is Any:
        return value
    from pydantic import ConfigDict, PydanticSchemaGenerationError, TypeAdapter, ValidationError

    try:
        adapter = TypeAdapter(annotation, config=ConfigDict(coerce_numbers_to_str=True, arbitrary_types_allowed=True))
    except (PydanticSchemaGenerationError, TypeError, ValueError, NameError):
        return value
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        expected = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise EvaluatorError(f"{value!r} is not a valid value: {reason}", field=where,
                             hint=f"expected {expected}") from None


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    """The keyword signature an evaluator is called with.

    ``__acall__`` wins over ``__call__``; a bare ``(*args, **kwargs)`` call is
    read from the class's first ``__call__`` overload (azure-ai-evaluation's style).
    """
    target = getattr(func, "__acall__", None) or func
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in sig.parameters.values()):
        overloads = typing.get_overloads(getattr(type(func), "__call__", None))  # noqa: B004
        if overloads:
            first = inspect.signature(overloads[0])
            sig = first.replace(parameters=[p for p in first.parameters.values() if p.name != "self"])
    return sig


def _call_params(func: Callable[..., Any]) -> dict[str, bool]:
    """Keyword parameters of an evaluator call -> whether each is required."""
    sig = _signature(func)
    if sig is None:
        return {}
    return {p.name: p.default is p.empty for p in sig.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"}


def _takes_kwargs(func: Callable[..., Any]) -> bool:
    sig = _signature(func)
    return sig is not None and any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
