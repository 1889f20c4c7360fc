"""Finding evaluators by name, binding their column mappings, normalising their outputs.

An evaluator is a plain callable ``(**columns) -> dict`` -- the azure-ai-evaluation
contract -- so builtins, the project's own ``evaluators/*.py`` and
azure-ai-evaluation classes (``azure.ai.evaluation:F1ScoreEvaluator``) plug in
the same way. Lookup order for a suite's ``type:``: builtin name, then a
callable of that name in the suite's ``evaluators/`` folder, then
``module:attribute``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib.util
import inspect
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import EvaluatorError
from ..suite import COLUMN_REF, EvaluatorSpec

#: Builtin evaluators: name -> class. Filled lazily so optional families load only when used.
def builtin_evaluators() -> dict[str, type]:
    from .builtin import BUILTINS
    from .nlp import EVALUATORS as NLP
    from .refusal import EVALUATORS as REFUSAL

    return {**BUILTINS, **NLP, **REFUSAL}


@dataclass
class Outcome:
    """A normalised evaluator result for one row."""

    score: float | None = None
    passed: bool | None = None
    error: str | None = None
    details: dict[str, Any] | None = None


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

    def arguments(self, data: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for one row; a missing ``${target.x}`` raises ``KeyError``."""
        kwargs = {}
        for param, ref in self.mapping.items():
            m = COLUMN_REF.match(ref) if isinstance(ref, str) else None
            if m is None:
                kwargs[param] = ref
            elif m.group(1) == "data":
                kwargs[param] = _lookup(data, m.group(2), ref)
            else:
                kwargs[param] = _lookup(outputs, m.group(2), ref)
        return kwargs

    async def evaluate(self, data: dict[str, Any], outputs: dict[str, Any]) -> Outcome:
        """Score one row; any failure is returned as an :class:`Outcome` error, never raised."""
        try:
            kwargs = self.arguments(data, outputs)
            if self.is_async:
                raw = await self.func(**kwargs)
            elif self.source == "builtin":
                raw = self.func(**kwargs)
            else:
                raw = await asyncio.to_thread(self.func, **kwargs)
            return normalise(raw, self.threshold)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an evaluator failing on one row must not stop the run
            return Outcome(error=f"{type(exc).__name__}: {exc}")


def _lookup(values: dict[str, Any], path: str, ref: str) -> Any:
    cur: Any = values
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise KeyError(f"{ref} is not available for this row")
    return cur


def normalise(raw: Any, threshold: float | None = None) -> Outcome:
    """Primary score and pass/fail from whatever an evaluator returned.

    - a bool is pass/fail (score 1.0/0.0); a number is the score;
    - a dict: ``score`` if present, else its first numeric value that is not a
      ``*_threshold``; ``passed`` if present, else the first ``*_result`` equal to
      ``pass``/``fail``, else the first bool value;
    - a suite ``threshold`` decides pass/fail when the evaluator gave none.
    """
    score: float | None = None
    passed: bool | None = None
    details: dict[str, Any] | None = None
    if isinstance(raw, bool):
        score, passed = float(raw), raw
    elif isinstance(raw, (int, float)):
        score = float(raw)
    elif isinstance(raw, dict):
        details = raw
        if _is_number(raw.get("score")):
            score = float(raw["score"])
        else:
            for key, value in raw.items():
                if _is_number(value) and not key.endswith("_threshold"):
                    score = float(value)
                    break
        if isinstance(raw.get("passed"), bool):
            passed = raw["passed"]
        else:
            for key, value in raw.items():
                if key.endswith("_result") and value in ("pass", "fail"):
                    passed = value == "pass"
                    break
            else:
                passed = next((v for v in raw.values() if isinstance(v, bool)), None)
        if score is None and passed is not None:
            score = float(passed)
    else:
        raise TypeError(f"evaluator returned {type(raw).__name__}; expected a dict, a number or a bool")
    if score is not None and math.isnan(score):
        score = None
    if threshold is not None and score is not None:
        passed = score >= threshold
    return Outcome(score=score, passed=passed, details=details)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def resolve(spec: EvaluatorSpec, *, root: Path, data_columns: list[str]) -> BoundEvaluator:
    """Build the evaluator a suite entry names and check its mapping against the dataset."""
    kind = spec.kind
    obj, source, sha = _find(kind, root)
    func = _instantiate(obj, spec, kind)
    params = _call_params(func)
    mapping: dict[str, Any] = {}
    defaults = getattr(obj, "inputs", None) or {}
    for param in params:
        if param in spec.column_mapping:
            mapping[param] = spec.column_mapping[param]
        elif param in defaults:
            mapping[param] = defaults[param]
        elif param == "response":
            mapping[param] = "${target.response}"
        elif param in data_columns:
            mapping[param] = "${data.%s}" % param
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
    data_cols = set()
    for param, ref in mapping.items():
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
    is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))
    if hasattr(func, "__acall__"):
        func, is_async = func.__acall__, True
    return BoundEvaluator(
        name=spec.name, func=func, mapping=mapping, threshold=spec.threshold, is_async=is_async,
        source=source, sha256=sha, data_columns=data_cols,
    )


def _find(kind: str, root: Path) -> tuple[Any, str, str | None]:
    builtins = builtin_evaluators()
    if kind in builtins:
        return builtins[kind], "builtin", None
    folder = root / "evaluators"
    if ":" in kind:
        module_name, _, attr = kind.partition(":")
        try:
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EvaluatorError(f"cannot import '{module_name}' for evaluator '{kind}': {exc}") from None
        obj = _getattr_path(module, attr, kind)
        return obj, kind, _file_sha(getattr(module, "__file__", None))
    if folder.is_dir():
        candidates = [folder / f"{kind}.py"] + sorted(p for p in folder.glob("*.py") if p.stem != kind)
        for path in candidates:
            if not path.is_file():
                continue
            module = _load_module(path)
            if hasattr(module, kind):
                return getattr(module, kind), str(path.relative_to(root)), _file_sha(str(path))
    known = sorted(builtins)
    raise EvaluatorError(
        f"unknown evaluator '{kind}'",
        hint=f"builtins: {', '.join(known)}; or define '{kind}' in {folder}/*.py; or use module:attribute",
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
        except Exception as exc:
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


def _file_sha(path: str | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _instantiate(obj: Any, spec: EvaluatorSpec, kind: str) -> Callable[..., Any]:
    if inspect.isclass(obj):
        try:
            return obj(**spec.params)
        except TypeError as exc:
            raise EvaluatorError(f"cannot build evaluator '{kind}': {exc}", field=f"evaluators.{spec.name}.params") from None
        except ValueError as exc:
            raise EvaluatorError(str(exc), field=f"evaluators.{spec.name}.params") from None
    if callable(obj):
        return functools.partial(obj, **spec.params) if spec.params else obj
    raise EvaluatorError(f"'{kind}' is not callable")


def _call_params(func: Callable[..., Any]) -> dict[str, bool]:
    """Keyword parameters of an evaluator call -> whether each is required."""
    target = getattr(func, "__acall__", None) or func
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    out = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
            continue
        out[p.name] = p.default is p.empty
    return out


def _takes_kwargs(func: Callable[..., Any]) -> bool:
    try:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
