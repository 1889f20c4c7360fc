"""A judge's agreement (across repeats, with human labels) in the terminal table, report.md and report.html."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import cli
from test_judges import RELEVANCE, judged, repeat_of, row_of  # noqa: F401 -- the judge suite fixture

from promptgauge import api
from promptgauge.testing.browser import Browser

# The judge's score per row and repeat (each repeat is a call with its own seed); human labels: fr 4, jp 2, it 3, es 2.
PLAN = {"fr": [4, 4, 4], "jp": [2, 3, 2], "it": [5, 5, 5], "es": [1, 1, 3]}


def test_agreement_in_cli_markdown_and_html(judged, fake_openai, builder, capsys):  # noqa: F811
    fake_openai.responder = lambda req: json.dumps({"reason": "r", "score": PLAN[row_of(req)][repeat_of(req)]})
    variants = [{"name": n, "target": "python:judge_answers:answer"} for n in ("a", "b")]
    judged({**RELEVANCE, "repeats": 3, "human_label": "human"}, variants=variants, baseline="a")
    code, out, err = cli(capsys, builder.root, "run", "--no-progress")
    assert code == 0, out + err
    run = api.compare("a", "b", suite=builder.root / "promptgauge.yaml")
    summary: dict[str, Any] = run.document.variants[f"candidate: {run.candidate.label}"]["metrics"]["relevance"]
    rel, human = summary["reliability"], summary["human_agreement"]
    assert (rel["exact"], rel["within_1"], human["exact"], human["within_1"]) == (0.5, 0.75, 0.75, 0.75)
    want_rel = f"reliability: alpha {rel['alpha']:.2f} · exact 0.50 · within_1 0.75 (4 rows)"
    want_human = (f"human_agreement: alpha {human['alpha']:.2f} · exact 0.75 · within_1 0.75 · "
                  f"mean_abs_diff 0.67 · kappa {human['kappa']:.2f} (4 rows)")
    assert human["kappa"] == pytest.approx((0.75 - 0.3125) / 0.6875)  # Cohen's, on the rounded scores
    # the terminal summary: an agreement column, both kinds on the judge's line
    lines = out.splitlines()
    header = next(x for x in lines if "evaluator" in x and "pass rate" in x)
    assert "agreement" in header
    first = next(i for i, x in enumerate(lines) if "relevance" in x and want_rel in x)
    assert want_human.split(" (")[0] in lines[first + 1]  # (the row count may wrap onto the next line)
    assert sum(want_rel in x for x in lines) == 2  # variants a and b
    # report.md: a judge agreement table
    md = run.reports["markdown"].read_text()
    assert "## Judge agreement" in md
    assert f"| `candidate: {run.candidate.label}` | `relevance` | {want_rel}; {want_human} |" in md
    assert md.index("## Judge agreement") < md.index("## What was compared")
    # report.html in Chromium: the table is there and shown
    with Browser(width=1280, height=900) as b:
        b.open(run.reports["html"].resolve().as_uri())
        rows = b.eval("Array.from(document.querySelectorAll('#agreement tbody tr')).map(r => "
                      "[r.cells[1].innerText, r.cells[2].innerText, r.getBoundingClientRect().height])")
        heading = b.eval("Array.from(document.querySelectorAll('h2')).map(h => h.innerText)")
    assert [r[:2] for r in rows] == [["relevance", f"{want_rel}; {want_human}"]] * 2
    assert all(r[2] > 0 for r in rows) and "Judge agreement" in heading
