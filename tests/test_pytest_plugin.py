"""The pytest plugin, tested with pytest's own ``pytester`` against the real fake OpenAI server."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas  # noqa: F401 - loaded here, outside pytester's in-process runs, which cannot reload numpy
import pytest
import yaml
from conftest import SuiteBuilder

import promptgauge.snapshots
import promptgauge.stats  # noqa: F401
import promptgauge.testkit  # noqa: F401
from promptgauge.testing.fake_server import FakeOpenAIServer

pytest_plugins = ["pytester"]

CAPITALS = {
    "fr": ("France", "Paris"), "jp": ("Japan", "Tokyo"), "it": ("Italy", "Rome"), "es": ("Spain", "Madrid"),
    "de": ("Germany", "Berlin"), "pt": ("Portugal", "Lisbon"), "gr": ("Greece", "Athens"), "pe": ("Peru", "Lima"),
    "eg": ("Egypt", "Cairo"), "ca": ("Canada", "Ottawa"),
}
WRONG = {"Madrid": "Barcelona", "Tokyo": "Kyoto", "Rome": "Milan", "Berlin": "Munich", "Lisbon": "Porto",
         "Athens": "Sparta", "Lima": "Cusco", "Cairo": "Giza", "Ottawa": "Toronto", "Paris": "Lyon"}


def question(country: str) -> str:
    return f"What is the capital of {country}?"


def replies(wrong: set[str] = frozenset()) -> dict[str, str]:
    """The server's answers: right, except for the row ids in *wrong*."""
    return {question(c): (WRONG[city] if rid in wrong else city) for rid, (c, city) in CAPITALS.items()}


@pytest.fixture
def project(pytester: pytest.Pytester, fake_openai: FakeOpenAIServer) -> SuiteBuilder:
    """A suite on the fake server: 10 capitals rows, variants a (baseline) and b (gated)."""
    fake_openai.replies = replies()
    b = SuiteBuilder(pytester.path, fake_openai.base_url)
    b.dataset([{"id": rid, "question": question(c), "ground_truth": city} for rid, (c, city) in CAPITALS.items()])
    b.prompt("a.prompty", "system:\nAnswer briefly.\n\nuser:\n{{question}}\n")
    b.prompt("b.prompty", "user:\n{{question}}\n")
    b.suite(evaluators=[
        {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
        {"name": "exact_match", "params": {"ignore_case": True}},
    ])
    return b


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def test_one_test_per_row_with_row_ids(pytester: pytest.Pytester, project: SuiteBuilder,
                                       fake_openai: FakeOpenAIServer) -> None:
    fake_openai.replies = replies(wrong={"es"})
    pytester.makepyfile(test_rows="""
        import pytest

        @pytest.mark.promptgauge()
        def test_capital(row, evaluate):
            result = evaluate(row)
            assert result.contains >= 1
    """)
    res = run(pytester, "-v")
    res.assert_outcomes(passed=9, failed=1)
    res.stdout.fnmatch_lines(["*test_capital?fr? PASSED*", "*test_capital?es? FAILED*"])
    out = res.stdout.str()
    assert "promptgauge: contains = 0, needed >= 1 (evaluator says: fail)" in out
    assert "row:     es (" in out and "data.jsonl:4)" in out
    assert "variant: b" in out
    assert "question='What is the capital of Spain?'" in out
    assert "output:  'Barcelona'" in out
    assert fake_openai.request_count == 10



ROW_TEST = """
    import pytest

    @pytest.mark.promptgauge()
    def test_capital(row, evaluate):
        evaluate(row)
"""


def baseline_of(pytester: pytest.Pytester, module: str = "test_rows") -> Path:
    return pytester.path / f"{module}.promptgauge-baseline.json"


def test_baseline_update_then_noise_passes_and_a_regression_fails(
        pytester: pytest.Pytester, project: SuiteBuilder, fake_openai: FakeOpenAIServer) -> None:
    pytester.makepyfile(test_rows=ROW_TEST)
    fake_openai.replies = replies(wrong={"ca"})
    res = run(pytester, "--promptgauge-update-baseline")
    res.assert_outcomes(passed=10)
    snap = json.loads(baseline_of(pytester).read_text())
    assert snap["suite"] == "t" and sorted(snap["variants"]["b"]) == sorted(CAPITALS)
    assert snap["variants"]["b"]["fr"]["contains"] == {"score": 1.0, "passed": True}
    assert snap["variants"]["b"]["ca"]["contains"] == {"score": 0.0, "passed": False}

    fake_openai.replies = replies(wrong={"ca", "fr"})  # one more row fails: noise, not a regression
    res = run(pytester, "-v")
    res.assert_outcomes(passed=12)
    res.stdout.fnmatch_lines(["*test_rows.py::promptgauge-baseline?b-contains.pass_rate? PASSED*",
                              "*test_rows.py::promptgauge-baseline?b-exact_match.pass_rate? PASSED*",
                              "ok   b contains.pass_rate: 0.9 -> 0.8 on 10 rows, no significant drop (p=1)"])

    fake_openai.replies = replies(wrong=set(CAPITALS) - {"pe"})  # 8 more rows fail
    res = run(pytester, "--junitxml=junit.xml")
    res.assert_outcomes(passed=10, failed=2)
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    out = res.stdout.str()
    assert "promptgauge-baseline[b-contains.pass_rate]" in out
    assert "b contains.pass_rate: regression: dropped 0.8 > max_drop 0 (0.9 -> 0.1, mcnemar-exact, n=10)" in out
    assert "\nrows worse than the baseline: fr, jp, it, es, de (+3 more)\n" in out
    assert "pytest --promptgauge-update-baseline (updates test_rows.promptgauge-baseline.json)" in out
    assert "FAIL b contains.pass_rate: 0.9 -> 0.1 on 10 rows, regression (p=0.0078)" in out
    res.stdout.re_match_lines([r"test_rows.py \.{10}FF +\[100%\]"])
    case = ET.parse(pytester.path / "junit.xml").find(".//testcase[@name='promptgauge-baseline[b-contains.pass_rate]']")
    assert case is not None and "regression: dropped 0.8" in case.find("failure").get("message")
    # a failed check is remembered like a test; it is not collected, so --lf reruns every row and the check
    res = pytester.runpytest_inprocess("--lf")  # cacheprovider on: first run records, second reruns
    res = pytester.runpytest_inprocess("--lf")
    res.assert_outcomes(passed=10, failed=2)
    res.stdout.fnmatch_lines(["run-last-failure: 2 known failures not in selected tests", "test_rows.py ..........FF*"])


def test_baseline_check_follows_k_and_stops_with_x(pytester: pytest.Pytester, project: SuiteBuilder,
                                                    fake_openai: FakeOpenAIServer) -> None:
    pytester.makepyfile(test_rows="""
        import pytest

        @pytest.mark.promptgauge()
        def test_capital(row, evaluate):
            assert evaluate(row).contains.passed
    """)
    run(pytester, "--promptgauge-update-baseline").assert_outcomes(passed=10)
    fake_openai.replies = replies(wrong=set(CAPITALS))
    res = run(pytester, "-k", "fr or jp")  # two rows: too few to call a drop significant
    res.assert_outcomes(passed=2, failed=2, deselected=8)
    assert "ok   b contains.pass_rate: 1 -> 0 on 2 rows, no significant drop" in res.stdout.str()
    res = run(pytester, "-x")
    res.assert_outcomes(failed=1)
    assert "promptgauge-baseline" not in res.stdout.str()
