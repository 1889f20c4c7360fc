"""Conversation rows: a stored conversation scored as it is, replayed turn by turn, or with a simulated user.

A dataset row is a *conversation* when it has a ``messages`` column (an OpenAI chat list) or
azure-ai-evaluation's ``conversation: {messages: [...]}``. What a variant does with it is its
``conversation:`` key:

- ``replay`` (the default): the variant answers each user turn in turn (a run of user messages is
  one turn), with its own earlier answers -- and tool calls, through the tool loop when it declares
  tools -- in the history, as a chat flow's ``chat_history`` does. The stored assistant and tool
  messages are not sent; the row's system messages are replaced by the prompt's.
- ``score``: the stored conversation is the trajectory, as it is; no call, no target needed.

A row with a ``goal`` column in a suite with ``simulator:`` talks to a simulated user (see
:mod:`.simulator`). In all three the variant's side of the history starts with the *system
messages* of its prompt, rendered with the row (template variables the row lacks are empty), and
the trajectory is the whole conversation: ``messages``, ``steps`` (each with its ``turn``),
``tool_calls`` (each with its ``turn``), ``turns`` (``{"turn", "start", "end"}``: ``messages[start:end]``
is the turn, its user messages to the variant's final answer) and ``stop_reason`` (replay: the last
turn's, ``answer`` or ``max_steps``; simulated: ``goal`` or ``max_turns``; stored: ``stored``; any
failed call: ``error``, the partial conversation kept). ``${target.response}`` is the last assistant
message's text.

Every model call is an ordinary :meth:`Caller.call`, so a warm re-run makes none, a cassette replays
a conversation offline, and a row killed mid-conversation is redone from the cache on resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DatasetError, TemplateError
from ..evaluators.outcome import Outcome
from ..targets import Completion, Target
from .agent import Agent, run_agent
from .calls import Caller
from .seeds import call_seed

if TYPE_CHECKING:
    from ..evaluators.registry import BoundEvaluator
    from ..prompts import Prompt

__all__ = ["STORED", "ConversationRun", "Turns", "call_seed", "check_conversation", "conversation_mode",
           "conversation_of", "evaluate_per_turn", "replay", "score_stored", "system_prefix"]

ROLES = ("system", "user", "assistant", "tool")


def conversation_of(data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The row's conversation (``messages``, or ``conversation.messages``), or None for an ordinary row."""
    messages = data.get("messages")
    if isinstance(messages, list):
        return messages
    conv = data.get("conversation")
    if isinstance(conv, dict) and isinstance(conv.get("messages"), list):
        return conv["messages"]
    return None


def check_conversation(messages: list[Any], where: str) -> None:
    """A conversation is a list of ``{role, content}`` messages with at least one user message."""
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise DatasetError(f"{where}: messages[{i}] is not a chat message",
                               hint="each message is {\"role\": system|user|assistant|tool, \"content\": ...}")
        if m["role"] == "user" and not isinstance(m.get("content"), str):
            raise DatasetError(f"{where}: messages[{i}] (a user message) has no text content",
                               hint="write {\"role\": \"user\", \"content\": \"...\"}")
    if not any(m["role"] == "user" for m in messages):
        raise DatasetError(f"{where}: the conversation has no user message", hint="add {\"role\": \"user\", ...}")


def conversation_mode(conversation: str | None, data: dict[str, Any], simulated: bool) -> str | None:
    """``score``, ``replay`` or ``simulate`` for a row; None for an ordinary row of an ordinary variant.

    *conversation* is the variant's ``conversation:`` key; *simulated*: the suite has ``simulator:``.
    """
    if conversation == "score":  # a stored conversation, whatever else the row has (a goal: no simulation)
        return "score"
    if conversation_of(data) is not None:
        return conversation or "replay"
    if simulated and "goal" in data:
        return "simulate"
    return None


class _StoredConversation:
    """The target of a ``conversation: score`` variant without one: never called (rows are scored as stored)."""

    name = "stored-conversation"
    serial = False
    cacheable = False

    async def complete(self, messages: Any, parameters: dict[str, Any], inputs: dict[str, Any]) -> Completion:
        raise AssertionError("a stored conversation is never sent to a target")

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": "conversation", "mode": "score"}


#: The target of ``conversation: score`` variants that name none.
STORED: Target = _StoredConversation()


def system_prefix(prompt: Prompt | None, inputs: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The leading system messages of the variant's prompt, rendered with the row (missing variables empty)."""
    if prompt is None:
        return []
    rendered = prompt.render({**{v: "" for v in prompt.variables()}, **inputs}, where=where)
    if isinstance(rendered, str):
        raise TemplateError("a conversation needs a chat prompt (model.api: chat)", file=prompt.path,
                            field="model.api")
    prefix = []
    for m in rendered:
        if m.get("role") != "system":
            break
        prefix.append(dict(m))
    return prefix


@dataclass
class ConversationRun:
    """One conversation row: the final completion (None on error), the error, sums, the trajectory."""

    completion: Completion | None
    error: str | None
    latency_ms: float | None
    attempts: int
    trajectory: dict[str, Any]
    tool_definitions: list[dict[str, Any]] | None = None

    @property
    def outputs(self) -> dict[str, Any]:
        """Target outputs kept for a failed conversation too."""
        out: dict[str, Any] = {"trajectory": self.trajectory}
        if self.tool_definitions is not None:
            out["tool_definitions"] = self.tool_definitions
        return out


@dataclass
class Turns:
    """The variant's side of a conversation, answered turn by turn through the caller.

    *params_at(turn, step)* gives the parameters of one call -- its own seed, from the row, variant,
    repeat, turn and tool-loop step (:func:`~.seeds.call_seed`) -- so each turn samples independently
    and reproducibly; without it, every call gets *params*.
    """

    caller: Caller
    target: Target
    params: dict[str, Any]
    inputs: dict[str, Any]
    agent: Agent | None
    row: dict[str, Any]
    repeat: int
    history: list[dict[str, Any]]
    steps: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    latency: float = 0.0
    attempts: int = 0
    stop_reason: str = "answer"
    error: str | None = None
    params_at: Callable[[int, int], dict[str, Any]] | None = None

    def parameters(self, turn: int, step: int = 0) -> dict[str, Any]:
        """The parameters of the call at (*turn*, *step*)."""
        return self.params if self.params_at is None else self.params_at(turn, step)

    async def answer(self, user: list[dict[str, Any]]) -> Completion | None:
        """Append the turn's user message(s), answer them; None (and :attr:`error`) when a call failed."""
        turn = len(self.turns)
        start = len(self.history)
        self.history.extend(dict(m) for m in user)
        if self.agent is not None:
            run = await run_agent(self.caller, self.target, self.history, self.parameters(turn), self.inputs,
                                  self.agent, self.row, repeat=self.repeat,
                                  params_at=lambda step: self.parameters(turn, step))
            self.attempts += run.attempts
            self.latency += run.latency_ms or 0.0
            traj = run.trajectory
            self.history = traj["messages"]
            self.steps += [{"turn": turn, **s} for s in traj["steps"]]
            self.calls += [{"turn": turn, **c} for c in traj["tool_calls"]]
            completion, error, stop = run.completion, run.error, traj["stop_reason"]
        else:
            completion, error, took, tries = await self.caller.call(self.target, self.history,
                                                                    self.parameters(turn), self.inputs,
                                                                    repeat=self.repeat)
            self.attempts += tries
            stop = "answer" if completion is not None else "error"
            if completion is not None:
                self.latency += took or 0.0
                self.history.append(completion.message)
                self.steps.append({"turn": turn, "step": 0, "latency_ms": took,
                                   "prompt_tokens": completion.prompt_tokens,
                                   "completion_tokens": completion.completion_tokens, "cached": completion.cached,
                                   "finish_reason": completion.finish_reason, "tool_calls": []})
        self.stop_reason = stop
        if completion is None:
            self.error = f"turn {turn}: {error}"
            return None
        self.turns.append({"turn": turn, "start": start, "end": len(self.history)})
        self.completions.append(completion)
        return completion

    def trajectory(self, **extra: Any) -> dict[str, Any]:
        return {"messages": self.history, "steps": self.steps, "tool_calls": self.calls, "turns": self.turns,
                "stop_reason": "error" if self.error else self.stop_reason, **extra}

    def result(self, **extra: Any) -> ConversationRun:
        """The row's result: the last answer, token and cost sums over every turn, the trajectory."""
        trajectory = self.trajectory(**extra)
        definitions = self.agent.toolbox.definitions if self.agent else None
        if self.error or not self.completions:
            return ConversationRun(None, self.error or "no user turn to answer", self.latency or None,
                                   self.attempts, trajectory, definitions)
        last = self.completions[-1]
        out = Completion(text=last.text, prompt_tokens=_sum([c.prompt_tokens for c in self.completions]),
                         completion_tokens=_sum([c.completion_tokens for c in self.completions]), model=last.model,
                         finish_reason=last.finish_reason,
                         extra={"trajectory": trajectory,
                                **({"tool_definitions": definitions} if definitions is not None else {})})
        out.cached = all(c.cached for c in self.completions)
        out.cost_usd = _sum([c.cost_usd for c in self.completions])
        return ConversationRun(out, None, self.latency, self.attempts, trajectory, definitions)


def _sum(values: list[Any]) -> Any:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


async def replay(turns: Turns, conversation: list[dict[str, Any]]) -> ConversationRun:
    """Answer each user turn of a stored conversation (a run of user messages is one turn) in turn."""
    pending: list[dict[str, Any]] = []
    for m in [*conversation, {"role": "end"}]:
        if m["role"] == "user":
            pending.append({"role": "user", "content": m["content"]})
            continue
        if pending:
            if await turns.answer(pending) is None:
                break
            pending = []
    return turns.result(mode="replay")


def score_stored(conversation: list[dict[str, Any]]) -> ConversationRun:
    """A stored conversation as its own trajectory: turns, tool calls with their results; no call."""
    messages = [dict(m) for m in conversation]
    results = {m.get("tool_call_id"): m.get("content") for m in messages if m["role"] == "tool"}
    calls, turns = [], []
    start = None
    step = 0  # the assistant message's place in its turn: calls of one message were made in parallel
    for i, m in enumerate(messages):
        if m["role"] == "user" and start is None:
            start = i
        if m["role"] != "assistant":
            continue
        turn = len(turns)
        for c in m.get("tool_calls") or []:
            fn = c.get("function") or {}
            calls.append({"turn": turn, "id": c.get("id"), "step": step, "name": fn.get("name"),
                          "arguments": _json_or_none(fn.get("arguments")), "arguments_raw": fn.get("arguments"),
                          "result": results.get(c.get("id")), "error": None, "latency_ms": None})
        step += 1
        if start is not None and not m.get("tool_calls"):
            turns.append({"turn": turn, "start": start, "end": i + 1})
            start = None
            step = 0
    trajectory = {"messages": messages, "steps": [], "tool_calls": calls, "turns": turns, "stop_reason": "stored",
                  "mode": "score"}
    answers = [m for m in messages if m["role"] == "assistant" and isinstance(m.get("content"), str)]
    if not answers:
        return ConversationRun(None, "the stored conversation has no assistant answer to score", None, 0,
                               trajectory)
    completion = Completion(text=answers[-1]["content"], extra={"trajectory": trajectory})
    return ConversationRun(completion, None, None, 0, trajectory)


def _json_or_none(text: Any) -> Any:
    import json

    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


async def evaluate_per_turn(ev: BoundEvaluator, data: dict[str, Any], outputs: dict[str, Any]) -> Outcome:
    """*ev* on every turn of a conversation: the mean score, passed when every turn passed.

    Each turn's evaluator sees ``${target.response}`` = that turn's answer, ``${target.query}`` = its
    user message(s), ``${target.messages}`` = the conversation up to that answer, ``${target.tool_calls}``
    = that turn's tool calls, ``${target.turn}`` = its index. A turn that fails to score makes the row an
    error naming the turn; the per-turn outcomes are in the details (``per_turn``). A row that is not
    a conversation is scored once, as usual.
    """
    trajectory = outputs.get("trajectory")
    turns = trajectory.get("turns") if isinstance(trajectory, dict) else None
    if not turns:
        return await ev.evaluate(data, outputs)
    messages = trajectory["messages"]
    per_turn = []
    for t in turns:
        part = messages[t["start"]:t["end"]]
        answer = next((m.get("content") for m in reversed(part) if m["role"] == "assistant"), None)
        query = "\n".join(m["content"] for m in part if m["role"] == "user")
        o = await ev.evaluate(data, {**outputs, "response": answer or "", "query": query,
                                     "messages": messages[:t["end"]], "turn": t["turn"],
                                     "tool_calls": [c for c in trajectory.get("tool_calls", [])
                                                    if c.get("turn") == t["turn"]]})
        per_turn.append({"turn": t["turn"], "score": o.score, "passed": o.passed, "error": o.error,
                         "details": o.details})
    details = {"per_turn": per_turn}
    failed = next((p for p in per_turn if p["error"]), None)
    if failed:
        return Outcome(error=f"turn {failed['turn']}: {failed['error']}", details=details)
    scores = [p["score"] for p in per_turn if p["score"] is not None]
    passes = [p["passed"] for p in per_turn]
    return Outcome(score=sum(scores) / len(scores) if scores else None,
                   passed=None if any(p is None for p in passes) else all(passes), details=details)
