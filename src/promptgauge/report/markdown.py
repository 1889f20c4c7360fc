"""Markdown report for a pull-request comment: verdict, deltas with CIs, gate rules, changed rows, hashes.

It always fits GitHub's comment limit (65,536 characters): the row lists are cut,
with a note saying how many rows were left out.
"""

from __future__ import annotations

from typing import Any

from ..escaping import markdown_cell
from ..results.trajectory import MAX_NAMES
from .document import REPORT_SCHEMA, ReportDoc
from .format import INCONCLUSIVE_NOTE, fmt, mde, outcome_word, rows_needed, signed
from .trajectory import tools_line, turn_marks

GITHUB_LIMIT = 65_536


def _cell(text: Any, limit: int = 200) -> str:
    return markdown_cell(text, limit)


def _code(text: Any, limit: int = 200) -> str:
    """*text* as inline code (nothing in it is parsed; a pipe cannot end the cell)."""
    return f"`{markdown_cell(text, limit, code=True)}`"


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", 1)]`` (for listing hashes)."""
    if isinstance(obj, dict):
        out = []
        for k, v in obj.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, obj)]


#: Said once, under the first comparison with a latency metric, when the run balanced its call order.
ORDER_NOTE = ("Latency comparisons are order-balanced: for every row, the variants' calls came in a seeded "
              "shuffled order, so no variant was systematically called first (warm caches, warm-up).")


def order_note_at(doc: ReportDoc) -> int | None:
    """Index of the comparison under which :data:`ORDER_NOTE` goes, or None (no balanced latency comparison)."""
    if not doc.order_balanced:
        return None
    return next((i for i, c in enumerate(doc.comparisons) if any(m.metric.startswith("latency") for m in c.metrics)),
                None)


CHANGE = {"improved": "▲ improved", "regressed": "▼ **regressed**", "unchanged": "no significant change"}
LOWER = "lower is better"


def agreement(m: dict[str, Any], sep: str = "; ") -> str:
    """An evaluator's agreement, by the gate's metric names ('' when it has neither kind)."""
    parts = []
    for group in ("reliability", "human_agreement"):
        if group not in m:
            continue
        a = m[group]
        if a is None:
            parts.append(f"{group}: no rows to compare")
            continue
        stats = " · ".join(f"{k} {fmt(a[k], 2)}" for k in ("alpha", "exact", "within_1", "mean_abs_diff", "kappa")
                          if k in a)
        parts.append(f"{group}: {stats} ({a['rows']} rows)")
    if flagged := m.get("judge_injection"):
        ids = ", ".join(flagged["row_ids"]) + (" …" if flagged["rows"] > len(flagged["row_ids"]) else "")
        parts.append(f"judge_injection: {flagged['rows']} rows with text aimed at the grader ({ids})")
    return sep.join(parts)


def agreement_rows(doc: ReportDoc) -> list[tuple[str, str, str]]:
    """(variant, evaluator, agreement) for every evaluator with repeats, human labels or injection flags."""
    return [(name, ev, text) for name, var in doc.variants.items() for ev, m in var["metrics"].items()
            if (text := agreement(m))]


#: Columns of the pairwise table (markdown, HTML, terminal).
PAIRWISE_COLUMNS = ("variant", "judge", "baseline", "pairs", "wins / ties / losses", "win rate [CI]",
                    "sign test p", "position bias")


def pairwise_rows(variants: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """One line per (gated variant, pairwise judge): the cells of :data:`PAIRWISE_COLUMNS`."""
    out = []
    for name, var in variants.items():
        for judge, p in (var.get("pairwise") or {}).items():
            ci = p.get("win_rate_ci") or {}
            errors = f" ({p['errors']} errors)" if p.get("errors") else ""
            out.append((name, judge, str(p.get("baseline")), f"{p['n']}{errors}",
                        f"{p['wins']} / {p['ties']} / {p['losses']}",
                        f"{fmt(p['win_rate'])} [{fmt(ci.get('ci_low'), 2)}, {fmt(ci.get('ci_high'), 2)}]",
                        fmt(p.get("p_value"), 3), fmt(p.get("position_bias"))))
    return out


#: Said under the pairwise table.
PAIRWISE_NOTE = ("Each pair was judged twice, with the answers in both orders; a verdict that changed with the "
                 "order counts as a tie, and position bias is the share of pairs where it did. Win rate = (wins + "
                 "ties / 2) / pairs, with its Wilson CI; the sign test compares wins with losses.")


def run_level_rows(doc: ReportDoc) -> list[tuple[str, str, float | None]]:
    """(variant, metric, value) of the run-level metrics beyond the evaluator table: what evaluators logged once
    per variant (a promptflow evaluation flow's ``log_metric``: ``EV.NAME``) and streamed answers' time to first
    token and output rate."""
    rows = []
    for name, var in doc.variants.items():
        calls = var.get("calls") or {}
        ttft = (calls.get("latency_ms") or {}).get("ttft")
        if ttft:
            rows += [(name, "latency_ms.ttft.p50", ttft.get("p50")), (name, "latency_ms.ttft.p95", ttft.get("p95")),
                     (name, "tokens_per_s.p50", (calls.get("tokens_per_s") or {}).get("p50"))]
        for ev, m in var["metrics"].items():
            rows += [(name, f"{ev}.{k}", v) for k, v in (m.get("aggregates") or {}).items()]
    return rows


def render_markdown(doc: ReportDoc, limit: int = GITHUB_LIMIT) -> str:
    head: list[str] = [f"# {_cell(doc.title)}", ""]
    v = doc.verdict
    if v is not None:
        mark = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}[v.outcome]
        verdict = f"{mark} **{outcome_word(v.outcome, v.on_inconclusive)}**"
        against = f" against {_code(v.baseline)}" if v.baseline else ""
        failed = sum(r.outcome == "fail" for r in v.rules)
        unsure = v.inconclusive
        head += [(f"Gate verdict: {verdict} — {len(v.rules) - failed - len(unsure)} of {len(v.rules)} rules passed"
                  + (f", {len(unsure)} inconclusive" if unsure else "")
                  + f" (gated: {_cell(', '.join(v.variants)) or 'none'}{against})"), ""]
        if unsure:
            head += [f"> {INCONCLUSIVE_NOTE}", ">"]
            head += [f"> - {_code(r.rule)} ({_code(r.variant)}): MDE {mde(r.mde)}, {rows_needed(r.rows_needed)}"
                     for r in unsure] + [""]
    if doc.status:
        head += [f"Run status: {doc.status}", ""]
    note_at = order_note_at(doc)
    for i, c in enumerate(doc.comparisons):
        head += [f"## {_code(c.candidate.label)} vs. baseline {_code(c.baseline.label)}", ""]
        head += [f"> ⚠️ **{_cell(w, 1000)}**" for w in c.warnings] + ([""] if c.warnings else [])
        head += [(f"{c.rows.matched} matched rows · {c.confidence:.0%} CIs · p: two-sided paired test (did it "
                  f"change?), Holm-adjusted over {len(c.metrics)} metrics; a change needs p < {c.alpha:g} · "
                  f"seed {c.seed}"), "",
                 "| metric | baseline | candidate | delta | CI of delta | p two-sided (Holm) | effect | change | MDE |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for m in c.metrics:
            name = _code(m.metric) + ("" if m.higher_is_better else f" ({LOWER})")
            head.append(f"| {name} | {fmt(m.baseline)} | {fmt(m.candidate)} | {signed(m.delta)} | "
                        f"[{signed(m.ci_low)}, {signed(m.ci_high)}] | {fmt(m.p_holm, 4)} | "
                        f"{m.effect_name} {fmt(m.effect_size, 2)} | {CHANGE[m.change]} | {mde(m.mde)} |")
        head += ["", (f"MDE: the smallest worsening the one-sided paired test detects with probability "
                      f"{c.metrics[0].mde_power:g} at alpha {c.alpha:g}, at these {c.rows.matched} rows and the "
                      "observed agreement (pass rates) or spread of row differences (scores)."
                      if c.metrics else ""), ""]
        if i == note_at:
            head += [ORDER_NOTE, ""]
    if not doc.comparisons and doc.variants:
        evaluators = list(next(iter(doc.variants.values()))["metrics"])
        cols = ["variant", "calls", "errors", "p50 ms"] + [f"{e} mean" for e in evaluators] + \
            [f"{e} pass" for e in evaluators]
        head += ["## Results", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for name, var in doc.variants.items():
            calls = var["calls"]
            row = [f"{_code(name)}", str(calls["n"]), str(calls["errors"]), fmt(calls["latency_ms"]["p50"], 0)]
            row += [fmt(var["metrics"][e]["mean"]) for e in evaluators]
            row += [fmt(var["metrics"][e]["pass_rate"]) for e in evaluators]
            head.append("| " + " | ".join(row) + " |")
        head.append("")
    if pairs := pairwise_rows(doc.variants):
        head += ["## Pairwise judging", "", "| " + " | ".join(PAIRWISE_COLUMNS) + " |",
                 "|" + "---|" * len(PAIRWISE_COLUMNS)]
        head += ["| " + " | ".join([_code(r[0]), _code(r[1]), _code(r[2]), *r[3:]]) + " |"
                 for r in pairs]
        head += ["", PAIRWISE_NOTE, ""]
    if run_level := run_level_rows(doc):
        head += ["## Run-level metrics", "", "| variant | metric | value |", "|---|---|---|"]
        head += [f"| {_code(name)} | {_code(metric)} | {fmt(value)} |" for name, metric, value in run_level] + [""]
    if agreed := agreement_rows(doc):
        head += ["## Judge agreement", "", "| variant | evaluator | agreement |", "|---|---|---|"]
        head += [f"| {_code(name)} | {_code(ev)} | {_cell(text)} |" for name, ev, text in agreed] + [""]
    if v is not None and v.rules:
        head += ["## Gate rules", "", "| | rule | variant | value | p one-sided (Holm) | why |",
                 "|---|---|---|---|---|---|"]
        for r in v.rules:
            icon = "⚠️" if r.outcome == "inconclusive" else "✅" if r.passed else "❌"
            head.append(f"| {icon} | {_code(r.rule)} | {_code(r.variant)} | "
                        f"{fmt(r.value, 4)} | {fmt(r.p_value, 4) if r.kind == 'no_regression' else ''} | "
                        f"{_cell(r.reason, 400)} |")
        head.append("")
    tail = ["## What was compared", "", "| item | value |", "|---|---|"]
    tail += [f"| {_cell(k)} | {_code(val)} |" for k, val in flatten(doc.hashes) if val is not None]
    tail += ["", f"<sub>promptgauge report · schema {REPORT_SCHEMA} · {doc.generated_at}</sub>", ""]
    rows = _row_lines(doc)
    return _fit(head, rows, tail, limit)



def _row_lines(doc: ReportDoc) -> list[str]:
    lines: list[str] = []
    for c in doc.comparisons:
        changed = [r for r in c.row_diffs if r.status != "unchanged" or r.tool_change]
        if not changed:
            continue
        order = {"regressed": 0, "mixed": 1, "improved": 2, "unchanged": 3}
        changed.sort(key=lambda r: (order[r.status], r.index))
        flips = c.flip_counts()
        tools = c.has_trajectories()
        tool_flips = (f" {c.tool_changes.get('sequence', 0)} rows changed their tool sequence, "
                      f"{c.tool_changes.get('arguments', 0)} only their tool arguments (tool sequences show at "
                      f"most {MAX_NAMES} tools each)." if tools else "")
        lines += [f"## Changed rows: {_code(c.candidate.variant)} ({len(changed)} of {c.rows.matched})", "",
                  f"{flips['pass->fail']} pass→fail and {flips['fail->pass']} fail→pass flips." + tool_flips
                  + (f" This report holds {len(c.row_diffs)} of the {c.rows.matched} rows, the most changed first; "
                     "rows.csv has every row." if c.rows_omitted else ""), "",
                  "| row | status | changed scores | baseline output | candidate output |" + (" tool calls |" if tools else ""),
                  "|---|---|---|---|---|" + ("---|" if tools else "")]
        for r in changed:
            scores = []
            for ev, s in r.candidate.scores.items():
                b = r.baseline.scores.get(ev, {})
                if (b.get("score"), b.get("passed")) != (s.get("score"), s.get("passed")):
                    scores.append(f"{ev} {fmt(b.get('score'), 2)}→{fmt(s.get('score'), 2)}"
                                  + (f" (per turn {turn_marks(b) or '–'}→{turn_marks(s) or '–'})"
                                     if b.get("turns") or s.get("turns") else ""))
            lines.append(f"| {_code(r.row_id, 40)} | {r.status} | {_cell('; '.join(scores))} | "
                         f"{_cell(r.baseline.output or r.baseline.error or '')} | "
                         f"{_cell(r.candidate.output or r.candidate.error or '')} |"
                         + (f" {_cell(tools_line(r), 400)} |" if tools else ""))
        lines.append("")
    return lines


def _fit(head: list[str], rows: list[str], tail: list[str], limit: int) -> str:
    """Head and tail always; as many row lines as fit, then a note on what was left out."""
    fixed = "\n".join(head + tail)
    budget = limit - len(fixed) - 200
    kept: list[str] = []
    used = 0
    for line in rows:
        if used + len(line) + 1 > budget:
            left = sum(1 for x in rows[len(kept):] if x.startswith("| `"))
            kept += ["", (f"_… {left} more rows not shown (comment size limit); "
                          "see report.html or rows.csv for every row._"), ""]
            break
        kept.append(line)
        used += len(line) + 1
    text = "\n".join(head + kept + tail)
    return text if len(text) <= limit else text[: limit - 40] + "\n\n_(truncated)_\n"
