"""Any Python callable as a target: ``python:module:function`` (sync or async).

The callable receives the row's inputs as keyword arguments (plus ``messages``
when the variant has a prompt) -- those its signature accepts -- and returns a string
or a dict; a dict's keys become ``${target.<key>}`` columns (``response`` first).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from typing import Any, Callable

from ..errors import CallError, TargetError
from .base import Completion


def import_callable(ref: str, *, search_path: str | None = None) -> Callable[..., Any]:
    """Import ``module:attr`` (``module.sub:attr.attr`` works too)."""
    if ":" not in ref:
        raise TargetError(f"'{ref}' is not a 'module:function' reference")
    module_name, attr = ref.split(":", 1)
    if search_path and search_path not in sys.path:
        sys.path.insert(0, search_path)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetError(f"cannot import module '{module_name}': {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"module '{module_name}' has no attribute '{attr}'") from None
    if not callable(obj):
        raise TargetError(f"'{ref}' is not callable")
    return obj


class PythonTarget:
    serial = False

    def __init__(self, name: str, func: Callable[..., Any], ref: str) -> None:
        self.name = name
        self.func = func
        self.ref = ref
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            params = {}
        # Row columns the callable does not take are not passed (unless it takes **kwargs).
        self._accepts: set[str] | None = None if any(
            p.kind is p.VAR_KEYWORD for p in params.values()) else set(params)

    async def complete(self, messages, parameters, inputs) -> Completion:  # noqa: ANN001 - see Target
        kwargs = {**inputs, "messages": messages} if messages is not None else dict(inputs)
        if self._accepts is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._accepts}
        try:
            if inspect.iscoroutinefunction(self.func):
                out = await self.func(**kwargs)
            else:
                out = await asyncio.to_thread(self.func, **kwargs)
        except Exception as exc:  # the user's code: record, never crash the run
            raise CallError(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(out, dict):
            text = out.get("response", out.get("output", ""))
            extra = {k: v for k, v in out.items() if k != "response"}
            return Completion(text="" if text is None else str(text), extra=extra)
        return Completion(text="" if out is None else str(out))

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": "python", "function": self.ref}
