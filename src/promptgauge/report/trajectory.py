"""Trajectories in reports: the side-by-side view of a changed row's two trajectories, and one-line
tool summaries for markdown, JUnit and CSV.

The document holds each changed row's trajectories already cut
(:func:`promptgauge.results.cut_trajectory`); :func:`side_by_side` pairs their step groups
(the input messages, then a group per model call or user turn) and marks the first divergence.
Every text is handed to the template as plain text: jinja's autoescaping makes it inert, and
:func:`inert` also shows bidirectional-override characters as visible ``⟨U+202E⟩`` marks, so a
tool result cannot reorder what the reader sees around it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from ..compare import RowDiff
from ..escaping import html_text
from ..results.trajectory import MAX_CHARS, MAX_TEXT, step_groups

#: Step groups up to which a row's trajectory opens expanded; longer ones start collapsed.
OPEN_GROUPS = 8
CHANGE = {"sequence": "tool sequence changed", "arguments": "tool arguments changed"}
CUT_NOTE = (f"Trajectories are cut for the report: {MAX_TEXT:,} characters per message, tool argument or tool "
            f"result, {MAX_CHARS:,} per row and side; results.jsonl and the store keep them whole.")


def inert(text: Any) -> Markup:
    """*text* escaped, with control and bidirectional characters shown as visible marks
    (:func:`promptgauge.escaping.html_text`, styled: for element content)."""
    return html_text(text, styled=True)


def pretty(arguments: str) -> str:
    """Tool arguments indented when they are a JSON object or list, else as they are."""
    try:
        value = json.loads(arguments)
    except (ValueError, TypeError):
        return arguments
    return json.dumps(value, indent=1, ensure_ascii=False) if isinstance(value, (dict, list)) else arguments


@dataclass
class Message:
    """One message as the view shows it."""

    role: str
    text: str
    calls: list[tuple[str, str]] = field(default_factory=list)  # (name, arguments)
    tool: str | None = None  # a tool result: the tool's name
    error: str | None = None  # a tool result: why the call failed


@dataclass
class Group:
    label: str
    baseline: list[Message]
    candidate: list[Message]
    diverged: bool = False
    after: bool = False


@dataclass
class View:
    groups: list[Group]
    open: bool
    divergence: str | None
    notes: list[str]


def _messages(traj: dict[str, Any] | None) -> tuple[list[Message], list[list[int]]]:
    if not traj:
        return [], [[]]
    calls = {c.get("id"): c for c in traj.get("tool_calls") or [] if c.get("id")}
    names: dict[Any, str] = {}
    out = []
    for m in traj.get("messages") or []:
        msg = Message(str(m.get("role")), m.get("content") or "")
        for c in m.get("tool_calls") or []:
            names[c.get("id")] = c.get("name")
            msg.calls.append((str(c.get("name")), pretty(c.get("arguments") or "")))
        if msg.role == "tool":
            call = calls.get(m.get("tool_call_id"), {})
            msg.tool = names.get(m.get("tool_call_id")) or call.get("name") or m.get("name")
            msg.error = call.get("error")
        out.append(msg)
    return out, step_groups(traj.get("messages") or [])


def _label(group: list[Message], k: int) -> str:
    if k == 0:
        return "input"
    return "user turn" if group and group[0].role == "user" else "step"


def _notes(name: str, traj: dict[str, Any] | None) -> list[str]:
    if not traj:
        return [f"{name}: no trajectory"]
    cut = traj.get("cut") or {}
    parts = [f"{cut[k]} {what}" for k, what in (("texts", "texts shortened"), ("messages", "messages left out"),
                                                 ("tool_calls", "tool calls left out")) if cut.get(k)]
    stop = traj.get("stop_reason")
    line = f"{name}: {traj.get('steps') if traj.get('steps') is not None else '?'} model calls, stopped: {stop}"
    return [line + (f" ({', '.join(parts)})" if parts else "")]


def side_by_side(row: RowDiff) -> View | None:
    """The row's two trajectories, step group by step group, the first divergence marked; None when the
    row carries no trajectory."""
    b, c = row.baseline.trajectory, row.candidate.trajectory
    if b is None and c is None:
        return None
    (mb, gb), (mc, gc) = _messages(b), _messages(c)
    groups = []
    steps = 0
    for k in range(max(len(gb), len(gc))):
        left = [mb[i] for i in gb[k]] if k < len(gb) else []
        right = [mc[i] for i in gc[k]] if k < len(gc) else []
        label = _label(left or right, k)
        if label == "step":
            label, steps = f"step {steps}", steps + 1
        groups.append(Group(label, left, right, k == row.divergence,
                            row.divergence is not None and k > row.divergence))
    where = None
    if row.divergence is not None and row.divergence < len(groups):
        where = groups[row.divergence].label
    return View(groups, len(groups) <= OPEN_GROUPS, where, _notes("baseline", b) + _notes("candidate", c))


def tools_line(row: RowDiff) -> str:
    """``baseline: a → b; candidate: a → c (tool sequence changed)`` -- '' without trajectories."""
    b, c = row.baseline.tools, row.candidate.tools
    if b is None and c is None:
        return ""
    line = f"baseline: {b or '(no trajectory)'}; candidate: {c or '(no trajectory)'}"
    return line + (f" ({CHANGE[row.tool_change]})" if row.tool_change else "")


# -- conversations: per-turn scores ----------------------------------------------------------------

#: How a turn's verdict shows in one-line summaries: passed, failed, an error, no pass/fail.
TURN_MARKS = {True: "✓", False: "✗", "error": "E", None: "·"}


def turn_marks(score: dict[str, Any] | None) -> str:
    """``✓✓✗``: an evaluator's per-turn verdicts on one conversation ('' when it has none)."""
    return "".join(TURN_MARKS["error"] if t.get("error") else TURN_MARKS[t.get("passed")]
                   for t in (score or {}).get("turns") or [])


def turn_evaluators(row: RowDiff) -> list[str]:
    """The evaluators that scored this row turn by turn (``per_turn: true`` on a conversation), on either side."""
    names = [ev for side in (row.candidate, row.baseline) for ev, s in side.scores.items() if s.get("turns")]
    return list(dict.fromkeys(names))


def _turn_changed(b: dict[str, Any] | None, c: dict[str, Any] | None) -> bool:
    key = ("score", "passed", "error")
    return tuple((b or {}).get(k) for k in key) != tuple((c or {}).get(k) for k in key)


@dataclass
class TurnRow:
    """One turn of a conversation: per evaluator, the baseline's and the candidate's score of that turn."""

    turn: int
    cells: list[tuple[dict[str, Any] | None, dict[str, Any] | None, bool]]  # (baseline, candidate, changed)
    first_change: bool = False


@dataclass
class TurnView:
    evaluators: list[str]
    turns: list[TurnRow]
    first_change: int | None  # the first turn whose scores differ between the sides


def turn_table(row: RowDiff) -> TurnView | None:
    """The row's per-turn scores side by side, turn by turn, the first turn that changed marked; None when no
    evaluator scored it per turn."""
    evs = turn_evaluators(row)
    if not evs:
        return None
    per = {ev: [(row.baseline.scores.get(ev) or {}).get("turns") or [],
                (row.candidate.scores.get(ev) or {}).get("turns") or []] for ev in evs}
    n = max(len(t) for sides in per.values() for t in sides)
    turns, first = [], None
    for k in range(n):
        cells = []
        for ev in evs:
            b, c = (t[k] if k < len(t) else None for t in per[ev])
            cells.append((b, c, _turn_changed(b, c)))
        if first is None and any(ch for _, _, ch in cells):
            first = k
        turns.append(TurnRow(k, cells, first == k))
    return TurnView(evs, turns, first)


def turns_line(row: RowDiff) -> str:
    """``polite per turn: baseline ✓✓✗, candidate ✓✓✓ (first change: turn 2)`` -- '' without per-turn scores."""
    view = turn_table(row)
    if view is None:
        return ""
    parts = [f"{ev} per turn: baseline {turn_marks(row.baseline.scores.get(ev)) or '–'}, candidate "
             f"{turn_marks(row.candidate.scores.get(ev)) or '–'}" for ev in view.evaluators]
    return "; ".join(parts) + (f" (first change: turn {view.first_change})" if view.first_change is not None else "")


def failed_turns(score: dict[str, Any] | None) -> str:
    """``turns 2, 3 of 3`` -- the turns whose verdict failed (or erred), '' when none did or there are none."""
    turns = (score or {}).get("turns") or []
    bad = [str(t["turn"] if t.get("turn") is not None else i) for i, t in enumerate(turns)
           if t.get("error") or t.get("passed") is False]
    if not bad:
        return ""
    return f"turn{'s' if len(bad) > 1 else ''} {', '.join(bad)} of {len(turns)}"
