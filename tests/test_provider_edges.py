"""Provider edge cases: malformed and huge Retry-After values, through the real SDK and the fake server."""

from __future__ import annotations

import email.utils
import json
import sqlite3
import time

import pytest
from conftest import run_cli

from promptgauge.errors import retry_after_seconds


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "soon, maybe"}, None),
    ({"retry-after": "Wed, 99 Foo 2015 77:28:00 GMT"}, None),
    ({"retry-after": "-3"}, None),
    ({"retry-after": "nan"}, None),
    ({"retry-after": "inf"}, None),
    ({"retry-after": "1e400"}, None),
    ({"retry-after": ""}, None),
    ({"retry-after": "2.5"}, 2.5),
    ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: no wait
    ({"retry-after-ms": "garbage", "retry-after": "3"}, 3.0),
    ({"retry-after-ms": "1500"}, 1.5),
    ({}, None),
])
def test_retry_after_parsing_never_raises(headers, expected):
    assert retry_after_seconds(headers) == expected


def test_retry_after_http_date_in_the_future():
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_seconds({"retry-after": future}) <= 30


def _one_variant(builder, **runner):
    builder.dataset([{"id": f"r{i}", "question": f"q{i}", "ground_truth": f"echo: q{i}"} for i in range(3)])
    builder.suite(variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None,
                  evaluators=[{"name": "exact_match"}], gate={"rules": ["exact_match.pass_rate >= 1"]},
                  runner={"concurrency": 1, "timeout": 5, "retries": 2, "backoff_base": 0.01, "backoff_max": 0.05,
                          **runner})


def test_a_malformed_retry_after_is_ignored_and_the_call_retried(builder, fake_openai):
    _one_variant(builder)
    fake_openai.set_faults(0.0, retry_after="soon, maybe")
    fake_openai.fail_next("429", n=2)
    start = time.monotonic()
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # not an internal error
    assert time.monotonic() - start < 30
    assert fake_openai.fault_count == {"429": 2} and fake_openai.request_count == 5  # 3 rows + 2 retries
    con = sqlite3.connect(builder.root / ".promptgauge" / "promptgauge.db")
    assert sorted(r[0] for r in con.execute("SELECT attempts FROM results")) == [1, 1, 3]  # one row, 2 retries


def test_a_huge_retry_after_is_capped_and_the_cap_recorded(builder, fake_openai):
    _one_variant(builder, max_retry_wait=0.3)
    fake_openai.set_faults(0.0, retry_after=3600)
    fake_openai.fail_next("429", n=1)
    start = time.monotonic()
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < 30  # not an hour
    assert "asked to wait 3600 s (Retry-After); waited 0.3 s (runner.max_retry_wait)" in proc.stderr
    summary = json.loads(next((builder.root / "reports").glob("*/summary.json")).read_text())
    assert summary["notes"] == ["target 'fake' asked to wait 3600 s (Retry-After); waited 0.3 s (runner.max_retry_wait)"]


def test_max_retry_wait_is_validated(builder, fake_openai):
    _one_variant(builder, max_retry_wait=0)
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2 and "runner.max_retry_wait" in proc.stderr, proc.stderr
