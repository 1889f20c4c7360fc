"""The embedded model, for real: shapes and plumbing (its answers are weak; wording is not checked)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REPO, run_cli

pytestmark = pytest.mark.slow


def test_example_suite_runs_offline_on_the_embedded_model(tmp_path):
    for name in ("promptgauge.yaml", "datasets", "flows", "evaluators"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    # No network: any attempt to reach a remote API would fail loudly.
    env = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "HF_HUB_OFFLINE": "1"}
    proc = run_cli("run", "--no-progress", "--limit", "3", cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # the gate may go either way on 3 rows
    assert "gate: " in proc.stdout
    run_dir = next((tmp_path / "reports").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["variants"]) == {"friendly", "terse"}
    info = summary["manifest"]["variants"]["terse"]["target_info"]
    assert info["kind"] == "local" and info["model"] == "smollm2" and len(info["sha256"]) == 64
    for v in summary["variants"].values():
        assert v["calls"]["n"] == 3 and v["calls"]["errors"] == 0
        assert v["calls"]["tokens"]["completion"] > 0 and v["calls"]["latency_ms"]["p50"] > 0
        assert set(v["metrics"]) == {"contains", "f1", "brevity", "latency"}
        assert v["metrics"]["contains"]["n"] == 3 and 0.0 <= v["metrics"]["f1"]["mean"] <= 1.0
    results = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(results) == 6
    for r in results:
        assert isinstance(r["output"], str) and r["output"].strip()
        assert r["scores"]["brevity"]["details"]["words"] == len(r["output"].split())


def test_embedded_model_is_deterministic_at_temperature_zero():
    import asyncio

    from promptgauge.targets.local import LocalTarget, model_file

    target = LocalTarget("local:smollm2", model_file("smollm2"), "smollm2")
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    async def twice():
        a = await target.complete(messages, {"temperature": 0, "max_tokens": 12}, {})
        b = await target.complete(messages, {"temperature": 0, "max_tokens": 12}, {})
        return a, b

    a, b = asyncio.run(twice())
    assert a.text == b.text and a.completion_tokens <= 12 and a.prompt_tokens > 5


def test_embedded_model_streams_the_same_answer_with_time_to_first_token():
    import asyncio

    from promptgauge.targets.local import LocalTarget, model_file

    target = LocalTarget("local:smollm2", model_file("smollm2"), "smollm2")
    messages = [{"role": "user", "content": "What is the capital of France?"}]

    async def both():
        plain = await target.complete(messages, {"temperature": 0, "max_tokens": 12}, {})
        streamed = await target.complete(messages, {"temperature": 0, "max_tokens": 12, "stream": True,
                                                    "stream_options": {"include_usage": True}}, {})
        return plain, streamed

    plain, streamed = asyncio.run(both())
    assert streamed.text == plain.text and plain.ttft_ms is None
    assert streamed.ttft_ms is not None and streamed.ttft_ms > 0
    assert streamed.completion_tokens and streamed.completion_tokens <= 12
    assert streamed.tokens_per_s is None or streamed.tokens_per_s > 0


def test_a_model_file_is_hashed_once_and_again_when_it_changes(tmp_path, monkeypatch):
    import hashlib
    import os

    from promptgauge.targets import local

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"weights v1")
    a, b = local.LocalTarget("a", model, "m"), local.LocalTarget("b", model, "m")
    assert a.describe()["sha256"] == b.describe()["sha256"] == hashlib.sha256(b"weights v1").hexdigest()
    remembered = json.loads(local.digest_file().read_text())
    assert list(remembered.values()) == [hashlib.sha256(b"weights v1").hexdigest()]
    local._DIGESTS.clear()  # as a new process: the digest comes from the digest file, the model is not read
    st = model.stat()  # (proof: same-size bytes written in place, mtime put back -- the remembered digest comes)
    model.write_bytes(b"weights v9")
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert local.LocalTarget("c", model, "m").describe()["sha256"] == hashlib.sha256(b"weights v1").hexdigest()
    model.write_bytes(b"other weights v2")  # another size and mtime: hashed again, the old entry replaced
    assert local.LocalTarget("d", model, "m").describe()["sha256"] == hashlib.sha256(b"other weights v2").hexdigest()
    assert list(json.loads(local.digest_file().read_text()).values()) == [hashlib.sha256(b"other weights v2").hexdigest()]
    local._DIGESTS.clear()
    local.digest_file().write_text("{not json")  # a broken digest file is ignored and rewritten
    assert local.LocalTarget("e", model, "m").describe()["sha256"] == hashlib.sha256(b"other weights v2").hexdigest()
    assert json.loads(local.digest_file().read_text())
