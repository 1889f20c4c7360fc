"""The tool loop of an agent variant: call the model, run the tools it asks for, call again.

A variant whose prompt declares tools runs :func:`run_agent` for each row instead of a single
call: the model is called with the whole history; the tool calls it asks for are run (parallel
calls concurrently, their results appended in the model's order); the model is called again --
until it answers without tool calls (``stop_reason`` ``answer``) or ``max_steps`` model calls
asked for tools (``max_steps``; the row's response is then the latest text the model wrote, or,
with ``on_max_steps: answer``, the text of one more call made with ``tool_choice: none``). Every
tool call the model asks for is run and recorded, also at the last step, so the history stays a
valid OpenAI exchange.

Every model call is an ordinary :meth:`Caller.call` -- replay, cache (keyed by the whole message
list and the tools), budget, rate limits, timeout, retries -- so a warm re-run makes no call and
a cassette replays the loop offline. A failed call ends the loop (``stop_reason`` ``error``): the
row is an error, and its partial trajectory is kept. The trajectory's shape is in
``AGENT_DESIGN.md``: ``messages``, ``steps``, ``tool_calls``, ``stop_reason``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DatasetError, SuiteError, TemplateError, located
from ..suite import DEFAULT_MAX_STEPS, Suite, Variant
from ..targets import Completion, Target
from ..tools import Toolbox, load_implementation, parse_tool_definitions
from .calls import MODEL_KINDS, Caller

if TYPE_CHECKING:
    from ..prompts import Prompt

__all__ = ["Agent", "AgentRun", "check_unused_tools", "prepare_agent", "run_agent"]


@dataclass
class Agent:
    """A variant's tool loop: its tools, how many model calls may ask for tools, and what happens then."""

    toolbox: Toolbox
    max_steps: int = DEFAULT_MAX_STEPS
    on_max_steps: str = "stop"

    def describe(self) -> dict[str, Any]:
        """What the run manifest records (tools' implementations and the loop's limits)."""
        return {"tools": self.toolbox.describe(), "max_steps": self.max_steps, "on_max_steps": self.on_max_steps}


@dataclass
class AgentRun:
    """One row's loop: the final completion (None on error), the error, sums over the steps, the trajectory."""

    completion: Completion | None
    error: str | None
    latency_ms: float | None
    attempts: int
    trajectory: dict[str, Any]
    tool_definitions: list[dict[str, Any]]

    @property
    def outputs(self) -> dict[str, Any]:
        """The agent's own target outputs: ``trajectory`` and ``tool_definitions`` (kept for errors too)."""
        return {"trajectory": self.trajectory, "tool_definitions": self.tool_definitions}


async def run_agent(caller: Caller, target: Target, messages: list[dict[str, Any]], params: dict[str, Any],
                    inputs: dict[str, Any], agent: Agent, row: dict[str, Any], *, repeat: int = 0,
                    params_at: Callable[[int], dict[str, Any]] | None = None) -> AgentRun:
    """Run the tool loop for one row; *messages* is the rendered prompt, *params* includes ``tools``.

    *params_at(step)* gives the parameters of step *step*'s call (its own seed); without it, *params*.
    """
    history: list[dict[str, Any]] = [dict(m) for m in messages]
    steps: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    completions: list[Completion] = []
    tools = agent.toolbox.run(row)
    latency = 0.0
    attempts = 0
    stop_reason = "answer"
    error = None
    final = False  # the one extra call of on_max_steps: answer
    step = 0
    while True:
        step_params = params_at(step) if params_at is not None and step else params
        step_params = {**step_params, "tool_choice": "none"} if final else step_params
        # The model call of step `step` (0-based) of this row's loop.
        completion, error, took, tries = await caller.call(target, history, step_params, inputs, repeat=repeat)
        attempts += tries
        if completion is None:
            stop_reason = "error"
            error = f"step {step}: {error}"
            break
        completions.append(completion)
        latency += took or 0.0
        asked = [_with_id(c, step, i) for i, c in enumerate(completion.tool_calls or [])]
        if asked:
            completion.tool_calls = asked
        steps.append({"step": step, "latency_ms": took, "prompt_tokens": completion.prompt_tokens,
                      "completion_tokens": completion.completion_tokens, "cached": completion.cached,
                      "finish_reason": completion.finish_reason, "tool_calls": [c["id"] for c in asked]})
        history.append(completion.message)
        if asked:
            # One call is awaited as it is; parallel calls run concurrently (gather: a task each).
            records = [await tools.call(asked[0], step)] if len(asked) == 1 else \
                await asyncio.gather(*(tools.call(c, step) for c in asked))
            for rec in records:
                calls.append(rec.as_dict())
                history.append({"role": "tool", "tool_call_id": rec.id, "content": rec.result})
        step += 1
        if not asked:
            stop_reason = "max_steps" if final else "answer"
            break
        if step >= agent.max_steps:
            stop_reason = "max_steps"
            if agent.on_max_steps == "answer" and not final:
                final = True
                continue
            break
    trajectory = {"messages": history, "steps": steps, "tool_calls": calls, "stop_reason": stop_reason}
    definitions = agent.toolbox.definitions
    if stop_reason == "error":
        return AgentRun(None, error, latency if steps else None, attempts, trajectory, definitions)
    return AgentRun(_final(completions, trajectory, definitions), None, latency, attempts, trajectory, definitions)


def _with_id(call: dict[str, Any], step: int, index: int) -> dict[str, Any]:
    """A tool call with an id (a server that sends none gets ``call_<step>_<index>``)."""
    return call if call.get("id") else {**call, "id": f"call_{step}_{index}"}


def _sum(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _final(completions: list[Completion], trajectory: dict[str, Any],
           definitions: list[dict[str, Any]]) -> Completion:
    """The row's completion: the final answer (or the latest text), sums over the steps, the trajectory."""
    last = completions[-1]
    text = last.text
    if trajectory["stop_reason"] != "answer":
        text = next((c.text for c in reversed(completions) if c.text), "")
    out = Completion(text=text, prompt_tokens=_sum([c.prompt_tokens for c in completions]),
                     completion_tokens=_sum([c.completion_tokens for c in completions]), model=last.model,
                     finish_reason=last.finish_reason, choices=last.choices if text == last.text else None,
                     extra={**last.extra, "trajectory": trajectory, "tool_definitions": definitions})
    out.cached = all(c.cached for c in completions)
    out.cost_usd = _sum([c.cost_usd for c in completions])
    return out


def prepare_agent(suite: Suite, variant: Variant, prompt: Prompt | None, target: Target, params: dict[str, Any],
                  columns: list[str] | None) -> Agent | None:
    """The tool loop of *variant* if it declares tools (None otherwise), checked before any call.

    Raises a :class:`UserError` naming the file, line and field: tools that are not OpenAI function
    schemas, a declared tool without an implementation, an implementation for a tool the variant does
    not declare, an implementation that cannot be imported or a canned column the dataset lacks, tools
    on a target that is not a model, loop settings on a variant without tools. *columns* (the dataset's;
    None: not known yet) are checked against canned results.
    """
    where = f"variants.{variant.name}"
    index = next((i for i, v in enumerate(suite.variants) if v is variant), -1)  # -1: a variant built in code
    declared_in_variant = "tools" in variant.parameters
    if params.get("tools") is None:
        extra = [k for k in ("tools", "max_steps") if getattr(variant, k)] + \
            (["on_max_steps"] if variant.on_max_steps != "stop" else [])
        if extra:
            raise SuiteError(f"variant '{variant.name}' sets {', '.join(extra)}, but its prompt declares no tools",
                             file=suite.path, line=suite.line("variants", index, extra[0]), field=f"{where}.{extra[0]}",
                             hint="declare them in the prompt's model.parameters.tools (OpenAI function schemas)")
        return None
    if declared_in_variant:
        loc: dict[str, Any] = {"file": suite.path, "line": suite.line("variants", index, "parameters", "tools"),
                               "field": f"{where}.parameters.tools"}
    else:
        loc = {"file": prompt.path if prompt else suite.path, "line": _prompt_line(prompt, r"^\s*tools\s*:"),
               "field": "model.parameters.tools"}
    try:
        tools = parse_tool_definitions(params["tools"])
    except ValueError as exc:
        raise TemplateError(str(exc), **loc) from None
    kind = target.describe().get("kind")
    if kind not in MODEL_KINDS:
        raise SuiteError(f"variant '{variant.name}' declares tools, but its target '{target.name}' is a {kind} target",
                         file=suite.path, line=suite.line("variants", index, "target"), field=f"{where}.target",
                         hint="a tool loop needs a model target: openai:MODEL, azure:DEPLOYMENT or local:smollm2")
    if prompt is not None and prompt.api != "chat":
        raise TemplateError("tools need a chat prompt (model.api: chat)", file=prompt.path, field="model.api")
    refs = {**suite.tools, **variant.tools}
    names = [t.name for t in tools]
    for name in variant.tools:
        if name not in names:
            raise SuiteError(f"variant '{variant.name}' implements tool '{name}', which it does not declare",
                             file=suite.path, line=suite.line("variants", index, "tools", name),
                             field=f"{where}.tools.{name}", hint="declared tools: " + ", ".join(names))
    for i, name in enumerate(names):
        if name not in refs:
            line = _prompt_line(prompt, rf"name\s*:\s*['\"]?{name}\b") if not declared_in_variant else loc["line"]
            raise SuiteError(f"tool '{name}' (variant '{variant.name}') has no implementation",
                             **{**loc, "line": line, "field": f"{loc['field']}[{i}]"},
                             hint=f"add to {suite.path.name if suite.path else 'the suite'}: tools: {{{name}: "
                             f"module:function}}, or {{{name}: ${{data.COLUMN}}}} for canned results")
    implementations = {}
    for name in names:
        ref = refs[name]
        key = ("variants", index, "tools", name) if name in variant.tools else ("tools", name)
        field = f"{where}.tools.{name}" if name in variant.tools else f"tools.{name}"
        with located(file=suite.path, line=suite.line(*key), field=field):
            implementations[name] = load_implementation(ref, suite.root)
            column = getattr(implementations[name], "column", None)
            if column is not None and columns is not None and column not in columns:
                raise DatasetError(f"tool '{name}' reads canned results from {ref}, but the dataset has no column "
                                   f"'{column}'", hint="columns: " + ", ".join(columns))
    toolbox = Toolbox(tools, implementations, timeout=suite.runner.timeout)
    return Agent(toolbox, variant.max_steps or DEFAULT_MAX_STEPS, variant.on_max_steps)


def check_unused_tools(suite: Suite, agents: dict[str, Agent | None]) -> None:
    """Every implementation in the suite's ``tools:`` is for a tool some variant declares (all variants run)."""
    declared = {t.name for a in agents.values() if a for t in a.toolbox.tools}
    for name in suite.tools:
        if name not in declared:
            raise SuiteError(f"tools: '{name}' is implemented, but no variant declares a tool '{name}'",
                             file=suite.path, line=suite.line("tools", name), field=f"tools.{name}",
                             hint="declared tools: " + (", ".join(sorted(declared)) or "none") +
                             "; remove it, or declare it in a prompt's model.parameters.tools")


def _prompt_line(prompt: Prompt | None, pattern: str) -> int | None:
    """The first line of the prompt file matching *pattern* (in its front matter), if any."""
    if prompt is None:
        return None
    try:
        lines = prompt.path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines[:prompt.body_line], start=1):
        if re.search(pattern, line):
            return i
    return None
