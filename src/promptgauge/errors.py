"""The whole error vocabulary of promptgauge, in one place.

Every error a *user* can cause (a bad suite file, a broken dataset line, an
unknown evaluator...) is a :class:`UserError`: the CLI prints its message as
one paragraph and exits with code 2, without a traceback unless ``--debug``.
Messages say *where* (file, line/row, field) and *what would be valid*.

Errors of a model call or an evaluator on one row are not raised to the user:
they are recorded per row in the store (see :mod:`promptgauge.runner`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
