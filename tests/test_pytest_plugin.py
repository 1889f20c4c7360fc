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

import promptgauge.pytest_plugin.harness  # noqa: F401
import promptgauge.pytest_plugin.snapshots  # noqa: F401
from promptgauge.results import load_results_file
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


RUNNER = {"concurrency": 4, "timeout": 2, "retries": 2, "backoff_base": 0.01, "backoff_max": 0.1}
EVALUATORS = [{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
              {"name": "exact_match", "params": {"ignore_case": True}}]


@pytest.fixture
def project(pytester: pytest.Pytester, fake_openai: FakeOpenAIServer) -> SuiteBuilder:
    """A suite on the fake server: 10 capitals rows, variants a (baseline) and b (gated).

    The response cache is off: these tests change the server's answers between sessions.
    """
    fake_openai.replies = replies()
    b = SuiteBuilder(pytester.path, fake_openai.base_url)
    b.dataset([{"id": rid, "question": question(c), "ground_truth": city} for rid, (c, city) in CAPITALS.items()])
    b.prompt("a.prompty", "system:\nAnswer briefly.\n\nuser:\n{{question}}\n")
    b.prompt("b.prompty", "user:\n{{question}}\n")
    b.suite(evaluators=EVALUATORS, runner={**RUNNER, "cache": False})
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
    assert run(pytester, "--collect-only").ret == pytest.ExitCode.OK
    assert not (pytester.path / ".promptgauge").exists()  # collecting makes no run
    res = run(pytester, "-v")
    # the rows, and the baseline check: without a snapshot it fails (it never passes on nothing)
    res.assert_outcomes(passed=9, failed=2)
    res.stdout.fnmatch_lines(["*test_capital?fr? PASSED*", "*test_capital?es? FAILED*",
                              "*test_rows.py::promptgauge-baseline?b-snapshot? FAILED*"])
    assert "no baseline snapshot, so nothing to check against (create it with --promptgauge-update-baseline" in \
        res.stdout.str()
    off = run(pytester, "-o", "promptgauge_baselines=off")
    off.assert_outcomes(passed=9, failed=1)  # no baseline checks at all
    assert "promptgauge-baseline" not in off.stdout.str()
    out = res.stdout.str()
    assert "promptgauge: contains = 0, needed >= 1 (evaluator says: fail)" in out
    assert "row:     es (" in out and "data.jsonl:4)" in out
    assert "variant: b" in out
    assert "question='What is the capital of Spain?'" in out
    assert "output:  'Barcelona'" in out
    assert fake_openai.request_count == 20



ROW_TEST = """
    import pytest

    @pytest.mark.promptgauge()
    def test_capital(row, evaluate):
        evaluate(row)
"""


def baseline_of(pytester: pytest.Pytester, module: str = "test_rows", variant: str = "b") -> Path:
    return pytester.path / "baselines" / f"{module}.{variant}.json"


def test_baseline_update_then_noise_passes_and_a_regression_fails(
        pytester: pytest.Pytester, project: SuiteBuilder, fake_openai: FakeOpenAIServer) -> None:
    pytester.makepyfile(test_rows=ROW_TEST)
    fake_openai.replies = replies(wrong={"ca"})
    res = run(pytester, "--promptgauge-update-baseline")
    res.assert_outcomes(passed=10)
    snap = load_results_file(baseline_of(pytester))  # a results file, as `promptgauge compare` reads
    assert (snap.suite, snap.variant, len(snap.results)) == ("t", "b", 10)
    table = snap.table()
    assert table.loc["fr", "contains.pass_rate"] == 1 and table.loc["ca", "contains.pass_rate"] == 0
    assert snap.results.set_index("row_id").loc["ca", "output"] == "Toronto"

    fake_openai.replies = replies(wrong={"ca", "fr"})  # one more row fails: noise, not a regression
    res = run(pytester, "-v")
    res.assert_outcomes(passed=12)
    res.stdout.fnmatch_lines(["*test_rows.py::promptgauge-baseline?b-contains.pass_rate? PASSED*",
                              "*test_rows.py::promptgauge-baseline?b-exact_match.pass_rate? PASSED*",
                              # 10 rows cannot rule out a drop (max_drop 0): inconclusive, which warns by default
                              "WARN b INCONCLUSIVE: 10 rows cannot tell a drop of max_drop 0 from noise (MDE *); "
                              "more rows will not decide it: max_drop 0*contains.pass_rate 0.9 -> 0.8 "
                              "(delta -0.1, *n=10)*mcnemar*"])
    pytester.makeini("[pytest]\npromptgauge_on_inconclusive = fail\n")  # ... or fails, when the project says so
    res = run(pytester)
    res.assert_outcomes(passed=10, failed=2)
    res.stdout.fnmatch_lines(["FAIL b INCONCLUSIVE: 10 rows cannot tell a drop*counts as fail (on_inconclusive)*"])
    pytester.makeini("[pytest]\n")

    fake_openai.replies = replies(wrong=set(CAPITALS) - {"pe"})  # 8 more rows fail
    res = run(pytester, "--junitxml=junit.xml")
    res.assert_outcomes(passed=10, failed=2)
    assert res.ret == pytest.ExitCode.TESTS_FAILED
    out = res.stdout.str()
    assert ("REGRESSION: contains.pass_rate fell by more than max_drop 0 and the drop is significant at alpha 0.05: "
            "contains.pass_rate 0.9 -> 0.1 (delta -0.8") in out
    assert "\nrows worse than the baseline: fr, jp, it, es, de (+3 more)\n" in out
    assert "accept it: pytest --promptgauge-update-baseline (rewrites baselines/test_rows.b.json)" in out
    res.stdout.re_match_lines([r"test_rows.py \.{10}FF +\[100%\]"])
    case = ET.parse(pytester.path / "junit.xml").find(".//testcase[@name='promptgauge-baseline[b-contains.pass_rate]']")
    assert case is not None and "REGRESSION: contains.pass_rate fell" in case.find("failure").get("message")
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
    res.stdout.fnmatch_lines(["WARN b INCONCLUSIVE: 2 rows cannot tell a drop*contains.pass_rate 1 -> 0 (delta -1, * n=2); *"])
    res = run(pytester, "-x")
    res.assert_outcomes(failed=1)
    assert "promptgauge-baseline" not in res.stdout.str()


def store_of(pytester: pytest.Pytester) -> sqlite3.Connection:
    return sqlite3.connect(pytester.path / ".promptgauge" / "pytest.db")


@pytest.mark.slow
def test_shared_cache_no_repeated_calls_across_tests_and_xdist_workers(
        pytester: pytest.Pytester, project: SuiteBuilder, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.latency = 0.05  # both workers ask for the same rows at the same time
    pytester.makepyfile(test_rows="""
        import pytest

        def every_row(evaluate, promptgauge_suite):
            from promptgauge.datasets import load_dataset
            dataset = load_dataset(promptgauge_suite.resolve(promptgauge_suite.dataset.path))
            return [evaluate(row) for row in dataset.iter_rows()]

        def test_a(evaluate, promptgauge_suite):
            assert len(every_row(evaluate, promptgauge_suite)) == 10

        def test_b(evaluate, promptgauge_suite):
            assert len(every_row(evaluate, promptgauge_suite)) == 10

        @pytest.mark.promptgauge()
        def test_row(row, evaluate, promptgauge_cache):
            evaluate(row)
            evaluate(row, evaluators=["contains"])
    """)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--junitxml=junit.xml",
                                        "--promptgauge-update-baseline")
    res.assert_outcomes(passed=12)
    assert fake_openai.request_count == 10
    assert len(load_results_file(baseline_of(pytester)).results) == 10  # written by the controller
    with store_of(pytester) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        [(run_id, status, manifest)] = db.execute("SELECT run_id, status, manifest FROM runs").fetchall()
        assert status == "finished" and json.loads(manifest)["source"] == "pytest"
        assert db.execute("SELECT count(*) FROM results WHERE run_id=?", (run_id,)).fetchone() == (10,)
        assert db.execute("SELECT count(*) FROM scores WHERE run_id=?", (run_id,)).fetchone() == (20,)
    assert [p.name for p in (pytester.path / ".promptgauge").iterdir() if p.suffix == ".lock"] == []
    res.stdout.fnmatch_lines(["*= promptgauge =*", f"run {run_id} (suite t, finished)",
                              "b * contains * 10 * 1.000 * 1.000 * 0"])
    assert len(ET.parse(pytester.path / "junit.xml").findall(".//testcase")) == 12


def test_response_cache_and_cassettes_make_reruns_free_and_ci_offline(
        pytester: pytest.Pytester, project: SuiteBuilder, fake_openai: FakeOpenAIServer) -> None:
    project.suite(evaluators=EVALUATORS, runner=RUNNER)  # the response cache on, as by default
    pytester.makepyfile(test_rows="""
        import pytest

        @pytest.mark.promptgauge()
        def test_capital(row, evaluate):
            assert evaluate(row).contains.passed

        def test_counts(promptgauge_cache, request):
            calls, hits = request.config.getoption("--expect").split(",")
            assert (promptgauge_cache.calls, promptgauge_cache.hits) == (int(calls), int(hits))
    """)
    pytester.makeconftest("def pytest_addoption(parser):\n    parser.addoption('--expect')\n")
    run(pytester, "-o", "promptgauge_baselines=off", "--expect=10,0", "--promptgauge-record=capitals.cassette.jsonl").assert_outcomes(passed=11)
    assert fake_openai.request_count == 10
    run(pytester, "-o", "promptgauge_baselines=off", "--expect=0,10").assert_outcomes(passed=11)  # a rerun: every answer from the cache
    assert fake_openai.request_count == 10

    # CI: no cache, no server, no API key -- the cassette answers
    (pytester.path / ".promptgauge" / "cache.db").unlink()
    project.suite(evaluators=EVALUATORS, runner=RUNNER,
                  targets={"fake": {"type": "openai", "model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9/v1",
                                    "api_key_env": "PROMPTGAUGE_TEST_UNSET_KEY"}})
    res = run(pytester, "-o", "promptgauge_baselines=off", "--expect=0,10", "--promptgauge-replay=capitals.cassette.jsonl")
    res.assert_outcomes(passed=11)
    assert fake_openai.request_count == 10
    with (pytester.path / "data.jsonl").open("a") as f:  # a row the cassette never saw
        f.write('{"id": "xx", "question": "Capital of Atlantis?", "ground_truth": "?"}\n')
    res = run(pytester, "-o", "promptgauge_baselines=off", "--expect=0,10", "--promptgauge-replay=capitals.cassette.jsonl", "-k", "xx")
    res.assert_outcomes(failed=1, deselected=11)
    res.stdout.fnmatch_lines(["*promptgauge: *capitals.cassette.jsonl: request not in the cassette: *Capital of "
                              "Atlantis?*"])


def test_cache_counts_calls_and_hits_in_one_process(pytester: pytest.Pytester, project: SuiteBuilder,
                                                    fake_openai: FakeOpenAIServer) -> None:
    pytester.makepyfile(test_rows="""
        import pytest

        @pytest.mark.promptgauge(variants=["a", "b"])
        def test_first(row, evaluate):
            evaluate(row)

        @pytest.mark.promptgauge(variants="all")
        def test_again(row, evaluate):
            evaluate(row)

        def test_counts(promptgauge_cache):
            assert (promptgauge_cache.calls, promptgauge_cache.hits) == (20, 20)
    """)
    run(pytester, "-o", "promptgauge_baselines=off").assert_outcomes(passed=41)
    assert fake_openai.request_count == 20



@pytest.mark.parametrize(("marker", "message"), [
    ('"nope.jsonl"', "dataset file 'nope.jsonl' not found (looked at: {root}/nope.jsonl)"),
    ('mapping={"expected": "${data.answer}"}',
     "{root}/data.jsonl:1: column 'answer' (mapped to test argument 'expected') is missing "
     "(columns present: id, question, ground_truth)"),
    ('mapping={"expected": "ground_truth"}',
     "{root}/data.jsonl: mapping 'expected': 'ground_truth' is not a dataset column reference "
     "(write ${{data.<column>}}; columns: id, question, ground_truth)"),
    ('mapping={"answer": "${data.ground_truth}"}',
     "mapping names answer, which test_x() does not take as an argument"),
    ('"broken.jsonl"', "{root}/broken.jsonl:2: malformed JSON: Expecting value at column 1"),
    ('variants=["a", "zz"]', "{root}/promptgauge.yaml: unknown variant 'zz' (variants: a, b)"),
    ('color="red"', "takes (dataset=None, *, mapping=None, variants=None); got color"),
])
def test_marker_mistakes_are_clear_collection_errors(pytester: pytest.Pytester, project: SuiteBuilder,
                                                     marker: str, message: str) -> None:
    (pytester.path / "broken.jsonl").write_text('{"id": 1}\nnot json\n')
    pytester.makepyfile(test_rows=f"""
        import pytest

        @pytest.mark.promptgauge({marker})
        def test_x(row, expected, evaluate):
            pass
    """.replace("expected, ", "expected, " if "expected" in marker else ""))
    res = run(pytester)
    assert res.ret == pytest.ExitCode.INTERRUPTED
    res.assert_outcomes(errors=1)
    out = res.stdout.str()
    assert f"test_rows.py::test_x: @pytest.mark.promptgauge: {message.format(root=pytester.path)}" in out
    assert "Traceback" not in out and "promptgauge/" not in out


def test_mistakes_inside_a_test_fail_it_with_a_clear_message(pytester: pytest.Pytester, project: SuiteBuilder,
                                                              fake_openai: FakeOpenAIServer) -> None:
    pytester.makepyfile(test_rows="""
        def test_unknown_variant(evaluate):
            evaluate({"question": "What is the capital of Peru?", "ground_truth": "Lima"}, "zz")

        def test_row_lacks_a_column(evaluate):
            evaluate({"question": "What is the capital of Peru?"})

        def test_model_call_fails(evaluate):
            evaluate({"id": "pe", "question": "What is the capital of Peru?", "ground_truth": "Lima"})

        def test_not_a_row(evaluate):
            evaluate("What is the capital of Peru?")
    """)
    fake_openai.fail_next("500", 3)
    res = run(pytester)
    res.assert_outcomes(failed=4)
    root = pytester.path
    res.stdout.fnmatch_lines([
        f"*promptgauge: {root}/promptgauge.yaml: unknown variant 'zz' (variants: a, b)",
        f"*promptgauge: {root}/promptgauge.yaml, field 'evaluators.contains.column_mapping.value': evaluator "
        "'contains' maps value to ${data.ground_truth}, but the dataset has no column 'ground_truth' "
        "(dataset columns: question)",
        "*promptgauge: the model call failed for row pe (variant b): HTTP 500: * (after 3 attempts)",
        "*promptgauge: evaluate() takes a dataset row or a dict of inputs, not str",
    ])
    assert "Traceback" not in res.stdout.str() and "src/promptgauge" not in res.stdout.str()


def test_no_suite_file_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_rows="""
        def test_x(evaluate):
            pass
    """)
    res = run(pytester)
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines([f"*promptgauge: no suite file at {pytester.path}/promptgauge.yaml (set "
                              "promptgauge_suite in your pytest configuration or pass --promptgauge-suite)"])


def test_mapping_passes_columns_as_arguments(pytester: pytest.Pytester, project: SuiteBuilder) -> None:
    (pytester.path / "cases").mkdir()
    (pytester.path / "cases" / "extra.jsonl").write_text(
        '{"id": "fr", "question": "What is the capital of France?", "city": "Paris"}\n'
        '{"id": "x1", "question": "What is the capital of Atlantis?", "city": "Poseidonia"}\n')
    pytester.makepyfile(**{"cases/test_extra": """
        import pytest

        @pytest.mark.promptgauge("extra.jsonl", mapping={"city": "${data.city}"})
        def test_city(row, city, evaluate):
            result = evaluate(row, evaluators=[])
            assert city in result.output
    """})
    res = run(pytester, "-v", "--promptgauge-update-baseline")
    res.assert_outcomes(passed=1, failed=1)
    res.stdout.fnmatch_lines(["*test_city?fr? PASSED*", "*test_city?x1? FAILED*",
                              "E       AssertionError: assert 'Poseidonia' in 'echo: What is the capital of "
                              "Atlantis?'"])
    # rows of a file other than the suite's dataset are keyed by file name, so ids of two files never clash
    snap = load_results_file(pytester.path / "cases" / "baselines" / "test_extra.b.json")
    assert list(snap.results["row_id"]) == ["extra/fr", "extra/x1"]


def test_assert_score_names_input_output_threshold_and_reason(pytester: pytest.Pytester, project: SuiteBuilder,
                                                              fake_openai: FakeOpenAIServer) -> None:
    project.suite(judge="fake", evaluators=EVALUATORS[:1], runner={**RUNNER, "cache": False})

    def respond(request: dict) -> str:  # the judge model answers the relevance prompt; variants get capitals
        if "relevance" in json.dumps(request["messages"]).lower():
            return '{"score": 2, "reason": "names the city but rambles"}'
        return fake_openai.default_reply(request)

    fake_openai.responder = respond
    pytester.makepyfile(test_judge="""
        from promptgauge.pytest_plugin import assert_score

        def test_result(evaluate):
            result = evaluate({"id": "pe", "question": "What is the capital of Peru?", "ground_truth": "Lima"})
            assert assert_score(result, "contains") == 1   # the suite's score of the result
            assert_score(result, "relevance", ">= 4", query=result.row.data["question"])   # a judge

        def test_plain_output():
            assert_score("lima, peru", "relevance", 2, query="What is the capital of Peru?")
            assert_score("lima, peru", "relevance", "> 2", query="What is the capital of Peru?")

        def test_bad_condition():
            assert_score("Lima", "contains", "at least 4", ground_truth="Lima")
    """)
    fake_openai.replies["What is the capital of Peru?"] = "Lima"
    res = run(pytester, "-o", "promptgauge_baselines=off")
    res.assert_outcomes(failed=3)
    res.stdout.fnmatch_lines([
        ">       assert_score(result, \"relevance\", \">= 4\", query=*",
        "E       AssertionError: promptgauge: relevance = 2, needed >= 4 (evaluator says: fail)",
        "E         row:     pe",
        "E         variant: b",
        "E         input:   id='pe', question='What is the capital of Peru?', ground_truth='Lima'",
        "E         output:  'Lima'",
        "E         reason:  names the city but rambles",
        ">       assert_score(\"lima, peru\", \"relevance\", \"> 2\", query=*",
        "E       AssertionError: promptgauge: relevance = 2, needed > 2 (evaluator says: fail)",
        "E         input:   query='What is the capital of Peru?'",
        "E         output:  'lima, peru'",
        "*promptgauge: condition 'at least 4' is not 'OP NUMBER' (e.g. '>= 4' or 0.6; OP is one of >= > <= < == !=)",
    ])
    assert sum("relevance" in json.dumps(r.body).lower() for r in fake_openai.requests) == 3  # the judge's calls


def test_targets_built_in_code(pytester: pytest.Pytester, project: SuiteBuilder, fake_openai: FakeOpenAIServer) -> None:
    pytester.makeconftest("""
        import pytest
        from promptgauge.suite import Variant

        def shouting(question, **columns):
            return question.upper()

        @pytest.fixture
        def promptgauge_variant():
            return shouting

        @pytest.fixture
        def prompt_c():
            return Variant(name="c", prompt="a.prompty", target="fake", parameters={"max_tokens": 5})
    """)
    pytester.makepyfile(test_code="""
        import pytest

        @pytest.mark.promptgauge()
        def test_function_target(row, evaluate):
            assert evaluate(row).output == row.data["question"].upper()

        def test_variant_in_code(evaluate, prompt_c):
            result = evaluate({"question": "What is the capital of Peru?", "ground_truth": "Lima"}, prompt_c)
            assert result.output == "Lima" and result.variant == "c"
    """)
    fake_openai.replies["What is the capital of Peru?"] = "Lima"
    run(pytester, "-o", "promptgauge_baselines=off").assert_outcomes(passed=11)
    assert fake_openai.request_count == 1 and fake_openai.requests[0].body["max_tokens"] == 5
    with store_of(pytester) as db:
        manifest = json.loads(db.execute("SELECT manifest FROM runs").fetchone()[0])
    assert manifest["variants"]["shouting"]["target_info"] == {"kind": "python", "function": "conftest:shouting"}
    assert manifest["variants"]["c"]["parameters"] == {"temperature": 0, "max_tokens": 5}


def test_session_report_file(pytester: pytest.Pytester, project: SuiteBuilder, fake_openai: FakeOpenAIServer) -> None:
    pytester.makepyfile(test_rows=ROW_TEST)
    run(pytester, "--promptgauge-update-baseline")
    fake_openai.replies = replies(wrong={"fr", "jp", "it", "es", "de", "pt"})
    res = run(pytester, "--promptgauge-report", "out")
    res.assert_outcomes(passed=10, failed=2)
    out = pytester.path / "out"
    assert {p.name for p in out.iterdir()} == {"report.html", "report.md", "report.json", "junit.xml", "rows.csv",
                                               "summary.json", "results.jsonl"}
    res.stdout.fnmatch_lines([f"report: {out / 'report.html'}"])
    report = (out / "report.md").read_text()
    assert "Gate verdict: ❌ **FAIL** — 0 of 2 rules passed" in report
    assert "vs. baseline `b @ run" in report and "baselines/test_rows.b.json" in report
    assert "| `test_rows.b.json: contains: no_regression(max_drop=0.0, alpha=0.05)` |" in report
    doc = json.loads((out / "report.json").read_text())
    [comparison] = doc["comparisons"]
    contains = next(m for m in comparison["metrics"] if m["metric"] == "contains.pass_rate")
    assert (contains["baseline"], contains["candidate"], contains["n"]) == (1.0, 0.4, 10)
    assert {f["row_id"] for f in comparison["flips"] if f["evaluator"] == "contains"} == {"fr", "jp", "it", "es",
                                                                                          "de", "pt"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["manifest"]["datasets"] == {"data.jsonl": promptgauge.pytest_plugin.harness.hashlib.sha256(
        (pytester.path / "data.jsonl").read_bytes()).hexdigest()}
    assert summary["variants"]["b"]["metrics"]["contains"]["pass_rate"] == 0.4


def test_plugin_is_import_light(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="""
        import sys

        def test_nothing_heavy_loaded(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("promptgauge")
            heavy = {"promptgauge.pytest_plugin.harness", "promptgauge.engine", "pandas", "numpy", "openai", "llama_cpp", "jinja2"}
            assert heavy.isdisjoint(sys.modules)
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.slow
def test_offline_on_the_embedded_model(pytester: pytest.Pytester) -> None:
    pytester.makefile(".jsonl", data='{"id": "fr", "question": "What is the capital of France?"}\n'
                                     '{"id": "jp", "question": "What is the capital of Japan?"}\n')
    pytester.makefile(".prompty", terse="---\nmodel:\n  parameters:\n    max_tokens: 12\n---\n"
                                        "system:\nAnswer with one word.\n\nuser:\n{{question}}\n")
    (pytester.path / "promptgauge.yaml").write_text(yaml.safe_dump({
        "name": "offline", "dataset": "data.jsonl",
        "variants": [{"name": "terse", "prompt": "terse.prompty", "target": "local:smollm2"}],
        "evaluators": [{"name": "regex", "params": {"pattern": "[A-Za-z]"}}],
    }))
    pytester.makepyfile(test_local="""
        import pytest

        @pytest.mark.promptgauge()
        def test_answers(row, evaluate):
            assert evaluate(row).regex.passed
    """)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--promptgauge-update-baseline")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines(["terse * regex * 2 * 1.000 * 1.000 * 0"])
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(passed=3)  # the two rows and the baseline check: the same answers again


def test_baseline_metrics_tolerance_and_settings(pytester: pytest.Pytester, project: SuiteBuilder,
                                                 fake_openai: FakeOpenAIServer) -> None:
    pytester.makepyfile(test_rows=ROW_TEST)
    pytester.makeini("[pytest]\npromptgauge_baseline_metrics = contains.mean error_rate\npromptgauge_max_drop = 0.9\n")
    run(pytester, "--promptgauge-update-baseline").assert_outcomes(passed=10)
    fake_openai.replies = replies(wrong=set(CAPITALS) - {"pe"})  # a big drop, but within max_drop
    res = run(pytester, "-v")
    res.assert_outcomes(passed=12)
    res.stdout.fnmatch_lines(["*promptgauge-baseline?b-contains.mean? PASSED*",
                              "*promptgauge-baseline?b-error_rate? PASSED*",
                              "WARN b INCONCLUSIVE: 10 rows*contains.mean 1 -> 0.1 (delta -0.9, * n=10)*0.001953*"])

    pytester.makeini("[pytest]\npromptgauge_baseline_metrics = contains.median\n")
    res = run(pytester)
    res.assert_outcomes(passed=10, failed=1)
    res.stdout.fnmatch_lines(["promptgauge_baseline_metrics: rule 'contains.median: no_regression(*)' names unknown "
                              "metric 'contains.median' (no_regression takes one of: contains, contains.mean, *)",
                              "FAILED test_rows.py::promptgauge-baseline?b-snapshot? - *"])
    pytester.makeini("[pytest]\npromptgauge_baseline_metrics = contains!\n")
    res = run(pytester)
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    res.stderr.fnmatch_lines(["ERROR: promptgauge: field 'promptgauge_baseline_metrics': 'contains!' is not a "
                              "metric name (e.g. contains, f1.mean, error_rate)"])
    pytester.makeini("[pytest]\npromptgauge_alpha = 5%\n")
    res = run(pytester)
    res.stderr.fnmatch_lines(["ERROR: promptgauge: promptgauge_alpha = '5%' is not a number in (0, 1)"])
    pytester.makeini("[pytest]\npromptgauge_on_inconclusive = maybe\n")
    res = run(pytester)
    res.stderr.fnmatch_lines(["ERROR: promptgauge: promptgauge_on_inconclusive = 'maybe' is not 'fail', 'pass' "
                              "or 'warn'"])

    pytester.makeini("[pytest]\n")
    baseline_of(pytester).write_text("{not json")
    res = run(pytester)
    res.assert_outcomes(passed=10, failed=1)
    res.stdout.fnmatch_lines([f"FAIL {baseline_of(pytester)}: not a JSON results file: * (rewrite it with "
                              "--promptgauge-update-baseline)"])
