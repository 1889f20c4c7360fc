"""Per-call seeds from one run seed, and counterbalanced call order, on the real fake OpenAI server."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from typing import Any

import pytest
from conftest import run_cli

from promptgauge import api
from promptgauge.engine import call_order, call_seed
from promptgauge.engine.seeds import base_seed, target_parameters
from promptgauge.report.markdown import ORDER_NOTE
from promptgauge.testing.browser import Browser

ROWS = ("fr", "jp", "it", "es")


def test_call_seed_is_stable_in_range_and_depends_on_every_part():
    # The same parts give the same seed in every process, on every platform, in every version.
    assert call_seed(0, "cap-01", "friendly") == 59924740
    assert call_seed(7, "cap-01", "friendly", repeat=2, role="judge:relevance") == 1100817842
    parts = dict(base=3, row_id="r1", variant="v", repeat=1, turn=2, step=3, role="target")
    seed = call_seed(**parts)
    for name, other in [("base", 4), ("row_id", "r2"), ("variant", "w"), ("repeat", 0), ("turn", 1), ("step", 0),
                        ("role", "user")]:
        assert call_seed(**{**parts, name: other}) != seed, name
    many = [call_seed(0, f"row-{i}", "v", r) for i in range(2000) for r in range(3)]
    assert all(0 <= s < 2**31 for s in many)
    assert len(set(many)) == len(many)  # no collisions among 6000 calls


def test_seeded_parameters_base_and_fixed_mode():
    assert base_seed(5, {"temperature": 1}) == 5 and base_seed(5, {"seed": 42}) == 42
    per_call = target_parameters({"seed": 42, "top_p": 1}, mode="per_call", run_seed=5, row_id="r", variant="v",
                                 repeat=1)
    assert per_call == {"seed": call_seed(42, "r", "v", 1), "top_p": 1}
    assert target_parameters({"seed": 42}, mode="fixed", run_seed=5, row_id="r", variant="v", repeat=0) == {"seed": 42}
    assert target_parameters({"seed": 42}, mode="fixed", run_seed=5, row_id="r", variant="v", repeat=2) == {"seed": 44}
    assert target_parameters({}, mode="fixed", run_seed=5, row_id="r", variant="v", repeat=2) == {}


def _calls(fake_openai) -> list[tuple[str, str, Any]]:
    """(row, variant, seed) of each chat request, in arrival order (variant a's prompt has a system message)."""
    out = []
    for r in fake_openai.requests:
        msgs = r.body["messages"]
        row = next(k for k, q in zip(ROWS, ("France", "Japan", "Italy", "Spain"), strict=True) if q in msgs[-1]["content"])
        out.append((row, "a" if len(msgs) == 2 else "b", r.body.get("seed")))
    return out


def _manifest(report: api.RunReport) -> dict[str, Any]:
    return report.summary["manifest"]


def test_every_call_gets_its_own_seed_reproducibly(builder, fake_openai):
    runner = {"concurrency": 1, "timeout": 2, "retries": 0, "repeats": 2, "cache": False}
    builder.suite(runner=runner)
    report = api.run(builder.root / "promptgauge.yaml")
    calls = _calls(fake_openai)
    want = {(row, v, call_seed(0, row, v, rep)) for row in ROWS for v in "ab" for rep in range(2)}
    assert len(calls) == 16 and set(calls) == want and len({s for *_, s in calls}) == 16
    m = _manifest(report)
    assert (m["seed"], m["seeds"], m["order"]) == (0, "per_call", "balanced")
    # run to run: the same seeds, row by row
    fake_openai.reset_stats()
    api.run(builder.root / "promptgauge.yaml")
    assert set(_calls(fake_openai)) == want
    # another run seed (the CLI's --seed): other seeds, recorded in the manifest
    fake_openai.reset_stats()
    out = run_cli("run", "--no-progress", "--seed", "5", cwd=builder.root)
    assert out.returncode in (0, 1), out.stderr
    assert set(_calls(fake_openai)) == {(row, v, call_seed(5, row, v, rep)) for row in ROWS for v in "ab"
                                        for rep in range(2)}
    latest = api.compare("latest:a", "latest:b", suite=builder.root / "promptgauge.yaml")
    assert latest.candidate.manifest["seed"] == 5


def test_a_variants_seed_sets_its_base_and_fixed_restores_one_seed(builder, fake_openai):
    variants = [{"name": "a", "prompt": "a.prompty", "target": "fake"},
                {"name": "b", "prompt": "b.prompty", "target": "fake", "parameters": {"seed": 42}}]
    runner = {"concurrency": 2, "timeout": 2, "retries": 0, "repeats": 2, "cache": False}
    builder.suite(variants=variants, runner=runner)
    api.run(builder.root / "promptgauge.yaml", seed=9)
    assert set(_calls(fake_openai)) == ({(row, "a", call_seed(9, row, "a", rep)) for row in ROWS for rep in range(2)}
                                        | {(row, "b", call_seed(42, row, "b", rep)) for row in ROWS for rep in range(2)})
    # runner.seeds: fixed -- one seed for every call: the variant's own (plus the repeat), or none at all
    builder.suite(variants=variants, runner={**runner, "seeds": "fixed"})
    fake_openai.reset_stats()
    report = api.run(builder.root / "promptgauge.yaml", seed=9)
    assert Counter((v, s) for _, v, s in _calls(fake_openai)) == {("a", None): 8, ("b", 42): 4, ("b", 43): 4}
    assert _manifest(report)["seeds"] == "fixed"


def test_a_python_target_that_declares_seed_gets_each_calls_seed(builder, fake_openai):
    (builder.root / "seeded_app.py").write_text("def answer(question, seed):\n    return f'{question} {seed}'\n"
                                                "def plain(question, **kw):\n    return 'seed' in kw\n")
    variants = [{"name": "s", "target": "python:seeded_app:answer"}, {"name": "p", "target": "python:seeded_app:plain"}]
    builder.suite(variants=variants, baseline="s", evaluators=["exact_match"], gate={"rules": []},
                  runner={"seed": 3})
    report = api.run(builder.root / "promptgauge.yaml")
    rows = {(r["row_id"], r["variant"]): r["output"] for r in _stored(report)}
    for row in ROWS:
        assert rows[(row, "s")].endswith(f" {call_seed(3, row, 's')}")
        assert rows[(row, "p")] == "False"  # one that does not declare it gets no seed (a row column could be one)


def _stored(report: api.RunReport) -> list[dict[str, Any]]:
    from promptgauge.store import Store

    store = Store(report.store_path)
    try:
        return list(store.iter_results(report.run_id))
    finally:
        store.close()


def test_each_rows_calls_come_in_a_seeded_order_of_their_own(builder, fake_openai):
    n = 40
    builder.dataset([{"id": f"q{i:02d}", "question": f"Question {i}?", "ground_truth": "x"} for i in range(n)])
    builder.suite(runner={"concurrency": 1, "timeout": 2, "retries": 0, "cache": False})
    api.run(builder.root / "promptgauge.yaml", seed=11)
    order = [("a" if len(r.body["messages"]) == 2 else "b", r.body["messages"][-1]["content"])
             for r in fake_openai.requests]
    assert len(order) == 2 * n
    firsts = [order[2 * i][0] for i in range(n)]
    # concurrency 1: row by row, each row's pair in call_order(run seed, row id) -- no variant always first
    assert firsts == [call_order(11, f"q{i:02d}", ["a", "b"])[0] for i in range(n)]
    assert all(order[2 * i][1] == order[2 * i + 1][1] == f"Question {i}?" for i in range(n))
    assert 12 <= firsts.count("a") <= 28
    # reproducible: the same seed, the same order; another seed, another order
    fake_openai.reset_stats()
    api.run(builder.root / "promptgauge.yaml", seed=11)
    assert [("a" if len(r.body["messages"]) == 2 else "b") for r in fake_openai.requests][::2] == firsts
    assert [call_order(12, f"q{i:02d}", ["a", "b"])[0] for i in range(n)] != firsts


def test_resume_keeps_the_run_seed(builder, fake_openai):
    # 1 USD per prompt token: the $40 budget stops the run early (as in test_engine_cache).
    builder.suite(gate={"prices": {"gpt-4o-mini": {"input": 1e6, "output": 0.0}}},
                  runner={"concurrency": 1, "timeout": 2, "retries": 0})
    stopped = run_cli("run", "--no-progress", "--max-cost", "40", "--seed", "21", cwd=builder.root)
    assert stopped.returncode == 1 and "stopped at the cost budget" in stopped.stdout
    db = sqlite3.connect(builder.root / ".promptgauge" / "promptgauge.db")
    run_id = db.execute("SELECT run_id FROM runs").fetchone()[0]
    refused = run_cli("run", "--no-progress", "--resume", run_id, "--seed", "22", cwd=builder.root)
    assert refused.returncode == 2 and "runs with seed 21" in refused.stderr and "--seed 21" in refused.stderr
    fake_openai.reset_stats()
    done = run_cli("run", "--no-progress", "--resume", run_id, "--max-cost", "1000", cwd=builder.root)
    assert done.returncode in (0, 1), done.stderr
    assert fake_openai.request_count > 0
    assert all(s == call_seed(21, row, v) for row, v, s in _calls(fake_openai))
    assert json.loads(db.execute("SELECT manifest FROM runs").fetchone()[0])["seed"] == 21


def test_reuse_needs_the_same_run_seed(builder, fake_openai):
    builder.suite()
    api.run(builder.root / "promptgauge.yaml")
    assert api.run(builder.root / "promptgauge.yaml").progress.reused == 8
    fake_openai.reset_stats()
    other = api.run(builder.root / "promptgauge.yaml", seed=1)
    assert other.progress.reused == 0 and fake_openai.request_count == 8  # new seeds: new requests


@pytest.mark.parametrize("where", ["markdown", "html"])
def test_reports_say_once_that_latency_comparisons_are_order_balanced(builder, fake_openai, where):
    builder.suite(variants=[{"name": n, "prompt": "a.prompty", "target": "fake"} for n in ("a", "b", "c")])
    report = api.run(builder.root / "promptgauge.yaml", reports_dir=builder.root / "reports")
    assert report.comparisons and report.summary["manifest"]["order"] == "balanced"
    other_run = api.run(builder.root / "promptgauge.yaml", seed=4, reports_dir=builder.root / "reports")
    within = api.compare(f"{report.run_id}:a", f"{report.run_id}:c", suite=builder.root / "promptgauge.yaml")
    across = api.compare(f"{report.run_id}:a", f"{other_run.run_id}:b", suite=builder.root / "promptgauge.yaml")
    if where == "markdown":
        md = report.reports["markdown"].read_text()
        assert md.count(ORDER_NOTE) == 1 and len(report.comparisons) == 2
        assert md.index("latency_ms.mean") < md.index(ORDER_NOTE) < md.index("## `c")  # under the first comparison
        assert within.reports["markdown"].read_text().count(ORDER_NOTE) == 1
        assert ORDER_NOTE not in across.reports["markdown"].read_text()  # two runs: nothing balanced their order
        return
    with Browser(width=1280, height=900) as b:
        b.open(report.reports["html"].resolve().as_uri())
        notes = b.eval("Array.from(document.querySelectorAll('#order-note')).map(p => "
                       "[p.innerText, p.closest('section').id, p.getBoundingClientRect().height])")
        b.open(across.reports["html"].resolve().as_uri())
        assert b.eval("document.querySelectorAll('#order-note').length") == 0
    assert len(notes) == 1 and notes[0][0] == ORDER_NOTE and notes[0][1] == "cmp-1" and notes[0][2] > 0


def test_dry_run_counts_a_seeded_run_as_cached(builder, fake_openai):
    builder.suite()
    api.run(builder.root / "promptgauge.yaml", seed=3)
    assert api.dry_run(builder.root / "promptgauge.yaml", seed=3).calls == 0
    assert api.dry_run(builder.root / "promptgauge.yaml", seed=4).calls == 8



def test_a_monitors_judges_get_a_seed_per_record(tmp_path, fake_openai):
    from monitor_helpers import HOUR, T0, append, chat_line, write_config

    from promptgauge.monitor import load_monitor_config, run_pass

    seen = {}

    def judge(req: dict[str, Any]) -> str:
        record = next(m["content"] for m in req["messages"] if "question about" in m["content"])
        seen[record.split("question about ")[1].split()[0]] = (req.get("seed"), req.get("temperature"))
        return json.dumps({"reason": "ok", "score": 4})

    fake_openai.responder = judge
    (tmp_path / "logs").mkdir()
    append(tmp_path / "logs" / "app.jsonl",
           [chat_line(f"r{k}", T0 + k * HOUR / 4 + 60, f"question about r{k} now", f"Answer {k}.") for k in range(6)])
    cfg = write_config(tmp_path, evaluators=["relevance"], judge="fake", alerts=[],
                       targets={"fake": {"type": "openai", "base_url": fake_openai.base_url, "model": "gpt-4o-mini"}},
                       runner={"concurrency": 2, "timeout": 5, "retries": 0, "seed": 8})
    run_pass(load_monitor_config(cfg))
    assert seen == {f"r{k}": (call_seed(8, f"r{k}", "", 0, role="judge:relevance"), 0.0) for k in range(6)}
