"""`promptgauge rescore`: new or changed evaluators applied to a stored run's outputs, no target called.

On a run stored from the real fake OpenAI server: the targets get no request during a rescore, only the judge
does (through the engine: a second rescore is answered from the response cache); the new run points at its
source; unchanged evaluators keep the source's scores; compare and the gate take the new run; bad input is
exit 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import cli

from promptgauge import api
from promptgauge.store import Store

JUDGE_REPLY = '{"score": 4, "reason": "on topic"}'




def scores(db: Path, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    st = Store(db)
    try:
        return {(i["row_id"], i["variant"]): i["scores"] for i in st.iter_results(run_id)}
    finally:
        st.close()


def with_judge(builder, fake_openai, **extra: Any) -> None:
    """The suite with an LLM judge added (its own model name, so its requests are told from the targets')."""
    builder.suite(
        targets={"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "gpt-4o-mini"},
                 "grader": {"type": "openai", "base_url": fake_openai.base_url, "model": "judge-model"}},
        evaluators=[{"name": "exact_match", "params": {"ignore_case": True}},
                    {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
                    {"name": "relevance", "column_mapping": {"query": "${data.question}"}, "target": "grader"}],
        **extra)


def test_rescore_scores_stored_outputs_with_a_new_judge_without_calling_the_targets(builder, fake_openai, capsys):
    builder.suite()
    source = api.run(builder.root / "promptgauge.yaml")
    assert source.status == "finished" and fake_openai.request_count == 8  # 4 rows x 2 variants
    db = builder.root / ".promptgauge" / "promptgauge.db"
    before = scores(db, source.run_id)

    with_judge(builder, fake_openai)
    fake_openai.responder = lambda req: JUDGE_REPLY if req["model"] == "judge-model" else fake_openai.default_reply(req)
    fake_openai.reset_stats()
    code, out, err = cli(capsys, builder.root, "rescore", source.run_id[:12])
    assert code == 0, out + err
    models = [r.body["model"] for r in fake_openai.requests]
    assert models == ["judge-model"] * 8  # the judge scored every result; the targets got nothing
    new_id = next(line.split()[1] for line in out.splitlines() if line.startswith("run ") and "rescored from" in line)
    st = Store(db)
    info = st.run(new_id)
    st.close()
    assert info.manifest["rescored_from"] == {"run_id": source.run_id, "evaluators": ["relevance"],
                                              "suite_sha256": source.summary["manifest"]["suite"]["sha256"]}
    assert info.manifest["evaluators"]["relevance"]["judge"]["model"]["model"] == "judge-model"
    after = scores(db, new_id)
    assert set(after) == set(before)
    for key, old in before.items():
        assert {ev: after[key][ev] for ev in ("exact_match", "contains")} == old  # unchanged evaluators: same
        assert after[key]["relevance"]["score"] == 4.0 and after[key]["relevance"]["passed"] is True
    assert f"rescored from run {source.run_id}" in out

    # compare and the gate take the rescored run
    code, out, err = cli(capsys, builder.root, "compare", f"{new_id}:a", f"{new_id}:b")
    assert code in (0, 1) and "relevance.mean" in out, out + err
    report = api.compare(f"{source.run_id}:b", f"{new_id}:b", suite=builder.root / "promptgauge.yaml")
    assert any("'relevance' ran on only one side" in w for w in report.comparison.warnings)

    # a second rescore of the judge: its calls (same rows, same seeds) come from the response cache
    fake_openai.reset_stats()
    again = api.rescore(source.run_id, evaluators=["relevance"], suite=builder.root / "promptgauge.yaml")
    assert fake_openai.request_count == 0 and again.status == "finished"
    cached = scores(db, again.run_id)
    assert {k: (v["relevance"]["score"], v["relevance"]["details"]["relevance_reason"]) for k, v in cached.items()} \
        == {k: (v["relevance"]["score"], v["relevance"]["details"]["relevance_reason"]) for k, v in after.items()}


def test_a_changed_evaluator_is_rescored_and_unchanged_ones_copied(builder, fake_openai):
    builder.suite()
    source = api.run(builder.root / "promptgauge.yaml")
    db = builder.root / ".promptgauge" / "promptgauge.db"
    # exact_match now case-sensitive: only it is scored again (no --evaluator needed)
    builder.suite(evaluators=[{"name": "exact_match", "params": {"ignore_case": False}},
                              {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}])
    fake_openai.reset_stats()
    report = api.rescore("latest", suite=builder.root / "promptgauge.yaml")
    assert fake_openai.request_count == 0
    assert report.summary["manifest"]["rescored_from"]["evaluators"] == ["exact_match"]
    old, new = scores(db, source.run_id), scores(db, report.run_id)
    assert all(new[k]["contains"] == old[k]["contains"] for k in old)
    assert report.summary["gate"] is not None and report.reports["json"].is_file()


def test_bad_input_is_exit_2(builder, fake_openai, capsys):
    builder.suite()
    source = api.run(builder.root / "promptgauge.yaml")
    code, out, err = cli(capsys, builder.root, "rescore", "nope")
    assert code == 2 and "no run 'nope' in the store" in err, out + err
    code, out, err = cli(capsys, builder.root, "rescore", source.run_id, "--evaluator", "relevanse")
    assert code == 2 and "--evaluator relevanse: the suite has no evaluator of that name" in err
    assert "exact_match, contains" in err and "Traceback" not in err
    code, out, err = cli(capsys, builder.root, "rescore", source.run_id)  # nothing changed
    assert code == 2 and "nothing to rescore" in err
    code, out, err = cli(capsys, builder.root / "..", "rescore", source.run_id)  # no store, no suite here
    assert code == 2 and "no store here" in err
    st = Store(builder.root / ".promptgauge" / "promptgauge.db")
    assert [r.run_id for r in st.runs()] == [source.run_id]  # bad input wrote no run
    st.close()
