"""Sampling: rate, cap per window, strata; reproducible with a seed."""

from __future__ import annotations

import random
import sqlite3

from monitor_helpers import append, hour_lines, write_config

from promptgauge.monitor import load_monitor_config, run_pass
from promptgauge.monitor.config import SamplingConfig
from promptgauge.monitor.sampling import Sampler


def _sampled(root) -> list[tuple[str, str, int]]:
    con = sqlite3.connect(root / ".promptgauge" / "promptgauge.db")
    try:
        return con.execute("SELECT record_id, stratum, win FROM monitor_records WHERE sampled=1 ORDER BY 1").fetchall()
    finally:
        con.close()


def test_rate_is_met_and_the_same_seed_gives_the_same_sample():
    counts = {}
    ids = [f"id-{i}" for i in range(20000)]
    for seed in (1, 1, 2):
        s = Sampler(SamplingConfig(rate=0.25, seed=seed), lambda w, s: 0)
        counts.setdefault(seed, []).append({i for i in ids if s.take(i, 0, None)})
    a, b = counts[1]
    assert a == b and abs(len(a) / len(ids) - 0.25) < 0.01
    assert a != counts[2][0] and abs(len(counts[2][0]) / len(ids) - 0.25) < 0.01


def test_strata_rates_and_cap_per_window():
    s = Sampler(SamplingConfig(rate=0.1, rates={"billing": 1.0}, cap_per_window=50, stratify_by="route"),
                lambda w, st: 10 if st == "billing" else 0)
    took = {("faq", 0): 0, ("billing", 0): 0, ("billing", 1): 0}
    for i in range(1000):
        for key in took:
            took[key] += s.take(f"{key}-{i}", key[1], key[0])
    assert took[("billing", 0)] == 40  # 10 already stored in that window: 40 more reach the cap
    assert took[("billing", 1)] == 40
    assert took[("faq", 0)] == 50  # 10% of 1000 ~ 100 > cap


def test_pipeline_sampling_is_reproducible_and_stratified(tmp_path):
    rng = random.Random(7)
    lines = [line for h in range(3) for line in hour_lines(h, 200, p_valid=0.9, rng=rng)]
    sampling = {"rate": 0.3, "rates": {"billing": 0.9}, "stratify_by": "route", "cap_per_window": 60, "seed": 42}
    runs = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        cfg = write_config(root, sampling=sampling)
        append(root / "logs" / "app.jsonl", lines)
        result = run_pass(load_monitor_config(cfg))
        assert result.report["pass"]["total"]["scored"] == result.report["pass"]["total"]["sampled"]
        runs.append(_sampled(root))
    assert runs[0] == runs[1] and runs[0]
    per = {}
    for _, stratum, win in runs[0]:
        per[(stratum, win)] = per.get((stratum, win), 0) + 1
    assert set(per.values()) <= set(range(1, 61)) and max(per.values()) == 60  # billing hits the cap
    assert all(per[("faq", w)] < 60 for _, w in per)  # faq at 30% of ~100 stays under it
