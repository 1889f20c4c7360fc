"""HTML report: one self-contained file (inline CSS, JS and SVG; no network), safe for any model text.

The first screen tells a non-technical reader the verdict, the headline changes with their
CIs and a chart per metric; below, every gate rule and the rows of the document (every row, or
for a huge run the most changed, with a note), with filter, sort and a drill-down showing both
outputs side by side with the differences marked and, for a tool-calling variant, both
trajectories step by step with the first divergence marked (:mod:`.trajectory`). All dataset,
model and tool text goes through jinja2's autoescaping: a reply or tool result containing
``<script>`` is shown as text, and bidirectional-override characters as visible marks.
"""

from __future__ import annotations

import bisect
import difflib
import re
from typing import Any

import jinja2
from markupsafe import Markup

from ..escaping import BIDI, html_text
from .document import ReportDoc
from .format import INCONCLUSIVE_NOTE, fmt, mde, outcome_word, rows_needed, signed
from .markdown import LOWER, ORDER_NOTE, PAIRWISE_COLUMNS, PAIRWISE_NOTE, agreement_rows, flatten, order_note_at, pairwise_rows, run_level_rows
from .trajectory import CHANGE, CUT_NOTE, inert, side_by_side, turn_marks, turn_table

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("promptgauge.report", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    finalize=html_text,  # every {{ … }} printed: controls and bidi characters visible, then escaped
    # The compiled template is kept in the user's temp folder (jinja checks it against the source): compiling
    # report.html.j2 took ~0.2 s of every process that writes a report.
    bytecode_cache=jinja2.FileSystemBytecodeCache(),
)
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
#: Characters of one output (or input) the HTML report shows; the rest is in results.jsonl and rows.csv.
MAX_SHOWN = 50_000
#: A stretch of changed text without a word common to both sides is diffed word by word only up to
#: this many (tokens of one side × tokens of the other); beyond, it is shown whole as removed/added.
MAX_DIFF_CELLS = 40_000


def clip(text: Any, limit: int = MAX_SHOWN) -> str:
    """*text* cut to *limit* characters, saying how many were left out."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[:limit] + f" … [{len(s) - limit:,} more characters: see results.jsonl or rows.csv]"


def word_diff(old: str | None, new: str | None) -> tuple[Markup, Markup]:
    """Both texts escaped, with removed words in ``<del>`` (old) and added words in ``<ins>`` (new).

    Linear in practice whatever the texts (a 1 MB output adds well under a second): each side is cut
    to :data:`MAX_SHOWN` characters, the common start and end are matched first, then words that
    occur once on each side anchor the rest (patience diff); only a stretch without such anchors and
    smaller than :data:`MAX_DIFF_CELLS` is compared word by word (:mod:`difflib`), a larger one is
    shown whole as removed and added.
    """
    a, b = _TOKEN.findall(clip(old)), _TOKEN.findall(clip(new))
    left, right = [], []
    for op, i1, i2, j1, j2 in _opcodes(a, b):
        old_part, new_part = inert("".join(a[i1:i2])), inert("".join(b[j1:j2]))
        if op == "equal":
            left.append(old_part)
            right.append(new_part)
        else:
            if i2 > i1:
                left.append(Markup("<del>%s</del>") % old_part)
            if j2 > j1:
                right.append(Markup("<ins>%s</ins>") % new_part)
    return Markup("").join(left), Markup("").join(right)


def _opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib-style opcodes from the matching blocks of :func:`_blocks`."""
    out, i, j = [], 0, 0
    for ai, bj, n in _blocks(a, b) + [(len(a), len(b), 0)]:
        if i < ai or j < bj:
            out.append(("replace" if i < ai and j < bj else "delete" if i < ai else "insert", i, ai, j, bj))
        if n:
            out.append(("equal", ai, ai + n, bj, bj + n))
        i, j = ai + n, bj + n
    return out


def _blocks(a: list[str], b: list[str]) -> list[tuple[int, int, int]]:
    """Matching blocks ``(i, j, n)``, increasing in both *a* and *b* (a work list, no recursion)."""
    blocks: list[tuple[int, int, int]] = []
    todo = [(0, len(a), 0, len(b))]
    while todo:
        alo, ahi, blo, bhi = todo.pop()
        while alo < ahi and blo < bhi and a[alo] == b[blo]:  # common start
            blocks.append((alo, blo, 1))
            alo, blo = alo + 1, blo + 1
        while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:  # common end
            ahi, bhi = ahi - 1, bhi - 1
            blocks.append((ahi, bhi, 1))
        if alo == ahi or blo == bhi:
            continue
        anchors = _unique_common(a, b, alo, ahi, blo, bhi)
        if anchors:
            pi, pj = alo, blo
            for i, j in anchors:
                blocks.append((i, j, 1))
                todo.append((pi, i, pj, j))
                pi, pj = i + 1, j + 1
            todo.append((pi, ahi, pj, bhi))
        elif (ahi - alo) * (bhi - blo) <= MAX_DIFF_CELLS:
            sm = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
            blocks += [(alo + i, blo + j, n) for i, j, n in sm.get_matching_blocks() if n]
    blocks.sort()
    merged: list[tuple[int, int, int]] = []
    for i, j, n in blocks:  # adjacent single-token blocks into runs
        if merged and merged[-1][0] + merged[-1][2] == i and merged[-1][1] + merged[-1][2] == j:
            merged[-1] = (merged[-1][0], merged[-1][1], merged[-1][2] + n)
        else:
            merged.append((i, j, n))
    return merged


def _unique_common(a: list[str], b: list[str], alo: int, ahi: int, blo: int, bhi: int) -> list[tuple[int, int]]:
    """The longest increasing chain of (i, j) where a[i] == b[j] occurs once in each range (patience)."""
    count: dict[str, list[int]] = {}
    for i in range(alo, ahi):
        count.setdefault(a[i], [0, i, 0, -1])[0] += 1
    for j in range(blo, bhi):
        c = count.get(b[j])
        if c is not None:
            c[2] += 1
            c[3] = j
    pairs = sorted((c[1], c[3]) for c in count.values() if c[0] == 1 and c[2] == 1)
    # longest increasing subsequence in j (patience sorting), O(k log k)
    tails: list[int] = []
    tail_at: list[int] = []
    prev = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect.bisect_left(tails, j)
        if pos == len(tails):
            tails.append(j)
            tail_at.append(k)
        else:
            tails[pos], tail_at[pos] = j, k
        prev[k] = tail_at[pos - 1] if pos else -1
    chain, k = [], tail_at[-1] if tail_at else -1
    while k >= 0:
        chain.append(pairs[k])
        k = prev[k]
    return chain[::-1]


def _x(value: float, lo: float, hi: float, x0: float, width: float) -> float:
    return x0 + (value - lo) / (hi - lo) * width if hi > lo else x0 + width / 2


def metric_chart(m) -> Markup:
    """An inline SVG: baseline and candidate bars, and the delta with its CI against zero."""
    w, label_w, bar_w = 360, 78, 270
    vals = [v for v in (m.baseline, m.candidate) if v is not None]
    top = 1.0 if m.metric.endswith("pass_rate") or m.metric == "error_rate" else max([abs(v) for v in vals] + [1e-9])
    color = {"improved": "#1a7f37", "regressed": "#cf222e", "unchanged": "#57606a"}[m.change]
    parts = [(f'<svg class="chart" role="img" viewBox="0 0 {w} 92" width="{w}" height="92" '
              f'xmlns="http://www.w3.org/2000/svg">')]
    for i, (name, v, fill) in enumerate((("baseline", m.baseline, "#8c959f"), ("candidate", m.candidate, color))):
        y = 4 + i * 22
        length = 0 if v is None else abs(v) / top * (bar_w - 48)
        parts.append(f'<text x="0" y="{y + 13}" class="lbl">{name}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="16" fill="{fill}" rx="2"/>'
                     f'<text x="{label_w + length + 4:.1f}" y="{y + 13}" class="val">{fmt(v)}</text>')
    if m.delta is not None:
        ends = [x for x in (m.delta, m.ci_low, m.ci_high) if x is not None]
        span = max(abs(x) for x in ends) * 1.15 or 1e-9
        lo, hi = -span, span
        y = 68
        zero = _x(0, lo, hi, label_w, bar_w)
        parts.append(f'<text x="0" y="{y + 4}" class="lbl">change</text>'
                     f'<line x1="{label_w}" x2="{label_w + bar_w}" y1="{y}" y2="{y}" class="axis"/>'
                     f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{y - 9}" y2="{y + 9}" class="zero"/>')
        if m.ci_low is not None and m.ci_high is not None:
            x1, x2 = _x(m.ci_low, lo, hi, label_w, bar_w), _x(m.ci_high, lo, hi, label_w, bar_w)
            parts.append(f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="4"/>')
        xd = _x(m.delta, lo, hi, label_w, bar_w)
        parts.append(f'<circle cx="{xd:.1f}" cy="{y}" r="5" fill="{color}"/>'
                     f'<text x="{label_w}" y="{y + 22}" class="val">{-span:+.3g}</text>'
                     f'<text x="{label_w + bar_w}" y="{y + 22}" class="val" text-anchor="end">{span:+.3g}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _worst(row, metrics) -> float:
    """The row's largest worsening across evaluator metrics (0 when nothing got worse): for sorting."""
    worst = 0.0
    for m in metrics:
        if m.evaluator is None:
            continue
        b, c = row.baseline.scores.get(m.evaluator, {}), row.candidate.scores.get(m.evaluator, {})
        key = "passed" if m.metric.endswith("pass_rate") else "score"
        if b.get(key) is None or c.get(key) is None:
            continue
        d = (float(c[key]) - float(b[key])) * (1 if m.higher_is_better else -1)
        worst = min(worst, d)
    return worst


def _search_text(row) -> str:
    """Plain lower-cased text the row filter searches: id, input values, both outputs (escaped by the template)."""
    parts = [row.row_id, *map(str, row.inputs.values()), row.baseline.output or "", row.candidate.output or "",
             row.baseline.tools or "", row.candidate.tools or ""]
    return clip(BIDI.sub("", " ".join(parts).lower()), 2 * MAX_SHOWN)


def render_html(doc: ReportDoc) -> str:
    template = _env.get_template("report.html.j2")
    return template.render(doc=doc, chart=metric_chart, diff=word_diff, fmt=fmt, signed=signed, worst=_worst,
                           search_text=_search_text, clip=clip, lower=LOWER, agreement=agreement_rows(doc), run_level=run_level_rows(doc),
                           pairwise=pairwise_rows(doc.variants), pairwise_columns=PAIRWISE_COLUMNS,
                           pairwise_note=PAIRWISE_NOTE,
                           trajectory=side_by_side, turns=turn_table, marks=turn_marks, inert=inert, tool_change=CHANGE, cut_note=CUT_NOTE,
                           hashes=[(k, v) for k, v in flatten(doc.hashes) if v is not None],
                           order_note=ORDER_NOTE, order_note_at=order_note_at(doc), outcome_word=outcome_word,
                           mde=mde, rows_needed=rows_needed, inconclusive_note=INCONCLUSIVE_NOTE)
