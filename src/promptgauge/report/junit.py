"""JUnit XML: a testcase per gate rule and per failing row, for CI systems that show test results.

Every text and attribute goes through :func:`promptgauge.escaping.xml_text`: a control character in a row id or an
output cannot make the file ill-formed (XML 1.0 forbids most of them), and shows as a visible mark.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..escaping import xml_text
from .document import ReportDoc
from .format import fmt, mde, outcome_word, rows_needed
from .markdown import flatten
from .trajectory import failed_turns, tools_line, turns_line


def _case(suite: ET.Element, classname: str, name: str, failure: str | None, detail: str = "",
          skipped: str | None = None) -> None:
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
    if failure is not None:
        ET.SubElement(case, "failure", message=failure).text = detail or failure
    else:
        if skipped is not None:  # an inconclusive rule that passes (warn / pass): shown, not hidden
            ET.SubElement(case, "skipped", message=skipped)
        ET.SubElement(case, "system-out").text = detail


def render_junit(doc: ReportDoc) -> str:
    """``<testsuites>`` with a ``gate`` suite (one case per rule and variant) and a ``rows`` suite.

    A failing row is a candidate row whose model call or an evaluator failed, or that
    regressed against the baseline; for tool-calling variants its message names both tool
    sequences and whether they changed.
    """
    root = ET.Element("testsuites", name=f"promptgauge {doc.title}")
    gate = ET.SubElement(root, "testsuite", name="gate")
    props = ET.SubElement(gate, "properties")  # what the verdict rests on
    for key, value in flatten(doc.hashes):
        if value is not None:
            ET.SubElement(props, "property", name=key, value=str(value))
    for c in doc.comparisons:  # what each metric's paired test could detect (minimum detectable effect)
        for m in c.metrics:
            ET.SubElement(props, "property", name=f"mde.{c.candidate.variant}.{m.metric}",
                          value=f"{mde(m.mde)} ({m.mde_note})")
    notes = [f"{c.candidate.label} vs. {c.baseline.label}: {w}" for c in doc.comparisons for w in c.warnings]
    if notes:  # what the comparison warns about (different datasets, changed evaluators or judges)
        ET.SubElement(gate, "system-out").text = "\n".join(notes)
    if doc.verdict is not None:
        ET.SubElement(props, "property", name="verdict", value=outcome_word(doc.verdict.outcome,
                                                                         doc.verdict.on_inconclusive))
    for name, var in doc.variants.items():  # pairwise judges' verdicts vs. the baseline
        for judge, p in (var.get("pairwise") or {}).items():
            ET.SubElement(props, "property", name=f"pairwise.{name}.{judge}",
                          value=f"{p['wins']} wins / {p['ties']} ties / {p['losses']} losses vs. {p.get('baseline')}; "
                                f"win rate {fmt(p['win_rate'])}, position bias {fmt(p['position_bias'])}")
    for name, var in doc.variants.items():  # judges shown text aimed at the grader
        for ev, m in (var.get("metrics") or {}).items():
            if flagged := m.get("judge_injection"):
                ET.SubElement(props, "property", name=f"judge_injection.{name}.{ev}",
                              value=f"{flagged['rows']} rows: " + ", ".join(flagged["row_ids"]))
    for r in doc.verdict.rules if doc.verdict else []:
        unsure = r.outcome == "inconclusive"
        extra = (f" [MDE {mde(r.mde)}" + (f"; {rows_needed(r.rows_needed)}" if unsure else "") + "]"
                 if r.kind == "no_regression" else "")
        _case(gate, f"gate.{r.variant}", r.rule, None if r.passed else r.reason + extra, r.reason + extra,
              skipped=f"INCONCLUSIVE: {r.reason}{extra}" if unsure and r.passed else None)
    rows = ET.SubElement(root, "testsuite", name="rows")
    for c in doc.comparisons:
        for r in c.row_diffs:
            cand = r.candidate
            problems = [f"model call failed: {cand.error}"] if cand.error else []
            problems += [f"{ev} failed" + (f" on {failed_turns(s)}" if failed_turns(s) else "")
                         + (f": {s['reason']}" if s.get("reason") else "")
                         + (f" (error: {s['error']})" if s.get("error") else "")
                         for ev, s in cand.scores.items() if s.get("passed") is False or s.get("error")]
            problems += [f"{ev}: judge_injection ({', '.join(s['injection'])}): the answer has text aimed at the grader"
                         for ev, s in cand.scores.items() if s.get("injection")]
            if r.status in ("regressed", "mixed"):
                problems.append(f"regressed against the baseline ({c.baseline.label})")
            if problems:
                tools, turns = tools_line(r), turns_line(r)
                detail = "\n".join(problems + ["", f"baseline output: {r.baseline.output!r}",
                                               f"candidate output: {cand.output!r}"]
                                    + ([f"tool calls: {tools}"] if tools else [])
                                    + ([f"conversation: {turns}"] if turns else []))
                _case(rows, f"rows.{c.candidate.variant}", r.row_id, problems[0], detail)
    left_out = [f"{c.candidate.variant}: {c.rows_omitted} of {c.rows.matched} rows are not checked here (the report "
                "holds the most changed rows); rows.csv has every row" for c in doc.comparisons if c.rows_omitted]
    if left_out:
        ET.SubElement(rows, "system-out").text = "\n".join(left_out)
    for suite in (gate, rows):
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("errors", "0")
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    root.set("tests", str(sum(int(s.get("tests")) for s in (gate, rows))))
    root.set("failures", str(sum(int(s.get("failures")) for s in (gate, rows))))
    for el in root.iter():  # every text and attribute, whatever it came from: well-formed XML 1.0
        el.text = None if el.text is None else xml_text(el.text)
        for key, value in el.attrib.items():
            el.set(key, xml_text(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
