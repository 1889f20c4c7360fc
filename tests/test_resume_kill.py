"""A run killed with SIGKILL at random moments resumes to exactly the results of an uninterrupted run,
calling the server for exactly what was missing."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import run_cli

ROWS = 60
ITEMS = ROWS * 2 * 2  # rows x variants x repeats


def _items(db_path, run_id=None):
    db = sqlite3.connect(db_path)
    if run_id is None:
        run_id = db.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    results = db.execute("SELECT row_id, variant, repeat, output, error FROM results WHERE run_id=?",
                         (run_id,)).fetchall()
    scores = db.execute("SELECT row_id, variant, repeat, evaluator, score FROM scores WHERE run_id=?",
                        (run_id,)).fetchall()
    db.close()
    return run_id, results, scores


def _count(db_path):
    if not db_path.exists():
        return 0
    try:
        db = sqlite3.connect(db_path, timeout=5)
        n = db.execute("SELECT count(*) FROM results").fetchone()[0]
        db.close()
        return n
    except sqlite3.OperationalError:
        return 0


def _sent(requests) -> Counter:
    """(variant, row) of each chat the server received: variant a's prompt has a system message."""
    out = Counter()
    for r in requests:
        if not isinstance(r.body, dict):  # cut off by the kill before its body arrived
            continue
        msgs = r.body["messages"]
        row = msgs[-1]["content"].split("\n")[-1][1:]  # "REPLY: 7\nq1" -> "1"
        out["a" if msgs[0]["role"] == "system" else "b", f"r{row}"] += 1
    return out


def _missing(results) -> Counter:
    have = Counter((variant, row) for row, variant, *_ in results)
    return Counter({(v, f"r{i}"): 2 - have[v, f"r{i}"] for v in "ab" for i in range(ROWS)
                    if 2 - have[v, f"r{i}"]})


def _kill_at(args, cwd, db, at: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "promptgauge", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _count(db) < at and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_at_random_points_then_resume_equals_uninterrupted_run(builder, fake_openai, tmp_path, seed):
    rng = random.Random(seed)
    points = sorted(rng.sample(range(2, ITEMS - 20), 2))  # two kills: one mid-run, one mid-resume
    fake_openai.latency = rng.choice([0.005, 0.02, 0.04])
    builder.prompt("a.prompty", "system:\nAnswer briefly.\n\nuser:\n{{question}}\n")
    builder.dataset([{"id": f"r{i}", "question": f"REPLY: {i * 7}\nq{i}", "ground_truth": str(i * 7)}
                     for i in range(ROWS)])
    builder.suite(runner={"concurrency": 4, "timeout": 5, "retries": 1, "repeats": 2})
    db = builder.root / ".promptgauge" / "promptgauge.db"
    # --no-cache: the resumed part must really be called again, not answered from the cache.
    _kill_at(["run", "--no-progress", "--no-cache"], builder.root, db, points[0])
    run_id, partial, _ = _items(db)
    assert points[0] <= len(partial) < ITEMS, (points, len(partial))  # killed mid-run
    fake_openai.reset_stats()
    _kill_at(["run", "--no-progress", "--no-cache", "--resume", run_id], builder.root, db, points[1])
    _, partial2, _ = _items(db, run_id)
    sent = _sent(fake_openai.requests)
    # the resumed run sent only what was missing, each at most once; what it sent and did not keep
    # was in flight (or waiting for its group commit) when it was killed
    assert not (sent - _missing(partial)), sent - _missing(partial)
    assert sum(sent.values()) - (len(partial2) - len(partial)) <= 4 + 16
    fake_openai.reset_stats()
    out = run_cli("run", "--no-progress", "--no-cache", "--resume", run_id, cwd=builder.root)
    assert out.returncode in (0, 1), out.stderr
    _, resumed, resumed_scores = _items(db, run_id)
    assert _sent(fake_openai.requests) == _missing(partial2)  # counted at the server: exactly what was missing

    ref_store = tmp_path / "ref.db"
    out = run_cli("run", "--no-progress", "--no-cache", "--store", str(ref_store), cwd=builder.root)
    assert out.returncode in (0, 1), out.stderr
    _, reference, reference_scores = _items(ref_store)
    assert len(resumed) == ITEMS
    assert sorted(resumed) == sorted(reference)
    assert sorted(resumed_scores) == sorted(reference_scores)
    assert json.dumps(sorted(resumed)) == json.dumps(sorted(reference))
