"""Redaction catalogue: every listed kind is removed before anything is stored; the store holds none of it."""

from __future__ import annotations

import re

import pytest
from monitor_helpers import T0, append, chat_line, write_config

from promptgauge.monitor import load_monitor_config, run_pass
from promptgauge.monitor.redact import Found, Redactor, iban_ok, luhn_ok

CATALOGUE = {
    "email": ["jane.doe+shop@example.co.uk", "o'brien@mail.example.org"],
    "phone": ["+44 20 7946 0958", "(555) 123-4567", "+1-202-555-0143", "030 1234567",
              "4155552671", "14155552671", "447911123456", "07911123456"],  # bare digit runs too
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "FR1420041010050500013M02606",
             "gb82 west 1234 5698 7654 32", "de89370400440532013000", "GB82-WEST-1234-5698-7654-32"],  # any case
    "api_key": ["sk-proj-Abc123def456ghi789jkl012mno345", "AKIAIOSFODNN7EXAMPLE",
                "ghp_" + "x1" * 18, "xoxb-123456789012-abcdefghijkl",
                "AIzaSyA1234567890abcdefghijklmnopqrstuv"],
    "ticket": ["TCK-123456"],
}
NOT_PII = ["order 12345678", "2024-05-01 12:30", "version 1.2.3", "4111-1111-1111-1112",  # bad Luhn
           "DE00370400440532013000", "total 1234.56 EUR", "HTTP 500",
           "id 123456789",  # bare runs under 10 digits are ids and amounts
           "at 1733131200", "at 1733131200123",  # Unix time in s and ms: a bare run starting with 1 but not 11 long
           "de00 3704 0044 0532 0130 00 ok"]  # a lower-case IBAN shape failing mod-97
#: Accepted false positives: any other bare run of 10-15 digits reads as a phone number (e.g. an order number).
FALSE_POSITIVES = {"order 20240501123": "order [PHONE]"}


def test_luhn_and_iban_checks():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE00 3704 0044 0532 0130 00")


@pytest.mark.parametrize("kind,value", [(k, v) for k, vs in CATALOGUE.items() for v in vs])
def test_every_catalogue_entry_is_redacted(kind, value):
    r = Redactor(patterns={"ticket": re.compile(r"TCK-\d{6}")})
    found = Found()
    out = r.text(f"please use {value}. Or ({value}), '{value}'", found)
    assert value not in out and f"[{kind.upper()}]" in out
    assert found.counts() == {kind: 1}


def test_assignments_and_bearer_tokens_keep_their_label():
    found = Found()
    out = Redactor().text("Authorization: Bearer abcdefghijklmnop0123456789 api_key=hunter2hunter2", found)
    assert out == "Authorization: Bearer [API_KEY] api_key=[API_KEY]"
    assert found.counts() == {"api_key": 2}


def test_accepted_false_positives():
    for text, out in FALSE_POSITIVES.items():
        assert Redactor().text(text, Found()) == out


def test_lower_case_bearer_and_an_iban_running_into_the_next_word():
    found = Found()
    out = Redactor().text("authorization: bearer abcdefghijklmnop0123456789; iban gb82 west 1234 5698 7654 32 ok", found)
    assert out == "authorization: bearer [API_KEY]; iban [IBAN] ok" and found.counts() == {"api_key": 1, "iban": 1}


@pytest.mark.parametrize("text", NOT_PII)
def test_ordinary_numbers_are_left_alone(text):
    found = Found()
    assert Redactor().text(text, found) == text and found.counts() == {}


def test_nothing_is_stored_raw(tmp_path):
    """Every kind in questions, answers, metadata, errors and ids: grep the store and the reports for it."""
    cfg = write_config(tmp_path, redaction={"patterns": {"ticket": r"TCK-\d{6}"}}, examples=50,
                       sampling={"stratify_by": "user"},
                       alerts=[{"metric": "json_valid.pass_rate", "below": 0.99}], reference=None, min_n=1)
    secrets = [v for vs in CATALOGUE.values() for v in vs]
    lines = []
    for i, value in enumerate(secrets):
        lines.append(chat_line(f"r{i}", T0 + i, f"My details: {value}. Help?", f"Noted {value}, thanks!",
                               metadata={"route": "faq", "user": value}))
    lines.append(chat_line(CATALOGUE["email"][0], T0 + 99, "id is an e-mail", "ok"))
    lines.append(chat_line("r-err", T0 + 100, "q", None, error=f"upstream rejected key {CATALOGUE['api_key'][0]}"))
    bad = chat_line("r-bad", T0 + 101, "q", "a")  # malformed: its reason quotes the field's raw value
    bad["timestamp"] = f"call {CATALOGUE['phone'][4]} or mail {CATALOGUE['email'][0]}"
    lines.append(bad)
    append(tmp_path / "logs" / "app.jsonl", lines)
    result = run_pass(load_monitor_config(cfg))
    assert result.alerting  # the answers are not JSON: examples of every record are in the reports
    red = result.report["pass"]["total"]["redactions"]
    assert {k: red.get(k, 0) for k in CATALOGUE} == {k: len(v) for k, v in CATALOGUE.items()} | {
        "email": len(CATALOGUE["email"]) + 1, "api_key": len(CATALOGUE["api_key"]) + 1}
    blobs = [p.read_bytes() for p in (tmp_path / ".promptgauge").iterdir() if p.is_file()]
    blobs += [p.read_bytes() for p in result.reports.values()]
    html = result.reports["html"].read_text()
    assert "[EMAIL]" in html and "[CARD]" in html
    assert [m["reason"] for m in result.report["malformed"]] == ["timestamp 'call [PHONE] or mail [EMAIL]' is neither ISO 8601 nor epoch seconds"]
    for value in secrets:
        for blob in blobs:
            assert value.encode() not in blob, value
