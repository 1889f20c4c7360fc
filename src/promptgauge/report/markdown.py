"""Markdown report: the verdict, a table per variant x evaluator, the gate rules."""

from __future__ import annotations

from typing import Any


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(summary: dict[str, Any]) -> str:
    gate = summary.get("gate")
    lines = [f"# promptgauge run `{summary['run_id']}` — suite `{_cell(summary['suite'])}`", ""]
    if gate is not None:
        verdict = "✅ **PASS**" if gate["passed"] else "❌ **FAIL**"
        lines += [f"Gate verdict: {verdict} (variants judged: {', '.join(gate['variants']) or 'none'})", ""]
    lines += [f"Status: {summary['status']}", ""]
    evaluators = list(next(iter(summary["variants"].values()), {}).get("metrics", {})) if summary["variants"] else []
    header = ["variant", "calls", "errors", "p50 ms"] + [f"{e} mean" for e in evaluators] + [f"{e} pass" for e in evaluators]
    lines += ["## Results", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, v in summary["variants"].items():
        calls = v["calls"]
        row = [f"`{_cell(name)}`", str(calls["n"]), str(calls["errors"]), _fmt(calls["latency_ms"]["p50"], 0)]
        row += [_fmt(v["metrics"][e]["mean"]) for e in evaluators]
        row += [_fmt(v["metrics"][e]["pass_rate"]) for e in evaluators]
        lines.append("| " + " | ".join(row) + " |")
    if gate is not None and gate["rules"]:
        lines += ["", "## Gate rules", "", "| rule | variant | value | result |", "|---|---|---|---|"]
        for r in gate["rules"]:
            lines.append(f"| `{_cell(r['rule'])}` | `{_cell(r['variant'])}` | {_fmt(r['value'], 4)} | "
                         f"{'pass' if r['passed'] else '**FAIL**'} |")
    m = summary.get("manifest", {})
    lines += ["", "## What was compared", ""]
    if m.get("dataset"):
        lines.append(f"- dataset `{_cell(m['dataset']['path'])}` ({m['dataset']['rows']} rows), sha256 `{m['dataset']['sha256'][:12]}`")
    if m.get("suite", {}).get("sha256"):
        lines.append(f"- suite sha256 `{m['suite']['sha256'][:12]}`")
    for name, v in m.get("variants", {}).items():
        prompt = f"prompt `{v['prompt']}` sha256 `{(v.get('prompt_sha256') or '')[:12]}`, " if v.get("prompt") else ""
        lines.append(f"- variant `{_cell(name)}`: {prompt}target `{v['target']}`, parameters `{v['parameters']}`")
    lines.append(f"- promptgauge {m.get('promptgauge', '?')}, Python {m.get('python', '?')}")
    return "\n".join(lines) + "\n"
