"""Dataset formats: a JSON array of objects and Parquet (pyarrow, a dependency), streamed like JSONL."""

from __future__ import annotations

import json
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from promptgauge import datasets
from promptgauge.datasets import load_dataset
from promptgauge.errors import DatasetError

ROWS = [{"id": "fr", "question": "What is the capital of France?", "ground_truth": "Paris"},
        {"id": "jp", "question": "What is the capital of Japan?", "ground_truth": "Tokyo"},
        {"id": "it", "question": "What is the capital of Italy?", "ground_truth": "Rome"},
        {"id": "es", "question": "What is the capital of Spain?", "ground_truth": "Madrid"}]


def _results(root):
    con = sqlite3.connect(root / ".promptgauge" / "promptgauge.db")
    return sorted(con.execute("SELECT row_id, variant, output FROM results").fetchall())


@pytest.mark.parametrize("fmt", ["json", "parquet"])
def test_a_run_on_json_and_parquet_equals_the_run_on_jsonl(builder, fake_openai, tmp_path, fmt):
    builder.suite()
    assert run_cli("run", "--no-progress", "--no-cache", cwd=builder.root).returncode == 0
    reference = _results(builder.root)
    (builder.root / ".promptgauge" / "promptgauge.db").unlink()
    if fmt == "json":
        (builder.root / "data.json").write_text(json.dumps(ROWS, indent=2))
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), builder.root / "data.parquet")
    builder.suite(dataset=f"data.{fmt}")
    proc = run_cli("run", "--no-progress", "--no-cache", cwd=builder.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _results(builder.root) == reference


def test_parquet_is_read_in_record_batches(tmp_path, monkeypatch):
    rows = [{"id": i, "question": f"q{i}", "score": float(i) if i % 7 else float("nan")} for i in range(2500)]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=300)
    monkeypatch.setattr(datasets, "CHUNK_ROWS", 128)
    reads = []
    real = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):
        for batch in real(self, *args, **kwargs):
            reads.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    ds = load_dataset(path)
    assert len(ds) == 2500 and max(reads) <= 128  # never more than one batch of rows at a time
    got = list(ds)
    assert [r.line for r in got[:3]] == [1, 2, 3] and got[-1].line == 2500
    assert got[7].data["score"] is None and got[8].data["score"] == 8.0  # NaN is a missing value


def test_json_array_is_streamed_with_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "JSON_CHUNK", 16)  # elements cross chunk borders
    rows = [{"id": f"r{i}", "text": "é" * (i % 40), "nested": {"a": [i, None, True]}} for i in range(300)]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    got = list(load_dataset(path))
    assert [r.data for r in got] == rows
    lines = path.read_text(encoding="utf-8").splitlines()
    assert all(lines[r.line - 1].strip() == "{" for r in got)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("", 1, "the file is empty"),
    ("5", 1, "one JSON array of objects (or one object)"),
    ('{"id": 1} {"id": 2}', 1, "unexpected text after the object"),
    ('\n{"id": 1,\n "q": }', 3, "malformed JSON"),
    ('[\n {"id": 1},\n 5\n]', 3, "element 2 is not a JSON object"),
    ('[\n {"id": 1},\n {"id": 2,}\n]', 3, "malformed JSON in element 2"),
    ('[\n {"id": 1}\n {"id": 2}\n]', 3, "expected ',' or ']' after element 1"),
    ('[\n {"id": 1},\n', 3, "the array is not closed"),
    ('[{"id": 1}] trailing', 1, "unexpected text after the array"),
    ('[\n {"id": 1},\n {"id": 1}\n]', 3, "duplicate row id '1'"),
    ("[]", None, "dataset is empty"),
])
@pytest.mark.parametrize("chunk", [5, datasets.JSON_CHUNK])
def test_json_dataset_errors_name_the_line(tmp_path, monkeypatch, text, line, message, chunk):
    monkeypatch.setattr(datasets, "JSON_CHUNK", chunk)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DatasetError) as exc:
        load_dataset(path)
    assert message in exc.value.message and exc.value.line == line, exc.value.format()


def test_bad_json_and_parquet_through_the_cli(builder, fake_openai):
    (builder.root / "data.json").write_bytes(b'[\n {"id": 1, "question": "q"},\n {"id": 2, "question": "caf\xe9"}\n]')
    builder.suite(dataset="data.json")
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2 and "data.json" in proc.stderr and "UTF-8" in proc.stderr, proc.stderr
    (builder.root / "data.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    builder.suite(dataset="data.parquet")
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2 and "unreadable Parquet file" in proc.stderr and "Traceback" not in proc.stderr
    builder.suite(dataset={"path": "data.json", "format": "xml"})
    proc = run_cli("run", "--no-progress", cwd=builder.root)
    assert proc.returncode == 2 and "dataset.format" in proc.stderr and "'json'" in proc.stderr, proc.stderr
