"""Pairwise judging in a run: each gated variant's answer against the baseline variant's, row by row.

Runs after the worker pool, once both variants' rows are stored (copied from an earlier run, resumed or
new): for every pairwise judge (``type: pairwise``, see :mod:`promptgauge.evaluators.pairwise`) and every
gated variant, each row that both the variant and the baseline answered (first repeat) is judged in both
orders, and the verdict is stored as a score of the gated variant's result (evaluator = the judge's name;
1 win, 0.5 tie, 0 loss). Every judge call goes through the run's :class:`~.calls.Caller` (cache, cassette,
budget, rate limits, retries) with the row's seeds, so a warm re-run makes no call. A row the baseline did
not answer gets an error score, so a stale verdict copied from an earlier run never survives.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..store import Store
from . import seeds
from .calls import Caller
from .plan import Plan

#: Pairs judged at once, at most (the caller's concurrency limits the calls in flight).
CHUNK = 256


def gated(plan: Plan) -> list[str]:
    """The variants of the run a pairwise judge compares with the baseline."""
    names = [v.name for v in plan.variants]
    wanted = plan.suite.gate.variants or [n for n in names if n != plan.suite.baseline]
    return [n for n in wanted if n in names and n != plan.suite.baseline]


def _pairs(store: Store, run_id: str, baseline: str, variant: str) -> list[tuple[str, dict, dict | None, dict]]:
    """(row id, row data, baseline outputs or None, candidate outputs) of the rows the candidate answered."""
    return [(row_id, json.loads(inputs), json.loads(b_out) if b_out and b_err is None else None, json.loads(c_out))
            for row_id, inputs, b_out, b_err, c_out in store.db.execute(
                "SELECT c.row_id, c.inputs, b.outputs, b.error, c.outputs FROM results c LEFT JOIN results b "
                "ON b.run_id=c.run_id AND b.row_id=c.row_id AND b.variant=? AND b.repeat=0 "
                "WHERE c.run_id=? AND c.variant=? AND c.repeat=0 AND c.error IS NULL AND c.outputs IS NOT NULL "
                "ORDER BY c.row_index, c.row_id", (baseline, run_id, variant))]


async def judge_pairs(plan: Plan, store: Store, run_id: str, caller: Caller) -> int:
    """Judge every (baseline, gated variant) pair of rows with every pairwise judge; returns the pairs judged."""
    baseline = plan.suite.baseline
    if not plan.pairwise or baseline is None or baseline not in {v.name for v in plan.variants}:
        return 0
    sem = asyncio.Semaphore(caller.concurrency)
    judged = 0

    async def one(ev: Any, variant: str, row_id: str, data: dict, base: dict | None, cand: dict) -> None:
        nonlocal judged
        if caller.stop_reason:
            return
        if base is None:
            store.put_score(run_id, row_id, variant, 0, ev.name, score=None, passed=None, details=None,
                            error=f"no pair: the baseline variant '{baseline}' has no answer for this row")
            return
        async with sem:
            token = seeds.current_row.set(row_id)  # the judge's calls get this row's seeds
            try:
                o = await ev.evaluate(data, cand, baseline=base)
            finally:
                seeds.current_row.reset(token)
        if caller.stop_reason:  # the budget ran out mid-pair: keep nothing half-judged
            return
        store.put_score(run_id, row_id, variant, 0, ev.name, score=o.score, passed=o.passed, error=o.error,
                        details={**(o.details or {}), "baseline_variant": baseline})
        judged += 1

    for ev in plan.pairwise:
        for variant in gated(plan):
            pairs = _pairs(store, run_id, baseline, variant)
            if plan.limit is not None:
                pairs = pairs[:plan.limit]
            for start in range(0, len(pairs), CHUNK):
                await asyncio.gather(*(one(ev, variant, *p) for p in pairs[start:start + CHUNK]))
                if caller.stop_reason:
                    return judged
    return judged
