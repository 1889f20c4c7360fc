"""A cache hit keeps the original call's latency and tokens: response cache, cassettes, the pytest harness."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from promptgauge import api
from promptgauge.engine import Options
from promptgauge.pytest_plugin.harness import Harness
from promptgauge.store import Store

LATENCY = 0.12  # seconds the fake server sleeps before each answer


def _items(report: api.RunReport) -> dict[tuple[str, str], dict[str, Any]]:
    store = Store(report.store_path)
    try:
        return {(r["row_id"], r["variant"]): r for r in store.iter_results(report.run_id)}
    finally:
        store.close()


def _calls(items: dict[tuple[str, str], dict[str, Any]]) -> dict[tuple[str, str], tuple]:
    return {k: (r["latency_ms"], r["prompt_tokens"], r["completion_tokens"], r["output"]) for k, r in items.items()}


def _other_evaluators(builder, ignore_case: bool) -> None:
    """Change an evaluator's settings: no result is reused from the earlier run, every call is a cache hit."""
    builder.suite(evaluators=[{"name": "exact_match", "params": {"ignore_case": ignore_case}},
                              {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}])


def test_a_cache_hit_keeps_the_original_latency_and_tokens(builder, fake_openai):
    fake_openai.latency = LATENCY
    _other_evaluators(builder, True)
    cold = _items(api.run(builder.root / "promptgauge.yaml"))
    assert all(r["latency_ms"] >= LATENCY * 1000 and not r["outputs"]["cached"] for r in cold.values())
    fake_openai.reset_stats()
    _other_evaluators(builder, False)
    report = api.run(builder.root / "promptgauge.yaml")
    warm = _items(report)
    assert fake_openai.request_count == 0 and report.progress.cached == 8 and report.progress.reused == 0
    assert _calls(warm) == _calls(cold)  # the very same latency and tokens, not the lookup's fraction of a millisecond
    assert all(r["outputs"]["cached"] and r["outputs"]["latency_ms"] == r["latency_ms"] for r in warm.values())
    # The run's latency metric (and its comparison) sees the original calls.
    assert report.summary["variants"]["a"]["calls"]["latency_ms"]["p50"] >= LATENCY * 1000


def test_cache_entries_without_a_latency_are_still_read(builder, fake_openai):
    _other_evaluators(builder, True)
    api.run(builder.root / "promptgauge.yaml")
    db = sqlite3.connect(builder.root / ".promptgauge" / "cache.db")
    with db:  # entries as an older promptgauge wrote them: no latency_ms
        db.execute("UPDATE responses SET completion = json_remove(completion, '$.latency_ms')")
    assert db.execute("SELECT COUNT(*) FROM responses WHERE completion LIKE '%latency_ms%'").fetchone()[0] == 0
    fake_openai.reset_stats()
    _other_evaluators(builder, False)
    report = api.run(builder.root / "promptgauge.yaml")
    warm = _items(report)
    assert fake_openai.request_count == 0 and report.progress.cached == 8
    assert all(r["outputs"]["cached"] and 0 <= r["latency_ms"] < 50 for r in warm.values())  # the lookup's own time


def test_a_replayed_call_keeps_the_recorded_latency(builder, fake_openai):
    fake_openai.latency = LATENCY
    builder.suite()
    cassette = builder.root / "cassette.jsonl"
    recorded = _items(api.run(builder.root / "promptgauge.yaml", options=Options(cache=False, record=cassette)))
    lines = [json.loads(x) for x in cassette.read_text().splitlines()]
    assert all(line["response"]["latency_ms"] >= LATENCY * 1000 for line in lines)
    fake_openai.latency = 0.0
    replayed = _items(api.run(builder.root / "promptgauge.yaml", options=Options(replay=cassette)))
    assert _calls(replayed) == _calls(recorded)
    # A cassette recorded before latencies were kept replays as before.
    old = builder.root / "old.jsonl"
    old.write_text("".join(json.dumps({**line, "response": {k: v for k, v in line["response"].items()
                                                             if k != "latency_ms"}}) + "\n" for line in lines))
    fake_openai.reset_stats()
    again = _items(api.run(builder.root / "promptgauge.yaml", options=Options(replay=old)))
    assert fake_openai.request_count == 0 and all(r["latency_ms"] < 50 for r in again.values())
    assert {k: c[1:] for k, c in _calls(again).items()} == {k: c[1:] for k, c in _calls(recorded).items()}


def test_the_pytest_harness_records_a_cached_calls_original_latency(builder, fake_openai):
    """A warm test session (its own run, the suite's response cache) reports the cold session's latencies."""
    fake_openai.latency = LATENCY
    suite = builder.suite()
    rows = [{"id": "fr", "question": "What is the capital of France?", "ground_truth": "Paris"},
            {"id": "jp", "question": "What is the capital of Japan?", "ground_truth": "Tokyo"}]

    def session() -> dict[str, tuple]:
        harness = Harness(suite)
        try:
            out = {}
            for row in rows:
                _, result = harness.evaluate(row, "a")
                out[row["id"]] = (result.outputs["latency_ms"], result.outputs["prompt_tokens"],
                                  result.outputs["completion_tokens"], result.outputs["cached"])
            return out, harness.calls, harness.hits
        finally:
            harness.close()

    cold, calls, _ = session()
    assert calls == 2 and all(c[0] >= LATENCY * 1000 and not c[3] for c in cold.values())
    fake_openai.reset_stats()
    warm, calls, hits = session()
    assert fake_openai.request_count == 0 and (calls, hits) == (0, 2)
    assert {k: c[:3] for k, c in warm.items()} == {k: c[:3] for k, c in cold.items()}
    assert all(c[3] for c in warm.values())
