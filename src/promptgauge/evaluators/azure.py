"""azure-ai-evaluation evaluators, plugged in unchanged (``pip install 'promptgauge[azure]'``).

Name one by import path in a suite (``type: azure.ai.evaluation:RelevanceEvaluator``)
or pass an instance to the Python API (``promptgauge.run(..., evaluators={...})``).
A class that takes a ``model_config`` is built with one pointing at the suite's
judge target (an ``openai`` or ``azure`` target). Instances run inside our
engine: awaited on its event loop through their async form, with its
concurrency -- never through azure-ai-evaluation's ``evaluate()``. Their model
calls are made by their own HTTP client, so those calls get azure-ai-evaluation's
retries, not the engine's.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ..errors import EvaluatorError
from ..telemetry import silence_loaded
from .models import EvaluatorModel


def is_azure_evaluator(obj: Any) -> bool:
    """Whether *obj* (a class or an instance) comes from azure-ai-evaluation."""
    cls = obj if inspect.isclass(obj) else type(obj)
    return cls.__module__.startswith("azure.ai.evaluation")


def model_config(model: EvaluatorModel) -> dict[str, Any]:
    """An azure-ai-evaluation model configuration for a suite target (it holds the API key: keep it in memory)."""
    target = model.target
    client = getattr(target, "client", None)
    if client is None or getattr(target, "kind", None) not in ("openai", "azure"):
        raise EvaluatorError(
            f"azure-ai-evaluation evaluators need an openai or azure judge target, not '{target.name}'",
            hint="set the suite's judge: (or the evaluator's model:) to e.g. openai:gpt-4o-mini or a targets: entry",
        )
    if target.kind == "azure":
        config = {"type": "azure_openai", "azure_endpoint": target.endpoint, "azure_deployment": target.model,
                  "api_version": client.default_query.get("api-version")}
        # An Entra ID endpoint has no key: its credential goes to the evaluator (see judge_credential).
        return config if judge_credential(model) is not None else {**config, "api_key": client.api_key}
    return {"type": "openai", "model": target.model, "base_url": str(client.base_url), "api_key": client.api_key}


def judge_credential(model: EvaluatorModel) -> Any:
    """The token credential of an Entra ID judge target (an evaluator's ``credential=``), else None."""
    return getattr(getattr(model.target, "client", None), "credential", None)


class AzureEvaluator:
    """An azure-ai-evaluation evaluator instance, awaited on the engine's loop.

    Its call signature is that of its first ``__call__`` overload (the
    query/response form, not the conversation form), so column mapping and
    its checks work as for any evaluator.
    """

    def __init__(self, evaluator: Any, signature: inspect.Signature) -> None:
        silence_loaded()  # an instance passed to the API: its module loaded promptflow's telemetry handler
        self.evaluator = evaluator
        self._acall = evaluator._to_async() if hasattr(evaluator, "_to_async") else None
        self.__signature__ = signature

    async def __call__(self, **kwargs: Any) -> Any:
        if self._acall is not None:
            return await self._acall(**kwargs)
        return await asyncio.to_thread(self.evaluator, **kwargs)
