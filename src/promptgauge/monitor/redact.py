"""Redaction of personal data and secrets before anything is scored or stored.

Built-in kinds (the exact rules; README "Redaction" lists them with the false positives accepted):

- ``api_key``: ``sk-…`` (OpenAI/Anthropic/Stripe, 20+ characters), AWS ``AKIA``/``ASIA`` ids, GitHub
  ``gh?_``/``github_pat_`` tokens, Slack ``xox?-``, Google ``AIza…``, JWTs, the token after ``Bearer``
  (any case), and the value of ``api_key= / token: / secret / password …`` assignments (8+ characters).
- ``iban``: two letters, two digits, 11-30 letters or digits, in any case, optionally grouped by spaces
  or hyphens, passing the ISO 13616 mod-97 check.
- ``card``: 13-19 digits (optionally grouped by spaces or hyphens) passing the Luhn check.
- ``email``: ``local@domain.tld``.
- ``phone``: 8-15 digits written as a phone number -- ``+CC…``, or grouped by spaces, dots, hyphens or
  parentheses -- and bare runs of 10-15 digits (``4155552671``, ``447911123456``); never a date.

Plus user patterns. A match becomes ``[KIND]``. What was redacted is counted per kind (distinct matches
per record); the matched text is never kept. Every string the monitor stores or reports about a record
(its id, stratum, data, outputs, error, scores' errors and reasons, and the reason a line was
malformed) goes through the one :class:`Redactor` of the pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("api_key", "iban", "card", "email", "phone")

_API_KEY = re.compile(
    r"""\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{20,}    # OpenAI / Anthropic / Stripe style
      | \b(?:AKIA|ASIA)[0-9A-Z]{16}\b                         # AWS access key id
      | \bgh[pousr]_[A-Za-z0-9]{36,}\b                        # GitHub tokens
      | \bgithub_pat_[A-Za-z0-9_]{40,}\b
      | \bxox[abprs]-[A-Za-z0-9\-]{10,}                       # Slack
      | \bAIza[0-9A-Za-z_\-]{35}\b                            # Google API key
      | \beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}   # JWT
      | (?<=(?i:bearer)\ )[A-Za-z0-9._~+/\-]{16,}=*            # bearer token, any case (keeps the word)
    """,
    re.VERBOSE,
)
# ``api_key=...``, ``"token": "..."``, ``password: ...``: the value, whatever its shape.
_KEY_ASSIGN = re.compile(
    r"""(?i)\b(?:api[_\-]?key|apikey|access[_\-]?token|auth[_\-]?token|secret(?:[_\-]?key)?|password|passwd)
        ["']?\s*[:=]\s*["']?(?P<value>[^\s"',;]{8,})""",
    re.VERBOSE,
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ \-]?[A-Za-z0-9]){11,30}\b")
_CARD = re.compile(r"(?<!\d)(?<!\d\.)\d(?:[ \-]?\d){12,18}(?!\d)(?!\.\d)")
# International (+CC ...) or national numbers with separators; 8-15 digits in all.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}(?:[ .\-]?\d{2,4}){1,4}(?![\w])")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a digit string is valid."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    s = text.replace(" ", "").replace("-", "").upper()
    if not 15 <= len(s) <= 34 or not s.isalnum() or not s.isascii():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


_DATE = re.compile(r"\d{4}[\-/.]\d{1,2}[\-/.]\d{1,2}|\d{1,2}[\-/.]\d{1,2}[\-/.]\d{4}")


def _phone_ok(text: str) -> bool:
    digits = sum(c.isdigit() for c in text)
    if not 8 <= digits <= 15 or _DATE.search(text):
        return False
    # Written as a phone number (+CC..., or grouped), or a bare run of 10-15 digits: a national or
    # international number without separators. Shorter bare runs are ids and amounts.
    # A bare run starting with 1 is a phone number only as 1 + ten NANP digits: Unix timestamps in
    # seconds (10 digits) and milliseconds (13) start with 1, and no other country code does.
    if text.startswith("+") or any(c in text for c in " .-()"):
        return True
    return digits >= 10 and (text[0] != "1" or digits == 11)


def _iban_end(text: str) -> int | None:
    """Length of the longest start of *text* that is a valid IBAN (a match may run into the next word)."""
    for end in range(len(text), 14, -1):
        if text[end - 1].isalnum() and iban_ok(text[:end]):
            return end
    return None


class Found:
    """What one record had redacted: distinct matches per kind (kept in memory only, as hashes)."""

    def __init__(self) -> None:
        self._seen: dict[str, set[int]] = {}

    def add(self, kind: str, text: str) -> None:
        self._seen.setdefault(kind, set()).add(hash(text))

    def counts(self) -> dict[str, int]:
        return {kind: len(seen) for kind, seen in sorted(self._seen.items())}


@dataclass
class Redactor:
    """Replaces every match of the enabled kinds and custom patterns with ``[KIND]``; counts them."""

    kinds: tuple[str, ...] = KINDS
    patterns: dict[str, re.Pattern[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown redaction kind(s) {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
        digit, at = re.compile(r"\d"), re.compile("@")
        # (kind, pattern, check of a match, group to replace, what a text needs to be worth scanning)
        rules: list[tuple[str, re.Pattern[str], Callable[[str], Any] | None, str | None, re.Pattern[str] | None]] = []
        # Order matters: secrets and long numbers before the looser phone pattern.
        if "api_key" in self.kinds:
            rules += [("api_key", _KEY_ASSIGN, None, "value", None), ("api_key", _API_KEY, None, None, None)]
        if "iban" in self.kinds:
            rules.append(("iban", _IBAN, _iban_end, None, digit))
        if "card" in self.kinds:
            rules.append(("card", _CARD, lambda m: 13 <= len(d := re.sub(r"\D", "", m)) <= 19 and luhn_ok(d), None,
                          digit))
        if "email" in self.kinds:
            rules.append(("email", _EMAIL, None, None, at))
        for name, rx in self.patterns.items():
            rules.append((name, rx, None, None, None))
        if "phone" in self.kinds:
            rules.append(("phone", _PHONE, _phone_ok, None, digit))
        self._rules = rules

    def text(self, value: str, found: Found) -> str:
        """*value* with every match replaced; notes what it replaced in *found*."""
        for kind, rx, check, group, needs in self._rules:
            if needs is None or needs.search(value):
                value = rx.sub(lambda m, k=kind, c=check, g=group: self._sub(m, k, c, g, found), value)
        return value

    @staticmethod
    def _sub(m: re.Match[str], kind: str, check: Callable[[str], Any] | None, group: str | None,
             found: Found) -> str:
        text = m.group(group) if group else m.group(0)
        ok = True if check is None else check(text)
        if not ok:
            return m.group(0)
        if ok is not True:  # a check that returns a length: only that much of the match is the value
            found.add(kind, text[:ok])
            return f"[{kind.upper()}]" + m.group(0)[ok:]
        found.add(kind, text)
        if group:
            start, end = m.span(group)
            return m.group(0)[: start - m.start()] + f"[{kind.upper()}]" + m.group(0)[end - m.start():]
        return f"[{kind.upper()}]"

    def value(self, value: Any, found: Found) -> Any:
        """Redact every string inside a JSON-like value (dict keys too), returning a new value."""
        if isinstance(value, str):
            return self.text(value, found)
        if isinstance(value, dict):
            return {self.text(str(k), found): self.value(v, found) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v, found) for v in value]
        return value
