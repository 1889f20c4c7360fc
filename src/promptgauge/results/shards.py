"""Shard files (``promptgauge.shard/1``): what ``run --shard K/N`` ran, for ``merge`` to rebuild the run.

JSON Lines, streamed both ways (a shard of a million rows is never held in memory):

- line 1, the header: ``{"schema", "suite", "run_id", "status", "shard": {index, count, rows},
  "manifest", "config", "notes"}`` -- the manifest is the run's, with its ``shard`` entry;
- one line per result, ``{"result": {...}}``: every column the store keeps (inputs, output, outputs,
  error, latency, tokens, attempts) and its scores, as :meth:`~promptgauge.store.Store.iter_results`
  gives them, so a merged run is the same run, not a lossy copy;
- the last line, ``{"end": {"results": n}}``: a file cut short (a job killed while uploading) is refused.

:func:`check_shards` reads the headers and refuses shards of different suites, datasets or hashes,
of different shard counts, and missing or duplicate shards; :func:`shard_results` streams a checked
shard's results, refusing a row that is not in its shard or appears twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..datasets import shard_of
from ..errors import CompareError
from ..files import atomic_open
from ..store import Store, to_json

SHARD_SCHEMA = "promptgauge.shard/1"

#: Manifest entries that must be equal in every shard of one run (the rest -- versions -- may differ).
SAME = ("suite", "dataset", "variants", "evaluators", "repeats", "seed", "seeds", "order")


@dataclass
class ShardFile:
    """A shard file's header: which shard of which run it holds."""

    path: Path
    index: int
    count: int
    rows: int
    suite: str
    run_id: str
    status: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    notes: list[str]

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.count} ({self.path})"

    def run_manifest(self) -> dict[str, Any]:
        """The manifest of the whole run: this shard's, without its ``shard`` entry, nor the run-level
        ``aggregates`` of its rows only (the merged run aggregates all of them again)."""
        return {k: v for k, v in self.manifest.items() if k not in ("shard", "aggregates")}


def write_shard(store: Store, run_id: str, path: Path, *, notes: list[str] | tuple[str, ...] = ()) -> int:
    """Export run *run_id* (a ``--shard`` run) from *store* to the shard file *path*, atomically.

    Returns the number of results written.
    """
    info = store.run(run_id)
    shard = info.manifest["shard"]
    header = {"schema": SHARD_SCHEMA, "suite": info.suite, "run_id": run_id, "status": info.status, "shard": shard,
              "manifest": info.manifest, "config": info.config, "notes": sorted(notes)}
    n = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        f.write(to_json(header) + "\n")
        for item in store.iter_results(run_id):
            f.write(to_json({"result": item}) + "\n")
            n += 1
        f.write(json.dumps({"end": {"results": n}}) + "\n")
    return n


def _header(path: Path) -> ShardFile:
    try:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
    except FileNotFoundError:
        raise CompareError("shard file not found", file=path) from None
    except IsADirectoryError:
        raise CompareError("shard file: is a folder", file=path, hint="name the .jsonl files run --shard wrote") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"shard file: cannot be read: {exc}", file=path) from None
    try:
        doc = json.loads(first)
    except json.JSONDecodeError as exc:
        raise CompareError(f"not a shard file: line 1 is not JSON ({exc.msg})", file=path, line=1,
                           hint="merge takes the files 'promptgauge run --shard K/N' writes") from None
    if not isinstance(doc, dict) or doc.get("schema") != SHARD_SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise CompareError(f"not a shard file (schema {found!r})", file=path, line=1,
                           hint=f"expected schema '{SHARD_SCHEMA}', written by 'promptgauge run --shard K/N'")
    try:
        shard = doc["shard"]
        return ShardFile(path, int(shard["index"]), int(shard["count"]), int(shard["rows"]), str(doc["suite"]),
                         str(doc["run_id"]), str(doc["status"]), dict(doc["manifest"]), dict(doc["config"]),
                         [str(n) for n in doc.get("notes", [])])
    except (KeyError, TypeError, ValueError) as exc:
        raise CompareError(f"shard file header is incomplete or malformed near {exc}", file=path, line=1) from None


def check_shards(paths: list[Path]) -> list[ShardFile]:
    """The headers of *paths*, checked to be every shard of one run, ordered by shard index.

    Refused (:class:`~promptgauge.errors.CompareError`, exit 2): no file, shards of different suites,
    datasets, variants, evaluators, seeds or shard counts, a shard given twice or missing, and a shard
    whose run did not finish.
    """
    if not paths:
        raise CompareError("merge needs the shard files", hint="promptgauge merge shard-1-of-3.jsonl shard-2-of-3.jsonl ...")
    shards = [_header(Path(p)) for p in paths]
    first = shards[0]
    for sh in shards[1:]:
        for key in SAME:
            if sh.manifest.get(key) != first.manifest.get(key):
                what = {"suite": "suites (their files' sha256 differ)", "dataset": "datasets (their sha256 or rows differ)",
                        }.get(key, f"{key} (the runs' manifests differ)")
                raise CompareError(f"{sh.label} and {first.label} are shards of different {what}",
                                   file=sh.path, field=f"manifest.{key}",
                                   hint="merge the shards of one suite at one commit, all run with the same options")
        if sh.count != first.count:
            raise CompareError(f"{sh.label} is one of {sh.count} shards, {first.label} one of {first.count}",
                               file=sh.path, field="shard.count", hint="merge shards that were split the same way (same N)")
    seen: dict[int, ShardFile] = {}
    for sh in shards:
        if sh.index in seen:
            raise CompareError(f"shard {sh.index}/{sh.count} is given twice: {seen[sh.index].path} and {sh.path}",
                               file=sh.path, field="shard.index", hint="give each shard's file once")
        seen[sh.index] = sh
    missing = [i for i in range(1, first.count + 1) if i not in seen]
    if missing:
        shown = ", ".join(f"{i}/{first.count}" for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise CompareError(f"missing shard{'s' if len(missing) > 1 else ''} {shown} of {first.count}",
                           hint=f"run promptgauge run --shard K/{first.count} for each and pass every file to merge")
    for sh in shards:
        if sh.status != "finished":
            raise CompareError(f"{sh.label} did not finish (status '{sh.status}')", file=sh.path, field="status",
                               hint=f"continue it with: promptgauge run --shard {sh.index}/{sh.count} --resume "
                                    f"{sh.run_id}, then merge its new file")
    return sorted(shards, key=lambda s: s.index)


def shard_results(sh: ShardFile, keys: set[tuple[str, str, int]]) -> Iterator[dict[str, Any]]:
    """The results of a checked shard, streamed; each one's key is added to *keys* (shared across shards).

    Refused: a line that is not a result, a row that does not hash to this shard, a result given twice,
    a variant the run does not have, and a file without its last line or with a different count in it.
    """
    variants = set(sh.manifest.get("variants", {}))
    n = 0
    ended = False
    with sh.path.open(encoding="utf-8") as f:
        f.readline()
        for lineno, line in enumerate(f, start=2):
            if ended:
                raise CompareError("shard file goes on after its end line", file=sh.path, line=lineno)
            try:
                doc = json.loads(line)
                if "end" in doc:
                    ended = True
                    if int(doc["end"]["results"]) != n:
                        raise CompareError(f"shard file says it holds {doc['end']['results']} results, but has {n}",
                                           file=sh.path, line=lineno)
                    continue
                item = doc["result"]
                key = (str(item["row_id"]), str(item["variant"]), int(item["repeat"]))
            except CompareError:
                raise
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise CompareError(f"shard file: line {lineno} is not a result ({type(exc).__name__}: {exc})",
                                   file=sh.path, line=lineno) from None
            if shard_of(key[0], sh.count) != sh.index:
                raise CompareError(f"row '{key[0]}' belongs to shard {shard_of(key[0], sh.count)}/{sh.count}, not "
                                   f"{sh.index}/{sh.count}", file=sh.path, line=lineno,
                                   hint="the file was not written by promptgauge run --shard; re-run that shard")
            if key[1] not in variants:
                raise CompareError(f"result of variant '{key[1]}', which the run does not have", file=sh.path,
                                   line=lineno)
            if key in keys:
                raise CompareError(f"row '{key[0]}' (variant '{key[1]}', repeat {key[2]}) is there twice",
                                   file=sh.path, line=lineno)
            keys.add(key)
            n += 1
            yield item
    if not ended:
        raise CompareError("shard file is cut short: it has no end line (was it copied while being written?)",
                           file=sh.path, hint="take the file again from the shard's job")
    expected = sh.rows * len(variants) * int(sh.manifest.get("repeats") or 1)
    if n != expected:
        raise CompareError(f"{sh.label} holds {n} results, but its {sh.rows} rows x {len(variants)} variants x "
                           f"{sh.manifest.get('repeats') or 1} repeats make {expected}", file=sh.path,
                           hint=f"re-run it: promptgauge run --shard {sh.index}/{sh.count} --resume {sh.run_id}")


#: Results written per commit while merging.
MERGE_BATCH = 512


def merge_shards(store: Store, shards: list[ShardFile], run_id: str, *, suite_path: str | None = None) -> int:
    """Rebuild the run of checked *shards* (:func:`check_shards`) in *store* as run *run_id*: the manifest
    without its shard entry, every result with its scores. Returns the number of results.

    Every file is read through once before anything is written, so a refused shard (a row twice, a file
    cut short) leaves the store untouched.
    """
    seen: set[tuple[str, str, int]] = set()
    for sh in shards:
        for _ in shard_results(sh, seen):
            pass
    first = shards[0]
    store.create_run(run_id, first.suite, suite_path, first.run_manifest(), first.config)
    keys: set[tuple[str, str, int]] = set()
    n = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        with store.batch():
            for item in batch:
                scores = [{"evaluator": ev, **s} for ev, s in (item.get("scores") or {}).items()]
                store.put_result(run_id, item["row_id"], item["variant"], int(item["repeat"]),
                                 row_index=int(item["row_index"]), inputs=item["inputs"], output=item.get("output"),
                                 outputs=item.get("outputs"), error=item.get("error"),
                                 latency_ms=item.get("latency_ms"), prompt_tokens=item.get("prompt_tokens"),
                                 completion_tokens=item.get("completion_tokens"), attempts=int(item.get("attempts") or 0),
                                 scores=scores)
        batch.clear()

    try:
        for sh in shards:
            for item in shard_results(sh, keys):
                batch.append(item)
                n += 1
                if len(batch) >= MERGE_BATCH:
                    flush()
        flush()
    except BaseException:
        store.set_status(run_id, "failed")
        raise
    store.set_status(run_id, "finished")
    return n
