"""The engine: every row through every variant and every evaluator, results stored as they exist.

One way in for the CLI, the pytest harness and the monitor:

- :class:`Session` (``session``) -- a configuration's targets and evaluators, and the call path they share;
- :func:`prepare` / :class:`Plan` (``plan``) -- a suite made concrete and checked before any call;
- :class:`FailureWatch` (``checks``) -- what only the first answers show: an evaluator failing on every row;
- :class:`Caller` (``calls``) -- every model call: replay, cache, budget, rate limits, timeout, retries;
- :class:`Engine` (``pool``) -- the worker pool; :meth:`Engine.process` scores one row on demand;
- :func:`run_agent` / :class:`Agent` (``agent``) -- the tool loop of a variant whose prompt declares tools;
- :func:`execute` (``run``) -- a run into the store, new, resumed or reused;
- :func:`judge_pairs` (``pairs``) -- pairwise judges on (baseline, gated variant) pairs of rows, after the pool;
- :func:`rescore` (``rescore``) -- a stored run's outputs scored again by new or changed evaluators, no target called;
- :func:`estimate` (``estimate``) -- what a run would cost, before any call;
- :func:`call_seed` / :func:`call_order` (``seeds``) -- every call's seed and each row's call order, from the run seed.
"""

from .agent import Agent, AgentRun, prepare_agent, run_agent
from .calls import MODEL_KINDS, Caller, priced_model
from .cassette import Cassette
from .checks import FailureWatch
from .estimate import Estimate, estimate
from .pairs import judge_pairs
from .plan import Plan, prepare, select_variants, template_inputs
from .pool import Engine, Progress
from .rescore import RescoreOutcome, rescore, source_run
from .run import Options, RunOutcome, check_budget, execute, new_run_id, reuse
from .seeds import call_order, call_seed, current_row
from .session import Session

__all__ = ["MODEL_KINDS", "Agent", "AgentRun", "Caller", "Cassette", "Engine", "Estimate", "FailureWatch", "Options",
           "Plan", "Progress", "RescoreOutcome", "RunOutcome", "Session", "call_order", "call_seed", "check_budget",
           "current_row", "estimate", "execute", "judge_pairs", "new_run_id", "prepare", "prepare_agent", "priced_model",
           "rescore", "reuse", "run_agent", "select_variants", "source_run", "template_inputs"]
