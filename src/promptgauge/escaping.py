"""Untrusted text made inert, one function per output format.

Row ids, inputs, outputs, tool results, reasons and error messages come from datasets, models and tools:
any of them may hold markup, links, terminal escape sequences, NUL/BEL, bidirectional overrides (Trojan
Source) or lone surrogates. Every place that writes a format passes such text through that format's
function here, so one rule holds everywhere the format is written:

- :func:`visible` (the common core): every character that changes how the text *around* it is shown or
  parsed -- C0 controls but tab and newline, DEL, C1 controls (incl. the 8-bit CSI), bidirectional
  formatting (U+202A-202E, U+2066-2069, LRM/RLM/ALM), line/paragraph separators, lone surrogates and
  the XML non-characters U+FFFE/U+FFFF -- becomes a visible mark ``⟨U+001B⟩``. Nothing is dropped
  silently: a reader sees that the text held a control.
- :func:`terminal`: :func:`visible` (newline and tab kept); rich markup is escaped by the caller or by
  :class:`promptgauge.cli` consoles, which run every string they render through this function.
- :func:`markdown_cell`: one line, :func:`visible`, HTML and markdown punctuation escaped (no link,
  image, autolink, emphasis or table break can come from the text).
- :func:`xml_text`: :func:`visible` with tab/newline/CR kept (XML 1.0 allows them); ElementTree escapes
  ``& < > "``.
- :func:`csv_cell`: :func:`visible` with tab/newline/CR kept (the writer quotes every text field), and
  a cell starting with ``= + - @``, tab or CR is prefixed with ``'`` (OWASP's advice against formula
  injection; a text like ``-5`` then reads ``'-5`` in a spreadsheet: the accepted cost).
- :func:`html_text`: :func:`visible` (newline and tab kept), then HTML-escaped; the HTML report's jinja
  environment applies it to every ``{{ … }}`` it prints (``finalize``), attributes included.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup, escape

#: Bidirectional formatting characters (Trojan Source): embeddings, overrides, isolates, marks.
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_UNSAFE = ("\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029"
           "\ud800-\udfff\ufffe\uffff")
_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(keep: str) -> re.Pattern[str]:
    rx = _PATTERNS.get(keep)
    if rx is None:
        extra = "".join(c for c in "\t\n\r" if c not in keep)
        extra = extra.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
        rx = _PATTERNS[keep] = re.compile(f"[{_UNSAFE}{extra}]")
    return rx


def mark(ch: str) -> str:
    """The visible stand-in of one control character: ``⟨U+001B⟩``."""
    return f"⟨U+{ord(ch):04X}⟩"


def visible(text: Any, keep: str = "\t\n") -> str:
    """*text* as a string with every control, bidi, separator and surrogate character (but those in
    *keep*, a subset of tab, newline, CR) replaced by a visible mark."""
    s = text if isinstance(text, str) else str(text)
    return _pattern(keep).sub(lambda m: mark(m.group()), s)


def terminal(text: Any) -> str:
    """Text for a terminal: no escape sequence (colours, screen clears, OSC 8 links, title changes) survives."""
    return visible(text, keep="\t\n")


#: What could make a link, an image, a code span or a new cell, or undo an escape (emphasis is left alone).
_MD_SPECIAL = re.compile(r"([\\`\[\]|])")


def markdown_cell(text: Any, limit: int = 200, *, code: bool = False) -> str:
    """One markdown table cell (or inline text): one line (whitespace collapsed), cut at *limit*
    characters, every control visible; then ``& < >`` as entities and markdown punctuation
    (``\\ ` [ ] |``) backslash-escaped -- or, with *code* (text going between backticks, where nothing is parsed), only
    backticks replaced by ``'`` and pipes escaped (a pipe would end the table cell)."""
    s = visible(" ".join(str(text).split()), keep="")
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    if code:
        return s.replace("`", "'").replace("|", "\\|")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def xml_text(text: Any) -> str:
    """Text for an XML 1.0 attribute or element: well-formed whatever *text* holds."""
    return visible(text, keep="\t\n\r")


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV field: text made visible and neutralised against formula injection; other values unchanged."""
    if not isinstance(value, str):
        return value
    s = visible(value, keep="\t\n\r")
    return "'" + s if s.startswith(_FORMULA) else s


def html_text(value: Any, *, styled: bool = False) -> Markup:
    """Text for HTML (element content or a quoted attribute value): escaped, then controls as visible
    marks -- *styled* (element content only) wraps each mark in ``<span class="ctl">``. Markup (already
    made safe by its producer) passes unchanged."""
    if isinstance(value, Markup):
        return value
    s = str(escape(value))
    if styled:
        return Markup(_pattern("\t\n").sub(lambda m: f'<span class="ctl">{mark(m.group())}</span>', s))
    return Markup(_pattern("\t\n").sub(lambda m: mark(m.group()), s))
