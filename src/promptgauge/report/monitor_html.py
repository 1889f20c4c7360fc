"""The monitor's trend report as one self-contained HTML page: inline SVG charts, no scripts, no CDN.

Each chart shows a metric per window, the reference value and its 95 % band,
threshold lines, and the windows where a rule on that metric alerted (red).
All text is escaped (jinja2 autoescape; SVG built with :func:`html.escape`).
"""

from __future__ import annotations

import math
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, PackageLoader, select_autoescape
from markupsafe import Markup

from ..escaping import html_text
from .format import compact
from .monitor import spend, when

W, H = 760, 220
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 14, 34


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def chart(report: dict[str, Any], metric: str) -> Markup | None:
    """An SVG line chart of *metric* over the report's windows (None when it has no values)."""
    windows = report["windows"]
    pts = [(w["start"], w["metrics"][metric]) for w in windows if w["metrics"][metric]["value"] is not None]
    if not pts:
        return None
    size = report["window_seconds"]
    rules = [r for r in report["rules"] if r["metric"] == metric]
    limits = _limits(report, metric)
    ys = [m["value"] for _, m in pts] + [v for _, m in pts for v in (m["band"] or [])]
    ys += [m["reference"] for _, m in pts if m["reference"] is not None] + [v for v, _ in limits]
    lo, hi = min(ys), max(ys)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    margin = (hi - lo) * 0.08
    lo, hi = lo - margin, hi + margin
    if metric.endswith(("pass_rate", "error_rate")):
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    t0, t1 = windows[0]["start"], windows[-1]["start"] + size
    def x(t: float) -> float:
        return PAD_L + (t + size / 2 - t0) / (t1 - t0) * (W - PAD_L - PAD_R)
    def y(v: float) -> float:
        return PAD_T + (hi - v) / (hi - lo) * (H - PAD_T - PAD_B)
    out = [(f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{html_text(metric)} per window" xmlns="http://www.w3.org/2000/svg">')]
    for v in _ticks(lo, hi):
        out.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                   f'<text class="tick" x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{html_text(compact(v))}</text>')
    # reference band and line
    band = [(t, m["band"]) for t, m in pts if m["band"]]
    if band:
        upper = " ".join(f"{x(t):.1f},{y(b[1]):.1f}" for t, b in band)
        lower = " ".join(f"{x(t):.1f},{y(b[0]):.1f}" for t, b in reversed(band))
        if len(band) == 1:
            t, b = band[0]
            upper = f"{PAD_L},{y(b[1]):.1f} {W - PAD_R},{y(b[1]):.1f}"
            lower = f"{W - PAD_R},{y(b[0]):.1f} {PAD_L},{y(b[0]):.1f}"
        out.append(f'<polygon class="band" points="{upper} {lower}"><title>reference 95% interval</title></polygon>')
    ref = [(t, m["reference"]) for t, m in pts if m["reference"] is not None]
    if ref:
        out.append('<polyline class="ref" points="' + " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in ref) + '"/>')
    for v, label in limits:
        out.append(f'<line class="limit" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}">'
                   f'<title>{html_text(label)}</title></line>')
    out.append('<polyline class="line" points="' + " ".join(f"{x(t):.1f},{y(m['value']):.1f}" for t, m in pts) + '"/>')
    alerting = {w["start"]: [a for a in w["alerts"] if any(r["rule"] == a for r in rules)] for w in windows}
    for t, m in pts:
        hit = alerting.get(t)
        tip = f"{when(t, size)}: {compact(m['value'])} (n={m['n']})" + (f" · ALERT: {'; '.join(hit)}" if hit else "")
        out.append(f'<circle class="{"alert" if hit else "pt"}" cx="{x(t):.1f}" cy="{y(m["value"]):.1f}" '
                   f'r="{5 if hit else 3}"><title>{html_text(tip)}</title></circle>')
    label_every = max(1, len(windows) // 6)
    for i, w in enumerate(windows):
        if i % label_every == 0:
            out.append(f'<text class="tick" x="{x(w["start"]):.1f}" y="{H - 12}" text-anchor="middle">'
                       f'{html_text(when(w["start"], size))}</text>')
    out.append("</svg>")
    return Markup("".join(out))


def _limits(report: dict[str, Any], metric: str) -> list[tuple[float, str]]:
    """Threshold lines of the rules on *metric*."""
    out = []
    for rule in report["rules"]:
        if rule["metric"] == metric:
            for key in ("below", "above"):
                if rule.get(key) is not None:
                    out.append((float(rule[key]), f"{rule['rule']}"))
    return out


_env = Environment(loader=PackageLoader("promptgauge", "report/templates"), autoescape=select_autoescape(["html", "j2"]),
                   finalize=html_text,  # every {{ … }}: controls and bidi characters visible, then escaped
                   bytecode_cache=FileSystemBytecodeCache())  # compiled once per user, checked against the source


def render_monitor_html(report: dict[str, Any]) -> str:
    charts = [(m, c) for m in report["metrics"] if (c := chart(report, m)) is not None]
    size = report["window_seconds"]
    examples = []
    for key, rows in report["examples"].items():
        start, _, rule = key.partition("|")
        examples.append({"window": when(float(start), size), "rule": rule, "rows": rows})
    template = _env.get_template("monitor.html.j2")
    return template.render(r=report, charts=charts, examples=examples, when=lambda t: when(t, size), fmt=compact,
                           latest=report["windows"][-1] if report["windows"] else None, spend=spend(report))
