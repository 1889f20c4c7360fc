"""Pairwise judging: which of two answers to the same row is better, asked in both orders.

``type: pairwise`` compares the gated variant's answer (``${target.response}``) with the
baseline variant's answer for the same row (``${baseline.response}``) -- see
:mod:`promptgauge.engine.pairs`, which runs it once both variants' rows are scored. The
judge sees the two answers twice, baseline first then candidate first; a verdict that changes
with the order (a position bias) is a tie. The row's score is 1 (the candidate wins), 0.5
(tie) or 0 (the baseline wins); its details keep each order's verdict and reason.

The judge prompt is ``prompts/pairwise.prompty`` with the entry's ``rubric:`` (params), or the
suite's own ``prompt:`` (a ``.prompty`` file, relative to the suite, azure style) whose template
takes ``answer_a`` and ``answer_b`` (and whatever else its inputs map, e.g. ``query``). Replies
are read leniently: JSON (``winner`` / ``preferred`` / ``better`` / ``choice``: ``A``, ``B``,
``tie``), MT-Bench's ``[[A]]`` / ``[[B]]`` / ``[[C]]``, or a labelled ``Winner: A``; anything else
is the row's error, with the raw reply. Both answers are sealed as data (:mod:`.integrity`).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from ..errors import EvaluatorError, JudgeReplyError
from ..prompts import Prompt, load_prompt
from .integrity import instruct, scan, seal
from .judge import PromptyJudge, _text, builtin_prompt, json_object, reply_reason
from .models import EvaluatorModel

__all__ = ["PairwiseJudge", "parse_preference", "combine_orders"]

_WINNER_KEYS = ("winner", "preferred", "preference", "better", "choice", "verdict", "answer")
_BRACKETS = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.IGNORECASE)
_LABELLED = re.compile(r"\b(?:winner|preferred|better(?: answer)?|verdict|choice)\s*\**\s*[:=]\s*\**\s*[\"']?"
                       r"(answer\s+)?(A|B|tie|none|neither|equal|both)\b", re.IGNORECASE)
_TIES = ("tie", "c", "none", "neither", "equal", "both", "draw", "same")


def parse_preference(text: str | None) -> tuple[str, str]:
    """A pairwise judge reply -> ``(choice, reason)``; choice is ``A``, ``B`` or ``tie``.

    Raises :class:`JudgeReplyError` (with the raw reply) when no choice can be read.
    """
    raw = text or ""
    body = raw.strip()
    if not body:
        raise JudgeReplyError("empty judge reply", raw)
    obj = json_object(body)
    if obj is not None:
        reason = reply_reason(obj)
        value = next((obj[k] for k in _WINNER_KEYS if obj.get(k) is not None), None)
        if value is None:
            raise JudgeReplyError("judge reply has no winner", raw)
        return _choice(str(value), raw), reason
    if m := _BRACKETS.search(body):
        return _choice(m.group(1), raw), body
    if m := _LABELLED.search(body):
        return _choice(m.group(2), raw), body
    if body.upper() in ("A", "B") or body.lower() in _TIES:
        return _choice(body, raw), ""
    raise JudgeReplyError("no winner (A, B or tie) found in judge reply", raw)


def _choice(value: str, raw: str) -> str:
    v = value.strip().strip("\"'.*[]").lower()
    v = v.removeprefix("answer").strip()
    if v == "a":
        return "A"
    if v == "b":
        return "B"
    if v in _TIES:
        return "tie"
    raise JudgeReplyError(f"judge winner {value!r} is not A, B or tie", raw)


def combine_orders(baseline_first: str, candidate_first: str) -> tuple[str, bool]:
    """The candidate's verdict from the two orders' choices -> ``(win|tie|loss, flipped)``.

    Shown baseline first, the candidate is ``B``; shown candidate first, it is ``A``. The same verdict in
    both orders stands; a verdict that changes with the order is a tie, and *flipped*.
    """
    first = {"B": "win", "A": "loss", "tie": "tie"}[baseline_first]
    second = {"A": "win", "B": "loss", "tie": "tie"}[candidate_first]
    if first == second:
        return first, False
    return "tie", True


SCORES = {"win": 1.0, "tie": 0.5, "loss": 0.0}


class PairwiseJudge(PromptyJudge):
    """The candidate's answer against the baseline's, in both orders (see the module docstring).

    ``rubric``: the criterion (with the shipped prompt); ``prompt``: a ``.prompty`` of your own
    (relative to the suite's folder); ``inputs``: further row values to show (name -> column
    reference; default: ``query`` from ``${data.query}`` when the dataset has it).
    """

    key = "pairwise"
    #: The engine runs this evaluator after both variants' rows (``engine.pairs``), not row by row.
    pairwise = True
    inputs = {"response": "${target.response}", "baseline_response": "${baseline.response}"}

    def __init__(self, *, judge: EvaluatorModel, rubric: str | None = None, prompt: str | None = None,
                 root: Path | None = None, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(judge=judge, threshold=0.5, parameters=parameters)
        if (rubric is None) == (prompt is None):
            raise EvaluatorError("a pairwise judge needs one of 'rubric:' (the criterion, with the shipped prompt) "
                                 "or 'prompt:' (a .prompty file of your own) in its params")
        self.rubric = rubric
        self.own: Prompt | None = None
        if prompt is not None:
            path = Path(prompt) if root is None else Path(root) / prompt
            if not path.is_file():
                raise EvaluatorError(f"pairwise prompt '{prompt}' not found", file=path,
                                     hint="a .prompty file taking answer_a and answer_b, relative to the suite")
            self.own = load_prompt(path)
            missing = {"answer_a", "answer_b"} - self.own.variables()
            if missing:
                raise EvaluatorError(f"a pairwise prompt must use {{{{answer_a}}}} and {{{{answer_b}}}}; "
                                     f"it lacks {', '.join(sorted(missing))}", file=path)
        if rubric is not None and (not isinstance(rubric, str) or not rubric.strip()):
            raise EvaluatorError("'rubric:' must be the criterion as text")
        extra = sorted(self.own.variables() - {"answer_a", "answer_b"}) if self.own else ["query"]
        self.extra = extra
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in ("response", "baseline_response")]
            + [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in extra])

    def describe_prompt(self) -> dict[str, Any]:
        """What the judge is asked with (for the run manifest)."""
        if self.own is not None:
            return {"prompt": str(self.own.path), "prompt_sha256": self.own.sha256}
        return {"rubric": self.rubric, "prompt_sha256": builtin_prompt("pairwise").sha256}

    async def _ask(self, answer_a: str, answer_b: str, fields: dict[str, str]) -> tuple[str, str, Any]:
        values = {"answer_a": answer_a, "answer_b": answer_b, **fields}
        if self.own is None:
            shown = {k: v for k, v in fields.items() if v}
            sealed = seal({"answer_a": answer_a, "answer_b": answer_b, "fields": shown, "rubric": self.rubric},
                          keep={"rubric"})
            prompt = builtin_prompt("pairwise")
        else:
            sealed = seal(values)
            prompt = self.own
        messages = instruct(prompt.render(sealed.values), sealed)
        completion = await self.judge.complete(messages, {**prompt.parameters, **self.parameters})
        choice, reason = parse_preference(completion.text)
        return choice, reason, completion

    async def __call__(self, *, response: Any, baseline_response: Any, **fields: Any) -> dict[str, Any]:
        candidate, baseline = _text(response), _text(baseline_response)
        k = self.key
        if candidate == baseline:  # nothing to prefer: a tie, without asking
            return {"score": SCORES["tie"], "passed": False, f"{k}_result": "tie", "flipped": False,
                    f"{k}_reason": "identical answers", "identical": True}
        shown = {k: _text(v) for k, v in fields.items() if v is not None}
        first, first_reason, c1 = await self._ask(baseline, candidate, shown)
        second, second_reason, c2 = await self._ask(candidate, baseline, shown)
        verdict, flipped = combine_orders(first, second)
        out: dict[str, Any] = {
            "score": SCORES[verdict],
            "passed": verdict == "win",
            f"{k}_result": verdict,
            "flipped": flipped,
            "baseline_first": {"choice": first, "verdict": {"B": "win", "A": "loss", "tie": "tie"}[first],
                               "reason": first_reason},
            "candidate_first": {"choice": second, "verdict": {"A": "win", "B": "loss", "tie": "tie"}[second],
                                "reason": second_reason},
            f"{k}_reason": (f"baseline first: {first_reason} | candidate first: {second_reason}"
                            if first_reason or second_reason else ""),
            f"{k}_properties": {
                "prompt_tokens": sum(c.prompt_tokens or 0 for c in (c1, c2)),
                "completion_tokens": sum(c.completion_tokens or 0 for c in (c1, c2)),
                "model": c1.model, "cost_usd": sum(getattr(c, "cost_usd", None) or 0 for c in (c1, c2))},
        }
        flagged = scan({"response": candidate, "baseline_response": baseline})
        if flagged:
            out["judge_injection"] = flagged
        return out
