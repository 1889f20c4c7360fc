"""The estimate ``run --dry-run`` prints: calls, tokens and cost per variant, before any call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cache as cache_mod
from ..cache import Cache
from ..cost import completion_budget, estimate_tokens
from .plan import Plan, template_inputs


@dataclass
class Estimate:
    """What ``run --dry-run`` prints: calls, tokens and cost per variant, before any call."""

    variants: list[dict[str, Any]]
    rows: int
    repeats: int

    @property
    def calls(self) -> int:
        return sum(v["calls"] for v in self.variants)

    @property
    def cost_usd(self) -> float | None:
        costs = [v["cost_usd"] for v in self.variants]
        return None if any(c is None for c in costs) else sum(costs)


def estimate(plan: Plan, cache_path: Path | None = None) -> Estimate:
    """Rows x variants x repeats calls, estimated tokens and cost; calls already cached cost nothing.

    A variant with a tool loop is counted by its first model call per row (the requests known before any
    call); ``max_calls`` says how many calls its loops may make at most.
    """
    cache = Cache(cache_path) if cache_path and cache_path.exists() else None
    repeats = plan.suite.runner.repeats
    out = []
    try:
        for v in plan.variants:
            prompt, target = plan.prompts[v.name], plan.targets[v.name]
            params = plan.parameters(v)
            model = plan.model_of(v)
            calls = cached = prompt_tokens = 0
            for row in plan.rows():
                messages = prompt.render(template_inputs(v, row), where=plan.dataset.where(row)) if prompt else None
                for rep in range(repeats):
                    p = plan.call_parameters(v, row.id, rep)
                    if (cache and target.cacheable
                            and cache_mod.key_of(cache_mod.request(target.describe(), messages, p, rep)) in cache):
                        cached += 1
                        continue
                    calls += 1
                    prompt_tokens += estimate_tokens(messages)
            completion_tokens = calls * completion_budget(params) if prompt else 0
            price = plan.prices.get(model)
            out.append({"variant": v.name, "target": target.name, "model": model, "calls": calls, "cached": cached,
                        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                        "cost_usd": price.cost(prompt_tokens, completion_tokens) if price else None})
            agent = plan.agents.get(v.name)
            if agent is not None:  # a tool loop: its first calls are counted; the later ones depend on the model
                per_row = agent.max_steps + (agent.on_max_steps == "answer")
                out[-1]["max_calls"] = (calls + cached) * per_row
    finally:
        if cache:
            cache.close()
    return Estimate(out, plan.n_rows, repeats)
