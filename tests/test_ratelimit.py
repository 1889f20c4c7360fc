"""Per-endpoint limits: AIMD concurrency on 429s, Retry-After pauses, RPM/TPM buckets; and streamed datasets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from promptgauge import api
from promptgauge.datasets import load_dataset
from promptgauge.errors import DatasetError
from promptgauge.ratelimit import Limiter, _Bucket


def test_aimd_halves_once_per_round_and_recovers():
    async def main():
        lim = Limiter(16)
        for _ in range(8):
            await lim.acquire()
        for _ in range(8):  # a burst of 429s from calls sent together: one decrease
            await lim.release(ok=False, throttled=True)
        assert lim.limit == 8
        for _ in range(4):
            await lim.acquire()
        for _ in range(4):
            await lim.release(ok=False, throttled=True)
        assert lim.limit == 4
        for _ in range(200):
            await lim.acquire()
            await lim.release(ok=True)
        assert lim.limit == 16  # additive increase back to the ceiling
    asyncio.run(main())


def test_retry_after_pauses_the_whole_endpoint():
    async def main():
        lim = Limiter(4)
        await lim.acquire()
        await lim.release(ok=False, throttled=True, retry_after=0.3)
        start = time.monotonic()
        await lim.acquire()  # another call to the same endpoint waits too
        return time.monotonic() - start
    assert asyncio.run(main()) >= 0.25


def test_buckets_refuse_past_their_budget():
    rpm = _Bucket(60)
    for _ in range(60):
        assert rpm.wait_for(1) == 0
        rpm.take(1)
    assert 0.9 < rpm.wait_for(1) <= 1.0  # one request per second after the first minute's budget
    tpm = _Bucket(6000)
    tpm.take(6000)
    assert tpm.wait_for(100) == pytest.approx(1.0, abs=0.05)


def test_429_storm_slows_down_and_completes(builder, fake_openai):
    fake_openai.latency = 0.01
    fake_openai.set_faults(0.3, kinds=("429",), retry_after=0.01)
    builder.dataset([{"id": str(i), "question": f"q{i}", "ground_truth": "x"} for i in range(40)])
    builder.suite(runner={"concurrency": 16, "timeout": 5, "retries": 8, "backoff_base": 0.01, "backoff_max": 0.05},
                  targets={"fake": {"type": "openai", "base_url": builder.base_url, "model": "gpt-4o-mini",
                                    "rpm": 6000}})
    report = api.run(builder.root / "promptgauge.yaml")
    assert report.status == "finished"
    assert fake_openai.fault_count["429"] > 0
    assert all(v["calls"]["errors"] == 0 for v in report.summary["variants"].values())


def test_429_burst_lowers_concurrency_at_the_server_and_it_recovers(builder, fake_openai):
    """AIMD seen from the server: in-flight requests fall after a burst of 429s, then climb back."""
    fake_openai.latency = 0.1  # slow enough that the client keeps 16 in flight even on a busy machine
    fake_openai.set_faults(0.0, retry_after=0.01)
    burst_start, burst = 120, 40
    fake_openai.fail_at(burst_start, "429", n=burst)
    rows = 500
    builder.dataset([{"id": str(i), "question": f"q{i}", "ground_truth": "x"} for i in range(rows)])
    builder.suite(variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None,
                  runner={"concurrency": 16, "timeout": 5, "retries": 8, "backoff_base": 0.01, "backoff_max": 0.02},
                  evaluators=[], gate={"rules": []})
    report = api.run(builder.root / "promptgauge.yaml")
    assert report.status == "finished" and report.summary["variants"]["a"]["calls"]["errors"] == 0
    assert fake_openai.fault_count == {"429": burst} and fake_openai.request_count == rows + burst
    in_flight = {n: k for _, n, k in fake_openai.concurrency_timeline}  # request number -> in flight with it

    def peak(first: int, last: int) -> int:
        return max(in_flight[n] for n in range(first, last))

    end = burst_start + burst
    peaks = [peak(i, i + 20) for i in range(1, rows + burst + 1, 20)]
    assert peak(40, burst_start) >= 14, peaks  # the run's concurrency (16), reached before the burst
    assert peak(end + 10, end + 30) <= 8, peaks  # halved (at least once) by the 429s
    assert peak(420, 500) >= 14, peaks  # additive increase brought it back


def test_dataset_streams_rows_and_checks_first(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"id": i, "q": "x" * 10}) + "\n" for i in range(1000)) + "\n")
    ds = load_dataset(path)
    assert len(ds) == 1000 and ds.columns == ["id", "q"]
    rows = iter(ds)
    assert not isinstance(rows, list) and next(rows).id == "0"
    assert [r.id for r in ds.iter_rows(3)] == ["0", "1", "2"]
    path.write_text('{"id": 1}\n{"id": 2}\n{"id": 1}\n')
    with pytest.raises(DatasetError, match=r"d.jsonl:3.*duplicate row id '1' \(first at line 1\)"):
        load_dataset(path)
    path.write_bytes(b'{"id": 1}\n{"q": "\xff"}\n')
    with pytest.raises(DatasetError, match=r"d.jsonl:2.*not valid UTF-8"):
        load_dataset(path)
    csv = tmp_path / "d.csv"
    csv.write_text("id,q\n" + "".join(f"{i},v{i}\n" for i in range(12001)))
    ds = load_dataset(csv)
    rows = list(ds)
    assert len(ds) == 12001 and rows[-1].data == {"id": "12000", "q": "v12000"} and rows[-1].line == 12001
