"""A simulated user: a model with a persona and a goal from the row, talking to a variant.

The suite's ``simulator:`` names the model playing the user (a target, default the embedded
``local:smollm2``), its system prompt template (jinja2, with the row's columns, ``persona``, ``goal``
and ``stop``), ``max_turns`` and the ``stop`` phrase. For a row with a ``goal`` column the simulator
writes a user message, the variant answers it (its tool loop included), the simulator -- which sees
the variant's answers as the user's side of *its* chat -- writes the next one, and so on: until a
simulator message contains the stop phrase (``stop_reason`` ``goal``; that message is not sent to
the variant) or the variant has answered ``max_turns`` turns (``max_turns``; the simulator is asked
once more, so a goal met on the last turn still counts).

Every simulator call is an ordinary :meth:`Caller.call` with a seed of its own,
``call_seed(base, row, variant, repeat, turn, role="user")`` (the base is ``simulator.seed``, else its
parameters' ``seed``, else the run seed; ``runner.seeds: fixed``: that one seed for every call), so the
same row and variant get the same conversation, its turns sample independently, a warm re-run
makes no call, and a cassette replays the whole conversation without a server. The simulator's calls
are in the trajectory's ``simulator`` (its steps and its final message); their cost counts against
the run's budget, not in the row's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from ..errors import SuiteError
from ..public import public_parameters
from ..suite import SimulatorSpec, Suite
from ..targets import Target
from . import seeds
from .conversation import ConversationRun, Turns

__all__ = ["OPENING", "Simulator", "prepare_simulator", "simulate"]

#: The first message the simulator sees, on the user side of its own chat.
OPENING = "(The conversation begins. Write your first message to the assistant.)"

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


@dataclass
class Simulator:
    """A suite's simulated user, its target built and its template compiled."""

    spec: SimulatorSpec
    target: Target
    template: jinja2.Template

    def describe(self) -> dict[str, Any]:
        """What the run manifest records (a changed simulator changes every variant it talks to)."""
        return {"target": self.spec.target, "target_info": self.target.describe(), "prompt": self.spec.prompt,
                "max_turns": self.spec.max_turns, "stop": self.spec.stop, "parameters": public_parameters(self.spec.parameters),
                "seed": self.spec.seed}

    def parameters(self, *, run_seed: int, mode: str, row_id: str, variant: str, repeat: int,
                   turn: int) -> dict[str, Any]:
        """The parameters of the simulator's call at *turn*, with its seed when its target takes one."""
        params = dict(self.spec.parameters)
        if not getattr(self.target, "seeded", False):
            return params
        if mode == seeds.FIXED:
            base = self.spec.seed if self.spec.seed is not None else params.get("seed")
            return params if base is None else {**params, "seed": int(base) + repeat}
        base = self.spec.seed if self.spec.seed is not None else seeds.base_seed(run_seed, params)
        return {**params, "seed": seeds.call_seed(base, row_id, variant, repeat, turn=turn, role="user")}

    def system(self, row: dict[str, Any]) -> str:
        """The simulator's system prompt for *row*."""
        return self.template.render({**row, "persona": row.get("persona") or "a user", "goal": row["goal"],
                                     "stop": self.spec.stop})


def prepare_simulator(suite: Suite, target: Target) -> Simulator:
    """The suite's simulator with its *target*; a template that does not compile is a :class:`SuiteError`."""
    spec = suite.simulator
    assert spec is not None
    try:
        template = _ENV.from_string(spec.prompt)
    except jinja2.TemplateSyntaxError as exc:
        raise SuiteError(f"simulator.prompt is not a valid template: {exc.message}", file=suite.path,
                         line=suite.line("simulator", "prompt"), field="simulator.prompt") from None
    return Simulator(spec, target, template)


async def simulate(sim: Simulator, turns: Turns, row_id: str, variant: str, *, run_seed: int = 0,
                   mode: str = seeds.PER_CALL) -> ConversationRun:
    """The conversation of the variant (*turns*) with the simulated user, for one row (*run_seed*, *mode*:
    the run's seed and ``runner.seeds``)."""
    spec = sim.spec
    try:
        system = sim.system(turns.row)
    except jinja2.UndefinedError as exc:
        turns.error = f"simulator.prompt: {exc.message}"
        return turns.result(mode="simulate")
    chat: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": OPENING}]
    steps: list[dict[str, Any]] = []
    last = None
    stop_reason = "max_turns"
    for turn in range(spec.max_turns + 1):
        params = sim.parameters(run_seed=run_seed, mode=mode, row_id=row_id, variant=variant, repeat=turns.repeat,
                                turn=turn)
        completion, error, took, tries = await turns.caller.call(sim.target, list(chat), params, {},
                                                                 repeat=turns.repeat)
        turns.attempts += tries
        if completion is None:
            turns.error = f"simulator, turn {turn}: {error}"
            break
        last = completion.text
        steps.append({"turn": turn, "latency_ms": took, "prompt_tokens": completion.prompt_tokens,
                      "completion_tokens": completion.completion_tokens, "cached": completion.cached})
        if spec.stop.lower() in last.lower():
            stop_reason = "goal"
            break
        if turn == spec.max_turns:
            break
        chat.append({"role": "assistant", "content": last})
        answer = await turns.answer([{"role": "user", "content": last}])
        if answer is None:
            break
        chat.append({"role": "user", "content": answer.text or ""})
    turns.stop_reason = stop_reason
    return turns.result(mode="simulate", simulator={"steps": steps, "final_message": last})
