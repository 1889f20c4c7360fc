"""Embedding similarity on the real local model (all-MiniLM-L6-v2, int8 ONNX) and on the fake server's /embeddings."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from promptgauge import api
from promptgauge.errors import EvaluatorError
from promptgauge.evaluators.embedding import Batcher, EmbeddingSimilarityEvaluator, LocalEmbedder
from promptgauge.store import Store
from promptgauge.testing.fake_server import embed_text


def similarity(response: str, ground_truth: str) -> float:
    return asyncio.run(EmbeddingSimilarityEvaluator()(response=response, ground_truth=ground_truth))[
        "embedding_similarity"]


def test_paraphrase_scores_high_and_unrelated_low():
    para = similarity("The cat is sitting on the mat.", "A cat sits on a rug.")
    close = similarity("The capital of France is Paris.", "Paris is France's capital city.")
    unrelated = similarity("The cat is sitting on the mat.", "Quarterly revenue grew by eight percent.")
    assert para > 0.6 and close > 0.8
    assert unrelated < 0.2
    assert similarity("Paris", "Paris") == pytest.approx(1.0, abs=1e-5)


def test_local_vectors_are_normalised_and_independent_of_batching():
    embedder = LocalEmbedder.get()
    texts = ["short", "a much longer sentence about the weather in Lisbon in early spring", "Paris"]
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert together.shape == (3, 384)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-4)  # padding in a batch does not change a text's vector


def test_batcher_coalesces_concurrent_rows_and_reuses_vectors():
    sent: list[list[str]] = []

    async def embed(texts: list[str]) -> list[list[float]]:
        sent.append(list(texts))
        await asyncio.sleep(0.01)
        return [[float(len(t)), 1.0] for t in texts]

    async def main() -> None:
        batcher = Batcher(embed)
        rows = [[f"answer {i}", "shared truth"] for i in range(20)]
        out = await asyncio.gather(*(batcher.vectors(r) for r in rows))
        assert [list(v[0]) for v in out] == [[float(len(f"answer {i}")), 1.0] for i in range(20)]
        assert len(sent) < 5 and max(map(len, sent)) > 10  # batched, not one call per row
        assert sum(t == "shared truth" for batch in sent for t in batch) == 1
        again = await batcher.vectors(["answer 3", "shared truth"])  # cached: no new call
        assert len(sent) == len(batcher.batches) and list(again[0]) == [8.0, 1.0]
        assert sum(batcher.batches) == 21

    asyncio.run(main())


def test_batcher_gives_every_waiting_row_the_error():
    async def embed(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("endpoint down")

    async def main() -> None:
        batcher = Batcher(embed)
        results = await asyncio.gather(*(batcher.vectors([f"t{i}"]) for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)

    asyncio.run(main())


def test_embedding_similarity_in_a_run_local_and_endpoint(builder, fake_openai):
    builder.suite(
        variants=[{"name": "a", "prompt": "a.prompty", "target": "fake"}], baseline=None,
        evaluators=[
            {"name": "local", "type": "embedding_similarity", "threshold": 0.9},
            {"name": "api", "type": "embedding_similarity", "model": "fake:text-embedding-3-small"},
        ],
        gate={"rules": []},
    )
    report = api.run(builder.root / "promptgauge.yaml")
    store = Store(report.store_path)
    try:
        rows = {r["row_id"]: r["scores"] for r in store.iter_results(report.run_id)}
    finally:
        store.close()
    # Replies: Paris, Tokyo, "Rome, of course.", Barcelona against Paris, Tokyo, Rome, Madrid.
    assert rows["fr"]["local"]["score"] == pytest.approx(1.0, abs=1e-5)
    assert rows["it"]["local"]["passed"] is False and 0.3 < rows["it"]["local"]["score"] < 0.9
    assert rows["es"]["local"]["score"] < rows["it"]["local"]["score"]
    assert rows["fr"]["local"]["details"]["embedding_similarity_threshold"] == 0.9
    # The fake endpoint embeds hashed bags of words: "rome of course" vs "rome" -> 1/sqrt(3).
    assert rows["it"]["api"]["score"] == pytest.approx(1 / np.sqrt(3), abs=1e-5)
    assert rows["es"]["api"]["score"] == pytest.approx(float(np.dot(embed_text("Barcelona"), embed_text("Madrid"))))
    embedding_requests = [r for r in fake_openai.requests if r.path.endswith("/embeddings")]
    # At most one request per row (how many rows share a batch depends on timing), no text sent twice.
    assert 1 <= len(embedding_requests) <= 4
    sent = [t for r in embedding_requests for t in r.body["input"]]
    assert sorted(sent) == sorted({"Paris", "Tokyo", "Rome, of course.", "Barcelona", "Rome", "Madrid"})
    assert report.summary["manifest"]["evaluators"]["api"]["model"]["model"] == "text-embedding-3-small"


def test_embeddings_endpoint_calls_use_the_engine_retries(builder, fake_openai):
    (builder.root / "fixed.py").write_text("def answer(**_):\n    return 'Paris'\n")
    builder.suite(variants=[{"name": "a", "target": "python:fixed:answer"}], baseline=None, gate={"rules": []},
                  evaluators=[{"name": "api", "type": "embedding_similarity", "model": "fake:text-embedding-3-small"}])
    fake_openai.fail_next("500", 1)
    report = api.run(builder.root / "promptgauge.yaml", limit=1)
    assert report.summary["variants"]["a"]["metrics"]["api"]["mean"] == pytest.approx(1.0)
    assert fake_openai.fault_count == {"500": 1} and fake_openai.request_count == 2


def test_embeddings_model_must_have_an_endpoint(builder):
    builder.suite(evaluators=[{"name": "e", "type": "embedding_similarity", "model": "local:smollm2"}])
    with pytest.raises(EvaluatorError, match="target 'local:smollm2' has no embeddings endpoint") as info:
        api.run(builder.root / "promptgauge.yaml")
    assert info.value.field == "evaluators.e.model"
