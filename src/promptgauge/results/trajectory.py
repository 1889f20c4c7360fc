"""Trajectories in results: what a row's stored ``outputs["trajectory"]`` says, read cheaply.

A result of a tool-calling variant carries its trajectory (``messages``, ``steps``, ``tool_calls``,
``stop_reason``; the shape is in ``docs/reports.md``). Comparisons and reports need four things
of it, all here and all pure:

- :func:`tool_digests` -- two 8-byte digests of the tool calls: of their names in order (the
  *tool sequence*) and of names with arguments. A result without a trajectory has zero digests
  (:data:`NO_TRAJECTORY`); one whose trajectory made no calls has the digests of the empty list.
  The results columns (:mod:`.columns`) keep them per result, so "tool sequence changed" is a
  comparison of 16 bytes per row, whatever the trajectories' size.
- :func:`tool_sequence` -- the compact sequence people read: ``lookup_order → refund``.
- :func:`step_groups` and :func:`first_divergence` -- the messages grouped by step (the input
  messages, then one group per model call or user turn), and the first group where two
  trajectories differ (role, text, tool names or arguments; call ids are ignored).
- :func:`cut_trajectory` -- a trajectory bounded for a report: every text cut to
  :data:`MAX_TEXT` characters and all of them together to :data:`MAX_CHARS` per row and side.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: Characters of one message, tool argument or tool result a report keeps.
MAX_TEXT = 2_000
#: Characters of all texts of one trajectory a report keeps (per row and side).
MAX_CHARS = 12_000
#: Tool calls (id, step, name, error) a report keeps per row and side.
MAX_CALLS = 100
#: Tool names the compact tool sequence shows before "… +N more".
MAX_NAMES = 20
#: The digests of a result without a trajectory.
NO_TRAJECTORY = bytes(8)
ARROW = " → "


def load_trajectory(value: Any) -> dict[str, Any] | None:
    """A trajectory object from a stored value (an object, or JSON text of one); None otherwise."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def canonical(value: Any) -> str:
    """JSON text that is equal for equal values (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _parsed(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return None
    return arguments


def call_list(traj: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The trajectory's tool calls (``tool_calls``; else read from its assistant messages), each with
    ``name``, ``arguments`` (parsed JSON or None) and ``arguments_raw``."""
    if not traj:
        return []
    if isinstance(traj.get("tool_calls"), list):
        return [c for c in traj["tool_calls"] if isinstance(c, dict)]
    out = []
    for step, m in enumerate(x for x in traj.get("messages") or [] if isinstance(x, dict) and x.get("role") == "assistant"):
        for call in m.get("tool_calls") or []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                raw = fn.get("arguments")
                out.append({"id": call.get("id"), "step": step, "name": fn.get("name"), "arguments": _parsed(raw),
                            "arguments_raw": raw if isinstance(raw, str) else None})
    return out


def call_signature(call: dict[str, Any]) -> tuple[str, str]:
    """(name, canonical arguments): what makes two calls the same call. Malformed arguments compare
    by their raw text."""
    args = call.get("arguments")
    if args is None and call.get("arguments_raw") is not None:
        return str(call.get("name")), "raw:" + str(call["arguments_raw"])
    return str(call.get("name")), canonical(args)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def tool_digests(calls: list[Any] | None) -> tuple[bytes, bytes]:
    """(digest of the tool names in order, digest of names with arguments) of *calls* -- dicts with
    ``name``/``arguments``/``arguments_raw``, or ``[name, arguments, arguments_raw]`` triples as the
    store's query gives them; ``None`` (no trajectory) gives :data:`NO_TRAJECTORY` twice."""
    if calls is None:
        return NO_TRAJECTORY, NO_TRAJECTORY
    sigs = [call_signature(c if isinstance(c, dict) else {"name": c[0], "arguments": c[1], "arguments_raw": c[2]})
            for c in calls]
    return _digest(canonical([n for n, _ in sigs])), _digest(canonical(sigs))


def trajectory_digests(value: Any) -> tuple[bytes, bytes]:
    """:func:`tool_digests` of a stored trajectory value (None: no trajectory)."""
    traj = load_trajectory(value)
    return tool_digests(None if traj is None else call_list(traj))


def tool_change(a: tuple[bytes, bytes], b: tuple[bytes, bytes]) -> str | None:
    """``"sequence"`` when the tool names (in order) differ, ``"arguments"`` when only arguments do, else
    None. No trajectory counts as no tool calls."""
    empty = tool_digests([])
    a = empty if a[0] == NO_TRAJECTORY else a
    b = empty if b[0] == NO_TRAJECTORY else b
    return "sequence" if a[0] != b[0] else "arguments" if a[1] != b[1] else None


def tool_sequence(traj: dict[str, Any] | None, limit: int = MAX_NAMES) -> str | None:
    """``lookup_order → refund`` (repeated calls as ``lookup_order ×3``; at most *limit* names, then
    ``… +N more`` calls); ``(no tool calls)`` for a trajectory without calls; None without a trajectory."""
    if traj is None:
        return None
    names = [str(c.get("name")) for c in call_list(traj)]
    if not names:
        return "(no tool calls)"
    runs: list[list[Any]] = []  # consecutive calls of one tool: [name, times]
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    shown = [name if n == 1 else f"{name} ×{n}" for name, n in runs[:limit]]
    more = f"{ARROW}… +{sum(n for _, n in runs[limit:])} more" if len(runs) > limit else ""
    return ARROW.join(shown) + more


# -- steps and the first divergence --------------------------------------------------------------


def message_list(traj: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The trajectory's messages; for one that has only ``tool_calls``, an assistant message per step
    with its calls and a tool message per result."""
    if not traj:
        return []
    messages = traj.get("messages")
    if isinstance(messages, list):
        return [m for m in messages if isinstance(m, dict)]
    out: list[dict[str, Any]] = []
    for call in call_list(traj):
        step = call.get("step")
        raw = call.get("arguments_raw")
        fn = {"name": call.get("name"), "arguments": raw if raw is not None else canonical(call.get("arguments"))}
        item = {"id": call.get("id"), "type": "function", "function": fn}
        if out and out[-1]["role"] == "assistant" and out[-1].get("_step") == step and step is not None:
            out[-1]["tool_calls"].append(item)
        else:
            out.append({"role": "assistant", "content": None, "tool_calls": [item], "_step": step})
        out.append({"role": "tool", "tool_call_id": call.get("id"), "content": call.get("result")})
    return [{k: v for k, v in m.items() if k != "_step"} for m in out]


def step_groups(messages: list[dict[str, Any]]) -> list[list[int]]:
    """Message indices grouped: first the input (every message before the first assistant message),
    then a group per assistant message (with the tool results that follow it) and per later user turn."""
    groups: list[list[int]] = [[]]
    started = False
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "assistant" or (started and role == "user"):
            started = True
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups


def text_of(content: Any) -> str:
    """A message's content as text (a list of parts: their texts; anything else: JSON)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", p.get("content")) if isinstance(p, dict) else p for p in content]
        if all(isinstance(p, str) for p in parts):
            return "\n".join(parts)
    return canonical(content)


def _message_key(m: dict[str, Any]) -> tuple[Any, ...]:
    calls = tuple(call_signature({"name": (c.get("function") or {}).get("name"),
                                  "arguments": _parsed((c.get("function") or {}).get("arguments")),
                                  "arguments_raw": (c.get("function") or {}).get("arguments")})
                  for c in m.get("tool_calls") or [] if isinstance(c, dict))
    return m.get("role"), text_of(m.get("content")), calls


def first_divergence(a: dict[str, Any] | None, b: dict[str, Any] | None) -> int | None:
    """The first step group (:func:`step_groups`; 0 is the input) after the input where the two
    trajectories differ -- in a message's role or text, or a tool call's name or arguments -- or
    where one ends before the other; None when they agree (or either has no trajectory). The input
    group is not compared: variants differ in their prompts by design."""
    if a is None or b is None:
        return None
    ma, mb = message_list(a), message_list(b)
    ga, gb = step_groups(ma), step_groups(mb)
    for k in range(1, max(len(ga), len(gb))):
        if k >= len(ga) or k >= len(gb):
            return k
        if [_message_key(ma[i]) for i in ga[k]] != [_message_key(mb[i]) for i in gb[k]]:
            return k
    return None


# -- bounded for a report -------------------------------------------------------------------------


class _Budget:
    def __init__(self, total: int, each: int) -> None:
        self.left, self.each, self.texts_cut = total, each, 0

    def text(self, value: Any) -> str:
        text = value if isinstance(value, str) else text_of(value)
        keep = min(len(text), self.each, max(self.left, 0))
        self.left -= keep
        if keep < len(text):
            self.texts_cut += 1
            return text[:keep] + f"… [{len(text) - keep:,} more characters]"
        return text


def cut_trajectory(traj: dict[str, Any] | None, *, max_text: int = MAX_TEXT,
                   max_chars: int = MAX_CHARS) -> dict[str, Any] | None:
    """*traj* bounded for a report: ``messages`` with each text (content, tool arguments) cut to
    *max_text* characters and all of them to *max_chars* (messages past the budget are left out),
    ``tool_calls`` as ``{id, step, name, error}`` (at most :data:`MAX_CALLS`), ``stop_reason``, ``steps``
    (how many model calls), and ``cut``: ``{texts, messages, tool_calls}`` -- how many texts were
    shortened, and messages and calls left out."""
    if traj is None:
        return None
    budget = _Budget(max_chars, max_text)
    messages = []
    source = message_list(traj)
    for m in source:
        if budget.left <= 0:
            break
        out: dict[str, Any] = {"role": m.get("role"), "content": budget.text(m.get("content"))}
        for key in ("name", "tool_call_id"):
            if m.get(key) is not None:
                out[key] = str(m[key])
        calls = []
        for c in m.get("tool_calls") or []:
            fn = c.get("function") if isinstance(c, dict) and isinstance(c.get("function"), dict) else {}
            calls.append({"id": c.get("id") if isinstance(c, dict) else None, "name": str(fn.get("name")),
                          "arguments": budget.text(fn.get("arguments"))})
        if calls:
            out["tool_calls"] = calls
        messages.append(out)
    every = call_list(traj)
    calls = [{"id": c.get("id"), "step": c.get("step"), "name": str(c.get("name")),
              "error": _short(c["error"]) if c.get("error") else None} for c in every[:MAX_CALLS]]
    steps = traj.get("steps")
    return {"messages": messages, "tool_calls": calls, "stop_reason": traj.get("stop_reason"),
            "steps": len(steps) if isinstance(steps, list) else None,
            "cut": {"texts": budget.texts_cut, "messages": len(source) - len(messages),
                    "tool_calls": len(every) - len(calls)}}


def _short(value: Any, limit: int = 300) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"
