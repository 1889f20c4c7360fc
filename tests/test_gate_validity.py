"""The gate's statistics hold up: A/A false-regression rate <= alpha, real drops caught; big reports fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promptgauge import stats
from promptgauge.compare import compare_sides
from promptgauge.gate import Subject, evaluate_gate, parse_rules
from promptgauge.report import build_document, render_markdown
from promptgauge.report.markdown import GITHUB_LIMIT
from promptgauge.results import Side, variant_summary
from promptgauge.suite import GateConfig


def make_side(variant: str, passed: np.ndarray, outputs: list[str] | None = None, run_id: str = "run") -> Side:
    """A side as the store would hold it: one result and one exact_match score per row."""
    n = len(passed)
    ids = [f"r{i:05d}" for i in range(n)]
    results = pd.DataFrame({
        "row_id": ids, "repeat": 0, "row_index": range(n), "inputs": [{"question": f"q{i}"} for i in range(n)],
        "output": outputs or ["x"] * n, "error": [None] * n, "latency_ms": np.nan, "prompt_tokens": 1,
        "completion_tokens": 1})
    scores = pd.DataFrame({
        "row_id": ids, "repeat": 0, "evaluator": "exact_match", "score": passed.astype(float),
        "passed": passed.astype(float), "error": [None] * n, "details": [None] * n})
    manifest = {"dataset": {"path": "d.jsonl", "sha256": "same", "rows": n}, "variants": {variant: {}},
                "evaluators": {"exact_match": {"source": "builtin"}}}
    return Side(run_id, variant, "sim", 0.0, manifest, {}, results, scores)


POLICY = GateConfig(rules=["exact_match: no_regression(max_drop=0.02, alpha=0.05)"])
RULES = parse_rules(POLICY, ["exact_match"])


def gate_says_regression(a: np.ndarray, b: np.ndarray) -> bool:
    """The whole gate path: rows -> comparison -> no_regression rule -> verdict."""
    base, cand = make_side("a", a), make_side("b", b)
    comp = compare_sides(base, cand, rows=False)
    subject = Subject("b", variant_summary(cand.results, cand.scores, ["exact_match"]), cand, comp)
    return evaluate_gate(RULES, [subject], POLICY)["outcome"] == "fail"  # inconclusive is not a regression


@pytest.mark.slow
def test_gate_false_regression_rate_and_power():
    """1000 A/A comparisons at n=400: regressions declared <= alpha; a real 5-point drop: caught >= 80 %.

    Data from stats.simulate_paired_binary (pass rate 0.75, 90 % agreement between the two sides).
    """
    n_aa, n_drop = 1000, 500
    false_alarms = sum(gate_says_regression(*stats.simulate_paired_binary(400, seed=s)) for s in range(n_aa))
    caught = sum(gate_says_regression(*stats.simulate_paired_binary(400, drop=0.05, seed=10_000 + s))
                 for s in range(n_drop))
    rate, power = false_alarms / n_aa, caught / n_drop
    print(f"A/A false-regression rate {rate:.3f} ({false_alarms}/{n_aa}); power at a 5-point drop {power:.3f} "
          f"({caught}/{n_drop})")
    assert rate <= 0.05
    assert power >= 0.80


def test_markdown_fits_a_github_comment():
    n = 3000
    rng = np.random.default_rng(0)
    a = np.ones(n, dtype=bool)
    b = rng.random(n) < 0.5
    long = ["<script> | `tick` " + "word " * 60 for _ in range(n)]
    comp = compare_sides(make_side("a", a), make_side("b", b, outputs=long), n_resamples=200)
    doc = build_document(kind="compare", title="big", suite="sim", run_id="run", variants={},
                         comparisons=[comp], verdict=None, hashes={"dataset": "same"})
    md = render_markdown(doc)
    assert len(md) <= GITHUB_LIMIT
    shown = md.count("| `r0")
    assert 0 < shown < int((~b).sum())
    assert f"… {int((~b).sum()) - shown} more rows not shown" in md
    assert md.rstrip().endswith("</sub>")  # the hashes section still made it in
    assert "<script>" not in md and "&lt;script&gt; \\| \\`tick\\` word" in md  # (promptgauge.escaping)
    # a small report is not cut
    small = compare_sides(make_side("a", a[:20]), make_side("b", b[:20]), n_resamples=200)
    md_small = render_markdown(build_document(kind="compare", title="small", suite="sim", run_id="run",
                                              variants={}, comparisons=[small], verdict=None, hashes={}))
    assert "more rows not shown" not in md_small and md_small.count("| `r0") == int((~b[:20]).sum())
