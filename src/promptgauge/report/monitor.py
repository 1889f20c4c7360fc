"""The trend report of a monitor: ``monitor.json``, ``monitor.md`` and ``monitor.html``, rewritten each pass.

The monitor (:mod:`promptgauge.monitor`) hands over its report as plain data; nothing here imports it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..escaping import markdown_cell
from .format import compact


def when(ts: float | None, size: int = 3600) -> str:
    """A window start as UTC text (date only for daily windows)."""
    if ts is None:
        return "–"
    t = dt.datetime.fromtimestamp(ts, dt.UTC)
    return t.strftime("%Y-%m-%d" if size % 86400 == 0 else "%Y-%m-%d %H:%M") + ("" if size % 86400 == 0 else "Z")


def spend(report: dict[str, Any]) -> str:
    """What this pass's model calls (judges, embeddings endpoints) cost, against its budget; '' if nothing."""
    p = report["pass"]
    if not p["cost_usd"] and p["max_cost"] is None:
        return ""
    text = f"Model calls of this pass: ${p['cost_usd']:.4f}"
    if p["max_cost"] is not None:
        text += f" of a ${p['max_cost']:g} budget"
    if p["stopped"] == "budget":
        text += ". STOPPED at the cost budget: the records not scored yet are left for the next pass"
    return text + "."


def _cell(text: Any, limit: int = 160) -> str:
    return markdown_cell("" if text is None else text, limit)


def render_monitor_markdown(report: dict[str, Any]) -> str:
    """``monitor.md``: status, alerts, the latest window's rules, every window, examples, this pass."""
    size = report["window_seconds"]
    lines = [f"# Monitor `{markdown_cell(report['monitor'], code=True)}`: {report['status'].upper()}", ""]
    if report["description"]:
        lines += [markdown_cell(report["description"], 2000), ""]
    lines += [f"- latest window: {when(report['latest_window'], size)} ({report['window']})",
              f"- reference: {report['reference']}",
              f"- alpha {report['alpha']:g} per window (Holm over comparison rules), min_n {report['min_n']}"]
    lines += [f"- {spend(report)}", ""] if spend(report) else [""]
    if report["alerts"]:
        lines += ["## Alerts (latest window)", "", "| rule | value | reference | n | reason |", "|---|---:|---:|---:|---|"]
        for a in report["alerts"]:
            lines.append(f"| {_cell(a['rule'])} | {compact(a['value'])} | {compact(a['reference'])} | {a['n']} | {_cell(a['reason'], 300)} |")
        lines.append("")
    latest = report["windows"][-1] if report["windows"] else None
    if latest:
        lines += ["## Rules on the latest window", "", "| rule | status | value | reference | reason |", "|---|---|---:|---:|---|"]
        for r in latest["rules"]:
            lines.append(f"| {_cell(r['rule'])} | {r['status']} | {compact(r['value'])} | {compact(r['reference'])} | {_cell(r['reason'], 300)} |")
        lines.append("")
    if report["windows"]:
        metrics = [m for m in report["metrics"] if m != "records"]
        lines += ["## Windows", "", "| window | records | sampled | " + " | ".join(metrics) + " | alerts |",
                  "|---|---:|---:|" + "---:|" * len(metrics) + "---|"]
        for w in report["windows"]:
            vals = " | ".join(compact(w["metrics"][m]["value"]) for m in metrics)
            lines.append(f"| {when(w['start'], size)} | {w['records']} | {w['sampled']} | {vals} | "
                         f"{_cell(', '.join(w['alerts'])) or ''} |")
        lines.append("")
    if report["examples"]:
        lines += ["## Examples behind the alerts (redacted)", ""]
        for key, rows in report["examples"].items():
            start, _, rule = key.partition("|")
            lines += [f"### {when(float(start), size)} · {_cell(rule)}", "", "| record | score | query | response / error |",
                      "|---|---:|---|---|"]
            for e in rows:
                lines.append(f"| {_cell(e['record_id'], 40)} | {compact(e['score'])} | {_cell(e['query'])} | "
                             f"{_cell(e['error'] or e['response'])} |")
            lines.append("")
    t = report["pass"]["total"]
    lines += ["## This pass", "",
              (f"{t['files']} files, {t['documents']} documents: {t['records']} new records "
               f"({t['duplicates']} already seen), {t['sampled']} sampled, {t['scored']} scored, "
               f"{t['failed']} failed calls, {t['malformed']} malformed."), ""]
    red = t["redactions"]
    lines += ["Redacted: " + (", ".join(f"{k} {v}" for k, v in sorted(red.items())) or "nothing") + ".", ""]
    if report["malformed"]:
        lines += ["### Malformed lines (skipped)", "", "| source | file | line | reason |", "|---|---|---:|---|"]
        for m in report["malformed"]:
            lines.append(f"| {_cell(m['source'])} | {_cell(m['file'], 80)} | {m['line']} | {_cell(m['reason'])} |")
        lines.append("")
    if report.get("webhook"):
        wh = report["webhook"]
        lines += [(f"Webhook: {'delivered' if wh['delivered'] else 'FAILED: ' + _cell(wh['error'], 300)} "
                   f"({wh['alerts']} alerts)."), ""]
    return "\n".join(lines)

