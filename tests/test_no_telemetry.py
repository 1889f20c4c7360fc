"""No telemetry: a run with an azure-ai-evaluation evaluator and a promptflow flow target, through each entry point
(CLI, Python API, a pytest session with the plugin), opens no connection and resolves no name beyond loopback.

The check is real, not a mock: each process starts with a ``sitecustomize`` that installs an audit hook
(``sys.addaudithook``) on ``socket.connect`` and ``socket.getaddrinfo`` and writes down every non-loopback
address; at exit it also notes an Azure Monitor control plane that was started (it fetches its configuration on a
background thread, sooner or later) and waits two seconds, so background threads get their chance to try.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FLOWS = Path(__file__).parent / "flows"
SITECUSTOMIZE = '''
import atexit, os, sys, time
_OUT = os.environ["PG_NET_LOG"]
_LOOPBACK = ("127.", "::1", "localhost")


def _note(what):
    with open(_OUT, "a", encoding="utf-8") as f:
        f.write(what + "\\n")


def _hook(event, args):
    if event == "socket.connect":
        addr = args[1]
        if isinstance(addr, tuple) and not str(addr[0]).startswith(_LOOPBACK):
            _note(f"connect {addr!r}")
    elif event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if host is not None and not str(host).startswith(_LOOPBACK):
            _note(f"getaddrinfo {host!r}")


def _at_exit():
    state = sys.modules.get("azure.monitor.opentelemetry.exporter._configuration._state")
    if state is not None and state._configuration_manager is not None:  # it fetches from the network, when it gets to it
        _note("Azure Monitor control plane started")
    time.sleep(2.0)


sys.addaudithook(_hook)
atexit.register(_at_exit)
'''


@pytest.fixture
def watched(builder, tmp_path):
    """A suite with a flex flow target and azure's F1 evaluator; the environment of a watched process."""
    shutil.copytree(FLOWS / "flex", builder.root / "flex")
    builder.dataset([{"id": "fr", "question": "What is the capital of France?", "ground_truth": "Paris"}])
    builder.suite(targets={"flex": {"type": "flow", "flow": "flex"}}, variants=[{"name": "f", "target": "flex"}],
                  baseline=None, gate={"rules": []},
                  evaluators=[{"name": "f1", "type": "azure.ai.evaluation:F1ScoreEvaluator",
                               "column_mapping": {"response": "${target.answer}", "ground_truth": "${data.ground_truth}"}}])
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "net.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APPLICATIONINSIGHTS_", "PF_DISABLE_TRACING", "PYTEST_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
               PG_NET_LOG=str(log), HOME=str(tmp_path / "home"))
    return builder.root, env, log


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_run_contacts_nothing_beyond_loopback(watched):
    root, env, log = watched
    proc = _run(["-m", "promptgauge", "run", "--no-progress"], root, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "f1" in proc.stdout
    assert not log.exists(), log.read_text()


@pytest.mark.slow
def test_api_run_contacts_nothing_beyond_loopback(watched):
    root, env, log = watched
    code = "import promptgauge, sys; r = promptgauge.run('promptgauge.yaml'); sys.exit(0 if r.summary['variants'] else 1)"
    proc = _run(["-c", code], root, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not log.exists(), log.read_text()


@pytest.mark.slow
def test_pytest_session_with_azure_evaluator_contacts_nothing_beyond_loopback(watched):
    root, env, log = watched
    (root / "test_azure_in_pytest.py").write_text(
        "from azure.ai.evaluation import F1ScoreEvaluator\n\n\n"
        "def test_f1():\n"
        "    assert F1ScoreEvaluator()(response='Paris', ground_truth='Paris')['f1_score'] == 1.0\n")
    proc = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "test_azure_in_pytest.py"], root, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not log.exists(), log.read_text()
