"""LLM judges and embeddings endpoints in a monitor: through the engine's call path (cache, retries,
budget), on the real fake OpenAI server."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from monitor_helpers import HOUR, T0, append, chat_line, write_config

from promptgauge.errors import UserError
from promptgauge.evaluators.integrity import unseal
from promptgauge.monitor import load_monitor_config, run_pass

N = 12
#: What the fake judge says of record rK: a score from K, except r5's reply, which has no score.
REPLIES = {f"r{k}": json.dumps({"reason": f"judged r{k}", "score": 1 + k % 5}) for k in range(N)}
REPLIES["r5"] = "I am not able to rate this."
_RECORD = re.compile(r"question about (r\d+)\b")


def judge_reply(request: dict[str, Any]) -> str:
    """The judge's reply for the record its prompt quotes."""
    text = "\n".join(m["content"] for m in request["messages"])
    return REPLIES[_RECORD.search(text).group(1)]


def lines() -> list[dict[str, Any]]:
    """N records over three hours; the even ones logged the retrieved context."""
    out = []
    for k in range(N):
        extra = {"context": f"Answer {k} comes from page {k}."} if k % 2 == 0 else {}
        out.append(chat_line(f"r{k}", T0 + k * HOUR / 4 + 60, f"question about r{k}", f"Answer {k}.", **extra))
    return out


@pytest.fixture
def monitored(tmp_path, fake_openai):
    """A log of N records and a monitor file whose judge is the fake server."""
    fake_openai.responder = judge_reply
    (tmp_path / "logs").mkdir()
    append(tmp_path / "logs" / "app.jsonl", lines())

    def write(evaluators: list[Any], **overrides: Any) -> Path:
        doc = dict(evaluators=evaluators, judge="fake", alerts=[{"metric": "relevance.mean", "below": 2.0}],
                   targets={"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "gpt-4o-mini"}},
                   runner={"concurrency": 1, "timeout": 5, "retries": 1, "backoff_base": 0.01, "backoff_max": 0.05})
        doc.update(overrides)
        return write_config(tmp_path, **doc)

    return write


def scores(db: Path, monitor: str = "bot") -> dict[tuple[str, str], tuple]:
    con = sqlite3.connect(db)
    try:
        return {(rid, ev): (score, passed, error, json.loads(details) if details else None)
                for rid, ev, score, passed, error, details in con.execute(
                    "SELECT record_id, evaluator, score, passed, error, details FROM monitor_scores WHERE monitor=?",
                    (monitor,))}
    finally:
        con.close()


def test_judges_score_records_once_and_a_fresh_monitor_hits_the_cache(monitored, fake_openai, tmp_path):
    cfg = monitored(["relevance", "groundedness"])
    first = run_pass(load_monitor_config(cfg))
    db = tmp_path / ".promptgauge" / "promptgauge.db"
    got = scores(db)
    # relevance on every record; groundedness only where the context was logged
    assert {rid for rid, ev in got if ev == "relevance"} == {f"r{k}" for k in range(N)}
    assert {rid for rid, ev in got if ev == "groundedness"} == {f"r{k}" for k in range(0, N, 2)}
    assert got[("r3", "relevance")][:3] == (4.0, 1, None)
    assert got[("r3", "relevance")][3]["relevance_reason"] == "judged r3"
    assert got[("r1", "relevance")][:2] == (2.0, 0)  # below the default threshold of 3
    assert got[("r4", "groundedness")][0] == 5.0
    bodies = [r.body for r in fake_openai.requests]
    assert len(bodies) == N + N // 2 and {b["model"] for b in bodies} == {"gpt-4o-mini"}
    grounded = next(b for b in bodies if "question about r4" in b["messages"][-1]["content"]
                    and "CONTEXT: Answer 4 comes from page 4." in unseal(b["messages"][-1]["content"]))
    assert "**Groundedness**" in grounded["messages"][-1]["content"]
    assert first.report["pass"]["total"]["scored"] == N
    assert first.report["pass"]["stopped"] is None and first.report["pass"]["cost_usd"] > 0  # built-in price
    assert "relevance.mean" in first.report["metrics"]

    # The next pass: the checkpoint says everything was read; no judge call.
    again = run_pass(load_monitor_config(cfg))
    assert again.report["pass"]["total"]["documents"] == 0
    assert fake_openai.request_count == len(bodies)

    # A fresh monitor over the same log and store: every judge verdict comes from the response cache.
    fake_openai.reset_stats()
    fresh = monitored(["relevance", "groundedness"], name="bot2")
    warm = run_pass(load_monitor_config(fresh))
    assert fake_openai.request_count == 0 and warm.report["pass"]["cost_usd"] == 0.0
    cached = scores(db, "bot2")
    assert {k: v[:3] for k, v in cached.items()} == {k: v[:3] for k, v in got.items()}
    assert cached[("r3", "relevance")][3]["relevance_properties"]["cost_usd"] == 0.0  # a cache hit costs nothing
    # ... and it is the cache that saved them: without it, every call is made again.
    third = monitored(["relevance", "groundedness"], name="bot3",
                      runner={"concurrency": 2, "timeout": 5, "retries": 1, "cache": False})
    run_pass(load_monitor_config(third))
    assert fake_openai.request_count == N + N // 2


def test_an_unparseable_judge_reply_is_that_records_error(monitored, fake_openai, tmp_path):
    cfg = monitored(["relevance", "json_valid"])
    fake_openai.fail_next("500", 1)  # a transient fault first: retried by the engine
    result = run_pass(load_monitor_config(cfg))
    assert fake_openai.fault_count == {"500": 1} and fake_openai.request_count == N + 1
    got = scores(tmp_path / ".promptgauge" / "promptgauge.db")
    score, passed, error, details = got[("r5", "relevance")]
    assert score is None and passed is None
    assert error.startswith("JudgeReplyError: no score found") and details == {"raw_reply": REPLIES["r5"]}
    assert got[("r5", "json_valid")][2] is None  # the other evaluators still scored it
    assert all(got[(f"r{k}", "relevance")][0] == 1 + k % 5 for k in range(N) if k != 5)
    assert result.report["pass"]["total"]["records"] == N and result.report["pass"]["stopped"] is None


def test_embeddings_endpoint_through_the_engine(monitored, fake_openai, tmp_path):
    cfg = monitored([{"name": "similar", "type": "embedding_similarity", "model": "fake:text-embedding-3-small",
                      "column_mapping": {"ground_truth": "${data.context}"}}], alerts=[])
    fake_openai.fail_next("429", 1)
    run_pass(load_monitor_config(cfg))
    got = scores(tmp_path / ".promptgauge" / "promptgauge.db")
    assert {rid for rid, _ in got} == {f"r{k}" for k in range(0, N, 2)}  # only records with a context
    assert all(0.0 < v[0] <= 1.0 and v[2] is None for v in got.values())
    paths = {r.path for r in fake_openai.requests}
    assert paths == {"/v1/embeddings"} and fake_openai.fault_count == {"429": 1}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_the_budget_stops_the_pass_cleanly_and_the_next_one_goes_on(monitored, fake_openai, tmp_path, concurrency):
    prices = {"gpt-4o-mini": {"input": 1.0, "output": 1.0}}
    runner = {"concurrency": concurrency, "timeout": 5, "retries": 1}
    # What one judge call costs, measured by a pass of another monitor into another store (no shared cache).
    probe = run_pass(load_monitor_config(monitored(["relevance"], prices=prices)), store=tmp_path / "probe" / "p.db",
                     reports_dir=tmp_path / "probe")
    per_call = probe.report["pass"]["cost_usd"] / N
    assert per_call > 0 and probe.report["pass"]["max_cost"] is None
    fake_openai.reset_stats()

    cfg = monitored(["relevance"], prices=prices, runner=runner)
    stopped = run_cli("monitor", "--config", str(cfg), "--once", "--max-cost", f"{4 * per_call:.9f}", cwd=tmp_path)
    assert stopped.returncode == 1, stopped.stderr
    assert "stopped at the cost budget" in stopped.stdout and "Traceback" not in stopped.stderr
    calls = fake_openai.request_count
    assert 1 <= calls <= 4
    db = tmp_path / ".promptgauge" / "promptgauge.db"
    con = sqlite3.connect(db)
    stored = [r[0] for r in con.execute("SELECT record_id FROM monitor_records ORDER BY ts")]
    # The records judged before the stop, in log order, the checkpoint right after them; with concurrent
    # calls, a record judged after one the budget refused waits for the next pass (its verdict is cached).
    assert stored == [f"r{k}" for k in range(len(stored))] and 1 <= len(stored) <= calls
    if concurrency == 1:
        assert len(stored) == calls
    assert all(v[2] is None for v in scores(db).values()) and len(scores(db)) == len(stored)
    report = json.loads((tmp_path / "reports" / "monitor" / "bot" / "monitor.json").read_text())
    assert report["pass"]["stopped"] == "budget" and 0 < report["pass"]["cost_usd"] <= 4 * per_call
    assert "STOPPED at the cost budget" in (tmp_path / "reports" / "monitor" / "bot" / "monitor.md").read_text()
    html = (tmp_path / "reports" / "monitor" / "bot" / "monitor.html").read_text()
    assert re.search(r'id="spend"><strong>Model calls of this pass: \$[\d.]+ of a \$[\d.e-]+ budget\. STOPPED', html)

    done = run_pass(load_monitor_config(cfg))
    assert done.report["pass"]["stopped"] is None
    t = done.report["pass"]["total"]
    assert (t["documents"], t["records"], t["duplicates"]) == (N - len(stored), N - len(stored), 0)
    assert fake_openai.request_count == N  # no record judged twice; the calls the budget refused were never made
    assert len(scores(db)) == N
    statuses = [r[0] for r in con.execute("SELECT status FROM monitor_passes ORDER BY started_at")]
    assert statuses == ["budget", "finished"]
    con.close()


@pytest.mark.parametrize("evaluators, overrides, message, field", [
    (["relevance"], {"judge": None}, "no judge model is set", "evaluators.relevance.model"),
    (["relevance"], {"judge": "nosuch"}, "unknown target 'nosuch'", "judge"),
    ([{"name": "relevance", "model": "fake:house-judge"}], {"runner": {"max_cost": 1.0}},
     "a cost budget needs a price for model 'house-judge'", "prices"),
])
def test_judge_configuration_mistakes_name_file_and_field(monitored, fake_openai, evaluators, overrides, message,
                                                         field):
    cfg = monitored(evaluators, **overrides)
    with pytest.raises(UserError, match=message) as info:
        run_pass(load_monitor_config(cfg))
    assert info.value.field == field and Path(info.value.file) == cfg.resolve()
    assert fake_openai.request_count == 0
