"""How far an evaluator's scores can be trusted: agreement across repeats and with human labels.

- ``repeats: n`` on an evaluator: Krippendorff's alpha over rows x repeats
  (ordinal for integer scores such as a judge's 1-5, interval otherwise), the
  share of rows whose repeats all agree (``exact``) and whose repeats lie within
  one point of each other (``within_1``).
- ``human_label: COLUMN``: the same between the evaluator's score and the
  human's, plus the mean absolute difference and Cohen's ``kappa`` (on the
  rounded scores as categories). A human label of ``pass``/``fail`` (or a
  boolean) is compared with the evaluator's pass/fail instead (nominal alpha,
  ``exact`` = accuracy, ``kappa`` on the verdicts).

Alpha and kappa are ``None`` when undefined (fewer than two rows, or one value only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

_VERDICTS = {"pass": True, "fail": False, "true": True, "false": False, "yes": True, "no": False}


def alpha(data: np.ndarray, level: str | None = None) -> float | None:
    """Krippendorff's alpha of a raters x units matrix (NaN = missing); ``None`` when undefined."""
    import krippendorff

    values = data[~np.isnan(data)]
    if np.unique(values).size < 2 or data.shape[1] < 2:
        return None
    if level is None:
        level = "ordinal" if np.all(values == np.round(values)) else "interval"
    value = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    return None if math.isnan(value) else value


def repeat_agreement(repeat_scores: Iterable[list[float | None]]) -> dict[str, Any] | None:
    """Agreement across repeats; rows with fewer than two scored repeats are left out."""
    rows = [[s for s in scores if s is not None] for scores in repeat_scores]
    rows = [r for r in rows if len(r) >= 2]
    if not rows:
        return None
    width = max(len(r) for r in rows)
    matrix = np.full((width, len(rows)), np.nan)
    for j, r in enumerate(rows):
        matrix[: len(r), j] = r
    spread = np.array([max(r) - min(r) for r in rows])
    return {"rows": len(rows), "alpha": alpha(matrix), "exact": float(np.mean(spread == 0)),
            "within_1": float(np.mean(spread <= 1))}


def human_agreement(pairs: Iterable[tuple[float | None, bool | None, Any]]) -> dict[str, Any] | None:
    """Agreement of ``(score, passed, human_label)`` triples; unlabelled rows are left out."""
    numeric: list[tuple[float, float]] = []
    verdicts: list[tuple[bool, bool]] = []
    for score, passed, label in pairs:
        verdict = _verdict(label)
        if verdict is not None:
            if passed is not None:
                verdicts.append((passed, verdict))
        elif (human := _number(label)) is not None and score is not None:
            numeric.append((score, human))
    if numeric:
        a = np.array(numeric).T
        diff = np.abs(a[0] - a[1])
        return {"rows": len(numeric), "alpha": alpha(a), "exact": float(np.mean(np.round(a[0]) == a[1])),
                "within_1": float(np.mean(diff <= 1)), "mean_abs_diff": float(diff.mean()),
                "kappa": cohen_kappa(np.round(a[0]), a[1])}
    if verdicts:
        a = np.array(verdicts, dtype=float).T
        return {"rows": len(verdicts), "alpha": alpha(a, "nominal"), "exact": float(np.mean(a[0] == a[1])),
                "kappa": cohen_kappa(a[0], a[1])}
    return None


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two raters' categories (unweighted): (observed - chance agreement) / (1 - chance);
    ``None`` when chance agreement is 1 (both raters used one and the same category) or there are no rows."""
    if a.size == 0:
        return None
    observed = float(np.mean(a == b))
    categories = np.union1d(a, b)
    chance = float(sum(np.mean(a == c) * np.mean(b == c) for c in categories))
    if chance >= 1:
        return None
    return (observed - chance) / (1 - chance)


def _verdict(label: Any) -> bool | None:
    if isinstance(label, bool):
        return label
    return _VERDICTS.get(label.strip().lower()) if isinstance(label, str) else None


def _number(label: Any) -> float | None:
    if label is None or isinstance(label, bool):
        return None
    try:
        value = float(label)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value
