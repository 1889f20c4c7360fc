"""Metric names, their grammar and their directions: the one place that says what a metric is.

A run's metrics (summary, reports and gate rules name them the same way):

- ``<evaluator>.mean`` / ``.std`` / ``.min`` / ``.max`` / ``.median`` -- of the primary score over scored rows;
- ``<evaluator>.pass_rate`` -- passed / (scored + errors): an error counts as a failure;
- ``<evaluator>.n``, ``.passed``, ``.errors``, ``.error_rate``;
- ``<evaluator>.<metric>`` -- a run-level metric an evaluator logged once per variant (a promptflow
  evaluation flow's aggregation nodes, ``log_metric``); found in the summary under
  ``metrics.<evaluator>.aggregates``; a built-in statistic's name wins over a logged one;
- ``<evaluator>.reliability.alpha|exact|within_1`` -- agreement across the repeats of an evaluator
  with ``repeats: n``; ``<evaluator>.human_agreement.alpha|exact|within_1`` -- agreement with the
  dataset's ``human_label`` column;
- ``<judge>.win_rate`` (with ``.ci_low`` / ``.ci_high``), ``.wins``, ``.ties``, ``.losses``, ``.n``, ``.errors``,
  ``.p_value``, ``.p_better``, ``.position_bias`` -- a pairwise judge's verdicts on a gated variant vs. the baseline;
- ``error_rate`` -- failed model calls / calls; ``latency_ms.mean|p50|p95|max``;
  ``tokens.prompt|completion|total`` (sums);
- of streamed answers (``stream: true``): ``latency_ms.ttft.mean|p50|p95|max`` (time to first token) and
  ``tokens_per_s.mean|p50|p5|min`` (output tokens per second after the first token; more is better).
  A variant whose answers were not streamed has neither: a rule naming them fails (no data).

Gate rules add CI bounds (``f1.ci_low``, ``contains.pass_rate.ci_low``), changes vs. the baseline
(``f1.mean.delta``, ``contains.pass_rate.delta.ci_low``) and costs (``cost.total``, ``cost.per_row``);
the rule grammar is :data:`GRAMMAR`. A monitor's windows have their own statistics
(:data:`WINDOW_STATS`) and traffic metrics (:data:`TRAFFIC_METRICS`).

Which way each metric is better: :func:`higher_is_better`. Pure: no I/O, no numpy.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Collection, Mapping
from typing import Any

#: Statistics of an evaluator in a run's summary: ``<evaluator>.<stat>``.
EVALUATOR_STATS = ("n", "mean", "std", "min", "median", "max", "pass_rate", "passed", "errors", "error_rate")
#: Agreement groups of an evaluator and their statistics: ``<evaluator>.<group>.<stat>``.
AGREEMENT_STATS = {"reliability": ("alpha", "exact", "within_1"),
                   "human_agreement": ("alpha", "exact", "within_1", "kappa")}
#: Statistics of a pairwise judge on a gated variant: ``<judge>.<stat>``, and ``<judge>.win_rate.ci_low|ci_high``.
PAIRWISE_STATS = ("n", "wins", "ties", "losses", "errors", "win_rate", "p_value", "p_better", "position_bias")
#: Pairwise statistics where less is better.
PAIRWISE_LOWER = ("losses", "errors", "p_value", "p_better", "position_bias")
#: Call metrics of a run: ``error_rate``, ``latency_ms.<stat>``, ``tokens.<stat>``.
RUN_METRICS = {"error_rate": None, "latency_ms": ("mean", "p50", "p95", "max"), "tokens": ("prompt", "completion", "total"),
               "tokens_per_s": ("mean", "p50", "p5", "min")}
#: Statistics of streamed answers' time to first token: ``latency_ms.ttft.<stat>``.
TTFT_STATS = ("mean", "p50", "p95", "max")
#: The metrics only streamed answers have.
STREAM_METRICS = frozenset([f"latency_ms.ttft.{s}" for s in TTFT_STATS] + [f"tokens_per_s.{s}" for s in RUN_METRICS["tokens_per_s"]])
#: Run metrics a comparison tests row by row, besides the evaluators'.
COMPARED_RUN_METRICS = ("error_rate", "latency_ms.mean")
#: Statistics of an evaluator's score: they follow the evaluator's direction.
SCORE_STATS = ("mean", "median", "min", "max", "p95")
#: Metric families where less is better, whatever the evaluators say.
LESS_IS_BETTER = ("latency_ms", "tokens", "cost")
#: Costs from tokens and prices, for gate rules.
COST_METRICS = ("cost.total", "cost.per_row")

#: Statistics a monitor alert rule may name after ``<evaluator>.`` (of one window's scores) ...
WINDOW_STATS = ("mean", "median", "p95", "pass_rate", "error_rate", "n")
#: ... and those a comparison with the reference can test.
TESTABLE_STATS = ("mean", "median", "pass_rate", "error_rate")
#: Metrics of a monitor window's traffic itself.
TRAFFIC_METRICS = ("records", "error_rate", "sampled")

# ------------------------------------------------------------------------- the rule grammar

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
#: ``gate.min_judge_agreement``: ``STAT OP NUMBER``, STAT one of the human agreement statistics.
MIN_AGREEMENT = re.compile(rf"^\s*(alpha|exact|within_1|kappa)\s*(>=|>)\s*({NUMBER})\s*$")
MIN_AGREEMENT_GRAMMAR = ("write 'STAT >= NUMBER' with STAT one of alpha, exact, within_1, kappa "
                         "(e.g. 'kappa >= 0.6' or 'exact >= 0.6')")
#: ``METRIC OP NUMBER``
THRESHOLD = re.compile(rf"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|!=|>|<)\s*({NUMBER})\s*$")
#: ``METRIC: FUNCTION(ARGS)``
CALL = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*:\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$")
#: Rule functions and their arguments' defaults.
FUNCTIONS = {"no_regression": {"max_drop": 0.0, "alpha": 0.05, "power": 0.8}}
GRAMMAR = ("write 'METRIC OP NUMBER' (e.g. 'contains.pass_rate >= 0.6', 'f1.ci_low >= 0.5', "
           "'f1.mean.delta >= -0.02') or 'METRIC: no_regression(max_drop=0.02, alpha=0.05)'; OP is one of "
           + " ".join(OPS))


def pairwise_metric(metric: str, pairwise: Collection[str]) -> tuple[str, str, str | None] | None:
    """A pairwise judge's metric -> (judge, statistic, CI bound or None); None when *metric* is not one
    (*pairwise*: the names of the suite's pairwise judges)."""
    parts = metric.split(".")
    if parts[0] not in pairwise:
        return None
    if len(parts) == 2 and parts[1] in PAIRWISE_STATS:
        return parts[0], parts[1], None
    if len(parts) == 3 and parts[1] == "win_rate" and parts[2] in ("ci_low", "ci_high"):
        return parts[0], "win_rate", parts[2]
    return None


def pairwise_hint(pairwise: Collection[str]) -> str:
    """What a pairwise judge's metric may be, for messages."""
    judge = next(iter(pairwise), "JUDGE")
    return (f"pairwise metrics: {', '.join(f'{judge}.{s}' for s in PAIRWISE_STATS)}, {judge}.win_rate.ci_low, "
            f"{judge}.win_rate.ci_high")


def higher_is_better(metric: str, directions: Mapping[str, bool] | None = None) -> bool:
    """Whether a larger value of *metric* is better -- the one place that says so.

    ``EV.mean`` / ``.median`` / ``.min`` / ``.max`` / ``.p95`` follow the evaluator's
    direction in *directions* (evaluator -> higher is better, as the run manifest
    records it; default higher). Error rates, latencies, tokens and costs are better
    lower; pass rates, agreement and everything else higher.
    """
    parts = metric.split(".")
    if parts[-1] in ("error_rate", "errors"):
        return False
    if directions is not None and parts[0] in directions:
        return bool(directions[parts[0]]) if len(parts) == 2 and parts[1] in SCORE_STATS else True
    return parts[0] not in LESS_IS_BETTER


def known_metrics(evaluators: list[str]) -> list[str]:
    """Every summary metric a gate rule may use, for error hints."""
    names = [f"{e}.{s}" for e in evaluators for s in EVALUATOR_STATS]
    names += [f"{e}.{group}.{s}" for e in evaluators for group, stats in AGREEMENT_STATS.items() for s in stats]
    names.append("error_rate")
    names += [f"latency_ms.{s}" for s in RUN_METRICS["latency_ms"]]
    names += [f"latency_ms.ttft.{s}" for s in TTFT_STATS]
    names += [f"tokens.{s}" for s in RUN_METRICS["tokens"]]
    names += [f"tokens_per_s.{s}" for s in RUN_METRICS["tokens_per_s"]]
    return names


def comparable(evaluators: list[str]) -> set[str]:
    """Metrics a comparison measures row by row: ``EV`` (its primary metric), ``EV.mean``, ``EV.pass_rate``, run metrics."""
    names = {f"{e}{s}" for e in evaluators for s in ("", ".mean", ".pass_rate")}
    return names | set(COMPARED_RUN_METRICS)


def split_metric(metric: str, evaluators: list[str],
                 aggregating: Collection[str] = ()) -> tuple[str, str, str | None] | None:
    """A gate rule's ``METRIC`` -> (source, base metric, CI bound), or None when unknown.

    *aggregating*: evaluators that log run-level metrics (any ``EV.NAME`` of theirs is a summary metric).

    source: ``summary`` (a summary metric), ``cost``, ``ci`` (a CI bound of a compared metric)
    or ``delta`` (its change vs. the baseline); bound: ``ci_low``, ``ci_high`` or None.
    """
    if metric in known_metrics(evaluators):
        return "summary", metric, None
    ev, dot, name = metric.partition(".")
    if dot and ev in aggregating and name and "." not in name and name not in ("ci_low", "ci_high", "delta"):
        return "summary", metric, None  # (EV.ci_low and EV.delta stay the CI bound and the change of EV)
    if metric in COST_METRICS:
        return "cost", metric, None
    bound = None
    base = metric
    for b in (".ci_low", ".ci_high"):
        if base.endswith(b):
            base, bound = base[: -len(b)], b[1:]
    source = "ci"
    if base.endswith(".delta"):
        base, source = base[: -len(".delta")], "delta"
    if base not in comparable(evaluators) or (source == "ci" and bound is None):
        return None
    return source, base, bound


def metric_hint(evaluators: list[str]) -> str:
    """What a gate rule's metric may be, for the message of an unknown one."""
    ev = evaluators[0] if evaluators else "EV"
    return (f"metrics: {', '.join(known_metrics(evaluators)[:30])}; CI bounds like {ev}.ci_low, "
            f"{ev}.pass_rate.ci_low; changes like {ev}.mean.delta, {ev}.pass_rate.delta.ci_low; "
            f"{', '.join(COST_METRICS)}")


def window_metric_error(metric: str, evaluators: list[str], *, comparison: bool) -> str | None:
    """Why a monitor alert rule's *metric* does not exist or cannot be tested (None when it is fine)."""
    if metric in TRAFFIC_METRICS:
        if comparison and metric != "error_rate":
            return f"'{metric}' can only have below/above rules"
        return None
    ev, _, stat = metric.rpartition(".")
    valid = list(TRAFFIC_METRICS) + [f"{e}.{s}" for e in evaluators for s in WINDOW_STATS]
    if ev not in evaluators or stat not in WINDOW_STATS:
        return f"unknown metric '{metric}'; valid: {', '.join(valid)}"
    if comparison and stat not in TESTABLE_STATS:
        return (f"'{metric}' has no test against the reference; "
                f"compare one of {', '.join(TESTABLE_STATS)}, or use below/above")
    return None


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def metric_value(summary: dict[str, Any], variant: str, metric: str) -> float | None:
    """Look up ``exact_match.pass_rate``, ``error_rate``, ``latency_ms.p95``... for a variant of a run summary.

    Raises ``KeyError`` with a helpful message when the metric does not exist.
    """
    v = summary["variants"][variant]
    parts = metric.split(".")
    if parts[0] in RUN_METRICS:
        node: Any = v["calls"]
        for p in parts:
            if not isinstance(node, dict) or p not in node:
                if metric in STREAM_METRICS:  # a variant without streamed answers: no data
                    return None
                raise KeyError(metric)
            node = node[p]
        return _f(node)
    if len(parts) == 3 and parts[0] in v["metrics"] and parts[2] in AGREEMENT_STATS.get(parts[1], ()):
        return _f((v["metrics"][parts[0]].get(parts[1]) or {}).get(parts[2]))
    if len(parts) == 2 and parts[0] in v["metrics"] and parts[1] not in EVALUATOR_STATS:
        aggregates = v["metrics"][parts[0]].get("aggregates") or {}
        if parts[1] in aggregates:
            return _f(aggregates[parts[1]])
    if len(parts) != 2 or parts[0] not in v["metrics"] or parts[1] not in EVALUATOR_STATS:
        raise KeyError(metric)
    return _f(v["metrics"][parts[0]][parts[1]])
