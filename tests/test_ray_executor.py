"""``runner.executor: ray`` on a real local Ray cluster: the same results as in process, nothing lost or
stored twice when a worker dies or the driver is killed, the cache and the rate limits of the driver.

The cluster: ``ray.init`` in this test process with ``num_cpus=2`` (one node, two worker processes
running the scoring tasks), no dashboard, usage statistics off (:func:`promptgauge.engine.ray_executor.start_ray`);
the CLI tests start their own the same way. Killing "a worker" is a SIGKILL to a worker process that is
scoring a batch.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import SuiteBuilder, run_cli

from promptgauge import api
from promptgauge.engine.ray_executor import NO_TELEMETRY, start_ray

ROWS = 40

PIDLOG = '''
import os, time
from pathlib import Path

LOG = Path(__file__).resolve().parent.parent / "pids.log"


def pidlog(response: str, id: str, pause: float = 0.0) -> dict:
    """Scores 1 when there is a response; logs which process scored which row."""
    time.sleep(pause)
    with LOG.open("a") as f:
        f.write(f"{os.getpid()} {id}\\n")
    return {"pidlog": 1.0 if response else 0.0}
'''


@pytest.fixture(scope="module")
def ray_session():
    ray, started = start_ray(None)
    assert started and ray.cluster_resources()["CPU"] == os.cpu_count()
    yield ray
    ray.shutdown()


def _suite(builder: SuiteBuilder, rows: int = ROWS, pause: float = 0.0, **runner) -> Path:
    builder.dataset([{"id": f"r{i}", "question": f"REPLY: the answer is {i % 5}\nq{i}", "ground_truth": str(i % 3)}
                     for i in range(rows)])
    (builder.root / "evaluators").mkdir(exist_ok=True)
    (builder.root / "evaluators" / "pidlog.py").write_text(PIDLOG)
    return builder.suite(
        evaluators=[{"name": "exact_match", "params": {"ignore_case": True}},
                    {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
                    {"name": "f1"}, {"name": "meteor"},
                    {"name": "pidlog", "column_mapping": {"response": "${target.response}", "id": "${data.id}"},
                     "params": {"pause": pause}}],
        runner={"concurrency": 4, "timeout": 5, "retries": 2, "backoff_base": 0.01, "backoff_max": 0.1,
                **runner},
        gate={"rules": ["f1.mean >= 0.1", "contains: no_regression(max_drop=0.5, alpha=0.05)"]})


def _normal(summary: dict, run_id: str) -> str:
    doc = {k: v for k, v in summary.items() if k not in ("run_id", "created_at", "finished_at")}
    return json.dumps(doc, sort_keys=True).replace(run_id, "RUN")


def _rows(db: Path, run_id: str | None = None, *, latency: bool = True) -> tuple[list, list]:
    con = sqlite3.connect(db)
    run_id = run_id or con.execute("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
    res = con.execute("SELECT row_id, variant, repeat, row_index, inputs, output, error, prompt_tokens, "
                      f"completion_tokens{', latency_ms' if latency else ''} FROM results WHERE run_id=? ORDER BY 1, 2, 3",
                      (run_id,)).fetchall()
    sco = con.execute("SELECT row_id, variant, repeat, evaluator, score, passed, error, details FROM scores "
                      "WHERE run_id=? ORDER BY 1, 2, 3, 4", (run_id,)).fetchall()
    con.close()
    return res, sco


def _pids(root: Path) -> list[tuple[int, str]]:
    path = root / "pids.log"
    return [(int(p), r) for p, r in (line.split() for line in path.read_text().splitlines())] if path.exists() else []


def test_ray_run_equals_in_process_run_and_a_warm_rerun_calls_no_model(ray_session, builder: SuiteBuilder,
                                                                       fake_openai) -> None:
    suite = _suite(builder)
    local = api.run(suite, store=builder.root / "local.db")  # cold: fills the response cache
    assert fake_openai.request_count == ROWS * 2
    assert {p for p, _ in _pids(builder.root)} == {os.getpid()}
    (builder.root / "pids.log").unlink()
    fake_openai.reset_stats()
    on_ray = api.run(suite, store=builder.root / "ray.db", options=api.Options(executor="ray"))
    assert fake_openai.request_count == 0  # every call answered from the driver's cache, none made on any node
    assert _normal(on_ray.summary, on_ray.run_id) == _normal(local.summary, local.run_id)
    assert on_ray.passed == local.passed and on_ray.summary["gate"]["rules"]
    assert _rows(builder.root / "ray.db") == _rows(builder.root / "local.db")
    workers = {p for p, _ in _pids(builder.root)}
    assert os.getpid() not in workers and len(_pids(builder.root)) == ROWS * 2  # scored in Ray workers, once each


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(ray_session, builder: SuiteBuilder, fake_openai) -> None:
    suite = _suite(builder, rows=120, pause=0.02, ray={"batch_size": 6})
    reference = api.run(suite, store=builder.root / "local.db", options=api.Options(cache=False))
    (builder.root / "pids.log").unlink()
    killed: list[int] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = _pids(builder.root)
            counts = Counter(p for p, _ in seen)
            # a worker part-way through a batch of 6 (it logged 1-4 of its rows): killed mid-batch
            busy = [p for p, n in counts.items() if 1 <= n % 6 <= 4]
            if len(seen) >= 60 and busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_one)
    killer.start()
    report = api.run(suite, store=builder.root / "ray.db", options=api.Options(cache=False, executor="ray"))
    killer.join()
    assert killed and report.status == "finished"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    log = _pids(builder.root)
    # the killed worker's batch was scored again by another worker (its rows logged twice, when it was
    # killed part-way through a batch -- which the kill aims at) ...
    assert len(log) >= 240 and killed[0] not in {p for p, _ in log[-20:]}
    assert {r for _, r in log} == {f"r{i}" for i in range(120)}
    res, sco = _rows(builder.root / "ray.db", latency=False)
    assert len(res) == 240 and len(sco) == 240 * 5  # ... and stored once
    assert (res, sco) == _rows(builder.root / "local.db", reference.run_id, latency=False)


def test_shards_on_ray_merged_equal_one_run(ray_session, builder: SuiteBuilder, fake_openai) -> None:
    suite = _suite(builder)
    single = api.run(suite, store=builder.root / "single.db")
    files = [api.run(suite, shard=f"{k}/2", store=builder.root / f"s{k}.db", options=api.Options(executor="ray"),
                     ).reports["shard"] for k in (1, 2)]
    merged = api.merge(files, suite=suite, store=builder.root / "merged.db")
    assert _normal(merged.summary, merged.run_id) == _normal(single.summary, single.run_id)
    assert _rows(builder.root / "merged.db") == _rows(builder.root / "single.db")


def test_calls_on_workers_share_one_rate_limit_state_and_budget(ray_session, builder: SuiteBuilder,
                                                                fake_openai) -> None:
    """Remote-model calls made by two replica actors: a 429 with Retry-After pauses the endpoint for both
    (no request reaches the server during the pause); each throttled request is sent again once."""
    suite = _suite(builder, ray={"calls": "workers", "replicas": 2})
    fake_openai.reset_stats()
    fake_openai.retry_after = 1.0
    fake_openai.fail_at(11, "429", 2)
    report = api.run(suite, store=builder.root / "ray.db", options=api.Options(cache=False, executor="ray"))
    assert report.status == "finished" and report.summary["variants"]["a"]["calls"]["errors"] == 0
    assert fake_openai.request_count == ROWS * 2 + 2  # the two throttled requests, sent again once each
    times = {n: t for t, n, _ in fake_openai.concurrency_timeline}
    first_429 = times[11]
    during = [n for n, t in times.items() if first_429 + 0.25 < t < first_429 + 0.9]
    assert not during, during
    assert len(_rows(builder.root / "ray.db")[0]) == ROWS * 2
    # the cost budget is the driver's: stopped before spending more, and nothing called that was not kept
    suite = builder.suite(**{**yaml.safe_load(suite.read_text()), "variants": [
        {"name": v, "prompt": f"{v}.prompty", "target": "fake", "parameters": {"max_tokens": 4}} for v in "ab"]})
    fake_openai.reset_stats()
    stopped = api.run(suite, store=builder.root / "budget.db",
                      options=api.Options(cache=False, executor="ray", max_cost=0.0001))
    assert stopped.status == "budget" and stopped.progress.cost_usd <= 0.0001
    kept = [r for r in _rows(builder.root / "budget.db")[0] if r[5] is not None]
    assert 0 < len(kept) < ROWS * 2 and fake_openai.request_count - len(kept) <= 4  # at most the calls in flight


def _count(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=5)
        n = con.execute("SELECT count(*) FROM scores").fetchone()[0]
        con.close()
        return n
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_driver_killed_then_resumed_on_ray_equals_uninterrupted_run(builder: SuiteBuilder, fake_openai) -> None:
    suite = _suite(builder, rows=150, pause=0.005, ray={"batch_size": 8})
    ref = api.run(suite, store=builder.root / "ref.db", options=api.Options(cache=False))
    db = builder.root / "ray.db"
    env = {**os.environ, **NO_TELEMETRY}
    proc = subprocess.Popen([sys.executable, "-m", "promptgauge", "run", str(suite), "--no-progress", "--no-cache",
                             "--executor", "ray", "--store", str(db)], cwd=builder.root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while _count(db) < 150 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _count(db)
    assert 0 < partial < 300 * 5, partial
    out = run_cli("run", str(suite), "--no-progress", "--no-cache", "--executor", "ray", "--store", str(db),
                  "--resume", cwd=builder.root, timeout=300)
    assert out.returncode in (0, 1), out.stderr
    assert _rows(db, latency=False) == _rows(builder.root / "ref.db", ref.run_id, latency=False)


@pytest.mark.slow
def test_local_model_replicas_answer_like_the_in_process_model(ray_session, builder: SuiteBuilder) -> None:
    """local:smollm2 in two replica actors (each loads the model once): the same answers as in process."""
    builder.dataset([{"id": f"r{i}", "question": q, "ground_truth": a} for i, (q, a) in enumerate(
        [("What is the capital of France?", "Paris"), ("What is 2 + 2?", "4"), ("Name a colour.", "red"),
         ("What is the capital of Japan?", "Tokyo")])])
    builder.prompt("a.prompty", "system:\nAnswer in one word.\n\nuser:\n{{question}}\n",
                   front="model:\n  parameters:\n    temperature: 0\n    max_tokens: 8\n")
    suite = builder.suite(variants=[{"name": "a", "prompt": "a.prompty", "target": "local:smollm2"}], baseline="a",
                          evaluators=[{"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}}],
                          gate={"rules": ["contains.pass_rate >= 0"]},
                          runner={"concurrency": 2, "timeout": 120, "ray": {"replicas": 2}})
    from promptgauge.targets import local as local_model

    loaded = dict(local_model._models)
    on_ray = api.run(suite, store=builder.root / "ray.db", options=api.Options(cache=False, executor="ray"))
    assert local_model._models == loaded  # the driver loaded no model: the replicas did
    local = api.run(suite, store=builder.root / "local.db", options=api.Options(cache=False))
    assert [r[5] for r in _rows(builder.root / "ray.db")[0]] == [r[5] for r in _rows(builder.root / "local.db")[0]]
    assert all(r[5] for r in _rows(builder.root / "ray.db")[0])
    assert on_ray.summary["variants"]["a"]["metrics"] == local.summary["variants"]["a"]["metrics"]


def test_ci_on_ray_from_the_command_line(builder: SuiteBuilder, fake_openai) -> None:
    suite = _suite(builder, rows=8)
    res = run_cli("ci", str(suite), "--executor", "ray", "--out", "out", "--no-cache", cwd=builder.root, timeout=300,
                  env=NO_TELEMETRY)
    summary = json.loads((builder.root / "out" / "summary.json").read_text())
    assert res.returncode == (0 if summary["gate"]["passed"] else 1), res.stdout + res.stderr
    assert summary["variants"]["a"]["calls"]["n"] == 8 and summary["status"] == "finished"
    assert os.getpid() not in {p for p, _ in _pids(builder.root)} and len(_pids(builder.root)) == 16
    res = run_cli("run", str(suite), "--executor", "local", "--ray-address", "127.0.0.1:6379", cwd=builder.root)
    assert res.returncode == 2 and "--ray-address needs --executor ray" in res.stderr
