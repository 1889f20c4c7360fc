"""The estimate ``run --dry-run`` prints: calls, tokens and cost per variant, before any call.

Ordinary rows make one call each (per repeat). A conversation row makes a call per user turn
(``conversation: score`` none); a simulated-user row at most ``max_turns`` calls of the variant and
``max_turns + 1`` of the simulator. A tool loop is counted by its first call per row (or turn);
``max_calls`` says how many its loops may make at most. Calls already in the response cache cost
nothing: a replayed conversation without tools is followed through the cache turn by turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cache as cache_mod
from ..cache import Cache
from ..cost import completion_budget, estimate_tokens
from ..errors import TemplateError
from ..targets import Completion
from .calls import priced_model
from .conversation import conversation_mode, conversation_of, system_prefix
from .plan import Plan, template_inputs


@dataclass
class Estimate:
    """What ``run --dry-run`` prints: calls, tokens and cost per variant, before any call."""

    variants: list[dict[str, Any]]
    rows: int
    repeats: int

    @property
    def calls(self) -> int:
        """Every model call counted: the variants' and their simulated users'."""
        return sum(v["calls"] + v.get("simulator_calls", 0) for v in self.variants)

    @property
    def cost_usd(self) -> float | None:
        costs = [v["cost_usd"] for v in self.variants]
        return None if any(c is None for c in costs) else sum(costs)


def _user_turns(conversation: list[dict[str, Any]]) -> list[int]:
    """The index just past each user turn (a run of user messages) of a stored conversation."""
    ends = []
    for i, m in enumerate(conversation):
        nxt = conversation[i + 1]["role"] if i + 1 < len(conversation) else None
        if m.get("role") == "user" and nxt != "user":
            ends.append(i + 1)
    return ends


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """User and assistant messages with their text: the stand-in for the history the variant will build."""
    return [{"role": m["role"], "content": m.get("content") or ""} for m in messages if m.get("role") in
            ("user", "assistant")]


class _Counter:
    """One variant's counts."""

    def __init__(self) -> None:
        self.calls = self.cached = self.prompt_tokens = self.completion_tokens = 0
        self.conversations = self.turns = self.simulated = 0
        self.sim_calls = self.sim_prompt_tokens = self.sim_completion_tokens = 0


def estimate(plan: Plan, cache_path: Path | None = None) -> Estimate:
    """Calls (per row, conversation turn or simulated turn), estimated tokens and cost per variant;
    calls already cached cost nothing."""
    cache = Cache(cache_path) if cache_path and cache_path.exists() else None
    repeats = plan.suite.runner.repeats
    sim = plan.simulator
    out = []
    try:
        for v in plan.variants:
            prompt, target = plan.prompts[v.name], plan.targets[v.name]
            params = plan.parameters(v)
            budget = completion_budget(params)
            agent = plan.agents.get(v.name)
            n = _Counter()
            for row in plan.rows():
                mode = conversation_mode(v.conversation, row.data, sim is not None)
                where = plan.dataset.where(row)
                if mode == "score":
                    continue
                if mode is None:
                    messages = prompt.render(template_inputs(v, row), where=where) if prompt else None
                    for rep in range(repeats):
                        p = plan.call_parameters(v, row.id, rep)
                        if (cache and target.cacheable
                                and cache_mod.key_of(cache_mod.request(target.describe(), messages, p, rep)) in cache):
                            n.cached += 1
                            continue
                        n.calls += 1
                        n.prompt_tokens += estimate_tokens(messages)
                        n.completion_tokens += budget if prompt else 0
                    continue
                try:
                    prefix = system_prefix(prompt, template_inputs(v, row), where)
                except TemplateError:
                    prefix = []
                if mode == "replay":
                    conversation = conversation_of(row.data) or []
                    ends = _user_turns(conversation)
                    n.conversations += 1
                    n.turns += len(ends) * repeats
                    for rep in range(repeats):
                        _replay(plan, v, row.id, rep, prefix, conversation, ends, None if agent else cache, n,
                                budget)
                    continue
                assert sim is not None  # mode == "simulate"
                n.simulated += 1
                spec = sim.spec
                sim_budget = completion_budget(spec.parameters)
                system = estimate_tokens([{"role": "system", "content": spec.prompt}])
                base = estimate_tokens(prefix) if prefix else 0
                for _ in range(repeats):  # bounds: every turn taken, every answer as long as allowed
                    n.calls += spec.max_turns
                    n.turns += spec.max_turns
                    n.prompt_tokens += sum(base + (k + 1) * sim_budget + k * budget for k in range(spec.max_turns))
                    n.completion_tokens += spec.max_turns * budget
                    n.sim_calls += spec.max_turns + 1
                    n.sim_prompt_tokens += sum(system + k * (sim_budget + budget) for k in range(spec.max_turns + 1))
                    n.sim_completion_tokens += (spec.max_turns + 1) * sim_budget
            model = plan.model_of(v)
            price = plan.prices.get(model)
            entry: dict[str, Any] = {
                "variant": v.name, "target": target.name, "model": model, "calls": n.calls, "cached": n.cached,
                "prompt_tokens": n.prompt_tokens, "completion_tokens": n.completion_tokens,
                "cost_usd": price.cost(n.prompt_tokens, n.completion_tokens) if price else None}
            if n.conversations:
                entry["conversations"] = n.conversations
            if n.turns:
                entry["turns"] = n.turns
            if n.simulated:
                sim_model = priced_model(sim.target.describe()) if sim else None
                sim_price = plan.prices.get(sim_model)
                sim_cost = sim_price.cost(n.sim_prompt_tokens, n.sim_completion_tokens) if sim_price else None
                entry.update(simulated=n.simulated, simulator_calls=n.sim_calls, simulator_model=sim_model,
                             simulator_prompt_tokens=n.sim_prompt_tokens,
                             simulator_completion_tokens=n.sim_completion_tokens)
                entry["cost_usd"] = None if entry["cost_usd"] is None or sim_cost is None else \
                    entry["cost_usd"] + sim_cost
            if agent is not None:  # a tool loop: its first calls are counted; the later ones depend on the model
                per_call = agent.max_steps + (agent.on_max_steps == "answer")
                entry["max_calls"] = (n.calls + n.cached) * per_call
            out.append(entry)
    finally:
        if cache:
            cache.close()
    return Estimate(out, plan.n_rows, repeats)


def _replay(plan: Plan, v: Any, row_id: str, rep: int, prefix: list[dict[str, Any]],
            conversation: list[dict[str, Any]], ends: list[int], cache: Cache | None, n: _Counter,
            budget: int) -> None:
    """Count one replayed conversation: turn by turn through the cache (*cache*: None for a tool loop, whose
    later calls depend on its tools), then each turn not cached as a call."""
    target = plan.targets[v.name]
    history = [dict(m) for m in prefix]
    start = 0
    for turn, end in enumerate(ends):
        users = [m for m in conversation[start:end] if m.get("role") == "user"]
        history += [{"role": "user", "content": m["content"]} for m in users]
        if cache is not None and target.cacheable:
            p = plan.call_parameters(v, row_id, rep, turn=turn)
            data = cache.get(cache_mod.key_of(cache_mod.request(target.describe(), history, p, rep)))
            if data is not None:
                n.cached += 1
                data = {k: x for k, x in data.items() if k != "latency_ms"}
                history.append(Completion.from_dict(data).message)
                start = end
                continue
        cache = None  # once a turn is not cached, the later requests are not known
        n.calls += 1
        n.prompt_tokens += estimate_tokens(history)
        n.completion_tokens += budget
        # the stored answer stands in for the one the variant will write
        nxt = next((i for i in range(end, len(conversation)) if conversation[i].get("role") == "user"),
                   len(conversation))
        history += _plain(conversation[end:nxt])
        start = end
