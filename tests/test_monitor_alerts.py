"""Alert delivery (exit code, webhook on 127.0.0.1, report), the HTML report in Chromium, a run as reference."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import REPO, run_cli
from monitor_helpers import HOUR, T0, append, chat_line, hour_lines, write_config

from promptgauge import api
from promptgauge.monitor import load_monitor_config, run_pass


class Hook:
    """A local webhook receiver that records JSON POSTs and answers with a settable status."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append({"body": json.loads(body), "auth": self.headers.get("Authorization")})
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def _drop_stream(root, seed=0, hours=26, drop_from=25):
    rng = random.Random(seed)
    append(root / "logs" / "app.jsonl",
           [line for h in range(hours) for line in hour_lines(h, 60, p_valid=0.95 if h < drop_from else 0.5, rng=rng)])


def test_webhook_gets_each_new_alert_once_and_failures_are_retried(tmp_path, hook, monkeypatch):
    monkeypatch.setenv("PG_TEST_HOOK", hook.url)
    monkeypatch.setenv("PG_TEST_TOKEN", "s3cret-token")
    cfg = write_config(tmp_path, webhook={"url": "${env:PG_TEST_HOOK}", "retries": 0,
                                          "headers": {"Authorization": "Bearer ${env:PG_TEST_TOKEN}"}})
    _drop_stream(tmp_path, hours=25, drop_from=24)
    hook.status = 503
    r = run_pass(load_monitor_config(cfg))
    assert r.alerting and r.report["webhook"] == {"delivered": False, "alerts": 1, "error": "HTTP 503"}
    hook.status = 200
    r = run_pass(load_monitor_config(cfg))  # no new records, alert still standing: delivered now
    assert r.alerting and r.report["webhook"]["delivered"] is True
    assert len(hook.posts) == 2
    post = hook.posts[-1]
    assert post["auth"] == "Bearer s3cret-token"
    body = post["body"]
    assert body["monitor"] == "bot" and body["window"]["start"] == T0 + 24 * HOUR
    assert [a["metric"] for a in body["alerts"]] == ["json_valid.pass_rate"]
    assert body["alerts"][0]["pvalue_adjusted"] < 0.05
    r = run_pass(load_monitor_config(cfg))  # delivered already: not sent again
    assert r.alerting and r.report["webhook"] is None and len(hook.posts) == 2
    for path in r.reports.values():  # the URL and the token stay out of the reports
        text = path.read_text()
        assert hook.url not in text and "s3cret-token" not in text


@pytest.mark.slow
def test_cli_exit_codes(tmp_path):
    cfg = write_config(tmp_path)
    rng = random.Random(3)
    append(tmp_path / "logs" / "app.jsonl", [l for h in range(25) for l in hour_lines(h, 60, p_valid=0.95, rng=rng)])
    p = run_cli("monitor", "--config", str(cfg), "--once", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "healthy" in p.stdout and "1500 new records" in p.stdout
    append(tmp_path / "logs" / "app.jsonl", hour_lines(25, 60, p_valid=0.4, rng=rng))
    p = run_cli("monitor", "--config", str(cfg), "--once", cwd=tmp_path)
    assert p.returncode == 1 and "ALERT" in p.stdout and "json_valid.pass_rate" in p.stdout
    (tmp_path / "monitor.yaml").write_text("name: x\nsources: []\nevaluators: [json_valid]\n")
    p = run_cli("monitor", "--config", str(cfg), "--once", cwd=tmp_path)
    assert p.returncode == 2 and "monitor.yaml:2" in p.stderr and "sources" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_html_report_in_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the HTML report is checked in headless Chromium (apt-get install chromium)"
    cfg = write_config(tmp_path, min_n=20, alerts=[{"metric": "json_valid.pass_rate", "relative_drop": 0.1},
                                                    {"metric": "error_rate", "above": 0.2}])
    _drop_stream(tmp_path, hours=27)
    evil = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'
    append(tmp_path / "logs" / "app.jsonl", [chat_line(f"x{i}", T0 + 26 * HOUR + i, evil, evil) for i in range(3)])
    r = run_pass(load_monitor_config(cfg))
    html = r.reports["html"]
    text = html.read_text()
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html.as_uri()],
                         capture_output=True, text=True, timeout=60).stdout
    assert '<span class="badge alert" id="status">ALERT</span>' in dom
    assert "<title>Monitor bot: alert</title>" in dom  # no injected script ran
    assert dom.count('<svg class="chart"') == 3  # pass rate, error rate, traffic
    assert dom.count('class="alert"') >= 2 and 'class="band"' in dom  # alert points and the reference band
    assert "&lt;script&gt;" in dom and "<img" not in dom  # examples shown as text
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1100,1400", html.as_uri()], capture_output=True, timeout=60)
    assert shot.stat().st_size > 20_000


def test_reference_is_the_promoted_evaluation_run(builder, fake_openai, tmp_path):
    """The offline run of the promoted variant is the reference; production below it alerts."""
    fake_openai.replies = {q: json.dumps({"city": c}) for q, c in (
        ("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"),
        ("What is the capital of Italy?", "Rome"), ("What is the capital of Spain?", "Madrid"))}
    suite = builder.suite(evaluators=["json_valid"], gate={"rules": ["json_valid.pass_rate >= 0.5"]})
    report = api.run(suite)
    assert report.summary["variants"]["a"]["metrics"]["json_valid"]["pass_rate"] == 1.0
    cfg = write_config(tmp_path, min_n=4, reference={"run": "latest", "suite": "t", "variant": "a"},
                       store=str(builder.root / ".promptgauge" / "promptgauge.db"))
    rng = random.Random(1)
    append(tmp_path / "logs" / "app.jsonl", hour_lines(0, 40, p_valid=0.1, rng=rng))
    r = run_pass(load_monitor_config(cfg))
    assert r.report["reference"] == f"evaluation run {report.run_id}, variant a"
    [alert] = r.report["alerts"]
    assert alert["reference"] == 1.0 and alert["reference_n"] == 4 and alert["value"] < 0.3
    ambiguous = write_config(tmp_path, min_n=4, reference={"run": report.run_id},
                             store=str(builder.root / ".promptgauge" / "promptgauge.db"))
    with pytest.raises(Exception, match="has variants a, b: say which was promoted"):
        run_pass(load_monitor_config(ambiguous))


def test_example_monitor_finds_the_prompt_change(tmp_path):
    example = REPO / "examples" / "monitoring"
    shutil.copytree(example, tmp_path / "ex")
    r = run_pass(load_monitor_config(tmp_path / "ex" / "monitor.yaml"))
    assert r.alerting and [a["metric"] for a in r.report["alerts"]] == ["json_valid.pass_rate", "refusal.pass_rate"]
    first = min(w["start"] for w in r.report["windows"] if w["alerts"] and w["start"] >= T0 + 24 * HOUR)
    assert first >= T0 + 30 * HOUR  # nothing flagged before the prompt change
    t = r.report["pass"]["total"]
    assert t["malformed"] == 1 and r.report["malformed"][0]["line"] == 253
    assert {"email", "card", "iban"} <= set(t["redactions"])


def test_loop_mode_runs_a_pass_every_interval(tmp_path):
    cfg = load_monitor_config(write_config(tmp_path, interval="1s", reference=None, alerts=[]))
    rng = random.Random(9)
    log = tmp_path / "logs" / "app.jsonl"
    append(log, hour_lines(0, 10, p_valid=1.0, rng=rng))
    seen = []

    def on_pass(p):
        seen.append(p.report["pass"]["total"]["records"])
        append(log, hour_lines(len(seen), 5, p_valid=1.0, rng=rng))  # the app keeps logging

    last = api.monitor(cfg, once=False, max_passes=3, on_pass=on_pass)
    assert seen == [10, 5, 5] and last.report["windows"][-1]["records"] == 5
