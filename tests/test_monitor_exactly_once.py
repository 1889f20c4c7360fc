"""Incremental and exactly once: kill -9, restarts, overlapping and rotated files, half-written lines."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from monitor_helpers import append, hour_lines, write_config

from promptgauge.monitor import load_monitor_config, run_pass

SLOW_EVALUATOR = '''
import os
import time

def slow_len(response):
    """A custom evaluator that takes a little time, so a pass can be killed in the middle; each call is
    counted in the file PG_CALL_LOG names, where the store (one row per record) cannot show a second call."""
    time.sleep(0.002)
    if os.environ.get("PG_CALL_LOG"):
        with open(os.environ["PG_CALL_LOG"], "a") as f:
            f.write("x\\n")
    return {"score": float(len(response or ""))}
'''


def _snapshot(db: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        records = con.execute("SELECT record_id, sampled, failed, stratum, win FROM monitor_records").fetchall()
        scores = con.execute("SELECT record_id, evaluator, score, passed FROM monitor_scores").fetchall()
        malformed = con.execute("SELECT file, line FROM monitor_malformed").fetchall()
    finally:
        con.close()
    malformed = [(Path(file).name, line) for file, line in malformed]
    return {"records": sorted(records), "scores": sorted(scores), "malformed": sorted(malformed)}


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM monitor_records").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        con.close()


def _setup(root: Path, n_hours: int = 30) -> Path:
    (root / "evaluators").mkdir(parents=True)
    (root / "evaluators" / "slow_len.py").write_text(SLOW_EVALUATOR)
    cfg = write_config(root, evaluators=["json_valid", "slow_len"],
                       sampling={"rate": 0.7, "stratify_by": "route", "cap_per_window": 25, "seed": 3})
    rng = random.Random(11)
    lines = [line for h in range(n_hours) for line in hour_lines(h, 100, p_valid=0.9, rng=rng)]
    log = root / "logs" / "app.jsonl"
    append(log, lines[:1500])
    with log.open("a") as f:
        f.write("{not json\n")
    append(log, lines[1500:])
    # an overlapping copy: the last 500 records again, in another file
    append(root / "logs" / "app-copy.jsonl", lines[-500:])
    return cfg


@pytest.mark.slow
def test_kill_9_resumes_without_gaps_or_double_counting(tmp_path, monkeypatch):
    control = tmp_path / "control"
    killed = tmp_path / "killed"
    cfg_c = _setup(control)
    cfg_k = _setup(killed)
    run_pass(load_monitor_config(cfg_c), batch_size=64)
    expected = _snapshot(control / ".promptgauge" / "promptgauge.db")
    total = len(expected["records"])
    assert total == 3000 and expected["malformed"] == [("app.jsonl", 1501)]

    db = killed / ".promptgauge" / "promptgauge.db"
    cmd = [sys.executable, "-m", "promptgauge", "monitor", "--config", str(cfg_k), "--once"]
    partial = []
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("PG_CALL_LOG", str(calls))
    for attempt in range(4):
        if attempt == 3:  # the last one runs to the end, and scores exactly the sampled records not yet stored
            calls.unlink(missing_ok=True)
            con = sqlite3.connect(db)
            scored_before = con.execute("SELECT COUNT(DISTINCT record_id) FROM monitor_scores").fetchone()[0]
            con.close()
        proc = subprocess.Popen(cmd, cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if attempt == 3:
            assert proc.wait(timeout=120) in (0, 1), proc.stderr.read().decode()
            sampled = sum(1 for r in expected["records"] if r[1])
            assert len(calls.read_text().splitlines()) == sampled - scored_before  # counted at the evaluator
            break
        before = _count(db)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _count(db) < before + 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the pass finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of a pass, batches in flight
        assert proc.wait() == -signal.SIGKILL
        partial.append(_count(db))
    assert partial == sorted(partial) and 0 < partial[0] and partial[-1] < total, partial
    got = _snapshot(db)
    assert got == expected  # same records, same sampling decisions, same scores: no gap, nothing twice
    per_record: dict[str, int] = {}
    for rid, *_ in got["scores"]:
        per_record[rid] = per_record.get(rid, 0) + 1
    sampled = {r[0] for r in got["records"] if r[1]}
    assert set(per_record) == sampled and set(per_record.values()) == {2}


def test_restarts_and_overlapping_files_count_each_record_once(tmp_path):
    cfg = write_config(tmp_path)
    rng = random.Random(1)
    lines = hour_lines(0, 50, p_valid=0.9, rng=rng)
    log = tmp_path / "logs" / "app.jsonl"
    append(log, lines[:30])
    first = run_pass(load_monitor_config(cfg))
    assert first.report["pass"]["total"]["records"] == 30
    append(log, lines[30:])
    append(tmp_path / "logs" / "replay.jsonl", lines[10:40])  # overlaps both earlier and new records
    second = run_pass(load_monitor_config(cfg))
    t = second.report["pass"]["total"]
    assert t["records"] == 20 and t["duplicates"] == 30
    third = run_pass(load_monitor_config(cfg))
    assert third.report["pass"]["total"]["documents"] == 0  # checkpoints: nothing is read again
    assert second.report["windows"][-1]["records"] == 50


def test_rotation_and_truncation_reread_without_double_counting(tmp_path):
    cfg = write_config(tmp_path)
    rng = random.Random(2)
    lines = hour_lines(0, 40, p_valid=0.9, rng=rng)
    log = tmp_path / "logs" / "app.jsonl"
    append(log, lines[:20])
    run_pass(load_monitor_config(cfg))
    shutil.move(log, tmp_path / "logs" / "app.1.jsonl")  # rotated: the old file under a new name
    append(log, lines[20:30])
    r = run_pass(load_monitor_config(cfg))
    assert (r.report["pass"]["total"]["records"], r.report["pass"]["total"]["duplicates"]) == (10, 20)
    log.write_text("")  # truncated, then written again: must be read from the start
    append(log, lines[30:])
    r = run_pass(load_monitor_config(cfg))
    assert (r.report["pass"]["total"]["records"], r.report["pass"]["total"]["duplicates"]) == (10, 0)
    assert r.report["windows"][-1]["records"] == 40


def test_half_written_last_line_waits_for_the_writer(tmp_path):
    cfg = write_config(tmp_path)
    rng = random.Random(3)
    a, b = (json.dumps(x) for x in hour_lines(0, 2, p_valid=1.0, rng=rng))
    log = tmp_path / "logs" / "app.jsonl"
    log.write_text(a + "\n" + b[:25])
    r = run_pass(load_monitor_config(cfg))
    assert r.report["pass"]["total"]["records"] == 1 and r.report["pass"]["total"]["malformed"] == 0
    with log.open("a") as f:
        f.write(b[25:])  # complete, still without a newline: a JSON object is taken
    r = run_pass(load_monitor_config(cfg))
    assert r.report["pass"]["total"]["records"] == 1
    with log.open("a") as f:
        f.write("\n")
    r = run_pass(load_monitor_config(cfg))
    assert r.report["pass"]["total"]["documents"] == 0 and r.report["windows"][-1]["records"] == 2


def test_documents_without_ids_get_content_ids(tmp_path):
    cfg = write_config(tmp_path)
    rng = random.Random(4)
    lines = hour_lines(0, 5, p_valid=1.0, rng=rng)
    for line in lines:
        del line["id"], line["response"]["id"]
    append(tmp_path / "logs" / "a.jsonl", lines)
    append(tmp_path / "logs" / "b.jsonl", lines)  # identical lines elsewhere are the same records
    r = run_pass(load_monitor_config(cfg))
    assert (r.report["pass"]["total"]["records"], r.report["pass"]["total"]["duplicates"]) == (5, 5)


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_the_next_pass_finishes(tmp_path):
    root = tmp_path / "m"
    cfg = _setup(root, n_hours=20)
    proc = subprocess.Popen([sys.executable, "-m", "promptgauge", "monitor", "--config", str(cfg), "--once"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = root / ".promptgauge" / "promptgauge.db"
    while proc.poll() is None and _count(db) == 0:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # in the middle of the pass
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 130:
        assert "interrupted" in err
        con = sqlite3.connect(root / ".promptgauge" / "promptgauge.db")
        assert con.execute("SELECT status FROM monitor_passes").fetchall() == [("interrupted",)]
        con.close()
    else:  # the machine was fast enough to finish first: still a clean exit
        assert proc.returncode in (0, 1), err
    r = run_pass(load_monitor_config(cfg))
    assert r.report["windows"][-1]["records"] == 100
    assert sum(w["records"] for w in r.report["windows"]) == 2000
