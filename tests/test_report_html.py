"""The HTML report in a real headless Chromium: verdict first, charts, filter, sort, drill-down, escaping."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from promptgauge import api
from promptgauge.testing.browser import Browser

EVIL = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"
QUOTED = '" onmouseover="window.__pwned = 3" x="'  # breaking out of an attribute


@pytest.fixture
def report(builder, fake_openai, tmp_path) -> Path:
    """A run of 12 rows: b breaks rows 0-4 (one reply is a script tag), fixes row 11."""
    rows = []
    for i in range(12):
        a = "wrong" if i == 11 else f"item{i}"
        b = EVIL if i == 0 else f"nope {i}" if i < 5 else f"item{i}"
        rows.append({"id": f"r{i:02d}", "question": f"What is item {i}? <b>bold</b>" + (QUOTED if i == 1 else ""), "ground_truth": f"item{i}",
                     "a": a, "b": b})
    builder.dataset(rows)
    builder.prompt("a.prompty", "user:\n{{question}}\nREPLY: {{a}}\n")
    builder.prompt("b.prompty", "user:\n{{question}}\nREPLY: {{b}}\n")
    builder.suite(gate={"rules": ["exact_match.pass_rate >= 0.9", "exact_match: no_regression(max_drop=0.02)"]})
    result = api.run(builder.root / "promptgauge.yaml")
    assert not result.passed
    return result.reports["html"]


def test_html_report_in_chromium(report, tmp_path):
    html = report.read_text()
    assert "<script>window.__pwned" not in html and "&lt;script&gt;window.__pwned" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing to fetch
    with Browser(width=1280, height=1000) as b:
        b.open(report.resolve().as_uri())
        # nothing was fetched but the file itself: no CDN, works offline
        assert b.requested_urls() == [report.resolve().as_uri()]
        # the escaped reply did not run, and shows as text
        assert b.eval("window.__pwned === undefined") is True
        assert b.eval("document.scripts.length") == 1
        assert b.eval("document.querySelectorAll('[onmouseover], [onerror]').length") == 0
        assert b.eval("document.querySelector('tbody.row[data-id=\"r00\"] pre.out-candidate').textContent") == EVIL
        # first screen: the verdict, headline deltas with CIs, a chart per metric
        verdict = b.eval("(() => { const v = document.getElementById('verdict'); const r = v.getBoundingClientRect();"
                         " return [v.dataset.passed, v.innerText, r.top]; })()")
        assert verdict[0] == "false" and "FAIL" in verdict[1] and "rules failed" in verdict[1] and verdict[2] < 200
        cards = b.eval("Array.from(document.querySelectorAll('.card.metric')).map(c => [c.dataset.metric, "
                       "c.dataset.change, c.querySelector('.delta').textContent, !!c.querySelector('svg.chart'), "
                       "c.getBoundingClientRect().top])")
        by_metric = {c[0]: c for c in cards}
        assert set(by_metric) == {"exact_match.pass_rate", "contains.pass_rate", "error_rate", "latency_ms.mean"}
        assert by_metric["exact_match.pass_rate"][2] == f"{(7 - 11) / 12:+.3f}"  # 11/12 -> 7/12
        assert all(c[3] for c in cards) and by_metric["exact_match.pass_rate"][4] < 1000
        rules = b.eval("Array.from(document.querySelectorAll('#rules tr.rule')).map(r => r.className)")
        # 5 flips vs. 1 is not significant at n=12, but 12 rows cannot see a 2-point drop either: inconclusive
        assert rules == ["rule fail", "rule inconclusive"]
        assert "needs ~" in b.eval("document.getElementById('inconclusive').innerText")
        mdes = b.eval("Array.from(document.querySelectorAll('.card.metric .mde')).map(e => e.textContent)")
        assert len(mdes) == 4 and all(m.startswith("MDE ") for m in mdes)
        # filter: only regressed rows
        visible = "Array.from(document.querySelectorAll('tbody.row')).filter(t => !t.hidden).map(t => t.dataset.id)"
        assert len(b.eval(visible)) == 12
        b.eval("const s = document.querySelector('.f-status'); s.value = 'regressed'; "
               "s.dispatchEvent(new Event('change'))")
        assert b.eval(visible) == ["r00", "r01", "r02", "r03", "r04"]
        b.eval("const s2 = document.querySelector('.f-status'); s2.value = ''; s2.dispatchEvent(new Event('change'));"
               "const q = document.querySelector('.f-text'); q.value = 'nope 3'; q.dispatchEvent(new Event('input'))")
        assert b.eval(visible) == ["r03"]
        b.eval("const q2 = document.querySelector('.f-text'); q2.value = ''; q2.dispatchEvent(new Event('input'))")
        # sort by status (click twice: descending), then by row number again
        b.eval("document.querySelector('th button[data-sort=\"status\"]').click()")
        statuses = b.eval("Array.from(document.querySelectorAll('tbody.row')).map(t => t.dataset.status)")
        assert statuses == sorted(statuses) and statuses[0] == "improved"
        b.eval("document.querySelector('th button[data-sort=\"status\"]').click()")
        assert b.eval("document.querySelector('tbody.row').dataset.status") == "unchanged"
        # drill-down: click a row; both outputs side by side, the difference marked
        assert b.eval("document.querySelector('tbody.row[data-id=\"r03\"] tr.detail').hidden") is True
        b.eval("document.querySelector('tbody.row[data-id=\"r03\"] tr.main td').click()")
        detail = b.eval("(() => { const d = document.querySelector('tbody.row[data-id=\"r03\"] tr.detail');"
                        " return [d.hidden, d.querySelector('pre.out-baseline del').textContent,"
                        " d.querySelector('pre.out-candidate ins').textContent, d.innerText]; })()")
        assert detail[0] is False and detail[1] == "item3" and detail[2] == "nope 3"
        assert "What is item 3? <b>bold</b>" in detail[3]  # dataset text shown as text
        shot = b.screenshot(tmp_path / "report.png", full_page=True)
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("PROMPTGAUGE_KEEP_SCREENSHOT"):
        Path(os.environ["PROMPTGAUGE_KEEP_SCREENSHOT"]).write_bytes(shot.read_bytes())
