"""Agreement statistics: Krippendorff's alpha on its published example, repeats, human labels, combining repeats."""

from __future__ import annotations

import numpy as np
import pytest

from promptgauge.agreement import alpha, human_agreement, repeat_agreement
from promptgauge.evaluators.registry import Outcome, combine

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers x 12 units, with gaps.
EXAMPLE = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_the_published_example(level, published):
    assert alpha(EXAMPLE, level) == pytest.approx(published, abs=5e-4)


def test_alpha_is_undefined_without_variation():
    assert alpha(np.array([[3.0, 3.0], [3.0, 3.0]])) is None
    assert alpha(np.array([[3.0], [4.0]])) is None  # one unit


def test_repeat_agreement():
    stats = repeat_agreement([[4, 4, 4], [2, 3, 2], [5, 5, None], [1, None, None], [1, 1, 3]])
    assert stats["rows"] == 4  # the row with one scored repeat is left out
    assert stats["exact"] == 0.5 and stats["within_1"] == 0.75
    assert stats["alpha"] == pytest.approx(alpha(np.array([[4, 2, 5, 1], [4, 3, 5, 1], [4, 2, NAN, 3]]), "ordinal"))
    assert repeat_agreement([[4], [None, 3]]) is None


def test_human_agreement_numeric_and_verdicts():
    numeric = human_agreement([(4.0, True, 4), (2.4, False, "2"), (5.0, True, 3), (3.0, True, None), (1.0, False, "n/a")])
    assert numeric["rows"] == 3 and numeric["exact"] == pytest.approx(2 / 3)
    assert numeric["within_1"] == pytest.approx(2 / 3) and numeric["mean_abs_diff"] == pytest.approx((0 + 0.4 + 2) / 3)
    verdicts = human_agreement([(4.0, True, "pass"), (2.0, False, "fail"), (3.0, True, False), (5.0, True, True)])
    assert verdicts == {"rows": 4, "alpha": verdicts["alpha"], "exact": 0.75, "kappa": 0.5}  # Cohen: (.75 - .5) / .5
    assert numeric["kappa"] == pytest.approx((2 / 3 - 2 / 9) / (1 - 2 / 9))  # categories 4, 2, 5 vs. 4, 2, 3
    assert human_agreement([(3.0, True, 3), (3.0, True, 3)])["kappa"] is None  # one category: chance is 1
    assert human_agreement([(4.0, True, None)]) is None


def test_combine_repeats():
    out = combine([Outcome(4.0, True, details={"relevance": 4.0}), Outcome(5.0, True), Outcome(2.0, False)])
    assert out.score == pytest.approx(11 / 3) and out.passed is True  # majority of verdicts
    assert out.details == {"relevance": 4.0, "score": pytest.approx(11 / 3), "repeat_scores": [4.0, 5.0, 2.0]}
    tie = combine([Outcome(4.0, True), Outcome(2.0, False)])
    assert tie.passed is False  # a tie fails
    assert combine([Outcome(4.0, True), Outcome(2.0, False)], threshold=3).passed is True  # the threshold decides
    partial = combine([Outcome(error="JudgeReplyError: x"), Outcome(3.0, True)])
    assert partial.score == 3.0 and partial.details["repeat_scores"] == [None, 3.0]
    assert partial.details["repeat_errors"] == ["JudgeReplyError: x"]
    failed = combine([Outcome(error="CallError: a"), Outcome(error="CallError: b")])
    assert failed.error == "CallError: a" and failed.score is None
