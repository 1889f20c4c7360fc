"""Drift detection: a known injected drop is found in the right window; no drop, no more alerts than alpha."""

from __future__ import annotations

import random

import numpy as np
import pytest
from monitor_helpers import HOUR, T0, append, hour_lines, write_config

from promptgauge.monitor import load_monitor_config, run_pass
from promptgauge.monitor.drift import Bucket
from promptgauge.monitor.drift import assess as judge


def _pass(cfg_path, tmp_path):
    return run_pass(load_monitor_config(cfg_path), reports_dir=tmp_path / "reports")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_injected_drop_alerts_in_its_window_hour_by_hour(tmp_path, seed):
    """Hourly passes as cron would run them: healthy until the drop, then an alert naming the drop's window."""
    rng = random.Random(seed)
    cfg = write_config(tmp_path)
    log = tmp_path / "logs" / "app.jsonl"
    append(log, [line for h in range(24) for line in hour_lines(h, 100, p_valid=0.9, rng=rng)])
    drop_hour = 30
    statuses = {}
    for h in range(24, 34):
        append(log, hour_lines(h, 100, p_valid=0.9 if h < drop_hour else 0.6, rng=rng))
        result = _pass(cfg, tmp_path)
        assert result.report["latest_window"] == T0 + h * HOUR
        statuses[h] = result.status
    assert all(statuses[h] == "healthy" for h in range(24, drop_hour)), statuses
    assert all(statuses[h] == "alert" for h in range(drop_hour, 34)), statuses
    # the report marks the drop's windows, and only those, as alert points
    windows = {w["start"]: w["alerts"] for w in result.report["windows"]}
    first_alert = min(start for start, alerts in windows.items() if alerts and start >= T0 + 24 * HOUR)
    assert first_alert == T0 + drop_hour * HOUR
    alert = result.report["alerts"][0]
    assert alert["metric"] == "json_valid.pass_rate" and alert["reference"] == pytest.approx(0.9, abs=0.03)
    assert alert["value"] == pytest.approx(0.6, abs=0.1) and alert["pvalue_adjusted"] < 0.05


def _simulate(rng: np.random.Generator, n: int, p_valid: float, levels: np.ndarray) -> Bucket:
    b = Bucket(records=n)
    b.failed = int((rng.random(n) < 0.02).sum())
    passed = rng.random(n) < p_valid
    scores = rng.choice(np.arange(1, 6), size=n, p=levels)  # 1-5 judge scores: many ties
    for ok, s in zip(passed, scores):
        b.add_score("json_valid", float(ok), int(ok), None)
        b.add_score("coherence", float(s), None, None)
    return b


def test_false_alert_rate_without_drop_is_at_most_alpha(tmp_path):
    """A/A windows over many seeds: every comparison rule at once alerts in <= alpha of the windows."""
    cfg = load_monitor_config(write_config(
        tmp_path, evaluators=["json_valid", {"name": "coherence", "type": "latency"}], alpha=0.05,
        alerts=[{"metric": "json_valid.pass_rate", "alpha": 0.05},
                {"metric": "coherence.mean", "alpha": 0.05},
                {"metric": "error_rate", "alpha": 0.05}]))
    levels = np.array([0.05, 0.1, 0.25, 0.4, 0.2])
    seeds = 1000
    alerts = per_rule = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ref = _simulate(rng, 1000, 0.9, levels)
        win = _simulate(rng, 100, 0.9, levels)
        results = judge(cfg, 0, win, ref)
        assert [r.status for r in results] != ["insufficient"] * 3
        alerts += any(r.status == "alert" for r in results)
        per_rule += sum(r.pvalue < 0.05 for r in results)
    assert alerts / seeds <= cfg.alpha
    # Holm is what keeps the family at alpha: unadjusted, the three rules together fire more often
    assert per_rule / seeds > alerts / seeds


@pytest.mark.slow
def test_false_alert_rate_end_to_end_is_at_most_alpha(tmp_path):
    """The whole pipeline on generated streams without a drop: alerts in at most alpha of the seeds."""
    seeds = 40
    alerts = 0
    for seed in range(seeds):
        root = tmp_path / f"s{seed}"
        root.mkdir()
        cfg = write_config(root, alerts=[{"metric": "json_valid.pass_rate", "alpha": 0.05}])
        rng = random.Random(seed)
        append(root / "logs" / "app.jsonl",
               [line for h in (*range(0, 24, 3), 30) for line in hour_lines(h, 100 if h == 30 else 40, p_valid=0.9, rng=rng)])
        result = _pass(cfg, root)
        assert result.report["latest_window"] == T0 + 30 * HOUR
        alerts += result.alerting
    assert alerts / seeds <= 0.05


def test_threshold_min_n_and_error_rate_ceiling(tmp_path):
    cfg = write_config(tmp_path, min_n=50, reference=None, alerts=[
        {"metric": "json_valid.pass_rate", "below": 0.8},
        {"metric": "error_rate", "above": 0.05, "name": "error ceiling"},
        {"metric": "records", "below": 10, "name": "traffic"},
    ])
    rng = random.Random(0)
    log = tmp_path / "logs" / "app.jsonl"
    append(log, hour_lines(0, 40, p_valid=0.5, rng=rng))  # bad, but too few for min_n
    r = _pass(cfg, tmp_path)
    rules = {x["rule"]: x for x in r.report["windows"][-1]["rules"]}
    assert r.status == "healthy"
    assert rules["json_valid.pass_rate < 0.8"]["status"] == "insufficient"
    assert rules["traffic"]["status"] == "ok"
    append(log, hour_lines(1, 100, p_valid=0.95, rng=rng, p_error=0.2))
    r = _pass(cfg, tmp_path)
    rules = {x["rule"]: x for x in r.report["windows"][-1]["rules"]}
    assert r.status == "alert"
    assert rules["error ceiling"]["status"] == "alert" and rules["error ceiling"]["value"] > 0.1
    assert rules["json_valid.pass_rate < 0.8"]["status"] == "ok"
    append(log, hour_lines(2, 5, p_valid=1.0, rng=rng))
    r = _pass(cfg, tmp_path)
    assert [a["rule"] for a in r.report["alerts"]] == ["traffic"]


@pytest.mark.parametrize("direction", [{"direction": "lower"}, {}], ids=["said", "the evaluator's"])
def test_previous_period_reference_and_lower_is_better(tmp_path, direction):
    """A rolling reference (the 6h before each window) and a lower-is-better metric (latency)."""
    cfg = write_config(tmp_path, evaluators=["json_valid", "latency"], reference={"previous": "6h"},
                       alerts=[{"metric": "latency.mean", "relative_drop": 0.2, **direction}])
    rng = random.Random(5)
    lines = [line for h in range(8) for line in hour_lines(h, 60, p_valid=0.9, rng=rng)]
    for line in lines[-60:]:
        line["latency_ms"] *= 2  # the last hour is twice as slow
    append(tmp_path / "logs" / "app.jsonl", lines)
    r = _pass(cfg, tmp_path)
    assert r.status == "alert"
    [alert] = r.report["alerts"]
    assert alert["worse_by"] > 150 and alert["reference_n"] == 360 and alert["test"] == "mann-whitney"
    assert [w["alerts"] for w in r.report["windows"][:-1]] == [[]] * 7
