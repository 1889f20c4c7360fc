"""LLM regression tests in plain pytest, for the example suite (promptgauge.yaml: capitals).

Copy this file into your tests. The plugin comes with promptgauge (no conftest
needed) and finds promptgauge.yaml in pytest's rootdir; set ``promptgauge_suite``
in your pytest configuration if it lives elsewhere.

    pytest examples/pytest                                  # offline: the suite uses the embedded model
    pytest examples/pytest -n 2                             # in parallel: no row is sent to the model twice
    pytest examples/pytest --promptgauge-update-baseline    # accept the current scores as the baseline

Every row's scores are compared with the baseline snapshot next to this file
(test_capitals.promptgauge-baseline.json): the run fails when a metric drops
significantly, with a paired test, not on the odd row that flips.
"""

import pytest

from promptgauge.pytest_plugin import assert_score


@pytest.mark.promptgauge()  # one test per row of the suite's dataset, named after the row id
def test_answers(row, evaluate):
    result = evaluate(row)  # the suite's candidate variant ('terse'); its scores feed the baseline check
    assert result.output.strip(), "the model gave no answer"
    assert result.brevity <= 16  # brevity scores the answer's words; a failure shows the row and the output


# Rows every prompt must get right, whatever the baseline says: a failure is a failed test.
@pytest.mark.promptgauge("capitals_smoke.jsonl", mapping={"city": "${data.ground_truth}"})
def test_smoke(row, city, evaluate):
    result = evaluate(row)
    assert_score(result, "contains", ">= 1")  # on failure: input, output, score, threshold, reason
    assert city.lower() in result.output.lower()
