"""LLM judges: a ``.prompty`` prompt, a judge model, a 1-5 score with a reason.

The six builtin judges (relevance, coherence, fluency, groundedness, similarity,
retrieval) send azure-ai-evaluation's own prompts (``prompts/``) and return its
output keys -- ``relevance``, ``relevance_reason``, ``relevance_result``,
``relevance_threshold`` -- so results read the same in either tool. A rubric
judge (G-Eval style) is a ``.prompty`` file in the project's ``evaluators/``
folder: ``criteria:`` and optional ``steps:``, ``scale:``, ``threshold:`` and
``inputs:`` in its front matter; an empty body uses ``prompts/rubric.prompty``.

The judge model is a suite target (``judge:`` in the suite, or the evaluator's
``model:``), called through the engine (see :mod:`.models`). Replies are parsed
leniently: JSON (bare, fenced or inside prose), tags (``<S2>4</S2>``,
``<score>4</score>``), or a bare or labelled number (``4``, ``Score: 4``,
``4/5``). A reply with no score in range raises :class:`JudgeReplyError`, which
the run records as that row's error, with the raw reply in its details.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..errors import EvaluatorError, JudgeReplyError
from ..prompts import Prompt, load_prompt
from ..public import public_parameters
from .integrity import instruct, scan, seal
from .models import EvaluatorModel

__all__ = [
    "JudgeReplyError", "parse_reply", "PromptyJudge", "RelevanceJudge", "CoherenceJudge", "FluencyJudge",
    "GroundednessJudge", "SimilarityJudge", "RetrievalJudge", "RubricJudge", "JUDGES",
]


_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL | re.IGNORECASE)
_TAG_SCORE = re.compile(rf"<(S2|score|rating)>\s*({_NUMBER})\s*</\1>", re.IGNORECASE)
_TAG_REASON = re.compile(r"<(S1|reason|explanation)>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_BARE = re.compile(rf"^\**\s*({_NUMBER})\s*(?:/\s*\d+|stars?)?\s*\.?\**$", re.IGNORECASE)
_LABELLED = re.compile(rf"\b(?:score|rating|stars)\s*\**\s*[:=]\s*\**\s*({_NUMBER})", re.IGNORECASE)
_FRACTION = re.compile(rf"(?<![\d.])({_NUMBER})\s*/\s*(\d+)\b")
_SCORE_KEYS = ("score", "rating", "stars", "value")
_REASON_KEYS = ("reason", "explanation", "rationale", "justification")


def reply_reason(obj: dict[str, Any]) -> str:
    """The reason a judge's JSON reply gives (the first of :data:`_REASON_KEYS` present), else ``""``."""
    return next((str(obj[k]) for k in _REASON_KEYS if obj.get(k) is not None), "")


def parse_reply(text: str | None, low: float = 1, high: float = 5) -> tuple[float | None, str, str]:
    """A judge reply -> ``(score, reason, status)``; status is ``completed`` or ``skipped``.

    Raises :class:`JudgeReplyError` when no score in ``[low, high]`` can be read.
    """
    raw = text or ""
    body = raw.strip()
    if not body:
        raise JudgeReplyError("empty judge reply", raw)
    obj = json_object(body)
    if obj is not None:
        reason = reply_reason(obj)
        if str(obj.get("status", "")).lower() == "skipped":
            return None, reason, "skipped"
        value = next((obj[k] for k in _SCORE_KEYS if obj.get(k) is not None), None)
        if value is None:
            raise JudgeReplyError("judge reply has no score", raw)
        return _in_range(value, low, high, raw), reason, "completed"
    if m := _TAG_SCORE.search(body):
        reason = _TAG_REASON.search(body)
        return _in_range(m.group(2), low, high, raw), reason.group(2).strip() if reason else "", "completed"
    m = _BARE.match(body) or _LABELLED.search(body)
    if m is None and (f := _FRACTION.search(body)) and float(f.group(2)) == high:
        m = f
    if m is None:
        raise JudgeReplyError("no score found in judge reply", raw)
    return _in_range(m.group(1), low, high, raw), body if m.re is not _BARE else "", "completed"


def json_object(text: str) -> dict[str, Any] | None:
    """The reply's JSON object: the whole text, a fenced block, or the outermost ``{...}`` in prose."""
    candidates = [text, *(m.group(1) for m in _FENCE.finditer(text))]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _in_range(value: Any, low: float, high: float, raw: str) -> float:
    try:
        score = float(str(value).strip())
    except (TypeError, ValueError):
        raise JudgeReplyError(f"judge score {value!r} is not a number", raw) from None
    if math.isnan(score) or not low <= score <= high:
        raise JudgeReplyError(f"judge score {value!r} is outside {low:g}-{high:g}", raw)
    return score


@functools.cache
def builtin_prompt(name: str) -> Prompt:
    """One of the judge prompts shipped in ``promptgauge/evaluators/prompts/``."""
    return load_prompt(Path(str(files("promptgauge.evaluators") / "prompts" / f"{name}.prompty")))


def _text(value: Any) -> str:
    """A column value as prompt text: strings as they are, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class PromptyJudge:
    """Base of the judges: render a prompt, ask the judge model, parse, shape the result.

    ``threshold`` decides ``<key>_result`` (pass when score >= threshold);
    ``parameters`` override the prompt's model parameters (e.g. ``max_tokens``).
    """

    key: str = "score"
    low: float = 1
    high: float = 5
    inputs = {"response": "${target.response}"}

    def __init__(self, *, judge: EvaluatorModel, threshold: float = 3, parameters: dict[str, Any] | None = None) -> None:
        self.judge = judge
        self.threshold = threshold
        self.parameters = dict(parameters or {})

    #: Prompt variables that are the judge's own settings, not graded data (never sealed or scanned).
    SETTINGS = frozenset({"criteria", "steps", "low", "high"})

    async def _judge(self, prompt: Prompt, variables: dict[str, Any],
                     parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        values = {k: v if k in self.SETTINGS or k == "fields" else _text(v) for k, v in variables.items()}
        sealed = seal(values, keep=self.SETTINGS)
        messages = instruct(prompt.render(sealed.values), sealed)
        params = {**prompt.parameters, **(parameters or {}), **self.parameters}
        completion = await self.judge.complete(messages, params)
        score, reason, status = parse_reply(completion.text, self.low, self.high)
        flagged = scan(values, keep=self.SETTINGS)
        injection = {"judge_injection": flagged} if flagged else {}
        k = self.key
        if status == "skipped":
            return {k: None, f"{k}_reason": f"Not applicable: {reason}", f"{k}_result": "not_applicable",
                    f"{k}_threshold": self.threshold, **injection}
        return {
            k: score,
            f"{k}_reason": reason,
            f"{k}_result": "pass" if score >= self.threshold else "fail",
            f"{k}_threshold": self.threshold,
            f"{k}_properties": {"prompt_tokens": completion.prompt_tokens,
                                "completion_tokens": completion.completion_tokens, "model": completion.model,
                                "cost_usd": getattr(completion, "cost_usd", None)},
            **injection,
        }


class RelevanceJudge(PromptyJudge):
    """How well the response addresses the query (azure-ai-evaluation's Relevance prompt)."""

    key = "relevance"

    async def __call__(self, *, query: Any, response: Any) -> dict[str, Any]:
        return await self._judge(builtin_prompt("relevance"), {"query": query, "response": response})


class CoherenceJudge(PromptyJudge):
    """Logical, orderly presentation of ideas (azure-ai-evaluation's Coherence prompt)."""

    key = "coherence"

    async def __call__(self, *, query: Any, response: Any) -> dict[str, Any]:
        return await self._judge(builtin_prompt("coherence"), {"query": query, "response": response})


class FluencyJudge(PromptyJudge):
    """Grammar, vocabulary and readability of the response alone (azure-ai-evaluation's Fluency prompt)."""

    key = "fluency"

    async def __call__(self, *, response: Any) -> dict[str, Any]:
        return await self._judge(builtin_prompt("fluency"), {"response": response})


class GroundednessJudge(PromptyJudge):
    """Whether the response is supported by the context; the query is used when given."""

    key = "groundedness"

    async def __call__(self, *, response: Any, context: Any, query: Any = None) -> dict[str, Any]:
        if query is None:
            return await self._judge(builtin_prompt("groundedness_without_query"),
                                     {"response": response, "context": context})
        return await self._judge(builtin_prompt("groundedness_with_query"),
                                 {"query": query, "response": response, "context": context})


class SimilarityJudge(PromptyJudge):
    """Equivalence of the response and the ground truth, given the query (azure's Similarity prompt)."""

    key = "similarity"

    async def __call__(self, *, query: Any, response: Any, ground_truth: Any) -> dict[str, Any]:
        return await self._judge(builtin_prompt("similarity"),
                                 {"query": query, "response": response, "ground_truth": ground_truth})


class RetrievalJudge(PromptyJudge):
    """Relevance and ranking of retrieved context chunks for the query (azure's Retrieval prompt)."""

    key = "retrieval"

    async def __call__(self, *, query: Any, context: Any) -> dict[str, Any]:
        return await self._judge(builtin_prompt("retrieval"), {"query": query, "context": context})


class RubricJudge(PromptyJudge):
    """A G-Eval style judge declared in a ``.prompty`` file (see the module docstring).

    Its call takes the keyword arguments named by the file's ``inputs:``
    (default: ``response``); an input with a ``default`` is optional.
    """

    _RESERVED = {"criteria", "steps", "low", "high", "fields"}

    def __init__(self, path: str | Path, *, judge: EvaluatorModel, threshold: float | None = None,
                 parameters: dict[str, Any] | None = None) -> None:
        path = Path(path)
        self.prompt = load_prompt(path)
        front = self.prompt.front
        self.criteria = front.get("criteria")
        if not isinstance(self.criteria, str) or not self.criteria.strip():
            raise EvaluatorError("a rubric judge needs 'criteria:' (text) in its front matter", file=path,
                                 field="criteria")
        self.steps = front.get("steps") or []
        if not isinstance(self.steps, list) or not all(isinstance(s, str) for s in self.steps):
            raise EvaluatorError("'steps:' must be a list of strings", file=path, field="steps")
        scale = front.get("scale", [1, 5])
        if not (isinstance(scale, list) and len(scale) == 2 and all(isinstance(x, (int, float)) for x in scale)
                and scale[0] < scale[1]):
            raise EvaluatorError("'scale:' must be [LOW, HIGH] numbers, e.g. [1, 5]", file=path, field="scale")
        self.low, self.high = scale
        if threshold is None:
            threshold = front.get("threshold", math.ceil((self.low + self.high) / 2))
        super().__init__(judge=judge, threshold=threshold, parameters=parameters)
        self.key = path.stem
        self.blank = not self.prompt.source.strip()
        declared = front.get("inputs") or ({} if not self.blank else {"response": {"type": "string"}})
        if not isinstance(declared, dict):
            raise EvaluatorError("'inputs:' must be a mapping of input names", file=path, field="inputs")
        if not declared and not self.blank:
            declared = {name: {} for name in sorted(self.prompt.variables() - self._RESERVED)}
        self.__signature__ = inspect.Signature([
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                              default=spec["default"] if isinstance(spec, dict) and "default" in spec
                              else inspect.Parameter.empty)
            for name, spec in declared.items()
        ])

    async def __call__(self, **fields: Any) -> dict[str, Any]:
        common = {"criteria": self.criteria, "steps": self.steps, "low": self.low, "high": self.high}
        if self.blank:
            shown = {k: _text(v) for k, v in fields.items()}
            return await self._judge(builtin_prompt("rubric"), {**common, "fields": shown}, self.prompt.parameters)
        return await self._judge(self.prompt, {**common, **fields})


#: Builtin judge names (as a suite's ``type:``) -> classes.
JUDGES: dict[str, type] = {
    "relevance": RelevanceJudge,
    "coherence": CoherenceJudge,
    "fluency": FluencyJudge,
    "groundedness": GroundednessJudge,
    "similarity": SimilarityJudge,
    "retrieval": RetrievalJudge,
}


def judge_evidence(judge: Any, model: EvaluatorModel | None) -> dict[str, Any] | None:
    """What a judge's scores rest on besides its code: the judge model, the parameters of its calls (temperature
    0 unless its prompt or parameters set one; each call's seed derives from the run seed, see
    :mod:`promptgauge.engine.seeds`) and the sha256 of the prompts it sends. None for an evaluator that is no
    prompty judge. A change of any of them makes a comparison say so (:func:`promptgauge.compare.compare_sides`).
    """
    if not isinstance(judge, PromptyJudge):
        return None
    prompts = _judge_prompts(judge)
    parameters: dict[str, Any] = {"temperature": 0}
    for prompt in prompts:
        parameters.update(prompt.parameters)
    parameters.update(judge.parameters)
    digest = hashlib.sha256("\n".join(p.sha256 for p in prompts).encode()).hexdigest()
    return {"model": model.describe() if model is not None else None,
            "parameters": public_parameters(json.loads(json.dumps(parameters, default=str, sort_keys=True))),
            "prompt_sha256": digest, "threshold": judge.threshold}


def _judge_prompts(judge: PromptyJudge) -> list[Prompt]:
    """Every prompt *judge* may send: its own file, and the shipped prompts it renders."""
    own = [judge.prompt] if isinstance(getattr(judge, "prompt", None), Prompt) else []
    name = getattr(judge, "prompt_name", None)
    if isinstance(judge, RubricJudge):
        names = ["rubric"] if judge.blank else []
    elif isinstance(name, str):
        names = [name]
    else:
        shipped = files("promptgauge.evaluators") / "prompts"
        names = sorted(p.name.removesuffix(".prompty") for p in shipped.iterdir()
                       if p.name.endswith(".prompty") and (p.name == f"{judge.key}.prompty"
                                                           or p.name.startswith(f"{judge.key}_")))
    return own + [builtin_prompt(n) for n in names]
