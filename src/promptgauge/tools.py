"""Tools of an agent variant: their definitions, their implementations, and running one tool call.

A variant's prompt declares tools as OpenAI function schemas (prompty ``model.parameters.tools``,
or the variant's ``parameters: {tools: [...]}``); the suite maps each tool name to an
implementation (``tools:``, per variant over the suite's):

- ``module:function`` -- a Python callable, sync or async, imported from the suite's folder like a
  ``python:`` target; it is called with the call's arguments as keyword arguments, and what it
  returns is the tool result (a string as is, anything else as JSON). A sync tool runs in a daemon
  thread of a pool that grows as needed, so parallel calls run concurrently, the event loop never
  waits for a thread to start, and a hung one is abandoned at the timeout -- until it has returned
  within :data:`FAST_SECONDS` on :data:`FAST_CALLS` calls in a row: such a tool (a lookup in a dict,
  a computation) is then called on the event loop itself, since handing a call to a thread and back
  costs more than the tool (a GIL hand-off each way: measured, ~10 % of an agent run's wall time per
  model call on a loaded 2-core machine); a call that takes longer sends it back to the threads;
- ``${data.COLUMN}`` -- canned results from the row, for deterministic replays: the column holds
  ``{tool_name: result}`` (every call of that tool gets it) or ``{tool_name: [result, ...]}``
  (the n-th call that reaches the tool gets the n-th result; a result that is itself a list is
  written ``[[...]]``).

:meth:`ToolRun.call` runs one call the model asked for and never raises: an unknown tool name,
malformed JSON arguments, arguments that fail the tool's JSON schema, a tool that raises or times
out -- each is recorded on the call (``error``) and returned to the model as ``"error: ..."``,
as real agents do. The loop itself is :mod:`promptgauge.engine.agent`.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .targets.python import import_callable

__all__ = ["CannedTool", "NoCannedResult", "PythonTool", "Tool", "ToolCallRecord", "ToolRun", "Toolbox",
           "load_implementation", "parse_tool_definitions"]

#: The schema of a tool declared without ``parameters``: it takes no arguments.
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "maxProperties": 0}


@dataclass
class Tool:
    """A declared tool: its name, its JSON schema (checked) and the OpenAI definition as written."""

    name: str
    definition: dict[str, Any]
    validator: Any


def parse_tool_definitions(value: Any) -> list[Tool]:
    """The tools of an OpenAI ``tools`` list; raises ``ValueError`` naming the entry (``tools[i]``) that is wrong."""
    import jsonschema

    if not isinstance(value, list) or not value:
        raise ValueError("tools must be a non-empty list of OpenAI function schemas: "
                         "[{type: function, function: {name, description, parameters}}]")
    tools: list[Tool] = []
    for i, item in enumerate(value):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(item, dict) or item.get("type") != "function" or not isinstance(function, dict):
            raise ValueError(f"tools[{i}] is not a function tool; write {{type: function, function: {{name, "
                             f"description, parameters}}}}")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tools[{i}].function has no name")
        if any(t.name == name for t in tools):
            raise ValueError(f"tools[{i}]: tool '{name}' is declared twice")
        schema = function.get("parameters", NO_ARGUMENTS)
        if not isinstance(schema, dict):
            raise ValueError(f"tools[{i}] ({name}): parameters must be a JSON schema object")
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"tools[{i}] ({name}): parameters is not a valid JSON schema: {exc.message}") from None
        tools.append(Tool(name, item, cls(schema)))
    return tools


#: A sync tool that returned within this many seconds on :data:`FAST_CALLS` calls in a row is then called
#: on the event loop (no thread hand-off); one call that takes longer sends it back to the threads.
FAST_SECONDS = 0.002
FAST_CALLS = 3


class PythonTool:
    """A tool implemented by a Python callable (``module:function``, sync or async)."""

    def __init__(self, ref: str, func: Callable[..., Any]) -> None:
        self.ref = ref
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func)
        #: Calls in a row (of a sync tool) that returned within FAST_SECONDS; at FAST_CALLS it runs inline.
        self.fast = 0

    @classmethod
    def load(cls, ref: str, root: Path) -> PythonTool:
        return cls(ref, import_callable(ref, search_path=str(root)))

    async def __call__(self, name: str, arguments: dict[str, Any], run: ToolRun) -> Any:
        if self.is_async:
            return await self.func(**arguments)
        if self.fast >= FAST_CALLS:  # a fast tool: called here, on the loop
            start = time.perf_counter()
            try:
                return self.func(**arguments)
            finally:
                if time.perf_counter() - start > FAST_SECONDS:
                    self.fast = 0
        took = [FAST_SECONDS + 1.0]

        def timed(**kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return self.func(**kwargs)
            finally:
                took[0] = time.perf_counter() - start

        try:
            return await _THREADS.run(timed, arguments)
        finally:  # a call abandoned at the timeout counts as slow (took keeps its default)
            self.fast = self.fast + 1 if took[0] <= FAST_SECONDS else 0

    def describe(self) -> dict[str, Any]:
        """The function and its module file's hash: a changed tool is a changed variant."""
        module = sys.modules.get(getattr(self.func, "__module__", "") or "")
        path = getattr(module, "__file__", None)
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path and Path(path).is_file() else None
        return {"function": self.ref, "sha256": digest}


class _DaemonThreads:
    """Daemon threads for sync tools, started only when none is idle (starting one blocks its caller until it
    runs: under load, longer than the tool). A tool that hangs keeps its thread; the process can still exit."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], dict[str, Any], Callable[[bool, Any], None]]] = \
            queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    async def run(self, func: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            def done() -> None:
                if not future.done():
                    future.set_result(value) if ok else future.set_exception(value)
            try:
                loop.call_soon_threadsafe(done)
            except RuntimeError:  # the run ended (its loop is closed) while this call hung
                pass

        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1
        if start:
            threading.Thread(target=self._work, daemon=True, name="promptgauge-tool").start()
        self._jobs.put((func, kwargs, settle))
        return await future

    def _work(self) -> None:
        while True:
            func, kwargs, settle = self._jobs.get()
            try:
                outcome = (True, func(**kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                outcome = (False, exc)
            settle(*outcome)
            with self._lock:
                self._idle += 1


_THREADS = _DaemonThreads()


class NoCannedResult(Exception):
    """The row holds no canned result for this call."""


class CannedTool:
    """A tool answered from the row (``${data.COLUMN}``: ``{tool: result}`` or ``{tool: [result per call]}``)."""

    def __init__(self, ref: str, column: str) -> None:
        self.ref = ref
        self.column = column

    async def __call__(self, name: str, arguments: dict[str, Any], run: ToolRun) -> Any:
        canned = run.row.get(self.column)
        if isinstance(canned, str) and canned.strip()[:1] == "{":  # a CSV cell holding JSON
            try:
                canned = json.loads(canned)
            except ValueError:
                pass
        if not isinstance(canned, dict):
            raise NoCannedResult(f"the row's {self.ref} is not an object of tool name -> result")
        if name not in canned:
            raise NoCannedResult(f"the row's {self.ref} has no result for tool '{name}'")
        results = canned[name]
        if not isinstance(results, list):
            return results
        n = run.canned_calls.get(name, 0)
        run.canned_calls[name] = n + 1
        if n >= len(results):
            raise NoCannedResult(f"the row's {self.ref} holds {len(results)} result(s) for tool '{name}'; this is "
                              f"call {n + 1}")
        return results[n]

    def describe(self) -> dict[str, Any]:
        return {"canned": self.ref}


Implementation = PythonTool | CannedTool


@dataclass
class ToolCallRecord:
    """One tool call as the trajectory keeps it (see ``AGENT_DESIGN.md``)."""

    id: str
    step: int
    name: str
    arguments: Any
    arguments_raw: str
    result: str
    error: str | None
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "step": self.step, "name": self.name, "arguments": self.arguments,
                "arguments_raw": self.arguments_raw, "result": self.result, "error": self.error,
                "latency_ms": self.latency_ms}


@dataclass
class Toolbox:
    """A variant's declared tools with their implementations; *timeout* (s) bounds each call."""

    tools: list[Tool]
    implementations: dict[str, Implementation]
    timeout: float = 60.0

    @property
    def definitions(self) -> list[dict[str, Any]]:
        """The OpenAI function schemas, as declared (``${target.tool_definitions}``)."""
        return [t.definition for t in self.tools]

    def describe(self) -> dict[str, Any]:
        """What the run manifest records: each tool's implementation (a changed tool changes the variant)."""
        return {name: impl.describe() for name, impl in sorted(self.implementations.items())}

    def run(self, row: dict[str, Any]) -> ToolRun:
        """The tool state of one row's loop (canned results are consumed per call)."""
        return ToolRun(self, row)


@dataclass
class ToolRun:
    """The tools as one row's loop uses them: :meth:`call` runs a call, recording whatever goes wrong."""

    box: Toolbox
    row: dict[str, Any]
    canned_calls: dict[str, int] = field(default_factory=dict)

    async def call(self, call: dict[str, Any], step: int) -> ToolCallRecord:
        """Run one tool call of the model (OpenAI shape); never raises."""
        start = time.perf_counter()
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        name = str(function.get("name") or "")
        raw = function.get("arguments")
        raw = raw if isinstance(raw, str) else json.dumps(raw)
        arguments: Any = None
        error = result = None
        try:
            arguments = json.loads(raw)
        except ValueError as exc:
            error = f"malformed JSON arguments: {exc}"
        tool = next((t for t in self.box.tools if t.name == name), None)
        if tool is None:
            error = f"unknown tool '{name}'; the tools are: {', '.join(t.name for t in self.box.tools)}"
        elif error is None:
            error = _schema_error(tool, arguments)
        if error is None:
            try:
                async with asyncio.timeout(self.box.timeout):
                    value = await self.box.implementations[name](name, arguments, self)
            except TimeoutError:
                error = f"tool timed out after {self.box.timeout:g}s"
            except NoCannedResult as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - the tool's failure is the model's to handle
                error = f"tool raised {type(exc).__name__}: {exc}"
            else:
                result = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return ToolCallRecord(id=str(call.get("id") or ""), step=step, name=name, arguments=arguments,
                              arguments_raw=raw, result=result if error is None else f"error: {error}", error=error,
                              latency_ms=(time.perf_counter() - start) * 1000.0)


def _schema_error(tool: Tool, arguments: Any) -> str | None:
    """Why *arguments* do not fit the tool's schema (the first error), or None."""
    errors = sorted(tool.validator.iter_errors(arguments), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        return f"arguments do not match the tool's schema: at {where}: {errors[0].message}"
    if not isinstance(arguments, dict):
        return f"arguments do not match the tool's schema: a JSON {type(arguments).__name__}, not an object"
    return None


def load_implementation(ref: str, root: Path) -> Implementation:
    """The implementation a ``tools:`` entry names (``${data.COLUMN}`` or ``module:function``)."""
    if ref.startswith("${data."):
        return CannedTool(ref, ref[len("${data."):-1])
    return PythonTool.load(ref, root)
