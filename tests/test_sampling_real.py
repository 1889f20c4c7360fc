"""Sampling on the embedded model, for real: outputs independent of history, repeats that are distinct samples
and reproducible, and a gate that holds on real model noise (A/A) while catching a real degradation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from promptgauge import api
from promptgauge.engine import Options, call_seed
from promptgauge.store import Store

pytestmark = pytest.mark.slow

TEMPERATURE = 0.9
FRIENDLY = "system:\nYou are a helpful assistant.\n\nuser:\n{{question}}\n"
#: The degraded prompt hides what the answer depends on: the question's country.
HIDDEN = "system:\nYou are a helpful assistant.\n\nuser:\nWhat is the capital?\n"


def _prompt(path: Path, body: str, max_tokens: int) -> None:
    front = (f"model:\n  api: chat\n  parameters:\n    temperature: {TEMPERATURE}\n    max_tokens: {max_tokens}\n"
             "inputs:\n  question:\n    type: string\n")
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")


def _suite(root: Path, *, rows: list[dict[str, Any]], candidate: str = FRIENDLY, max_tokens: int = 12,
           repeats: int = 1) -> Path:
    """Two variants on the embedded model: a (the friendly prompt) and b (*candidate*), gated by no_regression."""
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _prompt(root / "a.prompty", FRIENDLY, max_tokens)
    _prompt(root / "b.prompty", candidate, max_tokens)
    doc = {
        "name": "sampling", "dataset": "data.jsonl", "baseline": "a",
        "variants": [{"name": "a", "prompt": "a.prompty", "target": "local:smollm2"},
                     {"name": "b", "prompt": "b.prompty", "target": "local:smollm2"}],
        "evaluators": [{"name": "contains", "column_mapping": {"response": "${target.response}",
                                                               "value": "${data.ground_truth}"}}],
        "gate": {"rules": ["contains: no_regression(max_drop=0, alpha=0.05)"]},
        "runner": {"concurrency": 1, "repeats": repeats, "cache": False},
    }
    path = root / "promptgauge.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _capitals() -> list[dict[str, Any]]:
    return [json.loads(x) for x in (REPO / "datasets" / "capitals.jsonl").read_text().splitlines() if x.strip()]


def _outputs(report: api.RunReport) -> dict[tuple[str, str, int], str]:
    store = Store(report.store_path)
    try:
        return {(r["row_id"], r["variant"], r["repeat"]): r["output"] for r in store.iter_results(report.run_id)}
    finally:
        store.close()


def test_the_same_request_gives_the_same_output_whatever_ran_before():
    """Calls in two different orders (and one request twice in a row) give byte-identical outputs at 0.9."""
    from promptgauge.targets.local import LocalTarget, model_file

    target = LocalTarget("local:smollm2", model_file("smollm2"), "smollm2")
    rows = _capitals()[:6]
    system = {"friendly": "You are a helpful assistant.", "terse": "Answer with one word only."}
    calls = [(r, v) for r in rows for v in system]

    async def run(order: list[tuple[dict[str, Any], str]], base: int = 0) -> dict[tuple[str, str], str]:
        out = {}
        for row, v in order:
            messages = [{"role": "system", "content": system[v]}, {"role": "user", "content": row["question"]}]
            params = {"temperature": TEMPERATURE, "max_tokens": 16, "seed": call_seed(base, row["id"], v)}
            out[(row["id"], v)] = (await target.complete(messages, params, {})).text
        return out

    forward = asyncio.run(run(calls))
    backward = asyncio.run(run(calls[::-1]))
    twice = asyncio.run(run([calls[0], calls[0]]))  # the whole prompt already in the model's cache
    assert forward == backward
    assert twice[(rows[0]["id"], "friendly")] == forward[(rows[0]["id"], "friendly")]
    other = asyncio.run(run(calls, base=1))  # sampled at 0.9: other seeds, other outputs
    assert sum(other[k] != forward[k] for k in forward) >= len(forward) // 2


def test_repeats_are_distinct_samples_reproducible_across_runs_and_row_orders(tmp_path):
    rows = _capitals()[:5]
    suite = _suite(tmp_path, rows=rows, max_tokens=16, repeats=3)
    first = _outputs(api.run(suite, variants=["a"], options=Options(cache=False)))
    assert len(first) == 15
    distinct = [len({first[(r["id"], "a", k)] for k in range(3)}) for r in rows]
    assert sum(d > 1 for d in distinct) >= 4, distinct  # before per-call seeds: 14 of 15 repeats were one sample
    # Another run, the rows in reverse order: the same sample for every (row, repeat), byte for byte.
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[::-1]), encoding="utf-8")
    again = _outputs(api.run(suite, variants=["a"], options=Options(cache=False)))
    assert again == first
    other_seed = _outputs(api.run(suite, variants=["a"], options=Options(cache=False), seed=1))
    assert sum(other_seed[k] != first[k] for k in first) >= 5  # another run seed: other samples


#: A/A pairs and degraded pairs the CI test runs (a few minutes on 2 cores); the README reports a longer run.
AA_PAIRS, DROP_PAIRS = 12, 3


def _gate_fails(tmp_path: Path, name: str, seed: int, candidate: str) -> tuple[bool, float, float]:
    root = tmp_path / name
    root.mkdir()
    suite = _suite(root, rows=_capitals(), candidate=candidate)
    report = api.run(suite, seed=seed, reports_dir=root / "reports")
    m = {v: s["metrics"]["contains"]["pass_rate"] for v, s in report.summary["variants"].items()}
    return not report.passed, m["a"], m["b"]


def test_the_gate_holds_on_real_model_noise_and_catches_a_real_drop(tmp_path):
    """Two copies of one prompt at temperature 0.9, K independent pairs (run seeds 1..K): the no_regression gate
    fails no more often than alpha allows; a prompt that hides the question's country is caught."""
    aa = [_gate_fails(tmp_path, f"aa{k}", k, FRIENDLY) for k in range(1, AA_PAIRS + 1)]
    drops = [_gate_fails(tmp_path, f"drop{k}", 100 + k, HIDDEN) for k in range(1, DROP_PAIRS + 1)]
    false_alarms = sum(failed for failed, _, _ in aa)
    caught = sum(failed for failed, _, _ in drops)
    print(f"A/A: {false_alarms}/{AA_PAIRS} false regressions; pass rates {[(a, b) for _, a, b in aa]}")
    print(f"degraded: {caught}/{DROP_PAIRS} caught; pass rates {[(a, b) for _, a, b in drops]}")
    # Binomial tolerance of alpha = 0.05 over 12 pairs: P(X >= 4) = 0.002. One seed for every call failed
    # 3 of 5 such pairs.
    assert false_alarms <= 3
    # Real sampling noise: the two copies of the prompt do not agree on every row of every pair.
    assert any(a != b for _, a, b in aa)
    assert caught == DROP_PAIRS


def test_outputs_do_not_depend_on_the_number_of_model_threads(tmp_path):
    """PROMPTGAUGE_LOCAL_THREADS (one thread is faster on a busy machine) changes speed, never an output."""
    import os
    import subprocess
    import sys

    script = tmp_path / "sample.py"
    script.write_text(
        "import asyncio, json\n"
        "from promptgauge.targets.local import LocalTarget, model_file\n"
        "t = LocalTarget('local:smollm2', model_file('smollm2'), 'smollm2')\n"
        "qs = ['What is the capital of France?', 'Name a prime number.', 'What is 2+3?']\n"
        "async def go():\n"
        "    return [(await t.complete([{'role': 'user', 'content': q}],\n"
        "             {'temperature': 0.9, 'max_tokens': 24, 'seed': 100 + i}, {})).text for i, q in enumerate(qs)]\n"
        "print(json.dumps(asyncio.run(go())))\n", encoding="utf-8")
    outs = [subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True,
                           env={**os.environ, "PROMPTGAUGE_LOCAL_THREADS": n}).stdout for n in ("1", "2")]
    assert outs[0] == outs[1] and len(json.loads(outs[0])) == 3
