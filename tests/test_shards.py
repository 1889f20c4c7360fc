"""``run --shard K/N`` and ``merge``: shards of one suite, merged, are the run one machine makes; anything
else (other suites, datasets, shard counts, missing, duplicate, unfinished or tampered shards) is exit 2."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from conftest import SuiteBuilder, run_cli
from hypothesis import given
from hypothesis import strategies as st
from test_parser_properties import SETTINGS

from promptgauge import api
from promptgauge.datasets import Shard, parse_shard, shard_of
from promptgauge.engine import call_order, call_seed
from promptgauge.errors import UserError
from promptgauge.results.shards import check_shards, shard_results

ROWS = 14


@pytest.fixture
def suite(builder: SuiteBuilder) -> Path:
    builder.dataset([{"id": f"r{i}", "question": f"REPLY: {i % 4}\nq{i}", "ground_truth": str(i % 3)}
                     for i in range(ROWS)])
    return builder.suite(runner={"concurrency": 1, "timeout": 5, "retries": 1, "repeats": 2, "seed": 7},
                         gate={"rules": ["contains.pass_rate >= 0.2", "error_rate <= 0.5",
                                         "contains: no_regression(max_drop=0.5, alpha=0.05)"]})


def _shards(suite: Path, n: int, **kw) -> list[Path]:
    out = []
    for k in range(1, n + 1):
        report = api.run(suite, shard=f"{k}/{n}", store=suite.parent / f"shard{k}.db", **kw)
        assert report.status == "finished" and report.summary["gate"] is None
        out.append(report.reports["shard"])
    return out


def _normal(summary: dict, run_id: str) -> str:
    """summary.json without what differs between two runs of one suite: ids and times."""
    doc = {k: v for k, v in summary.items() if k not in ("run_id", "created_at", "finished_at")}
    return json.dumps(doc, sort_keys=True).replace(run_id, "RUN")


def _table(db: Path, run_id: str) -> tuple[list, list]:
    con = sqlite3.connect(db)
    res = con.execute("SELECT row_id, variant, repeat, row_index, inputs, output, outputs, error, latency_ms, "
                      "prompt_tokens, completion_tokens, attempts FROM results WHERE run_id=? ORDER BY 1, 2, 3",
                      (run_id,)).fetchall()
    sco = con.execute("SELECT row_id, variant, repeat, evaluator, score, passed, error, details FROM scores "
                      "WHERE run_id=? ORDER BY 1, 2, 3, 4", (run_id,)).fetchall()
    con.close()
    return res, sco


def _calls(requests) -> list[tuple[str, str, int]]:
    """(row, variant, seed) of each chat request, in arrival order (variant a's prompt has a system message)."""
    return [(r.body["messages"][-1]["content"].split("\n")[-1], "a" if r.body["messages"][0]["role"] == "system"
             else "b", r.body["seed"]) for r in requests if r.path.endswith("/chat/completions")]


def test_three_shards_merged_equal_one_run(suite: Path, fake_openai) -> None:
    root = suite.parent
    files = _shards(suite, 3)  # cold: they call the server and fill the shared response cache
    sharded = _calls(fake_openai.requests)
    assert len(sharded) == ROWS * 2 * 2
    merged = api.merge(files, suite=suite, store=root / "merged.db", out=root / "merged-out")
    fake_openai.reset_stats()
    single = api.run(suite, store=root / "single.db")  # every call a cache hit: the original latencies
    assert fake_openai.request_count == 0
    assert merged.passed == single.passed and merged.summary["gate"]["rules"]
    assert _normal(merged.summary, merged.run_id) == _normal(single.summary, single.run_id)
    on_disk = json.loads((root / "merged-out" / "summary.json").read_text())
    assert _normal(on_disk, merged.run_id) == _normal(single.summary, single.run_id)
    m_res, m_sco = _table(root / "merged.db", merged.run_id)
    s_res, s_sco = _table(root / "single.db", single.run_id)
    assert len(m_res) == ROWS * 4 and len(m_sco) == ROWS * 4 * 2
    # outputs ('cached') and attempts (0 for a hit) say where an answer came from; the rest is equal
    assert [r[:6] + r[7:11] for r in m_res] == [r[:6] + r[7:11] for r in s_res]
    assert m_sco == s_sco
    # seeds and order do not depend on sharding: each call's seed is the unsharded one, and each row's
    # variant x repeat calls came in the row's own seeded order
    fake_openai.reset_stats()
    api.run(suite, store=root / "nocache.db", options=api.Options(cache=False))
    assert Counter(sharded) == Counter(_calls(fake_openai.requests))
    for i in range(ROWS):
        assert [c for c in sharded if c[0] == f"q{i}"] == [c for c in _calls(fake_openai.requests) if c[0] == f"q{i}"]
        order = call_order(7, f"r{i}", [(v, rep) for v in "ab" for rep in range(2)])
        assert [c[1] for c in sharded if c[0] == f"q{i}"] == [v for v, _ in order]
        assert {c[2] for c in sharded if c[0] == f"q{i}" and c[1] == "a"} == {
            call_seed(7, f"r{i}", "a", rep) for rep in range(2)}


def test_every_row_in_exactly_one_shard_and_shard_file_names_its_rows(suite: Path) -> None:
    files = _shards(suite, 4)
    got = []
    for k, path in enumerate(files, start=1):
        lines = path.read_text().splitlines()
        header, end = json.loads(lines[0]), json.loads(lines[-1])
        assert header["schema"] == "promptgauge.shard/1" and header["shard"]["index"] == k
        assert end == {"end": {"results": len(lines) - 2}}
        rows = {json.loads(x)["result"]["row_id"] for x in lines[1:-1]}
        assert all(shard_of(r, 4) == k for r in rows) and header["shard"]["rows"] == len(rows)
        got += rows
    assert sorted(got) == sorted(f"r{i}" for i in range(ROWS))


def _merge_fails(files: list[Path], suite: Path, *needles: str) -> None:
    store = suite.parent / "refused.db"
    res = run_cli("merge", *map(str, files), "--suite", str(suite), "--store", str(store), cwd=suite.parent)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in " ".join(res.stderr.split()), res.stderr
    if store.exists():  # refused before anything is written
        assert sqlite3.connect(store).execute("SELECT count(*) FROM runs").fetchone()[0] == 0


def test_merge_refuses_missing_duplicate_foreign_and_damaged_shards(suite: Path, builder: SuiteBuilder,
                                                                    tmp_path: Path) -> None:
    files = _shards(suite, 3)
    _merge_fails(files[:2], suite, "missing shard 3/3 of 3")
    _merge_fails([files[0], files[1], files[1]], suite, "shard 2/3 is given twice")
    _merge_fails([], suite, "merge needs the shard files")
    # a different split of the same suite
    two = [api.run(suite, shard="2/2", store=tmp_path / "two.db", shard_file=tmp_path / "two.jsonl").reports["shard"]]
    _merge_fails([*files, two[0]], suite, "is one of 2 shards")
    # a file cut short, a tampered row, a row twice, not a shard file
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(files[2].read_text().splitlines()[:-1]) + "\n")
    _merge_fails([files[0], files[1], cut], suite, "cut short")
    lines = files[2].read_text().splitlines()
    foreign = next(f"r{i}" for i in range(ROWS) if shard_of(f"r{i}", 3) != 3)
    moved = tmp_path / "moved.jsonl"
    moved.write_text("\n".join([lines[0], lines[1].replace(json.loads(lines[1])["result"]["row_id"], foreign, 1),
                                *lines[2:]]) + "\n")
    _merge_fails([files[0], files[1], moved], suite, f"row '{foreign}' belongs to shard", "moved.jsonl:2:")
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join([lines[0], lines[1], lines[1], *lines[2:-1], json.dumps({"end": {"results": len(lines) - 1}})])
                     + "\n")
    _merge_fails([files[0], files[1], twice], suite, "is there twice", "twice.jsonl:3:")
    (tmp_path / "x.json").write_text('{"schema": "promptgauge.results/1"}\n')
    _merge_fails([tmp_path / "x.json", *files], suite, "not a shard file")
    # shards of another dataset, and the suite changed since the shards ran
    builder.dataset([{"id": f"r{i}", "question": f"REPLY: 1\nq{i}", "ground_truth": "1"} for i in range(ROWS)])
    other = api.run(suite, shard="3/3", store=tmp_path / "o.db", shard_file=tmp_path / "o.jsonl").reports["shard"]
    _merge_fails([files[0], files[1], other], suite, "are shards of different datasets")
    suite.write_text(suite.read_text().replace("0.2", "0.25"))
    _merge_fails(files, suite, "the shards ran suite 't'", "not this one")


def test_unfinished_shard_is_refused_and_resumed_with_its_own_shard(suite: Path, tmp_path: Path) -> None:
    files = _shards(suite, 2)
    bad = api.run(suite, shard="1/2", store=tmp_path / "s1.db", shard_file=tmp_path / "bad.jsonl",
                  options=api.Options(cache=False, max_cost=1e-9))
    assert bad.status == "budget"
    _merge_fails([tmp_path / "bad.jsonl", files[1]], suite, "shard 1/2", "did not finish (status 'budget')",
                 f"--resume {bad.run_id}")
    res = run_cli("run", str(suite), "--shard", "2/2", "--resume", bad.run_id, "--store", str(tmp_path / "s1.db"),
                  cwd=suite.parent)
    assert res.returncode == 2 and "it runs shard 1/2" in res.stderr and "--shard K/N" in res.stderr
    res = run_cli("run", str(suite), "--shard", "1/2", "--resume", bad.run_id, "--store", str(tmp_path / "s1.db"),
                  "--shard-file", str(tmp_path / "good.jsonl"), cwd=suite.parent)
    assert res.returncode == 0, res.stderr
    merged = api.merge([tmp_path / "good.jsonl", files[1]], suite=suite, store=tmp_path / "m.db")
    assert merged.summary["variants"]["a"]["calls"]["n"] == ROWS * 2
    for spec in ("3", "1/0", "2/1", "a/b", "-1/2", "1/2/3", "１/2"):
        res = run_cli("run", str(suite), "--shard", spec, cwd=suite.parent)
        assert res.returncode == 2 and f"shard '{spec}'" in res.stderr and "Traceback" not in res.stderr, res.stderr


@SETTINGS
@given(st.text(max_size=12) | st.builds(lambda k, n, sep: f"{k}{sep}{n}", st.integers(-3, 200_000),
                                         st.integers(-3, 200_000), st.sampled_from(["/", " / ", "//", ":"])))
def test_shard_spec_is_a_shard_or_a_user_error(text: str) -> None:
    try:
        shard = parse_shard(text)
    except UserError as exc:
        assert exc.field == "--shard" and "K/N" in exc.format()
        return
    assert isinstance(shard, Shard) and 1 <= shard.index <= shard.count
    assert parse_shard(str(shard)) == shard


@SETTINGS
@given(st.lists(st.text(max_size=20), max_size=30, unique=True), st.integers(1, 9))
def test_shards_partition_the_rows(ids: list[str], n: int) -> None:
    homes = [[k for k in range(1, n + 1) if Shard(k, n).holds(i)] for i in ids]
    assert all(len(h) == 1 and h[0] == shard_of(i, n) for h, i in zip(homes, ids))


@SETTINGS
@given(st.lists(st.one_of(st.text(max_size=30), st.sampled_from([
    '{"schema": "promptgauge.shard/1"}', '{"schema": "promptgauge.shard/1", "shard": {"index": 1, "count": 1, "rows": 1},'
    ' "suite": "t", "run_id": "x", "status": "finished", "manifest": {"variants": {"a": {}}}, "config": {}}',
    '{"result": {"row_id": "r", "variant": "a", "repeat": 0}}', '{"result": 3}', '{"end": {"results": 1}}',
    '{"end": {}}', "[]", "null"])), min_size=0, max_size=5))
def test_any_shard_file_is_read_or_refused(lines: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "s.jsonl"
        path.write_text("\n".join(lines), encoding="utf-8")
        try:
            for sh in check_shards([path]):
                list(shard_results(sh, set()))
        except UserError:
            pass
