"""Files every layer writes or names: atomic writes, and paths shown relative to a root.

A file written with :func:`atomic_write` (or :func:`atomic_open`, for a stream) is
written under a temporary name and renamed into place once complete: a reader, or a
run killed half-way, never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


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
