"""The whole error vocabulary of promptgauge, in one place.

Every error a *user* can cause (a bad suite file, a broken dataset line, an
unknown evaluator...) is a :class:`UserError`: the CLI prints its message as
one paragraph and exits with code 2, without a traceback unless ``--debug``.
Messages say *where* (file, line/row, field) and *what would be valid*.

Errors of a model call or an evaluator on one row (:class:`CallError`,
:class:`JudgeReplyError`) are not raised to the user: they are recorded per row in
the store (see :mod:`promptgauge.engine`); a production log line the monitor cannot
use (:class:`BadRecord`) is reported and skipped. An HTTP error answer becomes a
:class:`CallError` in one place, :func:`call_error_for_status`. A file using an old
field name gets a :class:`DeprecatedField` warning.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class PromptGaugeError(Exception):
    """Base class of every error raised by promptgauge on purpose."""


class UserError(PromptGaugeError):
    """A mistake in the user's input; maps to exit code 2."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        row: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.row = row
        self.field = field
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return self.format()

    def locate(self, *, file: str | Path | None = None, line: int | None = None, row: int | None = None,
               field: str | None = None) -> UserError:
        """Fill in where this happened, keeping what the error already says; returns itself."""
        if self.file is None and file is not None:
            self.file = str(file)
        if self.line is None:
            self.line = line
        if self.row is None:
            self.row = row
        if self.field is None:
            self.field = field
        return self

    def format(self) -> str:
        where = []
        if self.file:
            loc = self.file
            if self.line is not None:
                loc += f":{self.line}"
            where.append(loc)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field '{self.field}'")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


@contextmanager
def located(*, file: str | Path | None = None, line: int | None = None, row: int | None = None,
            field: str | None = None) -> Iterator[None]:
    """A :class:`UserError` raised inside gets this location where it does not name its own."""
    try:
        yield
    except UserError as exc:
        exc.locate(file=file, line=line, row=row, field=field)
        raise


class SuiteError(UserError):
    """The suite file is not valid YAML or does not match the suite schema."""


class DatasetError(UserError):
    """A dataset file is missing, unreadable, malformed, empty or lacks a column."""


class TemplateError(UserError):
    """A prompt file is malformed, or a template uses a variable the row lacks."""


class TargetError(UserError):
    """A target name or its configuration is unknown or incomplete."""


class EvaluatorError(UserError):
    """An evaluator is unknown, cannot be built, or its column mapping is wrong."""


class GateError(UserError):
    """A gate rule is malformed or names a metric that does not exist."""


class StoreError(UserError):
    """A run or baseline asked for is not in the store."""


class PathError(UserError):
    """A file or folder promptgauge must write is unusable: a folder where a file belongs, a file in a
    folder's way, a store that is not a SQLite database, no write permission (see :func:`promptgauge.files.check_output`)."""


class CompareError(UserError):
    """A baseline and a candidate cannot be compared as asked (different datasets, no such variant...)."""


class MonitorError(UserError):
    """The monitor file is invalid, or a source or reference it names cannot be used."""


class CallError(PromptGaugeError):
    """A model call failed on one row (recorded in the store, never raised to the user).

    ``retryable`` tells the runner whether another attempt may succeed;
    ``retry_after`` is the server's requested wait in seconds, if any;
    ``throttled`` marks a rate-limit answer (HTTP 429), which slows the endpoint down.
    """

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None,
                 throttled: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.throttled = throttled


class CassetteMiss(UserError):
    """A replayed run asked for a model exchange its cassette does not hold."""


class SnapshotError(UserError):
    """A pytest baseline snapshot setting is malformed."""


class CallFailed(PromptGaugeError):
    """The model call behind the pytest harness's ``evaluate()`` failed after the runner's retries."""


class BadRecord(PromptGaugeError, ValueError):
    """A production log document that cannot become a monitor record (reported with its line, then skipped)."""


class JudgeReplyError(PromptGaugeError, ValueError):
    """An LLM judge's reply holds no usable score (that row's error); ``details`` keeps the raw reply."""

    def __init__(self, message: str, raw: str) -> None:
        excerpt = raw if len(raw) <= 200 else raw[:199] + "…"
        super().__init__(f"{message}; reply was {excerpt!r}")
        self.details = {"raw_reply": raw}


class DeprecatedField(FutureWarning):
    """A suite or monitor file uses the old name of a field; it still works."""


def call_error_for_status(status: int, message: str, retry_after: float | None = None) -> CallError:
    """An HTTP error answer as a :class:`CallError`: 408, 409, 429 and 5xx may succeed on retry; 429 throttles."""
    return CallError(f"HTTP {status}: {message}", retryable=status in (408, 409, 429) or status >= 500,
                     retry_after=retry_after, throttled=status == 429)


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, ``retry-after`` (seconds or HTTP date).

    A value that is neither a finite, non-negative number nor an HTTP date is ignored (None: the
    caller backs off as usual); it never raises. The caller caps the wait (``runner.max_retry_wait``).
    """
    if headers is None:
        return None
    ms = _seconds(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000.0
    value = headers.get("retry-after")
    if not value or not isinstance(value, str):
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
        return max(0.0, parsed.timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _seconds(value: Any) -> float | None:
    """*value* as a finite number >= 0, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x >= 0 else None
