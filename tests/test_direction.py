"""Which way a metric is better: one definition, used by the run manifest, compare, the gate, thresholds and
the monitor; and which p-value the comparison shows (two-sided, Holm) vs. the gate (one-sided)."""

from __future__ import annotations

import re

import pytest
from conftest import cli
from test_compare import ab, ab_rows  # noqa: F401 -- the fixture and helpers of the comparison tests

from promptgauge import api
from promptgauge.metrics import higher_is_better

WORDS = '''
def words(*, response):
    return {"words": len(str(response).split())}


class Wordiness:
    higher_is_better = False

    def __call__(self, *, response):
        return {"wordiness": len(str(response).split())}
'''


def test_higher_is_better_names_every_metric_family():
    directions = {"words": False, "cost": True}
    assert higher_is_better("words.mean", directions) is False
    assert higher_is_better("words.p95", directions) is False
    assert higher_is_better("words.pass_rate", directions) is True  # passing is better, whatever the score
    assert higher_is_better("words.error_rate", directions) is False
    assert higher_is_better("words.reliability.alpha", directions) is True
    assert higher_is_better("cost.mean", directions) is True  # an evaluator's own say wins over the family
    assert higher_is_better("cost.total", {}) is False
    assert higher_is_better("f1.mean", directions) is True  # unknown evaluator: higher
    assert [higher_is_better(m) for m in ("error_rate", "latency_ms.p95", "tokens.total", "records")] == \
        [False, False, False, True]


@pytest.fixture
def wordy(ab):  # noqa: F811
    """b answers in 5 words where a answers in 1 on rows 0-19 (both right); three evaluators count the words."""
    rows = ab_rows(30, a_wrong=set(), b_wrong=set())
    for r in rows[:20]:
        r["b"] = f"{r['b']} is the answer here"
    ab.dataset(rows)
    (ab.root / "evaluators").mkdir()
    (ab.root / "evaluators" / "words.py").write_text(WORDS)
    ab.suite(evaluators=[
        {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
        {"name": "words", "higher_is_better": False, "threshold": 3},  # the suite says: fewer is better
        {"name": "wordiness", "type": "Wordiness"},  # the class says so
        {"name": "verbosity", "type": "words"},  # nobody says: higher is better
        {"name": "latency"},
    ], gate={"rules": ["words: no_regression(max_drop=0.5)", "wordiness.mean: no_regression(max_drop=0.5)",
                       "verbosity: no_regression(max_drop=0.5)", "latency: no_regression(max_drop=100000)"]})
    return ab


def test_a_lower_is_better_metric_that_rises_is_a_regression(wordy, capsys):
    code, out, err = cli(capsys, wordy.root, "run", "--no-progress")
    assert code == 1, out + err
    report = api.compare("a", "b", suite=wordy.root / "promptgauge.yaml")
    comp = report.comparison
    manifest = report.candidate.manifest["evaluators"]
    assert {e: manifest[e]["higher_is_better"] for e in manifest} == {
        "contains": True, "words": False, "wordiness": False, "verbosity": True, "latency": False}
    for name in ("words.mean", "wordiness.mean"):
        m = comp.metric(name)
        assert m.higher_is_better is False and m.delta == pytest.approx(4 * 20 / 30)
        assert (m.change, m.rows_worse, m.rows_better) == ("regressed", 20, 0)
        assert m.p_holm < 0.001 and m.p_regression < 0.001 and m.effect_size < 0  # effect oriented: < 0 is worse
    up = comp.metric("verbosity.mean")  # the same scores, read the other way
    assert (up.higher_is_better, up.change, up.rows_better, up.rows_worse) == (True, "improved", 20, 0)
    assert up.p_regression > 0.99
    # biggest worsenings: the risen word counts, not the "improved" verbosity
    assert len(comp.drops) == 20 and {d.metric for d in comp.drops} <= {"words.mean", "wordiness.mean"}
    assert {d.delta for d in comp.drops} == {4.0}
    # a threshold on a lower-is-better score passes at or below it: 5 words fail "threshold: 3"
    words_pass = comp.metric("words.pass_rate")
    assert words_pass.higher_is_better is True and (words_pass.baseline, words_pass.candidate) == (1.0, 1 / 3)
    assert words_pass.change == "regressed"
    assert {f.row_id for f in comp.flips if f.direction == "pass->fail"} == {f"r{i:03d}" for i in range(20)}
    status = {r.row_id: r.status for r in comp.row_diffs}
    assert {status[f"r{i:03d}"] for i in range(20)} == {"mixed"}  # worse word counts, "better" verbosity
    assert {status[f"r{i:03d}"] for i in range(20, 30)} == {"unchanged"}  # latency noise does not count
    # the latency evaluator and the run's latency are one metric, shown once, reachable by both names
    names = [m.metric for m in comp.metrics]
    assert "latency_ms.mean" in names and "latency.mean" not in names
    assert comp.metric("latency.mean") is comp.metric("latency_ms.mean")
    # the gate: a risen word count is a regression; the same rise read as "more is better" is not
    rules = {r["rule"].split(":")[0]: r for r in report.verdict["rules"]}
    assert not rules["words"]["passed"] and "REGRESSION: words.pass_rate fell" in rules["words"]["reason"]
    assert not rules["wordiness.mean"]["passed"] and "wordiness.mean rose" in rules["wordiness.mean"]["reason"]
    assert "lower is better" in rules["wordiness.mean"]["reason"]
    assert rules["latency"]["passed"] and rules["latency"]["outcome"] == "pass"
    # 30 rows cannot rule out a 0.5-word drop at this spread: inconclusive (compare's default: counts as a failure)
    assert rules["verbosity"]["outcome"] == "inconclusive" and not rules["verbosity"]["passed"]
    assert "INCONCLUSIVE" in rules["verbosity"]["reason"] and rules["verbosity"]["rows_needed"] > 30
    # every view labels the direction and says "regressed"
    line = next(x for x in out.splitlines() if x.strip("│ ").startswith("wordiness.mean"))
    assert "(lower is better)" in line and "regressed" in line
    md = report.reports["markdown"].read_text()
    assert re.search(r"\| `wordiness.mean` \(lower is better\) \|.*\| ▼ \*\*regressed\*\* \|", md)
    assert re.search(r"\| `verbosity.mean` \|.*\| ▲ improved \|", md)


def test_two_sided_p_is_shown_for_a_change_one_sided_for_the_gate(ab, capsys):  # noqa: F811
    # a gets 20 of 30 rows wrong, b none: an obvious improvement
    ab.dataset(ab_rows(30, a_wrong=set(range(20)), b_wrong=set()))
    ab.suite(gate={"rules": ["exact_match: no_regression(max_drop=0)"]})
    code, out, err = cli(capsys, ab.root, "run", "--no-progress")
    assert code == 0, out + err
    report = api.compare("a", "b", suite=ab.root / "promptgauge.yaml")
    m = report.comparison.metric("exact_match.pass_rate")
    assert m.p_value == pytest.approx(2 * 0.5 ** 20)  # exact McNemar, two-sided: 20 discordant rows, all for b
    assert m.p_holm < 1e-4 and m.change == "improved" and m.p_regression == pytest.approx(1.0)
    # the terminal table shows the two-sided Holm p under a column that says so
    header = next(x for x in out.splitlines() if "p 2-sided (Holm)" in x)
    row = next(x for x in out.splitlines() if x.strip("│ ").startswith("exact_match.pass_rate"))
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert header and cells[-3] == f"{m.p_holm:.4f}" and cells[-2] == "improved"
    assert "two-sided paired test" in out
    # the gate's rule uses (and says) the one-sided p that b is worse
    rule = report.verdict["rules"][0]
    assert rule["p_value"] == pytest.approx(1.0) and "one-sided p (worse) 1" in rule["reason"]
    # max_drop=0: no number of rows rules out every drop, so the rule is inconclusive -- a plain run warns
    # (exit 0 above), compare counts it as a failure
    assert rule["outcome"] == "inconclusive" and not rule["passed"] and rule["rows_needed"] is None
    assert "max_drop 0: no number of rows" in rule["reason"]
    md = report.reports["markdown"].read_text()
    assert "| p two-sided (Holm) |" in md and "| p one-sided (Holm) |" in md
    md_row = next(x for x in md.splitlines() if x.startswith("| `exact_match.pass_rate`"))
    assert f"| {m.p_holm:.4f} |" in md_row and "▲ improved" in md_row
