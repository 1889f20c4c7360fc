"""A run killed with SIGKILL at any moment resumes to exactly the results of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import run_cli


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


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [5, 60])
def test_kill_9_then_resume_equals_uninterrupted_run(builder, fake_openai, tmp_path, kill_after):
    fake_openai.latency = 0.02
    builder.dataset([{"id": f"r{i}", "question": f"REPLY: {i * 7}\nq{i}", "ground_truth": str(i * 7)}
                     for i in range(60)])
    builder.suite(runner={"concurrency": 4, "timeout": 5, "retries": 1, "repeats": 2})
    db = builder.root / ".promptgauge" / "promptgauge.db"
    # --no-cache: the resumed half must really be called again, not answered from the cache.
    proc = subprocess.Popen([sys.executable, "-m", "promptgauge", "run", "--no-progress", "--no-cache"],
                            cwd=builder.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _count(db) < kill_after and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id, partial, _ = _items(db)
    assert kill_after <= len(partial) < 240  # killed mid-run
    fake_openai.reset_stats()
    out = run_cli("run", "--no-progress", "--no-cache", "--resume", run_id, cwd=builder.root)
    assert out.returncode in (0, 1), out.stderr
    _, resumed, resumed_scores = _items(db, run_id)
    assert fake_openai.request_count == 240 - len(partial)  # the resumed run called only what was missing

    ref_store = tmp_path / "ref.db"
    out = run_cli("run", "--no-progress", "--no-cache", "--store", str(ref_store), cwd=builder.root)
    assert out.returncode in (0, 1), out.stderr
    _, reference, reference_scores = _items(ref_store)
    keys = [r[:3] for r in resumed]
    assert len(keys) == len(set(keys)) == 240  # 60 rows x 2 variants x 2 repeats, no duplicates
    assert sorted(resumed) == sorted(reference)
    assert sorted(resumed_scores) == sorted(reference_scores)
