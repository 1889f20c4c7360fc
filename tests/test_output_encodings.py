"""Untrusted text in every report format: each payload class (markdown/javascript links, HTML, ANSI and OSC 8
escapes, NUL/BEL, C1 controls, bidi overrides, bare CR, CSV formulas, pipes and backslashes, long unbroken ids) as
row id, input and model output, written by a real run and read back with a real parser of each format:
markdown-it, xml.etree, csv, the terminal output of the CLI, and Chromium."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET

import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from promptgauge import api
from promptgauge.escaping import csv_cell, markdown_cell, visible, xml_text
from promptgauge.testing.browser import Browser

pytest_plugins = ["pytester"]

#: One payload per class; each becomes a row id, a question and candidate b's reply.
PAYLOADS = {
    "mdlink": "[click](javascript:window.__pwned=1) ![i](http://127.0.0.1:9/x.png) <javascript:alert(1)>",
    "html": '<img src=x onerror="window.__pwned=2"><script>window.__pwned=3</script>',
    "ansi": "\x1b[2J\x1b[1;31mRED\x1b[0m \x1b]0;title\x07",
    "osc8": "\x1b]8;;http://127.0.0.1:9/evil\x1b\\fake link\x1b]8;;\x1b\\",
    "nulbel": "a\x00b\x07c\x08d\x7fe",
    "c1": "x\x9b31my\x85z",
    "bidi": "abc\u202eevil\u2066x\u2069\u200f",
    "cr": "first\rsecond\r\nthird",
    "formula": '=HYPERLINK("http://127.0.0.1:9/","x")',
    "plus": "+1+2",
    "minus": "-2+3",
    "at": "@SUM(A1:A2)",
    "pipes": "a|b\\|c\\\\|d`e`",
    "long": "L" * 400,
}
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f]")


def _reply(payload: str) -> str:
    return payload.replace("\r", " ").replace("\n", " ")  # a REPLY: line holds one line


@pytest.fixture
def hostile_run(builder, tmp_path):
    rows = [{"id": f"{k}:{p}", "question": f"q {k} {p}", "ground_truth": "ok", "a": "ok", "b": _reply(p)}
            for k, p in PAYLOADS.items()]
    builder.dataset(rows)
    builder.prompt("a.prompty", "user:\n{{question}}\nREPLY: {{a}}\n")
    builder.prompt("b.prompty", "user:\n{{question}}\nREPLY: {{b}}\n")
    builder.suite(gate={"rules": ["exact_match.pass_rate >= 0.9"]})
    result = api.run(builder.root / "promptgauge.yaml")
    assert not result.passed
    return builder, result, {f"{k}:{p}" for k, p in PAYLOADS.items()}


def test_markdown_has_no_link_html_or_control_and_keeps_its_tables(hostile_run):
    _, result, ids = hostile_run
    md = result.reports["markdown"].read_text(encoding="utf-8")
    assert not CONTROL.search(md)
    tokens = MarkdownIt("commonmark").enable("table").parse(md)
    inline = [c for t in tokens for c in (t.children or [])]
    kinds = {t.type for t in tokens} | {t.type for t in inline}
    assert not kinds & {"link_open", "image", "html_block", "autolink"}, kinds
    assert {t.content for t in inline if t.type == "html_inline"} <= {"<sub>", "</sub>"}  # the report's own footer
    # the changed-rows table: one body row per hostile row, five cells each, the row id first (as code)
    heading = next(i for i, t in enumerate(tokens) if t.type == "inline" and t.content.startswith("Changed rows"))
    table = next(i for i, t in enumerate(tokens) if t.type == "table_open" and i > heading)
    rows, cells, current = [], [], None
    for t in tokens[table:]:
        if t.type == "table_close":
            break
        if t.type == "tr_open":
            current = []
        elif t.type == "inline" and current is not None:
            current.append(t)
        elif t.type == "tr_close":
            rows.append(current)
    cells = rows[1:]
    assert len(cells) == len(ids) and all(len(r) == 5 for r in cells)
    shown = {"".join(c.content for c in r[0].children if c.type == "code_inline") for r in cells}
    assert shown == {markdown_cell(i, 40, code=True).replace("\\|", "|") for i in ids}
    assert "⟨U+001B⟩" in md and "⟨U+202E⟩" in md and "⟨U+0000⟩" in md


def test_junit_is_well_formed_and_names_every_row(hostile_run):
    _, result, ids = hostile_run
    root = ET.parse(result.reports["junit"]).getroot()
    rows = next(s for s in root.findall("testsuite") if s.get("name") == "rows")
    names = {c.get("name") for c in rows.findall("testcase")}
    assert names == {xml_text(i) for i in ids}
    assert "⟨U+0000⟩" in result.reports["junit"].read_text(encoding="utf-8")


def test_csv_one_record_per_row_and_no_formula(hostile_run):
    _, result, ids = hostile_run
    with open(result.reports["csv"], newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    assert len(records) == len(ids)
    assert {r["row_id"] for r in records} == {csv_cell(i) for i in ids}
    by_kind = {r["row_id"].lstrip("'").partition(":")[0]: r for r in records}
    for kind in ("formula", "plus", "minus", "at"):
        out = by_kind[kind]["candidate_output"]
        assert out.startswith("'") and out[1:] == PAYLOADS[kind]
    assert by_kind["cr"]["data.question"] == "q cr first\rsecond\r\nthird"  # a CR stays inside its field
    for r in records:
        for value in r.values():
            assert not CONTROL.search(value.replace("\r", "").replace("\n", "").replace("\t", ""))
            assert not value.startswith(("=", "+", "-", "@"))


def test_terminal_output_has_no_escape_sequence(hostile_run):
    builder, result, ids = hostile_run
    proc = run_cli("compare", "--suite", "promptgauge.yaml", cwd=builder.root)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout + proc.stderr
    assert "pass -> fail on" in out and "⟨U+001B⟩" in out
    assert not CONTROL.search(out.replace("\n", "").replace("\t", "")), repr(out[:2000])


def test_html_wraps_long_ids_and_isolates_bidi_in_chromium(hostile_run):
    _, result, ids = hostile_run
    html = result.reports["html"].read_text(encoding="utf-8")
    assert not CONTROL.search(html.replace("\n", "").replace("\t", ""))
    with Browser(width=1000, height=900) as b:
        b.open(result.reports["html"].resolve().as_uri())
        assert b.eval("window.__pwned === undefined") is True
        assert b.eval("document.querySelectorAll('[onerror]').length") == 0
        # the page does not scroll sideways: the 400-character id wraps inside its cell
        assert b.eval("document.documentElement.scrollWidth <= window.innerWidth + 1") is True
        got = b.eval("Array.from(document.querySelectorAll('tbody.row')).map(t => t.dataset.id)")
        assert set(got) == {visible(i) for i in ids}
        width = b.eval("(() => { const t = document.querySelector('tbody.row td.mono'); "
                       "return t.closest('table').getBoundingClientRect().width; })()")
        assert width <= 1000
        direction = b.eval("getComputedStyle(document.querySelector('tbody.row td.mono')).unicodeBidi")
        assert direction == "isolate"


def test_every_format_function_on_every_control_character():
    text = "".join(chr(c) for c in range(0, 0xA0)) + "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069" \
        "\u200e\u200f\u061c\u2028\u2029\ud800\udfff\ufffe\uffff"
    for out in (markdown_cell(text, 10_000), markdown_cell(text, 10_000, code=True), visible(text)):
        assert not CONTROL.search(out.replace("\n", "").replace("\t", ""))
        out.encode("utf-8")  # no lone surrogate left
    el = ET.Element("a", b=xml_text(text))
    el.text = xml_text(text)
    ET.fromstring(ET.tostring(el, encoding="unicode"))  # well-formed XML 1.0
    cell = csv_cell("=" + text)
    assert cell.startswith("'=") and "⟨U+0000⟩" in cell and "\r" in cell
    assert csv_cell(3.5) == 3.5 and csv_cell("plain") == "plain"


def test_a_lone_surrogate_in_a_dataset_is_a_clear_input_error(builder):
    """A JSON ``\\ud800`` escape cannot be stored or written to any report: exit 2 naming the row and field."""
    builder.suite()
    (builder.root / "data.jsonl").write_text('{"id": "ok", "question": "fine", "ground_truth": "x"}\n'
                                             '{"id": "r2", "question": {"text": "bad \\ud800 here"}, "ground_truth": "x"}\n')
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "data.jsonl:2, field 'question.text': text holds a lone surrogate \\ud800" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pytest_failure_text_has_no_escape_sequence(pytester, fake_openai):
    """A failing row's id, input and output, as pytest prints them: controls visible, none raw."""
    from conftest import SuiteBuilder

    b = SuiteBuilder(pytester.path, fake_openai.base_url)
    b.dataset([{"id": "evil\x1b[2J\x1b]8;;http://127.0.0.1:9/\x07x", "question": "q \x1b[31mred", "ground_truth": "ok",
                "a": "ok", "b": "no \x1b]0;title\x07 \u202e"}])
    b.prompt("a.prompty", "user:\n{{question}}\nREPLY: {{a}}\n")
    b.prompt("b.prompty", "user:\n{{question}}\nREPLY: {{b}}\n")
    b.suite(gate={"rules": []}, runner={"concurrency": 1, "timeout": 5, "retries": 0, "cache": False})
    pytester.makepyfile(test_rows="""
        import pytest

        @pytest.mark.promptgauge(variants=["b"])
        def test_row(row, evaluate):
            assert evaluate(row).exact_match >= 1
    """)
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "promptgauge_baselines=off")
    res.assert_outcomes(failed=1)
    out = res.stdout.str()
    assert "promptgauge: exact_match = 0" in out and "⟨U+001B⟩" in out
    assert not CONTROL.search(out.replace("\n", "").replace("\t", "")), repr(out[-3000:])


def test_monitor_reports_keep_hostile_records_inert(tmp_path):
    """The monitor's markdown and HTML reports show logged records' ids, queries and responses (the examples
    behind an alert) through the same per-format functions."""
    from monitor_helpers import T0, append, chat_line, write_config

    from promptgauge.monitor import load_monitor_config, run_pass

    cfg = write_config(tmp_path, examples=50, reference=None, min_n=1,
                       alerts=[{"metric": "json_valid.pass_rate", "below": 0.99}])
    append(tmp_path / "logs" / "app.jsonl", [
        chat_line(f"{k}-{i}", T0 + i, f"q {p}", f"a {p}") for i, (k, p) in enumerate(PAYLOADS.items())])
    result = run_pass(load_monitor_config(cfg))
    assert result.alerting
    md = result.reports["markdown"].read_text(encoding="utf-8")
    assert not CONTROL.search(md) and "⟨U+001B⟩" in md
    inline = [c for t in MarkdownIt("commonmark").enable("table").parse(md) for c in (t.children or [])]
    assert not {t.type for t in inline} & {"link_open", "image", "html_inline"}
    html = result.reports["html"].read_text(encoding="utf-8")
    assert not CONTROL.search(html.replace("\n", "").replace("\t", "")) and "<script>window.__pwned" not in html


TEXT = st.text(alphabet=st.characters(codec=None, blacklist_categories=()), max_size=80) | st.text(
    alphabet="[]()|\\`<>&*_!:=+-@\r\n\t\x00\x07\x1b\x9b\u202e\u2066\u2028 javscript", max_size=60)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_any_text_stays_one_inert_value_in_every_format(text):
    # markdown: one cell of a one-row table, no link, image or HTML, no raw control
    for cell in (markdown_cell(text, 10_000), f"`{markdown_cell(text, 10_000, code=True)}`"):
        tokens = MarkdownIt("commonmark").enable("table").parse(f"| a | b |\n|---|---|\n| {cell} | x |\n")
        rows = [t for t in tokens if t.type == "tr_open"]
        cells = [t for t in tokens if t.type == "td_open"]
        inline = [c for t in tokens for c in (t.children or [])]
        assert len(rows) == 2 and len(cells) == 2
        assert not {t.type for t in inline} & {"link_open", "image", "html_inline", "autolink"}
        assert not CONTROL.search(cell)
    # XML: well-formed as text and attribute, and what a parser reads back is what was written
    el = ET.Element("a", b=xml_text(text))
    el.text = xml_text(text)
    back = ET.fromstring(ET.tostring(el, encoding="unicode"))
    assert back.text in (xml_text(text).replace("\r\n", "\n").replace("\r", "\n"), xml_text(text) or None)
    # CSV: one record, one field, read back as written; no formula
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerow([csv_cell(text), "end"])
    records = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert records == [[csv_cell(text), "end"]]
    assert not records[0][0].startswith(("=", "+", "-", "@", "\t", "\r"))
