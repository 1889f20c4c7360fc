"""Record / replay: every model exchange of a run in one JSONL file, for offline (air-gapped) runs.

``--record FILE`` appends each exchange (normalised request, its key and the
completion) as one line; ``--replay FILE`` answers every cacheable call from
the file and stops the run with :class:`CassetteMiss` on a request it lacks.
Requests hold no secrets (see :func:`promptgauge.cache.request`). Completions
go in and come out as dicts (``Completion.to_dict()`` plus the call's ``latency_ms``),
as in the response cache; a replayed call keeps the recorded call's latency and tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import CassetteMiss
from ..files import check_output


class Cassette:
    """One cassette file, opened to ``replay`` from or to ``record`` into (appending to what it holds)."""

    def __init__(self, path: str | Path, mode: str) -> None:
        self.path = Path(path)
        self.mode = mode
        self._entries: dict[str, dict[str, Any]] = {}
        if mode == "replay":
            if self.path.is_dir():
                raise CassetteMiss("is a folder: expected a cassette file", file=self.path)
            self._load()
        else:
            check_output(self.path, "file", "cassette")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self._load()
            self._file = self.path.open("a", encoding="utf-8")

    def _load(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise CassetteMiss("cassette file not found", file=self.path,
                               hint="record one first with: promptgauge run --record FILE") from None
        except UnicodeDecodeError as exc:
            raise CassetteMiss(f"not a cassette: not valid UTF-8 (byte {exc.start})", file=self.path) from None
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                self._entries[str(entry["key"])] = dict(entry["response"])
            except (ValueError, KeyError, TypeError):
                raise CassetteMiss("not a cassette line (expected JSON with 'key' and 'response')",
                                   file=self.path, line=lineno) from None

    def replay(self, key: str, request: dict[str, Any]) -> dict[str, Any]:
        entry = self._entries.get(key)
        if entry is None:
            raise CassetteMiss(
                f"request not in the cassette: {_describe(request)}", file=self.path,
                hint="the suite, dataset or prompts changed since it was recorded; re-record with --record",
            )
        return entry

    def record(self, key: str, request: dict[str, Any], completion: dict[str, Any]) -> None:
        if key in self._entries:
            return
        self._entries[key] = completion
        line = {"key": key, "request": request, "response": self._entries[key]}
        self._file.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self.mode == "record":
            self._file.close()


def _describe(request: dict[str, Any]) -> str:
    msgs = request.get("messages")
    text = msgs if isinstance(msgs, str) else " | ".join(str(m.get("content", "")) for m in msgs or [])
    text = " ".join(text.split())
    text = text if len(text) <= 80 else text[:79] + "…"
    return f"{request.get('kind')} model '{request.get('model')}' repeat {request.get('repeat')}: \"{text}\""
