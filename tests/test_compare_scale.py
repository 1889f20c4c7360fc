"""Comparisons of big runs: compact columns, a capped per-row view, every row streamed to rows.csv."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from promptgauge import api
from promptgauge.compare import MAX_ROWS, compare_sides
from promptgauge.report import ReportDoc, build_document, write_csv
from promptgauge.results import load_results as load_side
from promptgauge.results import load_results_file, summarize, variant_summary, write_results_file
from promptgauge.store import Store
from promptgauge.testing.browser import Browser

APP = '''
def _i(question):
    return int(question.split()[-1].rstrip("?"))

def a(question, ground_truth):
    return "wrong" if _i(question) % 7 == 0 else ground_truth

def b(question, ground_truth):
    i = _i(question)
    if i % 11 == 3:
        raise ValueError("no answer for row " + str(i))
    return "nope <b>" + str(i) + "</b>" if i % 5 == 0 else ground_truth
'''
GRADER = '''
def grader(*, response, ground_truth):
    s = float(len(str(response)) % 5)
    return {"grader": s, "grader_result": "pass" if s >= 2 else "fail", "grader_reason": f"length mod 5 is {s:g}"}
'''


def rows(n: int) -> list[dict]:
    return [{"id": f"r{i:04d}", "question": f"What is item {i}?", "ground_truth": f"item{i}", "label": (i * 3) % 5}
            for i in range(n)]


def suite(builder, n: int, **overrides):
    (builder.root / "scale_app.py").write_text(APP)  # a module name no other test imports
    builder.dataset(rows(n))
    doc = dict(variants=[{"name": "a", "target": "python:scale_app:a"}, {"name": "b", "target": "python:scale_app:b"}],
               evaluators=[{"name": "exact_match"},
                           {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}],
               gate={"rules": ["exact_match: no_regression(max_drop=0.02)"]},
               runner={"concurrency": 8, "timeout": 5, "retries": 0})
    return builder.suite(**{**doc, **overrides})


def test_a_big_run_reports_the_most_changed_rows_and_streams_every_row(builder):
    n = MAX_ROWS + 500
    report = api.run(suite(builder, n))
    assert not report.passed
    exact = [i % 7 != 0 for i in range(n)], [i % 5 != 0 and i % 11 != 3 for i in range(n)]  # a, b pass
    changed = {f"r{i:04d}": "regressed" if a_ok else "improved"
               for i, (a_ok, b_ok) in enumerate(zip(*exact)) if a_ok != b_ok}
    out = report.reports["json"].parent
    doc = ReportDoc.model_validate_json(report.reports["json"].read_text())
    comp = doc.comparisons[0]
    assert comp.rows.matched == n and len(comp.row_diffs) == MAX_ROWS and comp.rows_omitted == 500
    shown = {r.row_id: r.status for r in comp.row_diffs}
    assert {r: shown.get(r) for r in changed} == changed  # every changed row is in the report
    assert set(shown.values()) == {"regressed", "improved", "unchanged"}
    assert [r.index for r in comp.row_diffs] == sorted(r.index for r in comp.row_diffs)
    # flips counted whole, listed up to the cap
    regressed = sum(v == "regressed" for v in changed.values())
    assert report.comparisons[0].metric("exact_match.pass_rate").rows_worse == regressed
    flips = report.comparisons[0].flip_counts()  # exact_match and contains flip on the same rows
    assert flips == {"pass->fail": 2 * regressed, "fail->pass": 2 * (len(changed) - regressed)}
    assert len(comp.flips) == sum(flips.values()) and not comp.flips_omitted
    # rows.csv has every row, streamed from the store
    csv = pd.read_csv(out / "rows.csv", dtype=str, keep_default_na=False)
    assert len(csv) == n and list(csv["row_id"]) == [f"r{i:04d}" for i in range(n)]
    assert dict(zip(csv["row_id"], csv["status"])) == {f"r{i:04d}": changed.get(f"r{i:04d}", "unchanged")
                                                       for i in range(n)}
    assert csv.loc[csv["row_id"] == "r2495", "candidate_output"].item() == "nope <b>2495</b>"
    assert csv.loc[csv["row_id"] == "r2489", "candidate_error"].item().startswith("ValueError: no answer for row")
    passed = ["" if i % 11 == 3 else str(ok) for i, ok in enumerate(exact[1])]  # no score for a failed call
    assert list(csv["candidate.exact_match.passed"]) == passed
    assert sum(1 for _ in open(out / "results.jsonl")) == 2 * n
    # each view says what it left out, and where every row is
    md = (out / "report.md").read_text()
    assert f"This report holds {MAX_ROWS} of the {n} rows" in md and "rows.csv has every row" in md
    rows_suite = ET.parse(out / "junit.xml").getroot().findall("testsuite")[1]
    assert f"b: 500 of {n} rows are not checked here" in rows_suite.find("system-out").text
    html = report.reports["html"]
    with Browser(width=1280, height=900) as browser:
        browser.open(html.resolve().as_uri())
        note = browser.eval("document.querySelector('p.omitted').innerText")
        assert f"shows {MAX_ROWS} of {n} rows" in note and "rows.csv and results.jsonl" in note
        assert browser.eval("document.querySelectorAll('tbody.row').length") == MAX_ROWS
        browser.eval("const s = document.querySelector('.f-status'); s.value = 'regressed'; "
                     "s.dispatchEvent(new Event('change'))")
        assert browser.eval("document.querySelector('.count').textContent") == (
            f"{regressed} of {MAX_ROWS} rows")


@pytest.fixture
def mixed_run(builder):
    """A run with call errors and repeats; an evaluator with reasons, its own repeats and human labels."""
    (builder.root / "evaluators").mkdir()
    (builder.root / "evaluators" / "grader.py").write_text(GRADER)
    suite(builder, 40, evaluators=[
        {"name": "exact_match"}, {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
        {"name": "length", "params": {"max": 12}},
        {"name": "grader", "repeats": 2, "human_label": "label"}],
        runner={"concurrency": 4, "timeout": 5, "retries": 0, "repeats": 2}, gate={"rules": []})
    api.run(builder.root / "promptgauge.yaml")
    st = Store(builder.root / ".promptgauge/promptgauge.db")
    yield st, st.runs()[0].run_id
    st.close()


def test_frameless_sides_give_the_numbers_and_rows_of_whole_frames(mixed_run, tmp_path):
    st, run_id = mixed_run
    whole = {v: load_side(st, run_id, v) for v in ("a", "b")}
    lean = {v: load_side(st, run_id, v, frames=False) for v in ("a", "b")}
    assert lean["b"].results is None and whole["b"].results is not None
    full, compact = compare_sides(whole["a"], whole["b"]), compare_sides(lean["a"], lean["b"])
    assert compact.model_dump() == full.model_dump()
    assert {r.status for r in full.row_diffs} == {"regressed", "improved", "mixed", "unchanged"}
    reasons = [s["reason"] for r in full.row_diffs for s in r.candidate.scores.values() if s["reason"]]
    assert reasons and all(x.startswith("length mod 5 is") for x in reasons)
    summary = summarize(st, run_id)
    for v in ("a", "b"):
        results, scores = whole[v].frames()
        configs = whole[v].manifest["evaluators"]
        assert lean[v].summary() == variant_summary(results, scores, whole[v].evaluators, configs) \
            == summary["variants"][v]
    assert summary["variants"]["b"]["metrics"]["grader"]["reliability"]["rows"] > 0
    assert summary["variants"]["b"]["metrics"]["grader"]["human_agreement"]["rows"] > 0
    # rows.csv streamed in chunks from the store == rows.csv of the same rows held in the document
    doc = build_document(kind="compare", title="t", suite="t", run_id=run_id, variants={}, comparisons=[compact],
                         verdict=None, hashes={})
    streamed, held = io.StringIO(), io.StringIO()
    write_csv(doc, streamed, chunk=7)
    write_csv(ReportDoc.model_validate_json(doc.model_dump_json()), held)
    assert streamed.getvalue() == held.getvalue() and len(pd.read_csv(io.StringIO(streamed.getvalue()))) == 40
    # a results file written from a frameless side reads back as the same side
    path = write_results_file(lean["a"], tmp_path / "a.json")
    assert compare_sides(load_results_file(path), lean["b"]).model_dump()["metrics"] == compact.model_dump()["metrics"]


def test_inputs_written_in_another_key_order_still_match(mixed_run, tmp_path):
    st, run_id = mixed_run
    cand = load_side(st, run_id, "b", frames=False)
    path = write_results_file(load_side(st, run_id, "a", frames=False), tmp_path / "a.json")
    doc = json.loads(path.read_text())
    for row in doc["rows"]:
        row["inputs"] = dict(reversed(row["inputs"].items()))
    doc["rows"][0]["inputs"]["question"] = "changed"
    path.write_text(json.dumps(doc))
    comp = compare_sides(load_results_file(path), cand, intersect=True)
    assert (comp.rows.matched, comp.rows.changed_inputs) == (39, 1)


def test_flips_are_capped_per_evaluator_and_direction(mixed_run):
    st, run_id = mixed_run
    base, cand = load_side(st, run_id, "a", frames=False), load_side(st, run_id, "b", frames=False)
    full, capped = compare_sides(base, cand, n_resamples=100), compare_sides(base, cand, n_resamples=100, max_rows=2)
    assert capped.flip_counts() == full.flip_counts() and capped.metrics == full.metrics
    groups = pd.DataFrame([f.model_dump() for f in full.flips]).groupby(["evaluator", "direction"]).size()
    assert capped.flips_omitted == int(np.maximum(groups - 2, 0).sum()) > 0
    assert len(capped.flips) == len(full.flips) - capped.flips_omitted
    assert len(capped.row_diffs) == 2 and capped.rows_omitted == 38
    assert [r[:2] for r in capped.iter_rows()] == [(r.row_id, r.status) for r in full.row_diffs]
