"""Shared fixtures: a real OpenAI-compatible server on 127.0.0.1 and a suite builder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from promptgauge.testing.fake_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def _server() -> FakeOpenAIServer:
    with FakeOpenAIServer(latency=0.0, seed=0) as srv:
        yield srv


@pytest.fixture
def fake_openai(_server: FakeOpenAIServer) -> FakeOpenAIServer:
    """The session's fake OpenAI server, reset to defaults (no faults, no latency) for this test."""
    _server.reset()
    yield _server
    _server.reset()


def capital_replies() -> dict[str, str]:
    """Deterministic answers the fake server gives to the test dataset's questions."""
    return {
        "What is the capital of France?": "Paris",
        "What is the capital of Japan?": "Tokyo",
        "What is the capital of Italy?": "Rome, of course.",
        "What is the capital of Spain?": "Barcelona",
    }


class SuiteBuilder:
    """Writes a suite, its dataset and prompts into a temporary folder."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = root
        self.base_url = base_url

    def dataset(self, rows: list[dict[str, Any]], name: str = "data.jsonl") -> Path:
        path = self.root / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    def prompt(self, name: str, body: str, front: str = "model:\n  parameters:\n    temperature: 0\n") -> Path:
        path = self.root / name
        path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
        return path

    def suite(self, **overrides: Any) -> Path:
        """Write promptgauge.yaml; defaults: one 'fake' target on the server, two variants."""
        doc: dict[str, Any] = {
            "name": "t",
            "dataset": "data.jsonl",
            "targets": {"fake": {"type": "openai", "base_url": self.base_url, "model": "gpt-4o-mini"}},
            "variants": [
                {"name": "a", "prompt": "a.prompty", "target": "fake"},
                {"name": "b", "prompt": "b.prompty", "target": "fake"},
            ],
            "baseline": "a",
            "evaluators": [
                {"name": "exact_match", "params": {"ignore_case": True}},
                {"name": "contains", "column_mapping": {"value": "${data.ground_truth}"}},
            ],
            "gate": {"rules": ["exact_match.pass_rate >= 0.5"]},
            "runner": {"concurrency": 4, "timeout": 2, "retries": 2, "backoff_base": 0.01, "backoff_max": 0.1},
        }
        doc.update(overrides)
        path = self.root / "promptgauge.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path


@pytest.fixture
def builder(tmp_path: Path, fake_openai: FakeOpenAIServer) -> SuiteBuilder:
    """A suite folder with a 4-row capitals dataset and two prompts, answered by the fake server."""
    fake_openai.replies = capital_replies()
    b = SuiteBuilder(tmp_path, fake_openai.base_url)
    b.dataset([
        {"id": "fr", "question": "What is the capital of France?", "ground_truth": "Paris"},
        {"id": "jp", "question": "What is the capital of Japan?", "ground_truth": "Tokyo"},
        {"id": "it", "question": "What is the capital of Italy?", "ground_truth": "Rome"},
        {"id": "es", "question": "What is the capital of Spain?", "ground_truth": "Madrid"},
    ])
    b.prompt("a.prompty", "system:\nAnswer briefly.\n\nuser:\n{{question}}\n")
    b.prompt("b.prompty", "user:\n{{question}}\n")
    return b


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real ``promptgauge`` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "promptgauge", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


def cli(capsys, root: Path, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process in *root*; return (exit code, stdout, stderr)."""
    from promptgauge.cli import main

    old = os.getcwd()
    os.chdir(root)
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return code, out.out, out.err
