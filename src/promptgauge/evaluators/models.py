"""The targets evaluators call: LLM judges and embeddings endpoints.

An evaluator whose constructor takes ``judge`` (a chat model) or ``embedder``
(an embeddings endpoint) is given an :class:`EvaluatorModel` wrapping a suite
target. The engine binds every such model to its own call path
(``Caller.judge_call``: timeout, retries with backoff, ``Retry-After``, and whatever
else that path does -- caching, rate limits, cost, the call's seed), so a judge's calls
are accounted for exactly like a variant's. Unbound (an evaluator used on its own),
the target is called once, directly. A judge's temperature is 0 unless its prompt or
parameters say otherwise.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import CallError, EvaluatorError, located
from ..targets.base import Completion, Target

#: Which repeat of an evaluator is running (0-based); set by the registry for ``repeats: n``.
repeat_index: contextvars.ContextVar[int] = contextvars.ContextVar("promptgauge_repeat", default=0)
#: Which evaluator is running (its suite name); set by the registry, part of a judge call's seed.
evaluator_name: contextvars.ContextVar[str] = contextvars.ContextVar("promptgauge_evaluator", default="")

#: ``(target, messages, parameters, inputs) -> (completion, error, latency_ms, attempts)``: ``Caller.judge_call``.
CallPath = Callable[[Any, Any, dict[str, Any], dict[str, Any]], Awaitable[tuple[Any, Any, Any, int]]]


def fixed_seed(parameters: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Repeat *repeat* of a call with one seed for every row: the parameters' seed (or 0) plus the repeat
    index, so repeats are distinct calls (for the model and for any response cache)."""
    if not repeat:
        return parameters
    return {**parameters, "seed": int(parameters.get("seed", 0)) + repeat}


class EvaluatorModel:
    """A suite target used by an evaluator, called through the engine once bound."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._path: CallPath | None = None
        self._embeddings: EmbeddingsTarget | None = None

    def bind(self, call: CallPath) -> None:
        """Route calls through *call* (the engine's ``Caller.call``)."""
        self._path = call

    def describe(self) -> dict[str, Any]:
        return {"target": self.target.name, **self.target.describe()}

    async def complete(self, messages: list[dict[str, str]], parameters: dict[str, Any]) -> Completion:
        """One chat completion; a failed call (after the engine's retries) raises :class:`CallError`.

        Temperature 0 unless *parameters* set one. Bound, the engine gives the call its seed; unbound,
        repeats of an evaluator get distinct seeds (:func:`fixed_seed`), so that they are distinct calls.
        """
        parameters = {"temperature": 0, **parameters}
        if self._path is None:
            parameters = fixed_seed(parameters, repeat_index.get())
        return await self._run(self.target, messages, parameters)

    @property
    def embeddings(self) -> EmbeddingsTarget:
        """The target's ``/embeddings`` endpoint; :class:`EvaluatorError` if it has none."""
        if self._embeddings is None:
            self._embeddings = EmbeddingsTarget(self.target)
        return self._embeddings

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings of *texts* from an OpenAI-compatible ``/embeddings`` endpoint."""
        messages = [{"role": "user", "content": t} for t in texts]
        completion = await self._run(self.embeddings, messages, {})
        return completion.extra["embeddings"]

    async def _run(self, target: Any, messages: list[dict[str, str]], parameters: dict[str, Any]) -> Completion:
        if self._path is None:
            return await target.complete(messages, parameters, {})
        completion, error, _, _ = await self._path(target, messages, parameters, {})
        if completion is None:
            raise CallError(f"{self.target.name}: {error}")
        return completion


class EmbeddingsTarget:
    """The embeddings endpoint of an OpenAI-compatible chat target, as a target the engine can call.

    The texts travel as user messages, so anything keyed on a call's messages
    (a response cache) sees them; the vectors come back in ``extra["embeddings"]``.
    """

    serial = False
    cacheable = True
    seeded = False

    def __init__(self, chat: Target) -> None:
        if not hasattr(chat, "client") or not hasattr(chat, "model"):
            raise EvaluatorError(
                f"target '{chat.name}' has no embeddings endpoint",
                hint="use an openai/azure target (e.g. NAME:text-embedding-3-small), or no model for the local one",
            )
        self.chat = chat
        self.name = chat.name + "#embeddings"

    async def complete(self, messages, parameters, inputs) -> Completion:  # arguments: see Target
        import openai

        from ..targets.openai_chat import to_call_error

        texts = [m["content"] for m in messages]
        try:
            resp = await self.chat.client.embeddings.create(model=self.chat.model, input=texts, **parameters)
        except (openai.OpenAIError, ValueError) as exc:
            raise to_call_error(exc) from exc
        vectors = [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]
        if len(vectors) != len(texts):
            raise CallError(f"embeddings endpoint returned {len(vectors)} vectors for {len(texts)} texts", retryable=True)
        usage = resp.usage
        return Completion(text="", prompt_tokens=usage.prompt_tokens if usage else None, completion_tokens=0,
                          model=resp.model, extra={"embeddings": vectors})

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        info = self.chat.describe()
        return {**info, "kind": f"{info.get('kind')}-embeddings"}


class ModelPool:
    """The :class:`EvaluatorModel` of each target reference a suite's evaluators use, built once each."""

    def __init__(self, factory: Any, default_judge: str | None = None) -> None:
        self.factory = factory
        self.default_judge = default_judge
        self._models: dict[str, EvaluatorModel] = {}
        self._path: CallPath | None = None

    def get(self, ref: str, *, field: str) -> EvaluatorModel:
        if self.factory is None:
            raise EvaluatorError("an evaluator that calls a model can only be built for a suite", field=field)
        if ref not in self._models:
            with located(field=field):
                model = EvaluatorModel(self.factory.get(ref))
            if self._path is not None:
                model.bind(self._path)
            self._models[ref] = model
        return self._models[ref]

    def judge(self, ref: str | None, evaluator: str) -> EvaluatorModel:
        """The judge model of an evaluator: its own ``model:``, else the suite's ``judge:``."""
        if ref:
            return self.get(ref, field=f"evaluators.{evaluator}.model")
        if self.default_judge:
            return self.get(self.default_judge, field="judge")
        raise EvaluatorError(
            f"evaluator '{evaluator}' asks a model to judge, but no judge model is set",
            field=f"evaluators.{evaluator}.model",
            hint="set 'judge: TARGET' in the suite (e.g. judge: local:smollm2) or 'model: TARGET' on the evaluator",
        )

    def for_prompt(self, prompt: Any, ref: str) -> EvaluatorModel:
        """The model a ``.prompty`` names in its ``model.configuration`` (an evaluation prompty's own)."""
        if self.factory is None:
            raise EvaluatorError("an evaluator that calls a model can only be built for a suite", field="type")
        if ref not in self._models:
            model = EvaluatorModel(self.factory.for_prompt(prompt, ref))
            if self._path is not None:
                model.bind(self._path)
            self._models[ref] = model
        return self._models[ref]

    def bind(self, call: CallPath) -> None:
        """Route every model's calls through *call*, those built later included."""
        self._path = call
        for model in self._models.values():
            model.bind(call)
