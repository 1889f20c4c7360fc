"""Cache, repeats, record/replay and cost budget, end to end on the fake server."""

from __future__ import annotations

import json
import sqlite3

from conftest import run_cli

from promptgauge import api
from promptgauge.engine import Options


def _run(builder, *, variants=None, **options):
    return api.run(builder.root / "promptgauge.yaml", variants=variants, options=Options(**options))


def _results(root, run_id=None):
    db = sqlite3.connect(root / ".promptgauge" / "promptgauge.db")
    if run_id is None:
        run_id = db.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    return run_id, db.execute("SELECT row_id, variant, repeat, output, error, outputs FROM results WHERE run_id=? "
                              "ORDER BY row_id, variant, repeat", (run_id,)).fetchall()


def test_warm_rerun_makes_no_model_call(builder, fake_openai):
    builder.suite()
    _run(builder)
    assert fake_openai.request_count == 8
    fake_openai.reset_stats()
    second = run_cli("run", "--no-progress", cwd=builder.root)
    assert fake_openai.request_count == 0
    assert "8 results reused from an earlier run" in second.stdout
    _, rows = _results(builder.root)
    assert all(json.loads(r[5])["cached"] for r in rows)
    assert [r[3] for r in rows] == [r[3] for r in _results(builder.root, _first_run(builder.root))[1]]


def test_changed_variant_runs_again_the_rest_is_reused(builder, fake_openai):
    builder.suite()
    _run(builder)
    builder.prompt("b.prompty", "user:\nQuestion: {{question}}\n")
    fake_openai.reset_stats()
    report = _run(builder)
    assert report.progress.reused == 4  # variant a, unchanged
    assert fake_openai.request_count == 4 and all(r.body["messages"][0]["content"].startswith("Question:")
                                                  for r in fake_openai.requests)
    # Evaluator settings changed: nothing is reused, but every call is answered from the cache.
    builder.suite(evaluators=[{"name": "exact_match", "params": {"ignore_case": False}},
                              {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}])
    fake_openai.reset_stats()
    report = _run(builder)
    assert report.progress.reused == 0 and report.progress.cached == 8 and fake_openai.request_count == 0


def _first_run(root):
    db = sqlite3.connect(root / ".promptgauge" / "promptgauge.db")
    return db.execute("SELECT run_id FROM runs ORDER BY created_at LIMIT 1").fetchone()[0]


def test_no_cache_and_refresh_call_again(builder, fake_openai):
    builder.suite()
    _run(builder)
    fake_openai.reset_stats()
    assert _run(builder, cache=False).progress.cached == 0
    assert fake_openai.request_count == 8
    fake_openai.reset_stats()
    _run(builder, refresh=True)
    assert fake_openai.request_count == 8
    fake_openai.reset_stats()
    assert _run(builder).progress.reused == 8


def test_errors_are_never_cached(builder, fake_openai):
    builder.suite(runner={"concurrency": 1, "timeout": 2, "retries": 0})
    fake_openai.fail_next("500", n=2)
    _run(builder)
    _, rows = _results(builder.root)
    assert sum(1 for r in rows if r[4]) == 2
    fake_openai.reset_stats()
    _run(builder)
    assert fake_openai.request_count == 2  # only the two failures are asked again
    _, rows = _results(builder.root)
    assert not any(r[4] for r in rows)


def test_repeats_are_kept_apart_in_store_and_cache(builder, fake_openai):
    builder.suite(runner={"concurrency": 4, "timeout": 2, "retries": 0, "repeats": 3})
    _run(builder, variants=["a"])
    assert fake_openai.request_count == 12  # 4 rows x 3 repeats, none answered from another repeat
    _, rows = _results(builder.root)
    assert sorted({(r[0], r[2]) for r in rows}) == sorted((rid, k) for rid in ("es", "fr", "it", "jp") for k in range(3))
    fake_openai.reset_stats()
    _run(builder, variants=["a"])
    assert fake_openai.request_count == 0


def test_record_then_replay_offline(builder, fake_openai):
    builder.suite()
    cassette = builder.root / "cassette.jsonl"
    _run(builder, cache=False, record=cassette)
    lines = [json.loads(x) for x in cassette.read_text().splitlines()]
    assert len(lines) == 8 and {"key", "request", "response"} <= set(lines[0])
    assert "api_key" not in cassette.read_text()
    _, recorded = _results(builder.root)
    # Offline: the suite now points at a port where nothing listens, and no key is set.
    builder.base_url = "http://127.0.0.1:9/v1"
    builder.suite()
    fake_openai.reset_stats()
    rep = run_cli("run", "--no-progress", "--replay", str(cassette), cwd=builder.root, env={"OPENAI_API_KEY": ""})
    assert rep.returncode in (0, 1), rep.stderr
    assert fake_openai.request_count == 0
    _, replayed = _results(builder.root)
    assert [r[:5] for r in replayed] == [r[:5] for r in recorded]


def test_replay_miss_fails_clearly(builder, fake_openai):
    builder.suite()
    cassette = builder.root / "cassette.jsonl"
    _run(builder, record=cassette, variants=["a"])
    out = run_cli("run", "--no-progress", "--replay", str(cassette), cwd=builder.root)
    assert out.returncode == 2
    assert "request not in the cassette" in out.stderr and "cassette.jsonl" in out.stderr
    assert "Traceback" not in out.stderr
    missing = run_cli("run", "--no-progress", "--replay", "nope.jsonl", cwd=builder.root)
    assert missing.returncode == 2 and "cassette file not found" in missing.stderr


def test_dry_run_counts_calls_and_prices(builder, fake_openai):
    builder.suite(gate={"prices": {"gpt-4o-mini": {"input": 1000.0, "output": 2000.0}}}, runner={"repeats": 2})
    out = run_cli("run", "--dry-run", cwd=builder.root)
    assert out.returncode == 0, out.stderr
    assert "4 rows x 2 variants x 2 repeats" in out.stdout and "total: 16 calls" in out.stdout
    assert fake_openai.request_count == 0
    builder.suite(targets={"fake": {"type": "openai", "base_url": builder.base_url, "model": "house-model"}})
    unknown = run_cli("run", "--dry-run", cwd=builder.root)
    assert unknown.returncode == 0 and "unknown" in unknown.stdout


def test_max_cost_stops_cleanly_and_resume_finishes(builder, fake_openai):
    # 1 USD per prompt token: each call costs a few dollars, so a $10 budget stops early.
    builder.suite(gate={"prices": {"gpt-4o-mini": {"input": 1e6, "output": 0.0}}},
                  runner={"concurrency": 1, "timeout": 2, "retries": 0})
    stopped = run_cli("run", "--no-progress", "--max-cost", "40", cwd=builder.root)
    assert stopped.returncode == 1 and "stopped at the cost budget" in stopped.stdout
    run_id, partial = _results(builder.root)
    assert 0 < len(partial) < 8 and not any(r[4] for r in partial)
    spent = sum(json.loads(r[5])["cost_usd"] for r in partial)
    assert spent <= 40
    db = sqlite3.connect(builder.root / ".promptgauge" / "promptgauge.db")
    assert db.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()[0] == "budget"
    done = run_cli("run", "--no-progress", "--resume", run_id, "--max-cost", "1000", cwd=builder.root)
    assert done.returncode in (0, 1), done.stderr
    _, rows = _results(builder.root, run_id)
    assert len(rows) == 8 and len({(r[0], r[1], r[2]) for r in rows}) == 8


def test_max_cost_needs_prices(builder, fake_openai):
    builder.suite(targets={"fake": {"type": "openai", "base_url": builder.base_url, "model": "house-model"}})
    out = run_cli("run", "--no-progress", "--max-cost", "1", cwd=builder.root)
    assert out.returncode == 2
    assert "needs a price for model 'house-model'" in out.stderr and fake_openai.request_count == 0
