"""NLP evaluators: same numbers as azure-ai-evaluation 1.18.10, offline.

The reference values in ``tests/data/nlp_reference.json`` were computed by
azure-ai-evaluation itself (``tests/data/make_nlp_reference.py``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from promptgauge.evaluators import nlp
from promptgauge.evaluators.nlp import (
    EVALUATORS,
    BleuScoreEvaluator,
    F1ScoreEvaluator,
    GleuScoreEvaluator,
    MeteorScoreEvaluator,
    RougeScoreEvaluator,
    RougeType,
)

TOL = 1e-6
REFERENCE = json.loads((Path(__file__).parent / "data" / "nlp_reference.json").read_text(encoding="utf-8"))
CASES = REFERENCE["cases"]
IDS = [c["id"] for c in CASES]
SRC = Path(__file__).resolve().parent.parent / "src"


def test_reference_set_is_broad():
    assert REFERENCE["versions"]["azure-ai-evaluation"] == "1.18.10"
    assert len(CASES) >= 40
    ids = set(IDS)
    for needed in ("empty_both", "punctuation_only", "unicode_cjk", "case_only", "numbers",
                   "repeated_words", "long_paraphrase", "identical", "disjoint", "contractions", "hyphens"):
        assert needed in ids


# ------------------------------------------------------------ agreement with azure


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_tokens_match_azure(case):
    for side in ("response", "ground_truth"):
        assert list(nlp.nltk_tokenize(case[side])) == case["tokens"][side]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_scores_match_azure(case):
    r, g = case["response"], case["ground_truth"]
    assert nlp.f1_score(r, g) == pytest.approx(case["f1_score"], abs=TOL)
    assert nlp.bleu_score(r, g) == pytest.approx(case["bleu_score"], abs=TOL)
    assert nlp.gleu_score(r, g) == pytest.approx(case["gleu_score"], abs=TOL)
    assert nlp.meteor_score(r, g) == pytest.approx(case["meteor_score"], abs=TOL)
    for rouge_type, (precision, recall, f1) in case["rouge"].items():
        got = nlp.rouge_scores(r, g, rouge_type)
        assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((precision, recall, f1), abs=TOL)


def _azure_shape(output: dict) -> dict:
    """azure's output as our evaluators give it: no None values, ROUGE flattened."""
    flat = {}
    for key, value in output.items():
        if isinstance(value, dict):
            flat.update(value)
        elif value is not None:
            flat[key] = value
    return flat


@pytest.mark.parametrize("name,evaluator", [
    ("f1", F1ScoreEvaluator()),
    ("bleu", BleuScoreEvaluator()),
    ("gleu", GleuScoreEvaluator()),
    ("meteor", MeteorScoreEvaluator()),
    ("rouge", RougeScoreEvaluator("rougeL")),
])
def test_evaluator_output_matches_azure_keys_and_values(name, evaluator):
    expected = _azure_shape(REFERENCE["sample_outputs"][name])
    got = evaluator(**REFERENCE["sample_input"])
    assert list(got) == list(expected)
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=TOL), key
        else:
            assert got[key] == value, key
    assert all(isinstance(v, (float, int, str, bool)) for v in got.values())


# ------------------------------------------------------------------ edge cases


def test_identical_and_disjoint():
    text = "The cat sat on the mat."
    assert nlp.f1_score(text, text) == 1.0
    assert nlp.bleu_score(text, text) == pytest.approx(1.0)
    assert nlp.rouge_scores(text, text, "rouge2") == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert nlp.f1_score("alpha beta", "gamma delta") == 0.0
    assert nlp.rouge_scores("alpha beta", "gamma delta", "rougeL")["f1"] == 0.0


@pytest.mark.parametrize("response,ground_truth", [("", ""), ("", "x y"), ("x y", ""), ("  ", "\n")])
def test_empty_inputs_score_zero(response, ground_truth):
    assert nlp.f1_score(response, ground_truth) == 0.0
    assert nlp.bleu_score(response, ground_truth) == 0.0
    assert nlp.gleu_score(response, ground_truth) == 0.0
    assert nlp.meteor_score(response, ground_truth) == 0.0
    for rouge_type in RougeType:
        assert nlp.rouge_scores(response, ground_truth, rouge_type)["f1"] == 0.0


def test_f1_ignores_case_punctuation_and_articles():
    assert nlp.f1_score("The Cat, sat!", "a cat sat") == 1.0
    assert nlp.f1_score("a an the", "the") == 0.0


def test_tokenizer_splits_like_nltk():
    assert nlp.nltk_tokenize("Dr. Smith didn't go. He stayed.") == (
        "Dr.", "Smith", "did", "n't", "go", ".", "He", "stayed", ".")
    # non-ASCII text goes through the NIST international tokenizer, as in azure
    assert nlp.nltk_tokenize("café 3€") == ("caf", "é", "3", "€")


def test_meteor_uses_stems_and_wordnet_synonyms():
    assert nlp.meteor_score("runs", "running") == pytest.approx(0.5)  # stem match
    assert nlp.meteor_score("kid", "child") == pytest.approx(0.5)  # WordNet synonym
    assert nlp.meteor_score("kid", "banana") == 0.0
    # As in NLTK (and so azure) the synonym stage compares *stems*: "automobile"
    # is stemmed to "automobil" first, so it no longer meets "car"'s synonyms.
    assert "automobile" in nlp._synonyms("car")
    assert nlp.meteor_score("car", "automobile") == 0.0
    assert "goose" in nlp._synonyms("geese")  # morphological exception list


def test_meteor_parameters_change_the_score():
    r, g = "a b c d", "d c b a"
    base = nlp.meteor_score(r, g)
    assert nlp.meteor_score(r, g, gamma=0.0) == pytest.approx(1.0)
    assert nlp.meteor_score(r, g, gamma=1.0) < base
    assert MeteorScoreEvaluator(gamma=0.0)(response=r, ground_truth=g)["meteor"] == pytest.approx(1.0)


def test_lcs_matches_dynamic_programming():
    def dp(a, b):
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1][j], table[i][j - 1])
        return table[-1][-1]

    rng = random.Random(3)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        assert nlp._lcs_length(a, b) == dp(a, b)


# ------------------------------------------------------------------- evaluators


def test_threshold_boundary_and_direction():
    ev = F1ScoreEvaluator(threshold=0.8)
    at = ev(response="the cat sat", ground_truth="the cat sat down")  # f1 == 0.8
    assert at["f1_score"] == pytest.approx(0.8)
    assert at["f1_score_passed"] is True and at["f1_score_result"] == "pass"
    below = F1ScoreEvaluator(threshold=0.81)(response="the cat sat", ground_truth="the cat sat down")
    assert below["f1_score_passed"] is False and below["f1_score_result"] == "fail"
    assert below["f1_score_threshold"] == 0.81


def test_rouge_thresholds_are_independent():
    ev = RougeScoreEvaluator(RougeType.ROUGE_1, precision_threshold=0.9, recall_threshold=0.8, f1_score_threshold=0.85)
    out = ev(response="the cat sat", ground_truth="the cat sat down")  # p=1, r=0.75, f1=0.857
    assert out["rouge_precision_result"] == "pass"
    assert out["rouge_recall_result"] == "fail"
    assert out["rouge_f1_score_result"] == "pass" and out["rouge_result"] == "pass"
    assert out["rouge_recall_threshold"] == 0.8 and out["rouge_threshold"] == 0.85


def test_rouge_type_validation():
    assert RougeScoreEvaluator("rouge3")(response="a b c", ground_truth="a b c")["rouge"] == 1.0
    with pytest.raises(ValueError, match="rougeL"):
        RougeScoreEvaluator("rougeX")
    with pytest.raises(TypeError):
        RougeScoreEvaluator("rouge1", precision_threshold="high")


@pytest.mark.parametrize("bad", [None, 5, ["a"]])
def test_non_text_input_is_a_clear_error(bad):
    with pytest.raises(TypeError, match="response"):
        BleuScoreEvaluator()(response=bad, ground_truth="x")
    with pytest.raises(TypeError, match="ground_truth"):
        RougeScoreEvaluator("rouge1")(response="x", ground_truth=bad)


def test_extra_columns_are_ignored():
    out = GleuScoreEvaluator()(response="a b", ground_truth="a b", question="q?", context="c")
    assert out["gleu"] == 1.0


def test_registry_names():
    assert set(EVALUATORS) == {"f1", "bleu", "gleu", "rouge", "meteor"}
    assert EVALUATORS["rouge"] is RougeScoreEvaluator


def test_score_batch_equals_single_calls():
    rows = CASES[:12]
    responses = [c["response"] for c in rows]
    truths = [c["ground_truth"] for c in rows]
    batch = nlp.score_batch(responses, truths)
    assert len(batch) == len(rows)
    for out, case in zip(batch, rows):
        assert out["f1_score"] == pytest.approx(case["f1_score"], abs=TOL)
        assert out["bleu"] == pytest.approx(case["bleu_score"], abs=TOL)
        assert out["gleu"] == pytest.approx(case["gleu_score"], abs=TOL)
        assert out["meteor"] == pytest.approx(case["meteor_score"], abs=TOL)
        assert out["rouge_recall"] == pytest.approx(case["rouge"]["rougeL"][1], abs=TOL)
    assert MeteorScoreEvaluator().batch(responses, truths) == [MeteorScoreEvaluator()(response=r, ground_truth=g)
                                                               for r, g in zip(responses, truths)]
    with pytest.raises(ValueError, match="2 responses but 1"):
        nlp.score_batch(["a", "b"], ["a"])


# --------------------------------------------------------------------- offline


def test_runs_with_no_nltk_data_and_no_network(tmp_path):
    """A fresh process: empty NLTK_DATA and HOME, sockets and NLTK data lookups raise."""
    empty = tmp_path / "nltk_data"
    empty.mkdir()
    case = next(c for c in CASES if c["id"] == "synonyms_meteor")
    unicode_case = next(c for c in CASES if c["id"] == "unicode_accents")
    script = textwrap.dedent("""
        import json, socket, sys
        def refuse(*args, **kwargs):
            raise RuntimeError("network or NLTK data access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import nltk, nltk.data
        nltk.download = refuse
        nltk.data.find = refuse
        nltk.data.load = refuse
        from promptgauge.evaluators import nlp
        out = {}
        for case in json.loads(sys.argv[1]):
            r, g = case["response"], case["ground_truth"]
            out[case["id"]] = [nlp.f1_score(r, g), nlp.bleu_score(r, g), nlp.gleu_score(r, g),
                               nlp.meteor_score(r, g), nlp.rouge_scores(r, g, "rougeL")["f1"]]
        print(json.dumps(out))
    """)
    env = {**os.environ, "NLTK_DATA": str(empty), "HOME": str(tmp_path), "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", script, json.dumps([case, unicode_case])],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    for c in (case, unicode_case):
        expected = [c["f1_score"], c["bleu_score"], c["gleu_score"], c["meteor_score"], c["rouge"]["rougeL"][2]]
        assert got[c["id"]] == pytest.approx(expected, abs=TOL)
    assert not any(empty.iterdir()), "nothing may be written to NLTK_DATA"
