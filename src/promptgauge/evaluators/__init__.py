"""How a row is scored: evaluators are plain callables ``(**columns) -> dict`` (azure-ai-evaluation's contract).

- :mod:`.registry`: a suite's ``evaluators:`` entry -> a :class:`BoundEvaluator` (builtin, custom file,
  ``module:attr``, prompty rubric or instance), with its column mapping and direction;
- :mod:`.outcome`: an evaluator's raw dict -> one :class:`Outcome` (score, passed, error, details);
- :mod:`.builtin`, :mod:`.nlp`, :mod:`.refusal`: deterministic evaluators; :mod:`.judge`: LLM judges;
  :mod:`.embedding`: embedding similarity; :mod:`.azure`: azure-ai-evaluation's classes plugged in;
- :mod:`.models`: the models judges and embedding evaluators call (through the engine's call path);
- :mod:`.reliability`: agreement across repeats and with human labels.

A new evaluator: a class in one of these modules, listed in :func:`registry.builtin_evaluators`. Loaded lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "BoundEvaluator": "registry", "resolve": "registry", "builtin_evaluators": "registry",
    "Outcome": "outcome", "normalise": "outcome", "combine": "outcome",
    "EvaluatorModel": "models", "ModelPool": "models",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
