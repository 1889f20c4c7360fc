"""Windows, reference, and alert rules: is the latest window worse than the reference?

Metric names (as alert rules and reports use them):

- ``records``, ``sampled``: traffic per window; ``error_rate``: failed production calls / records;
- ``<evaluator>.mean`` / ``.median`` / ``.p95`` / ``.n``: of the scores of sampled records;
- ``<evaluator>.pass_rate``: passed / scored; ``<evaluator>.error_rate``: evaluator failures / attempts.

Comparison rules use two-sample tests from :mod:`promptgauge.stats`: Mann-Whitney
(or a permutation test) for scores, a two-proportions test for rates, one-sided
towards "worse", Holm-adjusted over the comparison rules of one window, so the
chance of a false alert in a window without change is at most ``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import stats
from ..errors import MonitorError
from ..store import MonitorStore, Store
from .config import AlertRule, MonitorConfig, seconds

RATE_STATS = ("pass_rate", "error_rate")


@dataclass
class Bucket:
    """The scores and traffic of one window, or of the reference."""

    records: int = 0
    sampled: int = 0
    failed: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)
    passed: dict[str, list[int]] = field(default_factory=dict)  # [passed, judged]
    errors: dict[str, list[int]] = field(default_factory=dict)  # [errors, attempted]

    def add_score(self, evaluator: str, score: float | None, passed: int | None, error: str | None) -> None:
        err = self.errors.setdefault(evaluator, [0, 0])
        err[1] += 1
        if error is not None:
            err[0] += 1
            return
        if score is not None and not math.isnan(score):
            self.scores.setdefault(evaluator, []).append(float(score))
        if passed is not None:
            p = self.passed.setdefault(evaluator, [0, 0])
            p[0] += int(passed)
            p[1] += 1

    def counts(self, metric: str) -> tuple[int, int]:
        """(k, n) of a rate metric."""
        if metric == "error_rate":
            return self.failed, self.records
        ev, _, stat = metric.rpartition(".")
        k, n = (self.passed if stat == "pass_rate" else self.errors).get(ev, [0, 0])
        return k, n

    def values(self, metric: str) -> np.ndarray:
        return np.asarray(self.scores.get(metric.rpartition(".")[0], []), dtype=float)

    def value(self, metric: str) -> tuple[float | None, int]:
        """(value, n) of any metric; value None when there is nothing to compute it from."""
        if metric in ("records", "sampled"):
            n = self.records if metric == "records" else self.sampled
            return float(n), n
        stat = metric.rpartition(".")[2]
        if metric == "error_rate" or stat in RATE_STATS:
            k, n = self.counts(metric)
            return (k / n if n else None), n
        v = self.values(metric)
        if stat == "n":
            return float(v.size), v.size
        if not v.size:
            return None, 0
        fn = {"mean": np.mean, "median": np.median, "p95": lambda x: np.percentile(x, 95)}[stat]
        return float(fn(v)), int(v.size)

    def band(self, metric: str, *, seed: int) -> tuple[float, float] | None:
        """95 % interval of the metric's value (Wilson for rates, bootstrap for means), for charts."""
        stat = metric.rpartition(".")[2]
        if metric == "error_rate" or stat in RATE_STATS:
            k, n = self.counts(metric)
            return stats.proportion_ci(k, n) if n else None
        if stat == "mean":
            v = self.values(metric)
            if v.size < 2:
                return None
            low, high = stats.mean_ci(v, n_resamples=1000, seed=seed)
            return (low, high) if not math.isnan(low) else None
        return None


@dataclass
class RuleResult:
    """One alert rule judged on one window."""

    rule: str
    metric: str
    win: int
    status: str  # alert | ok | insufficient | no_reference
    value: float | None
    n: int
    reason: str
    reference: float | None = None
    reference_n: int | None = None
    worse_by: float | None = None
    pvalue: float | None = None
    pvalue_adjusted: float | None = None
    test: str | None = None
    effect_size: float | None = None
    effect_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.__dict__.items()}


def load_buckets(mstore: MonitorStore, size: int, history: int) -> dict[int, Bucket]:
    """The last *history* windows that have records, oldest first."""
    traffic = mstore.traffic(history)
    if not traffic:
        return {}
    buckets = {w: Bucket(records=n, sampled=int(s or 0), failed=int(f or 0)) for w, n, s, f in traffic}
    first, last = traffic[0][0], traffic[-1][0]
    for w, ev, score, passed, error in mstore.scores_between(first, last + size):
        if w in buckets:
            buckets[w].add_score(ev, score, passed, error)
    return buckets


class Reference:
    """The reference each window is compared with. Checked when built; read by :meth:`load`."""

    def __init__(self, cfg: MonitorConfig, store: Store, mstore: MonitorStore) -> None:
        self.cfg = cfg
        self.store = store
        self.mstore = mstore
        self.fixed: Bucket | None = None
        self.previous = 0
        self.run: tuple[str, str] | None = None
        self.period: tuple[float, float] | None = None
        self.description = "none"
        ref = cfg.reference
        if ref is None:
            return
        if ref.run is not None:
            info = store.run(None if ref.run == "latest" else ref.run, suite=ref.suite)
            variants = list(info.manifest.get("variants", {}))
            variant = ref.variant or (variants[0] if len(variants) == 1 else None)
            if variant is None or variant not in variants:
                raise MonitorError(
                    f"reference run {info.run_id} has variants {', '.join(variants)}: say which was promoted",
                    file=cfg.path, field="reference.variant", hint="e.g. variant: " + (variants[0] if variants else "?"))
            self.run = (info.run_id, variant)
            self.description = f"evaluation run {info.run_id}, variant {variant}"
        elif ref.previous is not None:
            self.previous = seconds(ref.previous)
            self.description = f"the {ref.previous} before each window"
        else:
            from ..errors import BadRecord
            from .sources import parse_time

            try:
                self.period = (parse_time(ref.start), parse_time(ref.end))
            except BadRecord as exc:
                raise MonitorError(str(exc), file=cfg.path, field="reference.from/to") from None
            if self.period[1] <= self.period[0]:
                raise MonitorError("reference period ends before it starts", file=cfg.path, field="reference.to")
            self.description = f"production {ref.start} to {ref.end}"

    def load(self) -> None:
        """Read a fixed reference (run or period) from the store, after this pass stored its records."""
        if self.run is not None:
            self.fixed = self._from_run(self.store, *self.run)
        elif self.period is not None:
            self.fixed = self._from_period(*self.period)

    @staticmethod
    def _from_run(store: Store, run_id: str, variant: str) -> Bucket:
        b = Bucket()
        n, failed = store.call_counts(run_id, variant)
        b.records, b.sampled, b.failed = n, n - failed, failed
        for ev, score, passed, error in store.score_records(run_id, variant):
            b.add_score(ev, score, passed, error)
        return b

    def _from_period(self, start: float, end: float) -> Bucket:
        b = Bucket()
        b.failed, b.records = self.mstore.failures_between(start, end)
        for _, ev, score, passed, error in self.mstore.scores_between(start, end, by="ts"):
            b.add_score(ev, score, passed, error)
        return b

    def bucket(self, win: int) -> Bucket | None:
        if self.fixed is not None:
            return self.fixed
        if self.cfg.reference is None:
            return None
        return self._from_period(win - self.previous, win)


def assess(cfg: MonitorConfig, win: int, bucket: Bucket, ref: Bucket | None) -> list[RuleResult]:
    """Every alert rule on one window."""
    results: list[RuleResult] = []
    tests: list[tuple[RuleResult, AlertRule]] = []
    for rule in cfg.alerts:
        value, n = bucket.value(rule.metric)
        min_n = rule.min_n or cfg.min_n
        r = RuleResult(rule.label, rule.metric, win, "ok", value, n, "")
        results.append(r)
        if rule.metric != "records" and (n < min_n or value is None):
            r.status, r.reason = "insufficient", f"n={n} < min_n {min_n}"
            continue
        if not rule.is_comparison:
            if rule.below is not None and value < rule.below:
                r.status, r.reason = "alert", f"{value:.4g} < {rule.below:g}"
            elif rule.above is not None and value > rule.above:
                r.status, r.reason = "alert", f"{value:.4g} > {rule.above:g}"
            else:
                r.reason = f"{value:.4g} within limits"
            continue
        ref_value, ref_n = ref.value(rule.metric) if ref is not None else (None, 0)
        r.reference, r.reference_n = ref_value, ref_n
        if ref_value is None or ref_n < min_n:
            r.status, r.reason = "no_reference", f"reference has n={ref_n} < min_n {min_n}"
            continue
        lower = rule.lower_is_better
        r.worse_by = (value - ref_value) if lower else (ref_value - value)
        alternative = "greater" if lower else "less"
        if rule.metric == "error_rate" or rule.metric.rpartition(".")[2] in RATE_STATS:
            res = stats.two_proportions_test(*ref.counts(rule.metric), *bucket.counts(rule.metric),
                                             alternative=alternative)
        elif cfg.test == "permutation":
            res = stats.permutation_test_two_sample(ref.values(rule.metric), bucket.values(rule.metric),
                                                    alternative=alternative, seed=cfg.sampling.seed)
        else:
            res = stats.mann_whitney(ref.values(rule.metric), bucket.values(rule.metric), alternative=alternative)
        r.pvalue, r.test, r.effect_size, r.effect_name = res.pvalue, res.test, res.effect_size, res.effect_name
        tests.append((r, rule))
    if tests:
        adjusted = stats.holm([r.pvalue for r, _ in tests])
        for (r, rule), p in zip(tests, adjusted):
            r.pvalue_adjusted = float(p)
            _decide(r, rule, cfg.alpha)
    return results


def _decide(r: RuleResult, rule: AlertRule, default_alpha: float) -> None:
    alpha = rule.alpha or default_alpha
    where = f"{r.value:.4g} vs reference {r.reference:.4g} (n={r.n}/{r.reference_n}), {r.test} p={r.pvalue_adjusted:.3g}"
    relative = r.worse_by / abs(r.reference) if r.reference else (math.inf if r.worse_by > 0 else 0.0)
    if math.isnan(r.pvalue_adjusted) or r.pvalue_adjusted >= alpha:
        r.reason = f"no significant worsening: {where} >= alpha {alpha:g}"
    elif rule.drop is not None and r.worse_by <= rule.drop:
        r.reason = f"significant but small: worse by {r.worse_by:.4g} <= drop {rule.drop:g}; {where}"
    elif rule.relative_drop is not None and relative <= rule.relative_drop:
        r.reason = f"significant but small: worse by {relative:.1%} <= {rule.relative_drop:.0%}; {where}"
    else:
        r.status = "alert"
        r.reason = f"worse by {r.worse_by:.4g} ({relative:.1%}): {where} < alpha {alpha:g}"
