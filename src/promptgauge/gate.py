"""The gate: a policy -> a verdict listing every rule with its measured value, pass/fail and why.

The policy is the suite's ``gate:`` section or its own YAML file (``gate: policy.yaml``,
or ``--policy``). One rule grammar:

``METRIC OP NUMBER`` -- a threshold (OP: ``>= > <= < == !=``). METRIC is

- a metric of the gated variant (:mod:`promptgauge.metrics`): ``contains.pass_rate``,
  ``f1.mean``, ``error_rate``, ``latency_ms.p95``, ``tokens.total``...;
- a CI bound at ``gate.confidence`` (default 95 %): ``f1.ci_low`` (of ``f1.mean``),
  ``contains.pass_rate.ci_low``, ``f1.mean.ci_high``;
- a change vs. the baseline (candidate - baseline): ``f1.mean.delta``,
  ``contains.pass_rate.delta.ci_low``; ``EV.delta`` is the change of the evaluator's primary
  metric (``pass_rate`` when it has pass/fail, else ``mean``);
- a cost from tokens and prices (per million tokens): ``cost.total``, ``cost.per_row``; the price is
  the variant's own entry in ``gate.prices``, else its model's (``gate.prices`` over the built-in
  table, by exact name then longest prefix: :class:`promptgauge.cost.PriceTable`).

``METRIC: no_regression(max_drop=0.02, alpha=0.05)`` -- no significant regression vs. the
baseline (``EV``, ``EV.pass_rate``, ``EV.mean``, ``error_rate``, ``latency_ms.mean``): fails iff
the one-sided paired test that the candidate is worse, Holm-adjusted over the variant's
no_regression rules, is below alpha *and* the metric got worse by more than max_drop (see
:func:`promptgauge.stats.no_regression`). Worse follows the metric's direction
(:func:`promptgauge.metrics.higher_is_better`): for latency, cost or an evaluator with
``higher_is_better: false``, worse is higher. Three outcomes: fail as above; pass when the test
could have seen a drop of max_drop (its minimum detectable effect at the rule's ``power``, default
0.8, is at most max_drop: :mod:`promptgauge.power`); else **inconclusive**, with the rows that would
decide it. ``gate.on_inconclusive`` (fail | pass | warn; default: the verb's -- fail for ci, compare
and promote, warn for a plain run) says what inconclusive means for the exit code.
In YAML, ``- exact_match: no_regression(max_drop=0.02)`` is the same rule.

``gate.required: [EV, ...]`` -- each evaluator must have scored rows.

No vacuous pass: every evaluator must have scored rows even when no rule names it (an
evaluator the suite marks ``optional: true`` is reported as SKIPPED instead, and passes);
a gated variant must have at least one successful call; a rule whose metric rests on no
data -- an ``EV.*`` metric of an evaluator with no scored rows, a call metric of a variant
without calls -- fails with that reason instead of reading a 0 as a pass.

Rules apply to every gated variant (all but the baseline, or ``gate.variants``), or to the
one a ``{rule, variant}`` entry names. A value that cannot be measured fails its rule.
Metric names and the rule grammar live in :mod:`promptgauge.metrics`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import power as power_
from . import stats
from .compare import Comparison
from .cost import PriceTable
from .errors import GateError
from .metrics import (
    CALL,
    FUNCTIONS,
    GRAMMAR,
    MIN_AGREEMENT,
    NUMBER,
    OPS,
    STREAM_METRICS,
    THRESHOLD,
    comparable,
    metric_hint,
    metric_value,
    pairwise_hint,
    pairwise_metric,
    split_metric,
)
from .report.format import sig
from .results import Side
from .suite import GatePolicy, GateRuleSpec, Suite
from .yamlutil import line_of, load_yaml


@dataclass(frozen=True)
class Rule:
    text: str
    kind: str  # threshold | no_regression | required | scored (implicit: every evaluator scored rows)
    metric: str
    op: str = ""
    threshold: float | None = None
    variant: str | None = None
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class RuleResult:
    rule: str
    kind: str
    variant: str
    metric: str
    op: str
    threshold: float | None
    value: float | None
    passed: bool
    reason: str
    p_value: float | None = None
    outcome: str = ""  # pass | fail | inconclusive (default: from passed)
    mde: float | None = None  # no_regression: the smallest drop its test detects at the rule's alpha and power
    rows_needed: int | None = None  # inconclusive no_regression: the rows (same noise) that would decide it

    def __post_init__(self) -> None:
        self.outcome = self.outcome or ("pass" if self.passed else "fail")


#: What an inconclusive rule means for the exit code, when the policy does not say.
ON_INCONCLUSIVE = ("fail", "pass", "warn")


@dataclass
class Subject:
    """A gated variant: its metrics, its rows and (when there is a baseline) its comparison."""

    variant: str
    summary: dict[str, Any]  # summary.variant_summary() of the variant
    side: Side
    comparison: Comparison | None = None


# ------------------------------------------------------------------------------ parsing


def parse_rules(policy: GatePolicy, evaluators: list[str], *, variants: list[str] | None = None,
                file: str | Path | None = None, in_suite: bool = True, optional: Collection[str] = (),
                aggregating: Collection[str] = (), pairwise: Collection[str] = ()) -> list[Rule]:
    """Parse and check a policy's rules; a malformed rule or unknown metric is a :class:`GateError` (exit 2).

    *file* is where the policy was written (a suite, ``in_suite``, or a policy file), for messages.
    Every evaluator not in ``required`` also gets an implicit check that it scored rows (kind
    ``scored``; reported only when it fails, or as SKIPPED for the *optional* evaluators); so does
    every *pairwise* judge (it must have judged pairs of the gated variant).
    """
    rules = []

    def where(i: int) -> dict[str, Any]:
        loc: tuple[Any, ...] = ("gate", "rules", i) if in_suite else ("rules", i)
        line = None
        if file:
            with contextlib.suppress(Exception):  # the line is a nicety; the message must still come out
                line = line_of(load_yaml(Path(file))[1], loc)
        return {"file": file, "line": line, "field": ".".join(map(str, loc[:-1])) + f"[{i}]"}

    for i, raw in enumerate(policy.rules):
        spec = raw if isinstance(raw, GateRuleSpec) else GateRuleSpec(rule=raw)
        if spec.variant and variants is not None and spec.variant not in variants:
            raise GateError(f"rule names unknown variant '{spec.variant}'", **where(i),
                            hint="variants: " + ", ".join(variants))
        rules.append(_parse_rule(spec, evaluators, lambda i=i: where(i), aggregating, pairwise))
    for ev in policy.required:
        rules.append(Rule(f"required: {ev}", "required", ev))
    for ev in evaluators:
        if ev not in policy.required:
            rules.append(Rule(f"scored: {ev}", "scored", ev, params={"optional": float(ev in optional)}))
    for ev in pairwise:
        rules.append(Rule(f"judged: {ev}", "scored", ev, params={"optional": float(ev in optional), "pairwise": 1.0}))
    return rules


def suite_rules(suite: Suite, evaluators: list[str]) -> list[Rule]:
    """The rules of a suite's own policy (in the suite, or the file ``gate:`` names)."""
    return parse_rules(suite.gate, evaluators, variants=[v.name for v in suite.variants],
                       file=suite.gate_file or suite.path, in_suite=suite.gate_file is None,
                       optional=[e.name for e in suite.evaluators if e.optional],
                       aggregating=[e.name for e in suite.evaluators if e.kind.startswith("flow:")],
                       pairwise=pairwise_judges(suite))


def pairwise_judges(suite: Suite) -> list[str]:
    """The names of a suite's pairwise judges (``type: pairwise``)."""
    return [e.name for e in suite.evaluators if e.kind == "pairwise"]


def _parse_rule(spec: GateRuleSpec, evaluators: list[str], where: Callable[[], dict[str, Any]],
                aggregating: Collection[str] = (), pairwise: Collection[str] = ()) -> Rule:
    text = spec.rule.strip()
    if m := THRESHOLD.match(text):
        metric, op, number = m.groups()
        if pairwise_metric(metric, pairwise) is not None:
            return Rule(text, "threshold", metric, op, float(number), spec.variant, {"pairwise": 1.0})
        if split_metric(metric, evaluators, aggregating) is None:
            hint = metric_hint(evaluators) + (f"; {pairwise_hint(pairwise)}" if pairwise else "")
            raise GateError(f"rule '{text}' names unknown metric '{metric}'", **where(), hint=hint)
        return Rule(text, "threshold", metric, op, float(number), spec.variant)
    if m := CALL.match(text):
        metric, fn, args = m.groups()
        if fn not in FUNCTIONS:
            raise GateError(f"rule '{text}' calls unknown function '{fn}'", **where(),
                            hint="functions: " + ", ".join(f"{k}({', '.join(f'{a}={d}' for a, d in v.items())})"
                                                           for k, v in FUNCTIONS.items()))
        if metric not in comparable(evaluators):
            raise GateError(f"rule '{text}' names unknown metric '{metric}'", **where(),
                            hint="no_regression takes one of: " + ", ".join(sorted(comparable(evaluators))))
        params = dict(FUNCTIONS[fn])
        for arg in filter(None, (a.strip() for a in args.split(","))):
            name, eq, value = (p.strip() for p in arg.partition("="))
            if not eq or name not in params or not re.fullmatch(NUMBER, value):
                raise GateError(f"rule '{text}': bad argument '{arg}'", **where(),
                                hint=f"{fn} takes " + ", ".join(f"{k}=NUMBER" for k in params))
            params[name] = float(value)
        if not 0 < params["alpha"] < 1 or params["max_drop"] < 0 or not 0 < params["power"] < 1:
            raise GateError(f"rule '{text}': alpha and power must lie in (0, 1) and max_drop be >= 0", **where())
        return Rule(text, fn, metric, "no_regression", params["max_drop"], spec.variant, params)
    raise GateError(f"malformed rule '{text}'", **where(), hint=GRAMMAR)


# ---------------------------------------------------------------------------- evaluation


def _primary(metric: str, side: Side) -> str:
    """``EV`` -> ``EV.pass_rate`` when the evaluator has pass/fail, else ``EV.mean``."""
    if metric in side.evaluators:
        return f"{metric}.pass_rate" if f"{metric}.pass_rate" in side.metrics() else f"{metric}.mean"
    return metric


def _ci(subject: Subject, metric: str, confidence: float) -> tuple[float, float] | None:
    return metric_ci(subject.side, metric, confidence)


def metric_ci(side: Side, metric: str, confidence: float = 0.95) -> tuple[float, float] | None:
    """The CI of a per-row metric (``f1.mean``, ``contains.pass_rate``, a column of ``side.table()``) as the
    gate's ``ci_low`` / ``ci_high`` see it: Wilson for 0/1 columns, else a seeded bootstrap of the mean.
    None when the metric has no column; NaN bounds when there are too few rows."""
    table = side.metrics()
    if metric not in table:
        return None
    x = table[metric]
    x = x[~np.isnan(x)]
    if x.size and np.isin(x, (0.0, 1.0)).all():
        return stats.proportion_ci(int(x.sum()), int(x.size), confidence=confidence)
    return stats.mean_ci(x, confidence=confidence, seed=0)


def _cost(subject: Subject, metric: str, policy: GatePolicy) -> tuple[float | None, str]:
    hashes = subject.side.hashes()
    model = hashes["model"].get("model") or hashes["model"].get("target")
    price = PriceTable.from_config(policy.prices).for_variant(subject.variant, model and str(model))
    if price is None:
        return None, f"no price for variant '{subject.variant}' or model '{model}' in gate.prices"
    tokens = subject.summary["calls"]["tokens"]
    total = price.cost(tokens["prompt"], tokens["completion"])
    n = subject.summary["calls"]["n"]
    return (total if metric == "cost.total" else (total / n if n else None)), ""


def _pairwise(metric: str, subject: Subject, policy: GatePolicy) -> tuple[float | None, str]:
    """A pairwise judge's metric for a gated variant (CI bounds at the policy's confidence), or None and why not."""
    judge, stat, bound = pairwise_metric(metric, [metric.split(".")[0]]) or ("", "", None)
    found = (subject.summary.get("pairwise") or {}).get(judge)
    if found is None:
        return None, (f"no data: pairwise judge '{judge}' judged no pair of '{subject.variant}' and the baseline "
                      "(a pairwise judge needs the baseline variant in the same run)")
    if not found["n"]:
        return None, f"no data: pairwise judge '{judge}' has no judged pairs ({found['errors']} errors)"
    if bound is not None:
        low, high = stats.win_rate_ci(found["wins"], found["ties"], found["losses"], confidence=policy.confidence)
        return (low if bound == "ci_low" else high), ""
    value = found.get(stat)
    return (None if value is None else float(value)), f"{metric} was not measured"


def _measure(rule: Rule, subject: Subject, policy: GatePolicy) -> tuple[float | None, str]:
    """The value a threshold rule compares, or None and why not."""
    if rule.params.get("pairwise"):
        return _pairwise(rule.metric, subject, policy)
    source, base, bound = split_metric(rule.metric, subject.side.evaluators, subject.side.evaluators) \
        or ("", rule.metric, None)
    if (empty := _no_data(rule.metric, subject)) is not None:
        return None, empty
    if source == "summary":
        try:
            return metric_value({"variants": {subject.variant: subject.summary}}, subject.variant, base), \
                "no scored rows"
        except KeyError:
            return None, f"{base} was not measured"
    if source == "cost":
        return _cost(subject, base, policy)
    base = _primary(base, subject.side)
    if source == "ci":
        ci = _ci(subject, base, policy.confidence)
        if ci is None or math.isnan(ci[0]):
            return None, f"{base} has too few scored rows for a CI"
        return ci[0] if bound == "ci_low" else ci[1], ""
    if subject.comparison is None:
        return None, "no baseline to compare with"
    mc = subject.comparison.metric(base)
    if mc is None:
        return None, f"{base} is not compared (missing on one side)"
    return (mc.delta if bound is None else mc.ci_low if bound == "ci_low" else mc.ci_high), \
        f"{base} has no paired rows"


def _no_data(metric: str, subject: Subject) -> str | None:
    """Why *metric* rests on no data for *subject* (None when it has data): an ``EV.*`` metric of an
    evaluator without scored rows, a call metric of a variant without (successful) calls."""
    head = metric.split(".")[0]
    calls = subject.summary["calls"]
    m = subject.summary["metrics"].get(head)
    if m is not None:
        return None if m["n"] else f"no data: evaluator '{head}' has no scored rows ({m['errors']} errors)"
    if head == "error_rate":
        return None if calls["n"] else "no data: no calls"
    if head in ("latency_ms", "tokens", "tokens_per_s", "cost"):
        if calls["n"] - calls["errors"] <= 0:
            return f"no data: no successful call ({calls['n']} calls)"
        if metric in STREAM_METRICS and "ttft" not in calls["latency_ms"]:
            return "no data: no streamed answer (time to first token is measured on stream: true)"
    return None


def _scored(rule: Rule, subject: Subject) -> RuleResult | None:
    """The implicit check that an evaluator scored rows: a failure, a loud SKIPPED for an optional one,
    or None (nothing to report) when it did."""
    if rule.params.get("pairwise"):
        value, why = _pairwise(f"{rule.metric}.n", subject, GatePolicy())
        if value:
            return None
        ok = bool(rule.params.get("optional"))
        return RuleResult(rule.text, "required", subject.variant, f"{rule.metric}.n", "", None, value or 0.0, ok,
                          ("SKIPPED: " if ok else "") + f"{why}; a gate does not pass on nothing")
    m = subject.summary["metrics"].get(rule.metric)
    if m is None or m["n"]:
        return None
    why = f"{m['errors']} error(s)"
    if rule.params.get("optional"):
        return RuleResult(rule.text, "required", subject.variant, f"{rule.metric}.n", "", None, 0.0, True,
                          f"SKIPPED: optional evaluator '{rule.metric}' scored no rows ({why})")
    return RuleResult(rule.text, "required", subject.variant, f"{rule.metric}.n", "", None, 0.0, False,
                      f"evaluator '{rule.metric}' scored no rows ({why}); a gate does not pass on nothing "
                      "(mark it 'optional: true' in the suite to let it be skipped)")


def _has_calls(subject: Subject) -> RuleResult | None:
    """A gated variant without one successful call fails, whatever its rules say."""
    calls = subject.summary["calls"]
    if calls["n"] - calls["errors"] > 0:
        return None
    return RuleResult("has results", "required", subject.variant, "calls", "", None, float(calls["n"]), False,
                      f"variant '{subject.variant}' has no successful call ({calls['n']} calls, {calls['errors']} "
                      "errors): a gate does not pass on nothing")


def regression_outcome(no_regression: bool, det: power_.Detectability | None, max_drop: float) -> str:
    """A no_regression rule's outcome: ``fail`` when :func:`promptgauge.stats.no_regression` found a regression,
    ``pass`` when it did not and the test could have seen a drop of *max_drop* (*det*'s MDE <= max_drop),
    else ``inconclusive``."""
    if not no_regression:
        return "fail"
    return "pass" if det is not None and det.decidable(max_drop) else "inconclusive"


def _no_regression(rules: list[Rule], subject: Subject, on_inconclusive: str) -> list[RuleResult]:
    """no_regression rules of one variant, Holm-adjusted together: pass, fail or inconclusive.

    Fail: the one-sided paired test says worse (Holm-adjusted p < alpha) and the drop exceeds max_drop.
    Pass: otherwise, if the test could have seen a drop of max_drop -- its MDE at the rule's power and
    alpha / k (k rules: Holm's strictest step) is at most max_drop. Else inconclusive, with the rows that
    would decide it (:mod:`promptgauge.power`).
    """
    comp = subject.comparison
    out: list[RuleResult] = []
    found = []
    for rule in rules:
        metric = _primary(rule.metric, subject.side)
        pc = comp.paired(metric) if comp else None
        found.append((rule, metric, pc))
    adjusted = stats.holm([pc.pvalue_regression if pc else math.nan for _, _, pc in found])
    family = max(1, sum(1 for _, _, pc in found if pc is not None and pc.n))
    for (rule, metric, pc), p_adj in zip(found, adjusted):
        mc = comp.metric(metric) if comp else None
        if pc is None or mc is None:
            why = "no baseline to compare with" if comp is None else f"{metric} is not compared (missing on one side)"
            out.append(RuleResult(rule.text, rule.kind, subject.variant, metric, rule.op, rule.threshold, None,
                                  False, why))
            continue
        max_drop, alpha = rule.params["max_drop"], rule.params["alpha"]
        check = stats.no_regression(dataclasses.replace(pc, pvalue_regression=p_adj), max_drop=max_drop, alpha=alpha)
        worse = "rose" if not mc.higher_is_better else "fell"
        change = (f"{metric} {sig(mc.baseline)} -> {sig(mc.candidate)} (delta {sig(mc.delta)}, "
                  f"{comp.confidence:.0%} CI [{sig(mc.ci_low)}, {sig(mc.ci_high)}], n={mc.n}"
                  f"{'' if mc.higher_is_better else ', lower is better'}); {mc.test} one-sided p (worse) "
                  f"{sig(pc.pvalue_regression)}, Holm over {len(found)} no_regression rule(s) {sig(p_adj)}")
        det = comp.detectability(metric)
        if det is not None:
            det = power_.at(det, alpha=alpha / family, power=rule.params.get("power", power_.DEFAULT_POWER))
        mde = det.mde if det is not None else None
        needed = None
        outcome = regression_outcome(check.ok, det, max_drop)
        if outcome == "fail":
            reason = (f"REGRESSION: {metric} {worse} by more than max_drop {max_drop:g} and the "
                      f"drop is significant at alpha {alpha:g}: {change}"
                      if pc.n else f"no paired rows to compare {metric}")
        elif outcome == "pass":
            reason = f"no regression: {change}; a drop of max_drop {max_drop:g} would have been seen: {det.describe()}"
        else:
            needed, why_not = power_.rows_needed(det, max_drop) if det is not None else (None, "no paired test")
            more = (f"about {needed:,} rows at this agreement would decide it" if needed is not None
                    else f"more rows will not decide it: {why_not}")
            reason = (f"INCONCLUSIVE: {mc.n} rows cannot tell a drop of max_drop {max_drop:g} from noise "
                      f"({det.describe() if det is not None else 'no MDE'}); {more}; "
                      f"counts as {on_inconclusive} (on_inconclusive): {change}")
        passed = outcome == "pass" or (outcome == "inconclusive" and on_inconclusive != "fail")
        out.append(RuleResult(rule.text, rule.kind, subject.variant, metric, rule.op, rule.threshold, mc.delta,
                              passed, reason, _num(p_adj), outcome, mde, needed))
    return out


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def evaluate_gate(rules: list[Rule], subjects: list[Subject], policy: GatePolicy | None = None, *,
                  baseline: str | None = None, policy_file: str | Path | None = None,
                  on_inconclusive: str = "fail") -> dict[str, Any]:
    """The verdict: ``{"passed", "outcome", "on_inconclusive", "variants", "baseline", "policy", "rules": [...]}``.

    ``outcome`` is fail when a rule failed, else inconclusive when a no_regression rule could not tell a drop of
    its max_drop from noise, else pass. ``passed`` (the exit code) is the outcome read with the policy's
    ``on_inconclusive`` (else the verb's *on_inconclusive*): inconclusive passes under ``pass`` and ``warn``.
    """
    policy = policy or GatePolicy()
    treat = policy.on_inconclusive or on_inconclusive
    if treat not in ON_INCONCLUSIVE:
        raise ValueError(f"on_inconclusive must be one of {ON_INCONCLUSIVE}, got {treat!r}")
    results: list[RuleResult] = []
    for subject in subjects:
        start = len(results)
        mine = [r for r in rules if r.variant in (None, subject.variant)]
        regression = [r for r in mine if r.kind == "no_regression"]
        checked = dict(zip(map(id, regression), _no_regression(regression, subject, treat)))
        if (empty := _has_calls(subject)) is not None:
            results.append(empty)
        for rule in mine:
            if rule.kind == "scored":
                if (found := _scored(rule, subject)) is not None:
                    results.append(found)
            elif rule.kind == "no_regression":
                results.append(checked[id(rule)])
            elif rule.kind == "threshold":
                value, why = _measure(rule, subject, policy)
                if value is None:
                    ok, reason = False, f"{rule.metric} has no value ({why})"
                else:
                    ok = OPS[rule.op](value, rule.threshold)
                    reason = f"{rule.metric} = {value:.4g} {'meets' if ok else 'misses'} {rule.op} {rule.threshold:g}"
                results.append(RuleResult(rule.text, rule.kind, subject.variant, rule.metric, rule.op,
                                          rule.threshold, value, ok, reason))
            else:  # required
                m = subject.summary["metrics"].get(rule.metric)
                ok = bool(m and m["n"])
                reason = (f"evaluator '{rule.metric}' scored {m['n']} rows" if ok else
                          f"required evaluator '{rule.metric}' " + ("has no scored rows" if m else "did not run"))
                results.append(RuleResult(rule.text, rule.kind, subject.variant, rule.metric, "", None,
                                          float(m["n"]) if m else None, ok, reason))
        if policy.min_judge_agreement:
            results[start:] = [_trusted(r, subject, policy.min_judge_agreement) for r in results[start:]]
    policy_info = None
    if policy_file:
        p = Path(policy_file)
        policy_info = {"file": str(p), "sha256": _file_sha(p)}
    outcomes = {r.outcome for r in results}
    outcome = "fail" if "fail" in outcomes else "inconclusive" if "inconclusive" in outcomes else "pass"
    return {
        "passed": all(r.passed for r in results),
        "outcome": outcome,
        "on_inconclusive": treat,
        "variants": [s.variant for s in subjects],
        "baseline": baseline,
        "policy": policy_info,
        "rules": [asdict(r) for r in results],
    }


def judges(subject: Subject) -> set[str]:
    """The subject's evaluators that are LLM judges (they call a model)."""
    return {ev for ev, e in (subject.side.manifest.get("evaluators") or {}).items()
            if isinstance(e, dict) and e.get("model")}


def _trusted(result: RuleResult, subject: Subject, minimum: str) -> RuleResult:
    """*result*, or a failure when its metric is an LLM judge's and the judge does not (yet) agree with the human
    labels as much as ``gate.min_judge_agreement`` asks -- or has no human labels to agree with."""
    judge = result.metric.split(".")[0]
    if result.kind not in ("threshold", "no_regression") or judge not in judges(subject):
        return result
    stat, op, number = MIN_AGREEMENT.match(minimum).groups()  # type: ignore[union-attr] - checked by GatePolicy
    metrics = subject.summary["metrics"].get(judge) or {}
    found = metrics.get("human_agreement")
    if "human_agreement" not in metrics:
        why = (f"judge '{judge}' has no human labels to agree with (set human_label: COLUMN on it); "
               f"min_judge_agreement {minimum} cannot be checked")
    elif found is None or found.get(stat) is None:
        rows = found["rows"] if found else 0
        why = f"judge '{judge}': {stat} with the human labels is undefined ({rows} labelled rows)"
    elif not OPS[op](found[stat], float(number)):
        why = (f"judge '{judge}' does not agree enough with the human labels: {stat} {found[stat]:.3g} misses "
               f"{op} {float(number):g} ({found['rows']} labelled rows)")
    else:
        return result
    return dataclasses.replace(result, passed=False, outcome="fail",
                               reason=f"NOT TRUSTED: {why}, so its metrics do not gate (measured: {result.reason})")


def _file_sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
