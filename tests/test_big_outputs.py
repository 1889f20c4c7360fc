"""Huge outputs: the HTML report's word diff stays bounded (size and work) and still marks what changed;
the diff itself is exact on what it shows (property test against the texts)."""

from __future__ import annotations

import html
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptgauge import api
from promptgauge.report.html import MAX_SHOWN, word_diff


def _plain(markup: str, drop: str | None = None) -> str:
    s = re.sub(f"<{drop}>.*?</{drop}>", "", markup, flags=re.S) if drop else markup
    return html.unescape(re.sub(r"<[^>]+>", "", s))


WORDS = st.lists(st.sampled_from(["a", "b", "the", "x", "Paris", " ", "  ", ".", ",", "\n", "<b>", "&"]), max_size=60)


@settings(max_examples=300, deadline=None)
@given(WORDS, WORDS)
def test_word_diff_is_exact_both_sides(old, new):
    a, b = "".join(old), "".join(new)
    left, right = word_diff(a, b)
    assert _plain(str(left)) == a and _plain(str(right)) == b  # every character shown, in order
    assert _plain(str(left), "del") == _plain(str(right), "ins")  # what is not marked is common to both


@pytest.mark.slow
def test_megabyte_outputs_make_a_bounded_report(builder, fake_openai):
    rnd = random.Random(7)
    vocab = [f"w{i}" for i in range(5000)] + ["the", "a", "of"] * 300
    big = " ".join(rnd.choice(vocab) for _ in range(180_000))[:1_000_000]
    words = big.split(" ")
    for k in range(0, len(words), 997):
        words[k] = "CHANGED"
    changed = " ".join(words)
    repetitive = "x " * 500_000  # no word occurs once: nothing to anchor a diff
    rows = [{"id": "big", "question": "q0", "ground_truth": "ok", "a": big, "b": changed},
            {"id": "rep", "question": "q1", "ground_truth": "ok", "a": repetitive, "b": "y " * 500_000},
            {"id": "small", "question": "q2", "ground_truth": "ok", "a": "ok", "b": "not ok"}]
    builder.dataset(rows)
    builder.prompt("a.prompty", "user:\n{{question}}\nREPLY: {{a}}\n")
    builder.prompt("b.prompty", "user:\n{{question}}\nREPLY: {{b}}\n")
    builder.suite(gate={"rules": ["exact_match.pass_rate >= 0.9"]})
    result = api.run(builder.root / "promptgauge.yaml")
    text = result.reports["html"].read_text(encoding="utf-8")
    # every huge text (inputs a and b, both outputs, the search text) is cut: far less than the 4 MB of text
    assert len(text) < 12 * MAX_SHOWN + 200_000
    assert text.count("more characters: see results.jsonl or rows.csv") >= 6
    # the diff still marks the changed words of the shown part
    body = text[text.index('data-id="big"'):text.index('data-id="rep"')]
    assert body.count("<ins>CHANGED</ins>") >= 10 and "<del>" in body
    # the run's full outputs are kept whole in results.jsonl
    jsonl = (result.reports["jsonl"]).read_text(encoding="utf-8")
    assert changed in jsonl.replace("\\n", "\n")
