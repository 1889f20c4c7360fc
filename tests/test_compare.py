"""Comparisons, the gate policy, promotion and bad input, through the real CLI on the fake server."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import cli

from promptgauge import api, stats
from promptgauge.report import ReportDoc, json_schema
from promptgauge.results import load_results as load_side
from promptgauge.store import Store

REPO = Path(__file__).resolve().parent.parent




def ab_rows(n: int, a_wrong: set[int], b_wrong: set[int], start: int = 0) -> list[dict]:
    """Rows whose replies the prompts dictate: 'a' and 'b' columns are what each variant answers."""
    rows = []
    for i in range(start, start + n):
        rows.append({"id": f"r{i:03d}", "question": f"What is item {i}?", "ground_truth": f"item{i}",
                     "a": "wrong" if i in a_wrong else f"item{i}", "b": "nope" if i in b_wrong else f"item{i}"})
    return rows


@pytest.fixture
def ab(builder):
    """A suite whose variant a answers the 'a' column and b the 'b' column, via the server's REPLY lines."""
    builder.prompt("a.prompty", "user:\n{{question}}\nREPLY: {{a}}\n")
    builder.prompt("b.prompty", "user:\n{{question}}\nREPLY: {{b}}\n")
    return builder


def test_compare_statistics_flips_and_reproducibility(ab, capsys):
    # a fails rows 0-3, b rows 2-23: rows 0-1 go fail -> pass, rows 4-23 pass -> fail
    ab.dataset(ab_rows(60, a_wrong={0, 1, 2, 3}, b_wrong=set(range(2, 24))))
    ab.suite(gate={"rules": []})
    code, out, err = cli(capsys, ab.root, "run", "--no-progress")
    assert code == 0, err
    code, out, err = cli(capsys, ab.root, "compare", "a", "b")
    assert code == 0, err
    assert "exact_match.pass_rate" in out and "regressed" in out, out

    st = Store(ab.root / ".promptgauge/promptgauge.db")
    run_id = st.runs()[0].run_id
    base, cand = load_side(st, run_id, "a"), load_side(st, run_id, "b")
    st.close()
    first = api.compare("a", "b", suite=ab.root / "promptgauge.yaml")
    m = first.comparison.metric("exact_match.pass_rate")
    assert (m.baseline, m.candidate) == (56 / 60, 38 / 60)
    assert m.delta == pytest.approx(-18 / 60) and m.kind == "binary" and m.test == "mcnemar-exact"
    a = np.array([0.0 if i < 4 else 1.0 for i in range(60)])
    b = np.array([0.0 if 2 <= i < 24 else 1.0 for i in range(60)])
    ref = stats.mcnemar_exact(a, b)
    assert m.p_value == pytest.approx(ref.pvalue) and (m.rows_better, m.rows_worse) == (ref.b01, ref.b10) == (2, 20)
    assert m.p_holm >= m.p_value and m.change == "regressed"
    low, high = stats.paired_proportion_diff_ci(a, b)
    assert (m.ci_low, m.ci_high) == pytest.approx((low, high))
    flips = {(f.row_id, f.direction) for f in first.comparison.flips if f.evaluator == "exact_match"}
    assert flips == {(f"r{i:03d}", "fail->pass") for i in (0, 1)} | {(f"r{i:03d}", "pass->fail") for i in range(4, 24)}
    status = {r.row_id: r.status for r in first.comparison.row_diffs}
    assert status["r000"] == "improved" and status["r005"] == "regressed" and status["r002"] == "unchanged"
    assert first.comparison.rows.matched == 60 and not first.comparison.warnings
    # latency is compared as lower-is-better with a score test
    lat = first.comparison.metric("latency_ms.mean")
    assert lat.kind == "score" and lat.higher_is_better is False and lat.test == "wilcoxon"
    # seeded: the same comparison twice gives the same numbers
    again = api.compare("a", "b", suite=ab.root / "promptgauge.yaml")
    assert again.comparison.model_dump() == first.comparison.model_dump()
    assert base.variant == "a" and cand.variant == "b"


def test_gate_rules_in_run_and_reports(ab, capsys):
    ab.dataset(ab_rows(40, a_wrong={0}, b_wrong=set(range(0, 12))))
    (ab.root / "policy.yaml").write_text(
        "rules:\n"
        "  - exact_match.pass_rate >= 0.5\n"
        "  - exact_match.ci_low >= 0.9\n"
        "  - exact_match: no_regression(max_drop=0.02, alpha=0.05)\n"
        "  - contains.pass_rate.delta.ci_low >= -0.5\n"
        "  - error_rate <= 0.05\n"
        "  - latency_ms.p95 < 60000\n"
        "  - cost.total <= 1\n"
        "required: [contains, exact_match]\n"
        "prices:\n  gpt-4o-mini: {input: 0.15, output: 0.6}\n")
    ab.suite(gate="policy.yaml")
    code, out, err = cli(capsys, ab.root, "run", "--no-progress")
    assert code == 1, out + err
    run_dir = next(p for p in (ab.root / "reports").iterdir() if not p.name.startswith("compare"))
    doc = ReportDoc.model_validate_json((run_dir / "report.json").read_text())
    assert doc.schema_ == "promptgauge.report/2" and doc.kind == "run"
    rules = {r.rule: r for r in doc.verdict.rules}
    assert rules["exact_match.pass_rate >= 0.5"].passed and rules["exact_match.pass_rate >= 0.5"].value == 28 / 40
    lo, hi = stats.proportion_ci(28, 40)
    assert rules["exact_match.ci_low >= 0.9"].value == pytest.approx(lo) and not rules["exact_match.ci_low >= 0.9"].passed
    nr = rules["exact_match: no_regression(max_drop=0.02, alpha=0.05)"]
    assert not nr.passed and "REGRESSION" in nr.reason and nr.value == pytest.approx(-11 / 40)
    assert nr.p_value == pytest.approx(stats.mcnemar_exact([0] + [1] * 39, [0] * 12 + [1] * 28).pvalue_less)
    assert rules["cost.total <= 1"].passed and rules["cost.total <= 1"].value > 0
    assert rules["required: contains"].passed and rules["contains.pass_rate.delta.ci_low >= -0.5"].passed
    assert doc.verdict.policy["file"].endswith("policy.yaml") and len(doc.verdict.policy["sha256"]) == 64
    assert "✗ [b] exact_match: no_regression" in out and "gate: FAIL" in out
    # every format
    md = (run_dir / "report.md").read_text()
    assert "❌ **FAIL**" in md and "`exact_match.pass_rate`" in md and doc.hashes["dataset"]["sha256"][:12] in md
    junit = ET.parse(run_dir / "junit.xml").getroot()
    gate_suite, rows_suite = junit.findall("testsuite")
    props = {x.get("name"): x.get("value") for x in gate_suite.iter("property")}
    assert props["dataset.sha256"] == doc.hashes["dataset"]["sha256"] and "variants.b.prompt_sha256" in props
    assert int(gate_suite.get("tests")) == 9 and int(gate_suite.get("failures")) == 2
    failing = {c.get("name") for c in rows_suite.findall("testcase")}
    assert failing == {f"r{i:03d}" for i in range(12)}
    csv = pd.read_csv(run_dir / "rows.csv")
    assert set(csv["dataset_sha256"]) == {doc.hashes["dataset"]["sha256"]}
    assert set(csv["candidate_prompt_sha256"]) == {doc.hashes["variants"]["b"]["prompt_sha256"]}
    assert len(csv) == 40 and set(csv.loc[csv["status"] == "regressed", "row_id"]) == {f"r{i:03d}" for i in range(1, 12)}
    assert (csv["candidate.exact_match.passed"] == ~csv["row_id"].isin([f"r{i:03d}" for i in range(12)])).all()
    assert json.loads((run_dir / "summary.json").read_text())["gate"]["passed"] is False


def test_report_schema_file_is_current():
    committed = json.loads((REPO / "docs" / "report.schema.json").read_text())
    assert committed == json_schema(), "regenerate docs/report.schema.json (see docs/reports.md)"


def test_promote_writes_record_and_moves_baseline(ab, capsys):
    ab.dataset(ab_rows(20, a_wrong={0, 1}, b_wrong={0}))
    ab.suite(gate={"rules": ["exact_match: no_regression(max_drop=0.02)", "exact_match.pass_rate >= 0.9"]})
    assert cli(capsys, ab.root, "run", "--no-progress")[0] == 0
    # 20 rows cannot see a 2-point drop: inconclusive, which promote counts as a failure unless the policy says
    code, out, err = cli(capsys, ab.root, "promote")
    assert code == 1 and "INCONCLUSIVE (counts as a failure)" in out and "not promoted" in out, out + err
    ab.suite(gate={"rules": ["exact_match: no_regression(max_drop=0.02)", "exact_match.pass_rate >= 0.9"],
                   "on_inconclusive": "warn"})
    code, out, err = cli(capsys, ab.root, "promote")
    assert code == 0, out + err
    assert "promoted" in out
    latest = json.loads((ab.root / "promotions/t/latest.json").read_text())
    st = Store(ab.root / ".promptgauge/promptgauge.db")
    run = st.runs()[0]
    st.close()
    v = run.manifest["variants"]["b"]
    assert latest["schema"] == "promptgauge.promotion/2" and latest["promoted"]["variant"] == "b"
    assert latest["promoted"]["prompt"] == {"path": "b.prompty", "sha256": v["prompt_sha256"]}
    assert latest["promoted"]["model"] == v["target_info"] and latest["promoted"]["parameters"] == v["parameters"]
    assert latest["dataset"]["sha256"] == run.manifest["dataset"]["sha256"]
    assert latest["evidence"]["run_id"] == run.run_id and latest["verdict"]["passed"] is True
    assert (ab.root / latest["evidence"]["report"]).is_file()
    pointer = ab.root / "baselines/t.json"
    assert latest["baseline_file"]["path"] == "baselines/t.json" and latest["previous_baseline"] is None
    assert latest["baseline_file"]["sha256"] == hashlib.sha256(pointer.read_bytes()).hexdigest()
    saved = json.loads(pointer.read_text())
    assert saved["schema"] == "promptgauge.results/1" and saved["variant"] == "b" and len(saved["rows"]) == 20

    # later: a worse candidate; compare defaults to the promoted baseline file, and promotion is refused
    ab.prompt("b.prompty", "user:\n{{question}}\nREPLY: nope\n")
    assert cli(capsys, ab.root, "run", "--no-progress")[0] == 1
    code, out, err = cli(capsys, ab.root, "compare")
    assert code == 1 and "vs. baseline b @ run" in out and "baselines/t.json" in out, out + err
    code, out, err = cli(capsys, ab.root, "promote")
    assert code == 1 and "not promoted" in out
    assert json.loads(pointer.read_text())["run_id"] == saved["run_id"]  # the pointer did not move
    assert len(list((ab.root / "promotions/t").iterdir())) == 2  # one record + latest.json


def test_intersection_of_different_datasets_warns_with_counts(ab, capsys):
    ab.dataset(ab_rows(10, set(), set()))
    ab.suite(gate={"rules": []})
    assert cli(capsys, ab.root, "run", "--no-progress")[0] == 0
    ab.dataset(ab_rows(8, set(), set(), start=4))  # rows 4..11: 6 shared, 2 new
    assert cli(capsys, ab.root, "run", "--no-progress")[0] == 0
    st = Store(ab.root / ".promptgauge/promptgauge.db")
    new, old = (r.run_id for r in st.runs())
    st.close()
    code, out, err = cli(capsys, ab.root, "compare", f"{old}:b", f"{new}:b")
    assert code == 2 and "different datasets" in err and "6 rows match, 4 only in the baseline, 2 only in the candidate" in err
    code, out, err = cli(capsys, ab.root, "compare", f"{old}:b", f"{new}:b", "--intersect")
    assert code == 0 and "DIFFERENT DATASETS" in err
    doc = ReportDoc.model_validate_json(next((ab.root / "reports").glob("compare-*/report.json")).read_text())
    assert doc.comparisons[0].rows.matched == 6 and "DIFFERENT DATASETS" in doc.comparisons[0].warnings[0]
    assert "DIFFERENT DATASETS" in next((ab.root / "reports").glob("compare-*/report.md")).read_text()


def test_bad_compare_input_exits_2(ab, capsys):
    ab.dataset(ab_rows(6, set(), set()))
    ab.suite(gate={"rules": []})
    assert cli(capsys, ab.root, "run", "--no-progress")[0] == 0
    code, _, err = cli(capsys, ab.root, "compare", "20990101-000000-abcdef", "b")
    assert code == 2 and "neither a run in the store nor a variant" in err and "promptgauge runs" in err
    code, _, err = cli(capsys, ab.root, "compare", "latest:zzz", "b")
    assert code == 2 and "no variant 'zzz'" in err
    code, _, err = cli(capsys, ab.root, "compare", "missing.json", "b")
    assert code == 2 and "results file not found" in err
    (ab.root / "bad.json").write_text('{"schema": "other"}')
    code, _, err = cli(capsys, ab.root, "compare", "bad.json", "b")
    assert code == 2 and "not a promptgauge results file" in err
    for rule, expect in [("f1.mean >= 0.5", "unknown metric 'f1.mean'"),
                         ("exact_match.pass_rate >> 0.5", "malformed rule"),
                         ("exact_match: no_regression(max_dorp=0.1)", "bad argument 'max_dorp=0.1'"),
                         ("exact_match: no_regresion()", "unknown function 'no_regresion'"),
                         ("bleu: no_regression()", "unknown metric 'bleu'"),
                         ("exact_match.mean.delta.ci_mid >= 0", "unknown metric")]:
        (ab.root / "policy.yaml").write_text(f"rules:\n  - ok.n >= 0\n  - '{rule}'\n".replace("ok.n", "exact_match.n"))
        code, _, err = cli(capsys, ab.root, "compare", "a", "b", "--policy", "policy.yaml")
        assert code == 2 and expect in err, err
        assert "policy.yaml:3" in err and "rules[1]" in err and "Traceback" not in err
    (ab.root / "policy.yaml").write_text("rules: []\nrequird: [x]\n")
    code, _, err = cli(capsys, ab.root, "compare", "a", "b", "--policy", "policy.yaml")
    assert code == 2 and "unknown field 'requird'" in err and "policy.yaml:2" in err
    code, _, err = cli(capsys, ab.root, "compare", "a", "a")
    assert code == 2 and "the same" in err


def test_required_evaluator_missing_fails_gate(ab, capsys):
    ab.dataset(ab_rows(6, set(), set()))
    ab.suite(gate={"rules": ["exact_match.pass_rate >= 0"], "required": ["relevance"]})
    code, out, _ = cli(capsys, ab.root, "run", "--no-progress")
    assert code == 1 and "required evaluator 'relevance' did not run" in out


def test_trend_across_runs(ab, capsys):
    for wrong in ({0}, {0, 1, 2}):
        ab.dataset(ab_rows(10, set(), wrong))
        ab.suite(gate={"rules": []})
        assert cli(capsys, ab.root, "run", "--no-progress")[0] == 0
    points = api.trend("exact_match.pass_rate", suite=ab.root / "promptgauge.yaml", variant="b")
    assert [p["value"] for p in points] == [0.9, 0.7]
    code, out, _ = cli(capsys, ab.root, "runs", "--metric", "exact_match.pass_rate", "--variant", "b")
    assert code == 0
    assert "0.9000" in out and "0.7000" in out
    code, _, err = cli(capsys, ab.root, "runs", "--metric", "nope.mean")
    assert code == 2 and "no stored run has the metric 'nope.mean'" in err
