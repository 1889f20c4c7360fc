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
