"""Faults on the wire: retries, Retry-After, timeouts; no row lost or duplicated; Ctrl-C keeps results."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

from conftest import run_cli

from promptgauge import api


def _messages(variant: str, question: str) -> str:
    """The chat a variant of the builder's suite sends for *question* (a: with a system prompt; b: without)."""
    chat = ([{"role": "system", "content": "Answer briefly."}] if variant == "a" else []) + \
        [{"role": "user", "content": question}]
    return json.dumps(chat)


def _rows(n: int) -> list[dict]:
    return [{"id": f"r{i:03d}", "question": f"q{i}", "ground_truth": f"echo: q{i}"} for i in range(n)]


def test_twenty_percent_faults_nothing_lost_or_duplicated(builder, fake_openai):
    builder.dataset(_rows(60))
    fake_openai.set_faults(rate=0.2, kinds=("429", "500", "slow", "malformed", "drop"), retry_after=0.01,
                           slow_seconds=1.5, seed=7)
    builder.suite(runner={"concurrency": 8, "timeout": 0.5, "retries": 1, "backoff_base": 0.01, "backoff_max": 0.05},
                  evaluators=[{"name": "exact_match"}], gate={"rules": []})
    report = api.run(builder.root / "promptgauge.yaml")
    assert report.status == "finished"
    con = sqlite3.connect(report.store_path)
    rows = con.execute("SELECT row_id, variant, output, error, attempts FROM results WHERE run_id=?",
                       (report.run_id,)).fetchall()
    keys = [(r[0], r[1]) for r in rows]
    assert len(keys) == 120 and len(set(keys)) == 120  # every (row, variant) exactly once
    errors = [r for r in rows if r[3] is not None]
    scored = con.execute("SELECT COUNT(*) FROM scores WHERE run_id=? AND error IS NULL", (report.run_id,)).fetchone()[0]
    assert scored == 120 - len(errors)  # every row without an error is scored
    for row_id, _, output, error, attempts in rows:
        if error is None:
            assert output == f"echo: q{int(row_id[1:])}", (row_id, output)  # this row's own answer
        else:
            assert attempts == 2 and error.endswith("(after 2 attempts)")
            assert any(k in error for k in ("HTTP 429", "HTTP 500", "timeout", "malformed", "connection error"))
    # Counted at the server, not in the store (whose primary key would hide a duplicate): every request
    # the server saw is one of the stored attempts -- no item was sent twice, none beyond its retries.
    assert fake_openai.request_count == sum(r[4] for r in rows)
    per_question = Counter(json.dumps(r.body["messages"]) for r in fake_openai.requests)
    stored = Counter()
    for row_id, variant, _, _, attempts in rows:
        stored[_messages(variant, f"q{int(row_id[1:])}")] += attempts
    assert per_question == stored
    # With p=0.2 per attempt and one retry, about 4 % end as errors; some retries happened.
    assert sum(1 for r in rows if r[4] == 2) > 10
    assert sum(fake_openai.fault_count.values()) > 15
    assert report.summary["variants"]["a"]["calls"]["errors"] == sum(1 for r in errors if r[1] == "a")


def test_retry_honours_retry_after(builder, fake_openai):
    builder.dataset(_rows(1))
    fake_openai.set_faults(rate=0.0, retry_after=0.6)
    fake_openai.fail_next("429", n=1)
    builder.suite(variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None,
                  evaluators=[], gate={"rules": []})
    start = time.perf_counter()
    report = api.run(builder.root / "promptgauge.yaml")
    elapsed = time.perf_counter() - start
    con = sqlite3.connect(report.store_path)
    output, error, attempts = con.execute("SELECT output, error, attempts FROM results").fetchone()
    assert (output, error, attempts) == ("echo: q0", None, 2)
    assert elapsed >= 0.6  # waited at least what the server asked (backoff alone is <= 0.1 s here)


def test_non_retryable_error_is_not_retried(builder, fake_openai):
    builder.dataset(_rows(2))
    targets = {"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "m", "api_key_env": "PG_WRONG"}}
    fake_openai.api_key = "right-key"
    builder.suite(targets=targets, variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None,
                  evaluators=[], gate={"rules": ["error_rate <= 0"]})
    import os

    os.environ["PG_WRONG"] = "wrong-key"
    try:
        report = api.run(builder.root / "promptgauge.yaml")
    finally:
        del os.environ["PG_WRONG"]
    con = sqlite3.connect(report.store_path)
    for error, attempts in con.execute("SELECT error, attempts FROM results"):
        assert "HTTP 401" in error and attempts == 1
    assert report.passed is False
    assert "wrong-key" not in json.dumps(report.summary)


def test_ctrl_c_keeps_finished_results_and_resume_completes(builder, fake_openai):
    builder.dataset(_rows(40))
    fake_openai.latency = 0.1
    builder.suite(variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None,
                  runner={"concurrency": 2, "timeout": 5, "retries": 0}, evaluators=[{"name": "exact_match"}],
                  gate={"rules": []})
    proc = subprocess.Popen([sys.executable, "-m", "promptgauge", "run", "--no-progress"], cwd=builder.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = builder.root / ".promptgauge" / "promptgauge.db"
    deadline = time.time() + 30
    done = 0
    while time.time() < deadline and done < 6:
        time.sleep(0.1)
        if db.exists():
            try:
                done = sqlite3.connect(db).execute("SELECT COUNT(*) FROM scores").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    con = sqlite3.connect(db)
    status, run_id = con.execute("SELECT status, run_id FROM runs").fetchone()
    kept = con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert status == "interrupted" and 6 <= kept < 40
    # every kept result is complete (output + score), none half-written
    assert con.execute("SELECT COUNT(*) FROM results r LEFT JOIN scores s USING (run_id, row_id, variant, repeat) "
                       "WHERE s.evaluator IS NULL").fetchone()[0] == 0
    con.close()
    fake_openai.reset_stats()
    fake_openai.latency = 0.0
    proc = run_cli("run", "--no-progress", "--resume", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert fake_openai.request_count == 40 - kept  # only what was missing
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT row_id) FROM results WHERE run_id=?", (run_id,)).fetchone() == (40, 40)
    assert con.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()[0] == "finished"


def test_resume_refuses_a_changed_dataset(builder, fake_openai, capsys):
    builder.suite(gate={"rules": []})
    assert run_cli("run", "--no-progress", cwd=builder.root).returncode == 0
    builder.dataset(_rows(3))
    proc = run_cli("run", "--no-progress", "--resume", cwd=builder.root)
    assert proc.returncode == 2 and "dataset changed" in proc.stderr
