"""NLP metric evaluators: F1, BLEU, GLEU, ROUGE and METEOR.

Same definitions and numbers as azure-ai-evaluation 1.18.x (checked against
azure itself in ``tests/data/nlp_reference.json``), but with no NLTK data and
no download at run time: what azure fetches with ``nltk.download`` (punkt_tab,
perluniprops, WordNet 3.0) ships, reduced to what these metrics read, in
``evaluators/data/`` (provenance in ``data/README.md``).

What each metric sees, as in azure:

* F1 - lower-cased, ASCII punctuation and the articles a/an/the removed, split
  on whitespace; token-count overlap (SQuAD style).
* BLEU, GLEU, METEOR - azure's ``nltk_tokenize``: NLTK's ``word_tokenize``
  (punkt sentences + Treebank words) for ASCII text, NLTK's NIST
  ``international_tokenize`` otherwise (which splits accented words apart:
  "café" -> "caf", "é"). BLEU is NLTK's ``sentence_bleu`` with smoothing
  method 4, GLEU NLTK's ``sentence_gleu``, METEOR NLTK's ``meteor_score``
  algorithm (exact, Porter-stem and WordNet-synonym stages).
* ROUGE - rouge-score's tokenizer: lower-case, only ``[a-z0-9]+`` runs are
  tokens (non-ASCII letters are dropped), no stemming.

Evaluators are plain callables ``(response=..., ground_truth=..., **other) ->
dict`` with azure 1.18's keys, minus the keys azure always sets to ``None``
(``*_reason``, ``*_properties``); ROUGE's ``rouge_properties`` entries are at
the top level. Extra columns are ignored.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import string
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path

__all__ = [
    "EVALUATORS",
    "BleuScoreEvaluator",
    "F1ScoreEvaluator",
    "GleuScoreEvaluator",
    "MeteorScoreEvaluator",
    "RougeScoreEvaluator",
    "RougeType",
    "bleu_score",
    "f1_score",
    "gleu_score",
    "meteor_score",
    "nltk_tokenize",
    "rouge_scores",
    "score_batch",
]

_DATA_DIR = Path(__file__).with_name("data")

# --------------------------------------------------------------------------- F1

_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def _f1_tokens(text: str) -> list[str]:
    """azure's ``normalize_text`` then whitespace split."""
    return _ARTICLES.sub(" ", text.lower().translate(_DELETE_PUNCTUATION)).split()


def f1_score(response: str, ground_truth: str) -> float:
    """Token-overlap F1 between ``response`` and ``ground_truth``; 0.0 if nothing is shared."""
    prediction = _f1_tokens(response)
    reference = _f1_tokens(ground_truth)
    common = sum((Counter(prediction) & Counter(reference)).values())
    if common == 0:
        return 0.0
    precision = 1.0 * common / len(prediction)
    recall = 1.0 * common / len(reference)
    return (2.0 * precision * recall) / (precision + recall)


# ------------------------------------------------------------------------ ROUGE


class RougeType(str, Enum):
    """ROUGE variants, as azure's ``RougeType``."""

    ROUGE_1 = "rouge1"
    ROUGE_2 = "rouge2"
    ROUGE_3 = "rouge3"
    ROUGE_4 = "rouge4"
    ROUGE_5 = "rouge5"
    ROUGE_L = "rougeL"


_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")
_ROUGE_N = re.compile(r"rouge([1-9])")


def _rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenizer (no stemmer)."""
    return _ROUGE_TOKEN.findall(text.lower())


def _fmeasure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (bit-parallel, Hyyrö 2004)."""
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def _rouge_type(value: str | RougeType) -> str:
    name = value.value if isinstance(value, RougeType) else value
    if name != "rougeL" and not (isinstance(name, str) and _ROUGE_N.fullmatch(name)):
        raise ValueError(
            f"unknown rouge_type {value!r}: use 'rouge1' ... 'rouge9' or 'rougeL' "
            f"(azure's RougeType offers rouge1-rouge5 and rougeL)"
        )
    return name


def rouge_scores(response: str, ground_truth: str, rouge_type: str | RougeType = "rouge1") -> dict[str, float]:
    """ROUGE ``precision``, ``recall`` and ``f1`` of ``response`` against ``ground_truth``."""
    kind = _rouge_type(rouge_type)
    target = _rouge_tokens(ground_truth)
    prediction = _rouge_tokens(response)
    if kind == "rougeL":
        if not target or not prediction:
            return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        lcs = _lcs_length(target, prediction)
        precision, recall = lcs / len(prediction), lcs / len(target)
    else:
        n = int(kind[5:])
        target_ngrams = Counter(zip(*(target[i:] for i in range(n))))
        prediction_ngrams = Counter(zip(*(prediction[i:] for i in range(n))))
        overlap = sum((target_ngrams & prediction_ngrams).values())
        precision = overlap / max(sum(prediction_ngrams.values()), 1)
        recall = overlap / max(sum(target_ngrams.values()), 1)
    return {"precision": precision, "recall": recall, "f1": _fmeasure(precision, recall)}


# -------------------------------------------------------------------- tokenizer


@functools.cache
def _tokenizer_data() -> dict:
    with gzip.open(_DATA_DIR / "tokenizer.json.gz", "rt", encoding="utf-8") as fh:
        return json.load(fh)


class _Zero(dict):
    """Read-only lookups default to 0 without inserting (Punkt's ortho context)."""

    def __missing__(self, key):
        return 0


def _on_stdlib_re(pattern):
    """The same pattern on Python's ``re`` engine, or ``pattern`` if ``re`` rejects it.

    NLTK >= 3.10 runs its patterns on the ``regex`` engine under a timeout guard,
    which makes its Treebank tokenizer ~2.5x slower; on the ASCII text it gets
    here both engines match alike (the reference set checks the tokens).
    """
    try:
        return re.compile(pattern.pattern)
    except re.error:
        return pattern


@functools.cache
def _word_tokenizers():
    """NLTK's Punkt (English parameters) and Treebank tokenizers; no NLTK data needed."""
    from nltk.tokenize.destructive import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    data = _tokenizer_data()["punkt_english"]
    params = PunktParameters()
    params.abbrev_types = set(data["abbrev_types"])
    params.collocations = {tuple(pair) for pair in data["collocations"]}
    params.sent_starters = set(data["sent_starters"])
    params.ortho_context = _Zero(data["ortho_context"])

    words = NLTKWordTokenizer()
    for name in ("STARTING_QUOTES", "PUNCTUATION", "ENDING_QUOTES"):
        setattr(words, name, [(_on_stdlib_re(p), sub) for p, sub in getattr(words, name)])
    for name in ("PARENS_BRACKETS", "DOUBLE_DASHES"):
        pattern, sub = getattr(words, name)
        setattr(words, name, (_on_stdlib_re(pattern), sub))
    return PunktSentenceTokenizer(params), words


def _char_class(chars: str) -> str:
    return "[" + "".join(re.escape(c) for c in chars) + "]"


@functools.cache
def _nist_rules() -> list[tuple[re.Pattern, str]]:
    """NLTK ``NISTTokenizer.INTERNATIONAL_REGEXES`` built from perluniprops."""
    props = _tokenizer_data()["perluniprops"]
    number, punct, symbol = (_char_class(props[k]) for k in ("Number", "Punctuation", "Symbol"))
    return [
        (re.compile("([\x00-\x7f]+)"), r" \1 "),
        (re.compile(f"({number})({punct})"), "\\1 \\2 "),
        (re.compile(f"({punct})({number})"), " \\1 \\2"),
        (re.compile(f"({symbol})"), " \\1 "),
    ]


def _nist_international(text: str) -> tuple[str, ...]:
    """NLTK's ``NISTTokenizer().international_tokenize(text)``."""
    from nltk.tokenize.util import xml_unescape

    text = xml_unescape(text.replace("<skipped>", "").replace("\u2028", " "))
    for pattern, replacement in _nist_rules():
        text = pattern.sub(replacement, text)
    return tuple(text.split())


@functools.lru_cache(maxsize=4096)
def nltk_tokenize(text: str) -> tuple[str, ...]:
    """azure's ``nltk_tokenize``: NLTK ``word_tokenize`` for ASCII, NIST international otherwise."""
    if not text.isascii():
        return _nist_international(text)
    sentences, words = _word_tokenizers()
    return tuple(token for sentence in sentences.tokenize(text) for token in words.tokenize(sentence))


# ------------------------------------------------------------------ BLEU, GLEU


def bleu_score(response: str, ground_truth: str) -> float:
    """NLTK ``sentence_bleu`` (4-gram, smoothing method 4) on azure's tokens."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hypothesis = nltk_tokenize(response)
    reference = nltk_tokenize(ground_truth)
    return float(sentence_bleu([reference], hypothesis, smoothing_function=SmoothingFunction().method4))


def gleu_score(response: str, ground_truth: str) -> float:
    """NLTK ``sentence_gleu`` (1- to 4-grams) on azure's tokens."""
    from nltk.translate.gleu_score import sentence_gleu

    return float(sentence_gleu([nltk_tokenize(ground_truth)], nltk_tokenize(response)))


# ----------------------------------------------------------------------- METEOR


class _WordNet:
    """WordNet 3.0 as METEOR reads it: synonym names per lemma/POS, plus morphy."""

    POS = ("n", "v", "a", "r")
    SUBSTITUTIONS = {  # nltk WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS
        "n": (("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"),
              ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")),
        "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
              ("ing", "e"), ("ing", "")),
        "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
        "r": (),
    }

    def __init__(self, path: Path) -> None:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        start_lemmas, start_exc = lines.index("[lemmas]"), lines.index("[exceptions]")
        self._synsets = lines[lines.index("[synsets]") + 1:start_lemmas]
        self._lemmas = dict(line.split("\t", 1) for line in lines[start_lemmas + 1:start_exc])
        self._exceptions: dict[str, dict[str, list[str]]] = defaultdict(dict)
        for line in lines[start_exc + 1:]:
            if line:
                pos, form, bases = line.split("\t")
                self._exceptions[pos][form] = bases.split(" ")

    def _synset_ids(self, lemma: str, pos: str) -> list[int]:
        entry = self._lemmas.get(lemma)
        if entry is None:
            return []
        for field in entry.split("\t"):
            if field[0] == pos:
                return [int(i) for i in field[1:].split(",")]
        return []

    def _morphy(self, form: str, pos: str) -> list[str]:
        """NLTK 3.10 ``_morphy``: exception list or one round of suffix rules."""
        exceptions = self._exceptions[pos]
        if form in exceptions:
            forms = exceptions[form]
        else:
            forms = [form[: -len(old)] + new for old, new in self.SUBSTITUTIONS[pos] if form.endswith(old)]
        return [form, *forms]

    def synonyms(self, word: str) -> frozenset[str]:
        """Lower-case lemma names without ``_`` of all synsets of ``word``."""
        word = word.lower()
        names: set[str] = set()
        for pos in self.POS:
            for form in self._morphy(word, pos):
                for sid in self._synset_ids(form, pos):
                    names.update(self._synsets[sid].split(" "))
        return frozenset(names)


@functools.cache
def _wordnet() -> _WordNet:
    return _WordNet(_DATA_DIR / "wordnet_synonyms.txt.gz")


@functools.lru_cache(maxsize=65536)
def _synonyms(word: str) -> frozenset[str]:
    return _wordnet().synonyms(word) | {word}


@functools.cache
def _porter():
    from nltk.stem.porter import PorterStemmer

    return PorterStemmer()


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _porter().stem(word)


Enum_ = list[tuple[int, str]]


def _match_exact(hyp: Enum_, ref: Enum_) -> tuple[list[tuple[int, int]], Enum_, Enum_]:
    """NLTK ``_match_enums``: right-to-left, each word takes its last free equal word."""
    positions: dict[str, list[int]] = defaultdict(list)
    for j, (_, word) in enumerate(ref):
        positions[word].append(j)
    matches, used_h, used_r = [], set(), set()
    for i in range(len(hyp) - 1, -1, -1):
        free = positions.get(hyp[i][1])
        if free:
            j = free.pop()
            used_h.add(i)
            used_r.add(j)
            matches.append((hyp[i][0], ref[j][0]))
    return (matches, [p for i, p in enumerate(hyp) if i not in used_h],
            [p for j, p in enumerate(ref) if j not in used_r])


def _match_synonyms(hyp: Enum_, ref: Enum_) -> list[tuple[int, int]]:
    """NLTK ``_enum_wordnetsyn_match``: a synonym takes the last free reference word."""
    positions: dict[str, list[int]] = defaultdict(list)
    for j, (_, word) in enumerate(ref):
        positions[word].append(j)
    matches = []
    for i in range(len(hyp) - 1, -1, -1):
        best_j, best_word = -1, None
        for syn in _synonyms(hyp[i][1]):
            free = positions.get(syn)
            if free and free[-1] > best_j:
                best_j, best_word = free[-1], syn
        if best_word is not None:
            positions[best_word].pop()
            matches.append((hyp[i][0], ref[best_j][0]))
    return matches


def _count_chunks(matches: list[tuple[int, int]]) -> int:
    chunks = 1
    for (h0, r0), (h1, r1) in zip(matches, matches[1:]):
        if not (h1 == h0 + 1 and r1 == r0 + 1):
            chunks += 1
    return chunks


def _meteor(hypothesis: Sequence[str], reference: Sequence[str], alpha: float, beta: float, gamma: float) -> float:
    """NLTK 3.10 ``single_meteor_score`` with ``str.lower``, Porter stems and WordNet 3.0."""
    hyp = list(enumerate(w.lower() for w in hypothesis))
    ref = list(enumerate(w.lower() for w in reference))
    exact, hyp_left, ref_left = _match_exact(hyp, ref)
    stems, hyp_left, ref_left = _match_exact(
        [(i, _stem(w)) for i, w in hyp_left], [(j, _stem(w)) for j, w in ref_left])
    matches = sorted(exact + stems + _match_synonyms(hyp_left, ref_left), key=lambda pair: pair[0])
    count = len(matches)
    try:
        precision = float(count) / len(hyp)
        recall = float(count) / len(ref)
        fmean = (precision * recall) / (alpha * precision + (1 - alpha) * recall)
        frag_frac = float(_count_chunks(matches)) / count
    except ZeroDivisionError:
        return 0.0
    penalty = gamma * frag_frac**beta
    return (1 - penalty) * fmean


def meteor_score(response: str, ground_truth: str, alpha: float = 0.9, beta: float = 3.0,
                 gamma: float = 0.5) -> float:
    """METEOR of ``response`` against ``ground_truth`` on azure's tokens."""
    return _meteor(nltk_tokenize(response), nltk_tokenize(ground_truth), alpha, beta, gamma)


# ------------------------------------------------------------------- evaluators


def _require_text(evaluator: object, **columns: object) -> None:
    for name, value in columns.items():
        if not isinstance(value, str):
            got = "nothing" if value is None else type(value).__name__
            raise TypeError(
                f"{type(evaluator).__name__}: column {name!r} must be a string, got {got}; "
                f"call it as evaluator(response=..., ground_truth=...)"
            )


def _check_threshold(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    return value


class _ScoreEvaluator:
    """One score compared with one threshold, in azure 1.18's output shape."""

    _key = ""

    def __init__(self, *, threshold: float = 0.5) -> None:
        self._threshold = _check_threshold("threshold", threshold)
        self._higher_is_better = True

    def _score(self, response: str, ground_truth: str) -> float:
        raise NotImplementedError

    def _result(self, score: float) -> dict[str, float | str | bool]:
        passed = score >= self._threshold if self._higher_is_better else score <= self._threshold
        k = self._key
        return {
            k: score,
            f"{k}_score": score,
            f"{k}_passed": passed,
            f"{k}_result": "pass" if passed else "fail",
            f"{k}_status": "completed",
            f"{k}_threshold": self._threshold,
        }

    def __call__(self, *, response: str, ground_truth: str, **_other_columns: object) -> dict[str, float | str | bool]:
        _require_text(self, response=response, ground_truth=ground_truth)
        return self._result(self._score(response, ground_truth))

    def batch(self, responses: Iterable[str], ground_truths: Iterable[str]) -> list[dict[str, float | str | bool]]:
        """Score many pairs; tokens, stems and synonyms are cached across rows."""
        return [self(response=r, ground_truth=g) for r, g in _pairs(responses, ground_truths)]


class F1ScoreEvaluator(_ScoreEvaluator):
    """SQuAD-style token F1, as azure's ``F1ScoreEvaluator`` (keys ``f1_score*``)."""

    _key = "f1_score"

    def _score(self, response: str, ground_truth: str) -> float:
        return f1_score(response, ground_truth)


class BleuScoreEvaluator(_ScoreEvaluator):
    """Sentence BLEU, as azure's ``BleuScoreEvaluator`` (keys ``bleu*``)."""

    _key = "bleu"

    def _score(self, response: str, ground_truth: str) -> float:
        return bleu_score(response, ground_truth)


class GleuScoreEvaluator(_ScoreEvaluator):
    """Sentence GLEU, as azure's ``GleuScoreEvaluator`` (keys ``gleu*``)."""

    _key = "gleu"

    def _score(self, response: str, ground_truth: str) -> float:
        return gleu_score(response, ground_truth)


class MeteorScoreEvaluator(_ScoreEvaluator):
    """METEOR, as azure's ``MeteorScoreEvaluator`` (keys ``meteor*``)."""

    _key = "meteor"

    def __init__(self, alpha: float = 0.9, beta: float = 3.0, gamma: float = 0.5, *, threshold: float = 0.5) -> None:
        super().__init__(threshold=threshold)
        self._alpha, self._beta, self._gamma = alpha, beta, gamma

    def _score(self, response: str, ground_truth: str) -> float:
        return meteor_score(response, ground_truth, self._alpha, self._beta, self._gamma)


class RougeScoreEvaluator:
    """ROUGE-N/L, as azure's ``RougeScoreEvaluator``; pass/fail follows the F1 threshold.

    ``rouge_type`` defaults to ``rouge1`` (azure documents that default but requires the argument).

    Output: ``rouge``/``rouge_score`` (the F1), ``rouge_passed``, ``rouge_result``,
    ``rouge_status``, ``rouge_threshold`` and, flattened from azure's
    ``rouge_properties``, ``rouge_precision``, ``rouge_recall``,
    ``rouge_f1_score`` with their ``_result``, ``_passed`` and ``_threshold``.
    """

    def __init__(self, rouge_type: str | RougeType = RougeType.ROUGE_1, *, precision_threshold: float = 0.5,
                 recall_threshold: float = 0.5, f1_score_threshold: float = 0.5) -> None:
        self._rouge_type = _rouge_type(rouge_type)
        self._threshold = {
            "precision": _check_threshold("precision_threshold", precision_threshold),
            "recall": _check_threshold("recall_threshold", recall_threshold),
            "f1_score": _check_threshold("f1_score_threshold", f1_score_threshold),
        }

    def __call__(self, *, response: str, ground_truth: str, **_other_columns: object) -> dict[str, float | str | bool]:
        _require_text(self, response=response, ground_truth=ground_truth)
        scores = rouge_scores(response, ground_truth, self._rouge_type)
        values = {"precision": scores["precision"], "recall": scores["recall"], "f1_score": scores["f1"]}
        passed = {k: v >= self._threshold[k] for k, v in values.items()}
        out: dict[str, float | str | bool] = {
            "rouge": values["f1_score"],
            "rouge_score": values["f1_score"],
            "rouge_passed": passed["f1_score"],
            "rouge_result": "pass" if passed["f1_score"] else "fail",
            "rouge_status": "completed",
            "rouge_threshold": self._threshold["f1_score"],
        }
        for k in ("precision", "recall", "f1_score"):
            out[f"rouge_{k}"] = values[k]
        for k in ("precision", "recall", "f1_score"):
            out[f"rouge_{k}_result"] = "pass" if passed[k] else "fail"
        for k in ("precision", "recall", "f1_score"):
            out[f"rouge_{k}_passed"] = passed[k]
        for k in ("precision", "recall", "f1_score"):
            out[f"rouge_{k}_threshold"] = self._threshold[k]
        return out

    def batch(self, responses: Iterable[str], ground_truths: Iterable[str]) -> list[dict[str, float | str | bool]]:
        """Score many pairs."""
        return [self(response=r, ground_truth=g) for r, g in _pairs(responses, ground_truths)]


def _pairs(responses: Iterable[str], ground_truths: Iterable[str]) -> list[tuple[str, str]]:
    responses, ground_truths = list(responses), list(ground_truths)
    if len(responses) != len(ground_truths):
        raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
    return list(zip(responses, ground_truths))


EVALUATORS: dict[str, type] = {
    "f1": F1ScoreEvaluator,
    "bleu": BleuScoreEvaluator,
    "gleu": GleuScoreEvaluator,
    "rouge": RougeScoreEvaluator,
    "meteor": MeteorScoreEvaluator,
}


def score_batch(responses: Iterable[str], ground_truths: Iterable[str],
                evaluators: Sequence[object] | None = None) -> list[dict[str, float | str | bool]]:
    """All five metrics (ROUGE-L for ROUGE) per row, merged into one dict per row.

    ``evaluators`` overrides the set (any callables with the evaluator contract);
    their output keys must not collide.
    """
    if evaluators is None:
        evaluators = (F1ScoreEvaluator(), BleuScoreEvaluator(), GleuScoreEvaluator(),
                      RougeScoreEvaluator(RougeType.ROUGE_L), MeteorScoreEvaluator())
    rows = []
    for response, ground_truth in _pairs(responses, ground_truths):
        row: dict[str, float | str | bool] = {}
        for evaluator in evaluators:
            row.update(evaluator(response=response, ground_truth=ground_truth))
        rows.append(row)
    return rows
