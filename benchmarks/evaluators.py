"""Evaluator throughput, measured in one run (ratios, not absolute promises).

1. embedding_similarity on the local int8 all-MiniLM-L6-v2: N rows scored the
   way the engine scores them (8 concurrent rows, batched by the evaluator's
   Batcher) against the model's limit (every text embedded in one direct call).
2. The relevance judge on the fake OpenAI server with 50 ms latency, N rows at
   concurrency 8: our judge and azure-ai-evaluation's RelevanceEvaluator, both
   inside our engine (``promptgauge.api.run``), against the same azure
   evaluator through azure-ai-evaluation's own ``evaluate()``.

    PYTHONPATH=src python benchmarks/evaluators.py [--rows 1000] [--judge-rows 200]

Measured 2026-11-26, one run, 2 shared cores (load 5-7, so absolute numbers move a lot):

- embeddings, 1000 rows = 2000 texts: model load 0.5 s; one direct call 6.0 s; through the evaluator
  (8 concurrent rows, batched) 7.7 s -> 1.29x the model's own time (best of 3 each).
- relevance judge, 200 rows, 50 ms server latency, concurrency 8: ours 67 rows/s; azure's
  RelevanceEvaluator in our engine 18.5 rows/s; the same through azure's evaluate() (8 workers)
  16.9 rows/s -> our judge 3.95x azure's evaluate(), azure's evaluator in our engine 1.09x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
import time
from pathlib import Path

import yaml

WORDS = ("the a of to and in is was it that for on with as by at from this model answer question data result "
         "city river capital country population people company market price report year week time first large "
         "small good better quickly because however which where when why how children running analysis").split()


def sentences(n: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)

    def one() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 25))).capitalize() + "."

    return [(one(), one()) for _ in range(n)]


def bench_embeddings(rows: int) -> dict[str, float]:
    from promptgauge.evaluators.embedding import EmbeddingSimilarityEvaluator, LocalEmbedder

    pairs = sentences(rows)
    t = time.perf_counter()
    embedder = LocalEmbedder.get()
    load = time.perf_counter() - t
    texts = [t for pair in pairs for t in pair]

    def direct() -> None:
        embedder.embed(texts)

    def engine_like() -> None:
        async def main() -> None:
            evaluator = EmbeddingSimilarityEvaluator()  # a fresh one: nothing cached
            queue = iter(pairs)

            async def worker() -> None:
                for response, truth in queue:
                    await evaluator(response=response, ground_truth=truth)

            await asyncio.gather(*(worker() for _ in range(8)))

        asyncio.run(main())

    times: dict[str, list[float]] = {"direct": [], "evaluator": []}
    for _ in range(3):  # alternate the parts and keep each one's best: the machine is shared
        for name, part in (("direct", direct), ("evaluator", engine_like)):
            t = time.perf_counter()
            part()
            times[name].append(time.perf_counter() - t)
    direct_s, scored = min(times["direct"]), min(times["evaluator"])
    return {"rows": rows, "load_s": load, "direct_s": direct_s, "evaluator_s": scored,
            "evaluator_vs_direct": scored / direct_s}


def bench_judges(rows: int) -> dict[str, float]:
    from promptgauge import api
    from promptgauge.testing.fake_server import FakeOpenAIServer

    reply = json.dumps({"reason": "fine", "score": 4, "status": "completed"})
    out: dict[str, float] = {"rows": rows}
    with FakeOpenAIServer(latency=0.05, responder=lambda req: reply) as srv, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = [{"id": f"r{i}", "query": f"Question {i}?", "response": f"Answer {i}."} for i in range(rows)]
        (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
        (root / "echo_target.py").write_text("def answer(response, **_):\n    return response\n")
        for name, evaluator in (("ours", {"name": "relevance"}),
                                ("azure_in_engine", {"name": "relevance", "type": "azure.ai.evaluation:RelevanceEvaluator"})):
            suite = {"name": "bench", "dataset": "data.jsonl", "judge": "fake",
                     "targets": {"fake": {"type": "openai", "base_url": srv.base_url, "model": "gpt-4o-mini"}},
                     "variants": [{"name": "a", "target": "python:echo_target:answer"}],
                     "evaluators": [evaluator], "runner": {"concurrency": 8, "timeout": 30, "retries": 0},
                     "store": f"{name}.db"}
            (root / "promptgauge.yaml").write_text(yaml.safe_dump(suite))
            if name == "azure_in_engine":
                import azure.ai.evaluation  # noqa: F401 - import time is not part of the comparison
            t = time.perf_counter()
            report = api.run(root / "promptgauge.yaml", reports_dir=root / "reports")
            out[f"{name}_rows_per_s"] = rows / (time.perf_counter() - t)
            assert report.summary["variants"]["a"]["metrics"]["relevance"]["n"] == rows
        from azure.ai.evaluation import RelevanceEvaluator, evaluate

        os.environ["PF_WORKER_COUNT"] = "8"  # the same concurrency as ours

        evaluator = RelevanceEvaluator({"type": "openai", "model": "gpt-4o-mini", "base_url": srv.base_url,
                                        "api_key": "x"})
        t = time.perf_counter()
        result = evaluate(data=str(root / "data.jsonl"), evaluators={"relevance": evaluator},
                          output_path=str(root / "azure.json"))
        out["azure_evaluate_rows_per_s"] = rows / (time.perf_counter() - t)
        assert len(result["rows"]) == rows
    out["ours_vs_azure_evaluate"] = out["ours_rows_per_s"] / out["azure_evaluate_rows_per_s"]
    out["azure_in_engine_vs_azure_evaluate"] = out["azure_in_engine_rows_per_s"] / out["azure_evaluate_rows_per_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--judge-rows", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps({"embeddings": bench_embeddings(args.rows), "judges": bench_judges(args.judge_rows)}, indent=2))


if __name__ == "__main__":
    main()
