"""Point 1 of issue 16: pass / fail / inconclusive, validated by simulation (seeded numpy, no model).

The claims: A/A comparisons fail at most alpha of the time; the MDE a report states is right (a real drop of
that size is detected at the declared power); a rule passes only at or above the row count it states, never
below; inconclusive when the data cannot tell (n < 2, zero variance, max_drop 0, too few discordant rows).
"""

from __future__ import annotations

import numpy as np
import pytest

from promptgauge import power, stats
from promptgauge.gate import regression_outcome

ALPHA, POWER, MAX_DROP = 0.05, 0.8, 0.05


def judge(a_b: tuple[np.ndarray, np.ndarray], max_drop: float = MAX_DROP) -> tuple[str, power.Detectability]:
    """A binary no_regression rule on paired rows, as the gate decides it (one rule: no Holm family)."""
    a, b = a_b
    pc = stats.compare_paired(a, b, kind="binary")
    det = power.detectability(a, b, kind="binary", alpha=ALPHA, power=POWER)
    return regression_outcome(stats.no_regression(pc, max_drop=max_drop, alpha=ALPHA).ok, det, max_drop), det


def n_min(agreement: float = 0.9, max_drop: float = MAX_DROP) -> int:
    """The rows a drop of max_drop needs at the true agreement of the simulation."""
    need, _ = power.rows_needed(power.Detectability("binary", 1, 1 - agreement, ALPHA, POWER, None), max_drop)
    return need


def test_mcnemar_power_is_the_simulated_detection_rate():
    """The exact power formula agrees with simulated McNemar tests within 3 standard errors."""
    n, reps = 400, 400
    claimed = power.mcnemar_power(n, 0.10, 0.05, ALPHA)
    hits = sum(stats.mcnemar_exact(*stats.simulate_paired_binary(n, drop=0.05, seed=s)).pvalue_less < ALPHA
               for s in range(reps))
    se = np.sqrt(claimed * (1 - claimed) / reps)
    assert abs(hits / reps - claimed) < 3 * se + 0.01, (hits / reps, claimed)
    assert 0.75 < claimed < 0.85  # the README's 84.8 % at n=400, 90 % agreement, exact-test conservative


def test_aa_fails_at_most_alpha_and_passes_once_big_enough():
    minimum = n_min()
    counts = {"pass": 0, "fail": 0, "inconclusive": 0}
    big = {"pass": 0, "fail": 0, "inconclusive": 0}
    reps = 150
    for s in range(reps):
        for n in (minimum // 3, minimum // 2):
            counts[judge(stats.simulate_paired_binary(n, seed=s))[0]] += 1
        big[judge(stats.simulate_paired_binary(int(minimum * 1.3), seed=50_000 + s))[0]] += 1
    total = 2 * reps
    assert counts["fail"] / total <= ALPHA and big["fail"] / reps <= ALPHA
    assert counts["pass"] == 0  # well below the minimum: never a pass
    assert big["pass"] / reps >= 0.9  # above it the gate decides A/A as a pass


def test_below_the_stated_minimum_a_real_drop_never_passes():
    """A real drop of max_drop: below the rows the report states, inconclusive or fail -- never pass; the stated
    row count is above n whenever the rule is inconclusive."""
    minimum = n_min()
    seen = {"pass": 0, "fail": 0, "inconclusive": 0}
    for s in range(200):
        n = (minimum // 3, minimum // 2, int(minimum * 0.8))[s % 3]
        outcome, det = judge(stats.simulate_paired_binary(n, drop=MAX_DROP, seed=90_000 + s))
        seen[outcome] += 1
        if outcome == "inconclusive":
            need, why = power.rows_needed(det, MAX_DROP)
            assert need is not None and need > n, (n, need, why)
            assert not power.at(det, n=need - 1).decidable(MAX_DROP) or power.at(det, n=need).decidable(MAX_DROP)
    assert seen["pass"] == 0 and seen["inconclusive"] > 0 and seen["fail"] > 0


def test_at_the_minimum_a_real_drop_is_detected_at_the_declared_power():
    """n = the stated minimum for the true agreement: the paired test detects a drop of max_drop at >= the
    declared power (within sampling error), and a decided run passes a drop of max_drop at most 1 - power."""
    minimum, reps = n_min(), 300
    detected = passes = decided = 0
    for s in range(reps):
        a, b = stats.simulate_paired_binary(minimum, drop=MAX_DROP, seed=200_000 + s)
        detected += stats.mcnemar_exact(a, b).pvalue_less < ALPHA
        outcome, _ = judge((a, b))
        decided += outcome != "inconclusive"
        passes += outcome == "pass"
    se = np.sqrt(POWER * (1 - POWER) / reps)
    assert detected / reps >= POWER - 2 * se
    assert passes / reps <= 1 - POWER + 2 * se  # a drop of max_drop slips through at most 1 - power
    assert decided > reps // 3


def _judge_scores(n: int, drop: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """1-5 judge scores: b is a with a point of noise on 30 % of rows; a real drop takes a point off drop * n rows."""
    a = rng.integers(1, 6, size=n).astype(float)
    b = np.clip(a + rng.choice([-1, 0, 1], p=[0.15, 0.7, 0.15], size=n), 1, 5)
    b[rng.choice(np.flatnonzero(b > 1), size=round(drop * n), replace=False)] -= 1
    return a, b


def test_score_mde_holds_for_signed_rank_on_judge_scores():
    rng = np.random.default_rng(7)
    max_drop = 0.1
    det = power.detectability(*_judge_scores(4000, 0, rng), kind="score", alpha=ALPHA, power=POWER)
    need, _ = power.rows_needed(det, max_drop)
    assert power.at(det, n=need).decidable(max_drop) and not power.at(det, n=need - 1).decidable(max_drop)
    reps, detected, false_alarms = 200, 0, 0
    for _ in range(reps):
        a, b = _judge_scores(need, max_drop, rng)
        detected += stats.paired_score_test(a, b, alternative="less").pvalue < ALPHA
        a, b = _judge_scores(need, 0, rng)
        false_alarms += stats.paired_score_test(a, b, alternative="less").pvalue < ALPHA
    se = np.sqrt(POWER * (1 - POWER) / reps)
    assert detected / reps >= POWER - 2 * se, detected / reps
    assert false_alarms / reps <= ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / reps)


@pytest.mark.parametrize(("a", "b", "kind", "why"), [
    ([1.0], [1.0], "score", "a spread needs at least 2"),
    ([0.5, 0.7, 0.9], [0.4, 0.6, 0.8], "score", "zero variance"),
    ([1, 1, 0, 1], [1, 1, 0, 1], "binary", "cannot detect any drop"),  # too few rows for any discordance to count
    ([], [], "binary", "no paired rows"),
])
def test_degenerate_data_has_no_mde(a, b, kind, why):
    det = power.detectability(a, b, kind=kind)
    assert det.mde is None and why in det.why
    assert regression_outcome(True, det, 0.5) == "inconclusive"
    assert regression_outcome(False, det, 0.5) == "fail"


def test_max_drop_zero_is_never_decidable():
    a, b = stats.simulate_paired_binary(5000, seed=1)
    det = power.detectability(a, b, kind="binary")
    assert det.mde is not None and det.mde < 0.03
    assert regression_outcome(True, det, 0.0) == "inconclusive"
    need, why = power.rows_needed(det, 0.0)
    assert need is None and "max_drop 0" in why


# ------------------------------------------------------------------ end to end: the CLI, every report, the policy


def _ab_suite(builder, n: int, b_wrong: set[int], gate: dict) -> None:
    """Variants a and b answer the dataset's 'a' and 'b' columns through the fake server's REPLY lines."""
    builder.prompt("a.prompty", "user:\n{{question}}\nREPLY: {{a}}\n")
    builder.prompt("b.prompty", "user:\n{{question}}\nREPLY: {{b}}\n")
    builder.dataset([{"id": f"r{i:03d}", "question": f"q{i}", "ground_truth": "yes", "a": "yes",
                      "b": "no" if i in b_wrong else "yes"} for i in range(n)])
    builder.suite(gate=gate)


def _cli(root, *args: str) -> tuple[int, str]:
    from conftest import run_cli

    proc = run_cli(*args, cwd=root)
    return proc.returncode, proc.stdout + proc.stderr


def test_inconclusive_in_every_report_and_what_the_policy_makes_of_it(builder):
    import json
    import xml.etree.ElementTree as ET

    rule = "exact_match: no_regression(max_drop=0.05, alpha=0.05)"
    _ab_suite(builder, 12, {3}, {"rules": [rule]})
    code, out = _cli(builder.root, "run", "--no-progress")  # a plain run warns
    assert code == 0, out
    assert "INCONCLUSIVE: 12 rows cannot tell a drop of max_drop 0.05 from noise" in out
    assert "gate: INCONCLUSIVE (passes with a warning)" in out and "MDE" in out
    code, out = _cli(builder.root, "ci", "--out", "ci")  # ci fails it
    assert code == 1 and "gate: INCONCLUSIVE (counts as a failure)" in out, out
    ci = builder.root / "ci"
    doc = json.loads((ci / "report.json").read_text())
    v = doc["verdict"]
    assert (v["outcome"], v["passed"], v["on_inconclusive"]) == ("inconclusive", False, "fail")
    r = next(r for r in v["rules"] if r["rule"] == rule)
    assert r["outcome"] == "inconclusive" and r["mde"] > 0.05 and r["rows_needed"] > 12
    m = next(m for m in doc["comparisons"][0]["metrics"] if m["metric"] == "exact_match.pass_rate")
    assert m["mde"] is not None and m["mde_power"] == 0.8 and m["mde_note"].startswith("MDE ")
    md = (ci / "report.md").read_text()
    assert "Gate verdict: ⚠️ **INCONCLUSIVE (counts as a failure)**" in md
    assert f"needs ~{r['rows_needed']:,} rows" in md and "| MDE |" in md
    junit = ET.parse(ci / "junit.xml").getroot()
    case = next(c for c in junit.iter("testcase") if c.get("name") == rule)
    assert case.find("failure") is not None and "INCONCLUSIVE" in case.find("failure").get("message")
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert props["mde.b.exact_match.pass_rate"].startswith(f"{m['mde']:.3g} (MDE ")
    html = (ci / "report.html").read_text()
    assert 'data-outcome="inconclusive"' in html and "INCONCLUSIVE (counts as a failure)" in html

    # the policy decides: warn passes ci (JUnit: skipped, not failed); pass passes quietly
    _ab_suite(builder, 12, {3}, {"rules": [rule], "on_inconclusive": "warn"})
    code, out = _cli(builder.root, "ci", "--out", "ci")
    assert code == 0 and "INCONCLUSIVE (passes with a warning)" in out, out
    case = next(c for c in ET.parse(ci / "junit.xml").getroot().iter("testcase") if c.get("name") == rule)
    assert case.find("failure") is None and "INCONCLUSIVE" in case.find("skipped").get("message")

    # enough rows: decided (a real regression fails whatever the policy)
    _ab_suite(builder, 200, set(range(0, 200, 4)), {"rules": [rule], "on_inconclusive": "pass"})
    code, out = _cli(builder.root, "ci", "--out", "ci")
    assert code == 1 and "REGRESSION" in out and "gate: FAIL" in out, out
    _ab_suite(builder, 200, set(), {"rules": [rule]})
    code, out = _cli(builder.root, "ci", "--out", "ci")
    assert code == 0 and "gate: PASS" in out and "would have been seen: MDE" in out, out


def test_bad_on_inconclusive_is_exit_2(builder):
    _ab_suite(builder, 4, set(), {"rules": [], "on_inconclusive": "maybe"})
    code, out = _cli(builder.root, "run", "--no-progress")
    assert code == 2 and "on_inconclusive" in out and "Traceback" not in out, out
