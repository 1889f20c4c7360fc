"""Store and output paths: a wrong one is exit 2 naming the path, before any model call; the file is left untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import run_cli

GARBAGE = b"\x00\x01garbage bytes, not a database\xff" * 40


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(builder, *args: str):
    return run_cli("run", "--no-progress", *args, cwd=builder.root)


def _assert_clean_exit_2(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("how", ["garbage", "dataset", "empty-txt"])
def test_store_that_is_not_sqlite_is_refused_and_untouched(builder, fake_openai, how):
    builder.suite()
    if how == "garbage":
        bad = builder.root / "store.db"
        bad.write_bytes(GARBAGE)
    elif how == "dataset":
        bad = builder.root / "data.jsonl"
    else:
        bad = builder.root / "notes.txt"
        bad.write_bytes(b"")
    before = _digest(bad)
    proc = _run(builder, "--store", str(bad))
    _assert_clean_exit_2(proc, str(bad), "not a SQLite database")
    assert _digest(bad) == before and not Path(str(bad) + "-wal").exists()
    assert fake_openai.request_count == 0


def test_store_in_the_suite_pointing_at_garbage_names_the_field(builder, fake_openai):
    bad = builder.root / "garbage.db"
    bad.write_bytes(GARBAGE)
    builder.suite(store="garbage.db")
    proc = _run(builder)
    _assert_clean_exit_2(proc, "garbage.db", "field 'store'")
    assert bad.read_bytes() == GARBAGE and fake_openai.request_count == 0


def test_store_path_that_is_a_directory_or_under_a_file(builder, fake_openai):
    builder.suite()
    (builder.root / "adir").mkdir()
    proc = _run(builder, "--store", str(builder.root / "adir"))
    _assert_clean_exit_2(proc, "adir", "is a folder")
    (builder.root / "afile").write_text("keep me")
    proc = _run(builder, "--store", str(builder.root / "afile" / "sub" / "x.db"))
    _assert_clean_exit_2(proc, "afile", "is a file, not a folder")
    assert (builder.root / "afile").read_text() == "keep me"
    assert fake_openai.request_count == 0


@pytest.mark.parametrize("via", ["flag", "suite"])
def test_reports_dir_that_is_a_file_fails_before_any_call(builder, fake_openai, via):
    (builder.root / "reports.txt").write_text("keep me")
    if via == "flag":
        builder.suite()
        proc = _run(builder, "--reports-dir", str(builder.root / "reports.txt"))
    else:
        builder.suite(reports_dir="reports.txt")
        proc = _run(builder)
        assert "reports_dir" in proc.stderr
    _assert_clean_exit_2(proc, "reports.txt", "a file is in the way")
    assert fake_openai.request_count == 0  # checked before any model call, not after every row
    assert (builder.root / "reports.txt").read_text() == "keep me"


def test_cache_next_to_the_store_that_is_garbage(builder, fake_openai):
    builder.suite()
    (builder.root / ".promptgauge").mkdir()
    cache = builder.root / ".promptgauge" / "cache.db"
    cache.write_bytes(GARBAGE)
    proc = _run(builder)
    _assert_clean_exit_2(proc, "cache.db", "response cache")
    assert cache.read_bytes() == GARBAGE and fake_openai.request_count == 0
    assert _run(builder, "--no-cache").returncode in (0, 1)  # without the cache it runs


def test_cassette_and_ci_out_paths(builder, fake_openai):
    builder.suite()
    (builder.root / "cas").mkdir()
    proc = _run(builder, "--record", str(builder.root / "cas"))
    _assert_clean_exit_2(proc, "cas", "cassette")
    proc = _run(builder, "--replay", str(builder.root / "cas"))
    _assert_clean_exit_2(proc, "cas", "cassette")
    (builder.root / "out").write_text("keep me")
    proc = run_cli("ci", "--out", str(builder.root / "out"), cwd=builder.root)
    _assert_clean_exit_2(proc, "out", "--out")
    assert fake_openai.request_count == 0


def test_other_verbs_check_the_store_too(builder, fake_openai):
    builder.suite()
    bad = builder.root / "bad.db"
    bad.write_bytes(GARBAGE)
    for args in (["runs", "--store", str(bad)], ["compare", "--store", str(bad)]):
        proc = run_cli(*args, cwd=builder.root)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert "bad.db" in proc.stderr and "not a SQLite database" in proc.stderr, (args, proc.stderr)
    assert bad.read_bytes() == GARBAGE
    (builder.root / "cache.db").write_bytes(GARBAGE)  # --dry-run reads the cache next to the store
    proc = run_cli("run", "--dry-run", "--store", str(bad), cwd=builder.root)
    assert proc.returncode == 2 and "cache.db" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_monitor_store_and_reports_paths(tmp_path):
    (tmp_path / "logs.jsonl").write_text("")
    (tmp_path / "st.db").write_bytes(GARBAGE)
    (tmp_path / "monitor.yaml").write_text(
        "name: m\nsources:\n  - {name: app, path: logs.jsonl}\nevaluators: [{name: length, params: {max: 100}}]\n"
        "store: st.db\n")
    proc = run_cli("monitor", "--once", cwd=tmp_path)
    assert proc.returncode == 2 and "st.db" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (tmp_path / "st.db").read_bytes() == GARBAGE


def test_a_sqlite_file_that_is_not_a_promptgauge_store_is_left_untouched(builder, fake_openai):
    import sqlite3

    other = builder.root / "app.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE users (name TEXT)")
    con.execute("INSERT INTO users VALUES ('ada')")
    con.commit()
    con.close()
    before = _digest(other)
    builder.suite()
    proc = _run(builder, "--store", str(other))
    _assert_clean_exit_2(proc, "app.db", "not a promptgauge store", "users")
    assert _digest(other) == before and fake_openai.request_count == 0
    assert _run(builder).returncode == 0  # a real run, then its cache given as the store
    proc = _run(builder, "--store", str(builder.root / ".promptgauge" / "cache.db"))
    _assert_clean_exit_2(proc, "cache.db", "not a promptgauge store", "responses")
