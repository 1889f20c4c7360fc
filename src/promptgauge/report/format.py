"""Numbers for people: how every report, table and verdict reason writes a value ("–" when there is none)."""

from __future__ import annotations

import math
from typing import Any

#: What a missing value is shown as.
NONE = "–"


def fmt(x: Any, digits: int = 3) -> str:
    """A float with *digits* decimals (``0.750``); anything else as text."""
    if x is None:
        return NONE
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def signed(x: float | None, digits: int = 3) -> str:
    """A change with its sign and *digits* decimals (``+0.050``)."""
    return NONE if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def sig(x: float | None, digits: int = 4) -> str:
    """A value to *digits* significant digits (``0.7512``, ``1.2e-05``)."""
    return NONE if x is None else f"{x:.{digits}g}"


def compact(x: Any, digits: int = 3) -> str:
    """A float with at most *digits* decimals and no trailing zeros (``0.75``, ``12``); tiny ones to *digits*
    significant digits; anything else as text."""
    if x is None:
        return NONE
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x else f"{x:.{digits}f}".rstrip("0").rstrip(".") or "0"
    return str(x)


#: How each report names a gate outcome.
OUTCOME = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}
#: What an inconclusive outcome does to the exit code, by on_inconclusive.
INCONCLUSIVE_MEANS = {"fail": "counts as a failure", "pass": "counts as a pass", "warn": "passes with a warning"}
#: Two sentences for a release manager: what inconclusive means.
INCONCLUSIVE_NOTE = ("Inconclusive means the run had too few rows (or too much noise) to notice a drop as large as "
                     "the rule's max_drop, so \"no regression seen\" would not mean \"no regression\". "
                     "Run on more rows (the report says how many) or accept a larger max_drop.")


def outcome_word(outcome: str, on_inconclusive: str = "fail") -> str:
    """``PASS``, ``FAIL`` or ``INCONCLUSIVE (passes with a warning)``."""
    word = OUTCOME.get(outcome, outcome.upper())
    return f"{word} ({INCONCLUSIVE_MEANS[on_inconclusive]})" if outcome == "inconclusive" else word


def mde(value: float | None) -> str:
    """A minimum detectable effect: ``0.054``, or ``none`` when no drop can be detected."""
    return "none" if value is None else sig(value, 3)


def rows_needed(n: int | None) -> str:
    """``needs ~452 rows`` or, when no number of rows would do, ``more rows alone will not decide it``."""
    return "more rows alone will not decide it" if n is None else f"needs ~{n:,} rows"
