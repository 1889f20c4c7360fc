"""Any Python callable as a target: ``python:module:function`` (sync or async).

The callable receives the row's inputs it accepts as keyword arguments (plus
``messages`` when the variant has a prompt and the callable accepts it, and the call's ``seed``
when it declares a ``seed`` parameter: the engine's per-call seed) and returns a string
or a dict; a dict's keys become ``${target.<key>}`` columns (``response`` first).
An exception is recorded on its row with the callable's traceback. A sync
callable runs in a daemon thread of its own, so one that hangs past the
timeout is abandoned without blocking the others or the end of the process.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CallError, TargetError
from .base import Completion


def forget_foreign_module(name: str, folder: Path) -> None:
    """Python caches modules by name: when *folder* holds its own ``name`` module, one of that name loaded
    earlier from elsewhere (another suite's or flow's ``app.py`` in this process) is dropped, so *folder*'s loads."""
    top = name.split(".")[0]
    if not ((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()):
        return
    for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
        where = getattr(sys.modules[key], "__file__", None)
        if not where or not Path(where).resolve().is_relative_to(folder.resolve()):
            del sys.modules[key]
    if str(folder) in sys.path:  # its folder first, so the import finds its file
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))


def import_callable(ref: str, *, search_path: str | None = None) -> Callable[..., Any]:
    """Import ``module:attr`` (``module.sub:attr.attr`` works too)."""
    obj = import_object(ref, search_path=search_path)
    if not callable(obj):
        raise TargetError(f"'{ref}' is not callable")
    return obj


def import_object(ref: str, *, search_path: str | None = None) -> Any:
    """The object ``module:attr`` names (``module.sub:attr.attr`` works too), importable from *search_path*."""
    module_name, _, attr = ref.partition(":")
    if not module_name.strip() or not attr.strip():
        raise TargetError(f"'{ref}' is not a 'module:attribute' reference", hint="write e.g. mymodule:my_function")
    if search_path:
        if search_path not in sys.path:
            sys.path.insert(0, search_path)
        forget_foreign_module(module_name, Path(search_path))
    try:
        obj: Any = importlib.import_module(module_name)
    except (ImportError, ValueError) as exc:  # ValueError: a relative name such as '.x'
        raise TargetError(f"cannot import module '{module_name}': {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"module '{module_name}' has no attribute '{attr}'") from None
    return obj


class PythonTarget:
    serial = False
    cacheable = False
    seeded = False

    def __init__(self, name: str, func: Callable[..., Any], ref: str) -> None:
        self.name = name
        self.func = func
        self.ref = ref
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            params = {}
        #: The keyword arguments it takes (None: any, through **kwargs or an unknown signature).
        self._accepts = None if not params or any(p.kind is p.VAR_KEYWORD for p in params.values()) \
            else set(params)
        #: A callable that declares ``seed`` gets each call's own seed (see ``engine.seeds``).
        self.seeded = "seed" in params

    async def complete(self, messages, parameters, inputs) -> Completion:  # arguments: see Target
        kwargs = dict(inputs) if self._accepts is None else {k: v for k, v in inputs.items() if k in self._accepts}
        if messages is not None and (self._accepts is None or "messages" in self._accepts):
            kwargs["messages"] = messages
        if self.seeded and "seed" in parameters:
            kwargs["seed"] = parameters["seed"]
        try:
            if inspect.iscoroutinefunction(self.func):
                out = await self.func(**kwargs)
            else:
                out = await in_daemon_thread(self.func, kwargs)
        except Exception as exc:  # the user's code: record, never crash the run
            raise CallError(f"{type(exc).__name__}: {exc}\n{user_traceback(exc)}") from exc
        return to_completion(out)

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": "python", "function": self.ref}


def user_traceback(exc: BaseException) -> str:
    """The traceback of *exc* without promptgauge's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/promptgauge/" not in f.filename.replace("\\", "/")]
    return "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)) + \
        "".join(traceback.format_exception_only(exc)).rstrip()


async def in_daemon_thread(func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``func(**kwargs)`` in a new daemon thread; cancelling the await abandons the thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def work() -> None:
        try:
            outcome = (True, func(**kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the run ended (the loop is closed) while this call hung
            pass

    threading.Thread(target=work, daemon=True, name="promptgauge-python-target").start()
    return await future


def to_completion(out: Any) -> Completion:
    """A callable's return value as a :class:`Completion` (dict keys become outputs)."""
    if isinstance(out, dict):
        text = out.get("response", out.get("output", ""))
        extra = {k: v for k, v in out.items() if k != "response"}
        return Completion(text="" if text is None else str(text), extra=extra)
    return Completion(text="" if out is None else str(out))
