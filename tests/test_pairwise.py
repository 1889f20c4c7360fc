"""Pairwise judging (type: pairwise): both orders, position bias as ties, win/tie/loss with a sign test and a CI,
gate rules, the engine's cache and cassettes, and the reports -- against the real fake OpenAI server."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas  # noqa: F401 - loaded here, outside pytester's in-process runs, which cannot reload numpy
import pytest
from conftest import run_cli

import promptgauge.pytest_plugin.harness  # noqa: F401 - one module for both in-process pytest sessions
from promptgauge import api, stats
from promptgauge.engine import Options
from promptgauge.errors import UserError
from promptgauge.evaluators.integrity import TAG, unseal
from promptgauge.evaluators.pairwise import combine_orders, parse_preference
from promptgauge.store import Store
from promptgauge.testing.fake_server import FakeOpenAIServer

pytest_plugins = ["pytester"]

TRUTH = {f"w{i}": f"City{i}" for i in range(6)} | {"l0": "Lyon", "l1": "Nice", "t0": "Oslo", "t1": "Rome",
                                                   "p0": "Bern", "p1": "Kyiv"}
#: Judge calls of a run: two per row, but none for the rows with identical answers (t*: a tie without asking).
CALLS = 2 * (len(TRUTH) - 2)
#: row -> (baseline's answer, candidate's answer): w* the candidate is right, l* the baseline, t* both, p* neither
ANSWERS = {**{k: ("no idea", TRUTH[k]) for k in TRUTH if k[0] == "w"},
           **{k: (TRUTH[k], "no idea") for k in TRUTH if k[0] == "l"},
           **{k: (TRUTH[k], TRUTH[k]) for k in TRUTH if k[0] == "t"},
           **{k: ("unsure", "dunno") for k in TRUTH if k[0] == "p"}}


def _answers(text: str) -> tuple[str, str]:
    plain = unseal(text)
    a = re.search(r"# Answer A\n(.*?)\n\n# Answer B", plain, re.DOTALL).group(1)
    b = re.search(r"# Answer B\n(.*?)\n\n# Output", plain, re.DOTALL).group(1)
    return a, b


def judge(request: dict[str, Any]) -> str:
    """A fake judge: prefers the answer that names the row's city; with neither right it always says A
    (a position-biased judge); with both right, a tie."""
    user = request["messages"][-1]["content"]
    row = re.search(r"Question (\w+)\?", unseal(user)).group(1)
    a, b = _answers(user)
    right_a, right_b = TRUTH[row] in a, TRUTH[row] in b
    winner = "tie" if right_a and right_b else "A" if right_a or not right_b else "B"
    return json.dumps({"reason": f"judged {row}", "winner": winner})


@pytest.fixture
def paired(builder, fake_openai):
    (builder.root / "answers.py").write_text(
        f"ANSWERS = {json.dumps(ANSWERS)}\n"
        "def base(rid, **_):\n    return ANSWERS[rid][0]\n"
        "def cand(rid, **_):\n    return ANSWERS[rid][1]\n")
    builder.dataset([{"id": k, "rid": k, "query": f"Question {k}?", "truth": TRUTH[k]} for k in TRUTH])
    fake_openai.responder = judge

    def write(**overrides: Any):
        doc: dict[str, Any] = dict(
            variants=[{"name": "base", "target": "python:answers:base"}, {"name": "cand", "target": "python:answers:cand"}],
            baseline="base", judge="fake",
            evaluators=[{"name": "pairwise", "type": "pairwise",
                         "params": {"rubric": "The answer names the capital city asked about."}}],
            gate={"rules": ["pairwise.win_rate.ci_low >= 0.5", "pairwise.position_bias <= 0.2",
                            "pairwise.win_rate >= 0.6"]})
        doc.update(overrides)
        return builder.suite(**doc)

    return write


def scores(report) -> dict[str, dict[str, Any]]:
    store = Store(report.store_path)
    try:
        return {r["row_id"]: r["scores"] for r in store.iter_results(report.run_id, variant="cand")}
    finally:
        store.close()


def test_both_orders_position_bias_is_a_tie_and_the_aggregate(paired, builder, fake_openai):
    paired()
    report = api.run(builder.root / "promptgauge.yaml", reports_dir=builder.root / "reports")
    bodies = [r.body for r in fake_openai.requests]
    assert len(bodies) == CALLS  # every row, in both orders
    for row in (r for r in TRUTH if r[0] != "t"):
        shown = [_answers(b["messages"][-1]["content"]) for b in bodies if f"Question {row}?" in unseal(
            b["messages"][-1]["content"])]
        assert sorted(shown) == sorted([ANSWERS[row], ANSWERS[row][::-1]])  # baseline first, then candidate first
    user = bodies[0]["messages"][-1]["content"]
    assert len(set(re.findall(rf"<({TAG}_[0-9a-f]{{16}})>", user))) == 1  # answers sealed as data
    assert "Integrity rule" in bodies[0]["messages"][0]["content"]
    got = scores(report)
    verdicts = {k: got[k]["pairwise"]["details"]["pairwise_result"] for k in TRUTH}
    assert verdicts == {k: {"w": "win", "l": "loss", "t": "tie", "p": "tie"}[k[0]] for k in TRUTH}
    assert [got[k]["pairwise"]["details"]["flipped"] for k in ("p0", "p1", "w0", "t0")] == [True, True, False, False]
    assert got["t0"]["pairwise"]["details"]["identical"] is True
    assert got["w0"]["pairwise"]["score"] == 1.0 and got["l0"]["pairwise"]["score"] == 0.0
    assert got["p0"]["pairwise"]["score"] == 0.5
    p = report.summary["variants"]["cand"]["pairwise"]["pairwise"]
    assert (p["n"], p["wins"], p["ties"], p["losses"], p["flipped"]) == (12, 6, 4, 2, 2)
    assert p["win_rate"] == pytest.approx(8 / 12) and p["position_bias"] == pytest.approx(2 / 12)
    assert p["p_value"] == pytest.approx(2 * 37 / 256)  # exact sign test, 6 wins vs. 2 losses
    low, high = stats.win_rate_ci(6, 4, 2)
    assert (p["win_rate_ci"]["ci_low"], p["win_rate_ci"]["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert low < 0.5 < 8 / 12 < high
    assert "pairwise" not in report.summary["variants"]["base"]
    rules = {r["rule"]: r for r in report.gate["rules"]}
    assert rules["pairwise.win_rate.ci_low >= 0.5"]["passed"] is False  # 12 rows cannot tell
    assert rules["pairwise.win_rate.ci_low >= 0.5"]["value"] == pytest.approx(low)
    assert rules["pairwise.position_bias <= 0.2"]["passed"] is True
    assert rules["pairwise.win_rate >= 0.6"]["passed"] is True
    assert not report.passed
    # the reports: markdown, HTML, JSON, JUnit
    folder = builder.root / "reports" / report.run_id
    md = (folder / "report.md").read_text()
    assert "## Pairwise" in md
    assert "| `cand` | `pairwise` | `base` | 12 | 6 / 4 / 2 | 0.667 [" in md and "| 0.167 |" in md
    doc = json.loads((folder / "report.json").read_text())
    assert doc["variants"]["cand"]["pairwise"]["pairwise"]["wins"] == 6
    junit = (folder / "junit.xml").read_text()
    assert 'name="pairwise.cand.pairwise" value="6 wins / 4 ties / 2 losses' in junit
    assert "win rate" in (folder / "report.html").read_text()


def test_warm_rerun_makes_no_judge_call_and_a_cassette_replays_offline(paired, builder, tmp_path):
    paired()
    with FakeOpenAIServer(seed=0) as server:
        server.responder = judge
        (builder.root / "promptgauge.yaml").write_text(
            (builder.root / "promptgauge.yaml").read_text().replace(builder.base_url, server.base_url))
        first = api.run(builder.root / "promptgauge.yaml", options=Options(record=tmp_path / "pairs.jsonl"))
        assert server.request_count == CALLS
        again = api.run(builder.root / "promptgauge.yaml")
        assert server.request_count == CALLS  # every judge call from the response cache
        assert again.summary["variants"]["cand"]["pairwise"] == first.summary["variants"]["cand"]["pairwise"]
    # the server is gone: a fresh store and no cache, answered from the cassette
    out = run_cli("run", "--no-progress", "--replay", str(tmp_path / "pairs.jsonl"), "--store", str(tmp_path / "r.db"),
                  cwd=builder.root)
    assert out.returncode == 1, out.stderr  # the gate fails (ci_low < 0.5), as recorded
    assert "pairwise" in out.stdout
    store = Store(tmp_path / "r.db")
    try:
        run = store.run()
        rows = {r["row_id"]: r["scores"]["pairwise"]["score"] for r in store.iter_results(run.run_id, variant="cand")}
    finally:
        store.close()
    assert rows == {k: {"w": 1.0, "l": 0.0, "t": 0.5, "p": 0.5}[k[0]] for k in TRUTH}


def test_a_clear_winner_passes_the_ci_rule(paired, builder, fake_openai):
    def prefer_a_city(req: dict[str, Any]) -> str:
        a, b = _answers(req["messages"][-1]["content"])
        return json.dumps({"reason": "x", "winner": "tie" if a == b else "B" if a == "no idea" else "A"})

    paired()
    fake_openai.responder = prefer_a_city
    builder.dataset([{"id": f"w{i}", "rid": "w0", "query": f"Question w{i}?", "truth": "City0"} for i in range(30)])
    report = api.run(builder.root / "promptgauge.yaml")
    p = report.summary["variants"]["cand"]["pairwise"]["pairwise"]
    assert (p["wins"], p["n"]) == (30, 30) and p["p_value"] < 1e-8
    rules = {r["rule"]: r for r in report.gate["rules"]}
    assert rules["pairwise.win_rate.ci_low >= 0.5"]["passed"] is True and report.passed


def test_no_pairs_never_passes(paired, builder, fake_openai):
    # the baseline fails every row: nothing to compare, so the rules have no value and the gate fails
    (builder.root / "answers.py").write_text((builder.root / "answers.py").read_text()
                                             + "def broken(rid, **_):\n    raise RuntimeError('down')\n")
    paired(variants=[{"name": "base", "target": "python:answers:broken"}, {"name": "cand", "target": "python:answers:cand"}],
           gate={"rules": ["pairwise.position_bias <= 0.5"]})
    report = api.run(builder.root / "promptgauge.yaml")
    assert fake_openai.request_count == 0 and not report.passed
    reasons = [r["reason"] for r in report.gate["rules"] if not r["passed"]]
    assert any("no judged pairs" in r for r in reasons)
    assert all(s["pairwise"]["error"].startswith("no pair: the baseline variant 'base' has no answer")
               for s in scores(report).values())


@pytest.mark.parametrize("reply, expected", [
    ('{"reason": "B is right.", "winner": "B"}', ("B", "B is right.")),
    ('```json\n{"preferred": "answer a", "reason": "r"}\n```', ("A", "r")),
    ("After thinking: [[C]]", ("tie", "After thinking: [[C]]")),
    ("Winner: **B**", ("B", "Winner: **B**")),
    ("tie", ("tie", "")),
])
def test_preference_replies(reply, expected):
    assert parse_preference(reply) == expected


@pytest.mark.parametrize("reply", ["", "I like both", '{"winner": "C++"}', '{"reason": "no verdict"}'])
def test_unusable_preference_replies_keep_the_raw_text(reply):
    from promptgauge.errors import JudgeReplyError

    with pytest.raises(JudgeReplyError) as info:
        parse_preference(reply)
    assert info.value.details == {"raw_reply": reply}


def test_orders_combine():
    assert combine_orders("B", "A") == ("win", False)
    assert combine_orders("A", "B") == ("loss", False)
    assert combine_orders("A", "A") == ("tie", True)  # the same position won twice: a position bias
    assert combine_orders("tie", "A") == ("tie", True)
    assert combine_orders("tie", "tie") == ("tie", False)


@pytest.mark.parametrize("evaluator, message", [
    ({"name": "pairwise", "type": "pairwise"}, "needs one of 'rubric:'"),
    ({"name": "pairwise", "type": "pairwise", "params": {"prompt": "nope.prompty"}}, "not found"),
    ({"name": "f1", "column_mapping": {"response": "${baseline.response}", "ground_truth": "${data.truth}"}},
     "only a pairwise judge sees"),
])
def test_configuration_mistakes(paired, builder, evaluator, message):
    paired(evaluators=[evaluator], gate={"rules": []})
    with pytest.raises(UserError, match=message):
        api.run(builder.root / "promptgauge.yaml")


def test_pairwise_needs_a_baseline_and_rules_name_real_metrics(paired, builder):
    paired(baseline=None, gate={"rules": []})
    with pytest.raises(UserError, match="the suite names no baseline"):
        api.run(builder.root / "promptgauge.yaml")
    paired(gate={"rules": ["pairwise.win_rate.ci_mid >= 0.5"]})
    with pytest.raises(UserError, match="unknown metric") as info:
        api.run(builder.root / "promptgauge.yaml")
    assert "pairwise.win_rate.ci_low" in str(info.value)


def test_own_azure_style_prompt(paired, builder, fake_openai):
    (builder.root / "prefer.prompty").write_text(
        "---\nmodel:\n  parameters: {max_tokens: 20}\ninputs:\n  query: {type: string}\n---\n"
        "system:\nPick the better answer.\nuser:\nQ: {{query}}\nFIRST: {{answer_a}}\nSECOND: {{answer_b}}\n"
        "Reply [[A]], [[B]] or [[C]].\n")
    fake_openai.responder = lambda req: "[[A]]"  # always the first shown: every verdict flips
    paired(evaluators=[{"name": "pref", "type": "pairwise", "params": {"prompt": "prefer.prompty"},
                        "column_mapping": {"query": "${data.query}"}}], gate={"rules": ["pref.position_bias <= 0.5"]})
    report = api.run(builder.root / "promptgauge.yaml")
    body = fake_openai.requests[0].body
    assert body["max_tokens"] == 20 and re.search(rf"FIRST: <{TAG}_[0-9a-f]{{16}}>", body["messages"][-1]["content"])
    p = report.summary["variants"]["cand"]["pairwise"]["pref"]
    assert (p["ties"], p["flipped"], p["position_bias"]) == (12, 10, pytest.approx(10 / 12))  # t*: identical answers
    assert not report.passed
    manifest = report.summary["manifest"]["pairwise"]["pref"]
    assert manifest["baseline"] == "base" and len(manifest["judge_prompt"]["prompt_sha256"]) == 64


# -- in pytest ----------------------------------------------------------------------------------------

def test_pairwise_in_pytest(pytester, paired, builder, fake_openai):
    paired()
    (pytester.path / "promptgauge.yaml").write_text((builder.root / "promptgauge.yaml").read_text())
    for name in ("answers.py", "data.jsonl"):
        (pytester.path / name).write_text((builder.root / name).read_text())
    pytester.makepyfile(test_pairs="""
        import pytest
        from promptgauge.pytest_plugin import assert_score

        @pytest.mark.promptgauge()
        def test_prefers_the_candidate(row, evaluate):
            result = evaluate(row, "cand")
            assert_score(result, "pairwise", ">= 0.5")
    """)
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "promptgauge_baselines=off", "-v")
    res.assert_outcomes(passed=10, failed=2)  # l0, l1: the baseline's answer wins
    res.stdout.fnmatch_lines(["*test_prefers_the_candidate?l0? FAILED*", "*pairwise*",
                              "*cand | pairwise | base | 12 | 6 / 4 / 2 | 0.667 *"])
    assert fake_openai.request_count == CALLS  # each pair judged once, in both orders, through the engine
    again = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-o", "promptgauge_baselines=off")
    again.assert_outcomes(passed=10, failed=2)
    assert fake_openai.request_count == CALLS  # a new session: every judge call from the response cache


def test_rescore_with_a_changed_rubric_judges_the_stored_pairs_again(paired, builder, fake_openai):
    paired()
    source = api.run(builder.root / "promptgauge.yaml")
    assert fake_openai.request_count == CALLS
    # a stricter judge: a tie unless the answer is exactly the city
    paired(evaluators=[{"name": "pairwise", "type": "pairwise", "params": {"rubric": "Exactly the city's name."}}])
    fake_openai.responder = lambda req: json.dumps({"reason": "r", "winner": "tie"})
    report = api.rescore(source.run_id, suite=builder.root / "promptgauge.yaml")
    assert report.summary["manifest"]["rescored_from"]["evaluators"] == ["pairwise"]
    assert fake_openai.request_count == 2 * CALLS  # the judge again, no target (python targets: no HTTP anyway)
    p = report.summary["variants"]["cand"]["pairwise"]["pairwise"]
    assert (p["wins"], p["ties"], p["losses"]) == (0, 12, 0)
    assert report.summary["manifest"]["pairwise"]["pairwise"]["judge_prompt"]["rubric"] == "Exactly the city's name."
    # the source run keeps its verdicts
    assert source.summary["variants"]["cand"]["pairwise"]["pairwise"]["wins"] == 6
