"""The gate: policy rules -> a verdict with the measured value and reason for every rule.

A rule is ``METRIC OP NUMBER`` (``exact_match.pass_rate >= 0.6``, ``latency_ms.p95 < 2000``),
checked for every gated variant (all but the baseline, unless the suite says
otherwise) or for the one variant a rule names. A metric without a value
(no scored rows) fails its rule.
"""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass
from typing import Any

from .errors import GateError
from .suite import GateRuleSpec, Suite
from .summary import known_metrics, metric_value

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq, "!=": operator.ne}
RULE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")


@dataclass(frozen=True)
class Rule:
    text: str
    metric: str
    op: str
    threshold: float
    variant: str | None = None


@dataclass
class RuleResult:
    rule: str
    variant: str
    metric: str
    op: str
    threshold: float
    value: float | None
    passed: bool
    reason: str


def parse_rules(suite: Suite, evaluators: list[str]) -> list[Rule]:
    """Parse and check the suite's gate rules; unknown metrics are errors (exit 2)."""
    rules = []
    allowed = set(known_metrics(evaluators))
    variant_names = {v.name for v in suite.variants}
    for i, raw in enumerate(suite.gate.rules):
        spec = raw if isinstance(raw, GateRuleSpec) else GateRuleSpec(rule=raw)
        field = f"gate.rules[{i}]"
        m = RULE.match(spec.rule)
        if not m:
            raise GateError(
                f"malformed rule '{spec.rule}'", file=suite.path, field=field,
                hint="write METRIC OP NUMBER, e.g. 'exact_match.pass_rate >= 0.6'; OP is one of " + " ".join(OPS),
            )
        metric, op, number = m.groups()
        if metric not in allowed:
            raise GateError(
                f"rule '{spec.rule}' names unknown metric '{metric}'", file=suite.path, field=field,
                hint="metrics: " + ", ".join(sorted(allowed)[:40]),
            )
        if spec.variant and spec.variant not in variant_names:
            raise GateError(f"rule names unknown variant '{spec.variant}'", file=suite.path, field=field)
        rules.append(Rule(spec.rule.strip(), metric, op, float(number), spec.variant))
    return rules


def evaluate_gate(summary: dict[str, Any], rules: list[Rule], gated: list[str]) -> dict[str, Any]:
    """The verdict: ``{"passed": bool, "rules": [...], "variants": [...]}``."""
    results: list[RuleResult] = []
    present = [v for v in gated if v in summary["variants"]]
    for rule in rules:
        for variant in [rule.variant] if rule.variant else present:
            if variant not in summary["variants"]:
                continue
            value = metric_value(summary, variant, rule.metric)
            if value is None:
                ok, reason = False, f"{rule.metric} has no value (no scored rows)"
            else:
                ok = OPS[rule.op](value, rule.threshold)
                reason = f"{rule.metric} = {value:.4g} {'meets' if ok else 'misses'} {rule.op} {rule.threshold:g}"
            results.append(RuleResult(rule.text, variant, rule.metric, rule.op, rule.threshold, value, ok, reason))
    return {
        "passed": all(r.passed for r in results),
        "variants": present,
        "rules": [asdict(r) for r in results],
    }
