"""Files every layer writes or names: atomic writes, output-path checks, and paths shown relative to a root.

A file written with :func:`atomic_write` (or :func:`atomic_open`, for a stream) is
written under a temporary name and renamed into place once complete: a reader, or a
run killed half-way, never sees half a file.

:func:`check_output` is the one check of a path promptgauge is about to write -- the
store, the response cache, a cassette, a reports folder, a promotion record: a folder
where a file belongs, a file in a folder's place (or in the way of its parent), a
store that is not a SQLite database, or a place that cannot be written is a
:class:`~promptgauge.errors.PathError` (exit 2) naming the path. It only looks:
nothing is created, modified or deleted, so a file given by mistake is left as it was.
Every verb runs it on all of its outputs before any model call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, TextIO

from .errors import PathError

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Names an existing *empty* file may have to be taken as a new SQLite store (SQLite's own convention).
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")

OutputKind = Literal["file", "dir", "sqlite"]


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[TextIO]:
    """A text file (UTF-8) written under a temporary name and renamed into place once complete."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        yield f
    os.replace(tmp, path)


def atomic_write(path: str | Path, text: str) -> None:
    """Write *text* to *path* atomically (see :func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(text)


def relative(path: str | Path, root: str | Path) -> str:
    """*path* relative to *root* when it lies inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def check_output(path: str | Path, kind: OutputKind, what: str, *, field: str | None = None) -> Path:
    """Check that *path* can be written as *kind* (``file``, ``dir`` or ``sqlite``), touching nothing.

    *what* names it in the message (``store``, ``reports folder``...), *field* is the setting
    that chose it. A ``sqlite`` path that exists must be a SQLite database (or an empty
    ``*.db`` file). Missing folders on the way are fine (they are created when written) as
    long as what exists of the way is folders that can be written. Returns *path*.
    """
    p = Path(path)

    def fail(message: str, hint: str | None = None) -> PathError:
        return PathError(f"{what}: {message}", file=p, field=field, hint=hint)

    if p.exists():
        if kind == "dir":
            if not p.is_dir():
                raise fail("a file is in the way: expected a folder", "name a folder, or move the file away")
            if not os.access(p, os.W_OK | os.X_OK):
                raise fail("the folder cannot be written (permissions)")
            return p
        if p.is_dir():
            raise fail("is a folder: expected a file", "name a file inside it, e.g. " + str(p / _example(kind)))
        if not p.is_file():
            raise fail("is not a regular file")
        if not os.access(p, os.R_OK | os.W_OK):
            raise fail("the file cannot be read and written (permissions)")
        if kind == "sqlite":
            _check_sqlite(p, fail)
    elif p.is_symlink():
        raise fail("is a broken symbolic link")
    _check_parents(p, fail)
    return p


def _example(kind: OutputKind) -> str:
    return "promptgauge.db" if kind == "sqlite" else "out.jsonl"


def _check_sqlite(p: Path, fail) -> None:  # noqa: ANN001 - the local error factory of check_output
    try:
        with p.open("rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror or exc}") from None
    if head == SQLITE_HEADER:
        return
    if not head and p.suffix.lower() in SQLITE_SUFFIXES:
        return  # an empty *.db file: SQLite takes it as a new database
    raise fail("is not a SQLite database" + (" (an empty file)" if not head else ""),
               "point it at a promptgauge store (a .db file it made) or at a new file name; "
               "this file was left untouched")


def _check_parents(p: Path, fail) -> None:  # noqa: ANN001
    """The nearest existing ancestor of *p* must be a folder that can be written."""
    for anc in p.absolute().parents:
        if anc.exists():
            if not anc.is_dir():
                raise fail(f"cannot be created: {anc} is a file, not a folder")
            if not os.access(anc, os.W_OK | os.X_OK):
                raise fail(f"cannot be written: the folder {anc} is not writable (permissions)")
            return
        if anc.is_symlink():
            raise fail(f"cannot be created: {anc} is a broken symbolic link")
