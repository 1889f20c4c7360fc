"""One variant's results as compact columns: what summaries, comparisons and the gate compute from.

One entry per result (row x repeat) in dataset order, and each evaluator's score, pass/fail and
failure aligned with them: numpy arrays of numbers, the row ids, a 16-byte digest of each
row's inputs and of its tool calls (:mod:`.trajectory`; zeros for results without a
trajectory, read from the stored outputs by SQLite's JSON functions, so a run without agents
pays one ``json_type`` per result). The texts -- inputs, outputs, evaluator details -- stay in the store (or in a
results file's frames) and are read only for the rows a report shows, so 100,000 results with
three evaluators take ~10 MB, not a Python object per value.

:func:`row_table` condenses them to one line per row (repeats averaged), the table the
comparisons and the gate pair rows on.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..store import to_json
from .trajectory import tool_digests, trajectory_digests

if TYPE_CHECKING:
    import pandas as pd

    from ..store import Store

#: Results fetched from SQLite at a time.
FETCH = 10_000
#: Evaluators joined in one query (SQLite joins at most 64 tables).
JOINS = 48
#: A result's tool calls as ``[[name, arguments, arguments_raw], ...]`` (only what the digests need, never the
#: tool results); a trajectory without a ``tool_calls`` list whole; NULL without a trajectory.
TOOL_CALLS = ("CASE json_type(r.outputs, '$.trajectory.tool_calls') WHEN 'array' THEN (SELECT json_group_array("
              "json_array(json_extract(j.value, '$.name'), json_extract(j.value, '$.arguments'), "
              "json_extract(j.value, '$.arguments_raw'))) FROM json_each(r.outputs, '$.trajectory.tool_calls') j) "
              "ELSE json_extract(r.outputs, '$.trajectory') END")


@dataclass(frozen=True)
class EvaluatorColumns:
    """One evaluator's records, aligned with the results."""

    present: np.ndarray  # bool: the result has a score record
    score: np.ndarray  # float: the primary score; NaN when none
    passed: np.ndarray  # float: 1.0 pass / 0.0 fail; NaN when no verdict
    error: np.ndarray  # bool: the evaluator failed on the result
    repeat_scores: list[Any] | None = None  # per result, every repeat's score (only for agreement)


@dataclass(frozen=True)
class Columns:
    """One variant's results (see the module docstring)."""

    row_id: np.ndarray  # object: str
    repeat: np.ndarray  # int
    row_index: np.ndarray  # int
    inputs: np.ndarray  # S16: digest of the inputs as the store writes them (:func:`inputs_digest`)
    error: np.ndarray  # bool: the model call failed
    latency_ms: np.ndarray  # float
    prompt_tokens: np.ndarray  # float; NaN when unknown
    completion_tokens: np.ndarray
    ttft_ms: np.ndarray  # float: a streamed answer's time to first token; NaN when not streamed
    tokens_per_s: np.ndarray  # float: its output tokens per second after the first; NaN when unknown
    tools: np.ndarray  # S16: digest of the tool names in order (first 8 bytes) and of names with arguments
    evaluators: dict[str, EvaluatorColumns]
    labels: dict[str, list[Any]]  # human label column -> per result value (only for agreement)

    def __len__(self) -> int:
        return len(self.row_id)

    @classmethod
    def read(cls, db: sqlite3.Connection, run_id: str, variant: str, evaluators: Sequence[str],
             configs: dict[str, Any] | None = None) -> Columns:
        """A variant's columns from the store: one pass over its results joined with their scores,
        *FETCH* results at a time; no text kept.

        *configs* (the manifest's ``evaluators``) adds what agreement statistics need: the
        repeat scores of evaluators with ``repeats`` and the ``human_label`` columns.
        """
        labels = _labels(evaluators, configs)
        values: list[Any] = []
        for start in range(0, max(len(evaluators), 1), JOINS):
            select, convert, joins = [], [], []
            if not start:
                select = ["r.row_id", "r.repeat", "r.row_index", "r.inputs", "r.error IS NOT NULL", "r.latency_ms",
                          "r.prompt_tokens", "r.completion_tokens", "json_extract(r.outputs, '$.ttft_ms')",
                          "json_extract(r.outputs, '$.tokens_per_s')", TOOL_CALLS] + ["r.inputs"] * len(labels)
                convert = [_objects, _ints, _ints, _digests, _bools, _floats, _floats, _floats, _floats, _floats,
                           _tool_digests]
                convert += [lambda c, k=k: [json.loads(t).get(k) for t in c] for k in labels]
            group = evaluators[start:start + JOINS]
            for i, ev in enumerate(group):
                select += [f"s{i}.rowid IS NOT NULL", f"s{i}.score", f"s{i}.passed", f"s{i}.error IS NOT NULL"]
                convert += [_bools, _floats, _floats, _bools]
                if _repeats(ev, configs) > 1:
                    select.append(f"json_extract(s{i}.details, '$.repeat_scores')")
                    convert.append(_json_lists)
                joins.append(f"LEFT JOIN scores s{i} ON s{i}.run_id=r.run_id AND s{i}.row_id=r.row_id AND "
                             f"s{i}.variant=r.variant AND s{i}.repeat=r.repeat AND s{i}.evaluator=?")
            cur = db.execute(f"SELECT {', '.join(select)} FROM results r {' '.join(joins)} "
                             "WHERE r.run_id=? AND r.variant=? ORDER BY r.row_index, r.repeat, r.row_id",
                             (*group, run_id, variant))
            values += _fetch(cur, convert)
        take = iter(values).__next__
        results = [take() for _ in range(11)]
        label_values = {k: take() for k in labels}
        per_ev = {ev: EvaluatorColumns(take(), take(), take(), take(), take() if _repeats(ev, configs) > 1 else None)
                  for ev in evaluators}
        return cls(*results, evaluators=per_ev, labels=label_values)

    @classmethod
    def from_frames(cls, results: pd.DataFrame, scores: pd.DataFrame, evaluators: Sequence[str],
                    configs: dict[str, Any] | None = None) -> Columns:
        """A variant's columns from its results and scores frames (a results file), in the frames' order.

        ``inputs`` and ``details`` cells may be parsed (dicts) or JSON text; scores of results the
        frame lacks are left out.
        """
        n = len(results)
        position = {key: i for i, key in enumerate(zip(results["row_id"], results["repeat"]))}
        inputs = [_obj(x) or {} for x in results["inputs"]] if "inputs" in results else [{}] * n
        per_ev = {}
        for ev in evaluators:
            s = scores[scores["evaluator"] == ev]
            idx = np.array([position.get(k, -1) for k in zip(s["row_id"], s["repeat"])], dtype=int)
            keep = idx >= 0
            idx = idx[keep]
            present, failed = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
            score, passed = np.full(n, np.nan), np.full(n, np.nan)
            present[idx] = True
            score[idx] = s["score"].to_numpy(dtype=float)[keep]
            passed[idx] = s["passed"].to_numpy(dtype=float)[keep]
            failed[idx] = s["error"].notna().to_numpy()[keep]
            repeat_scores = None
            if _repeats(ev, configs) > 1:
                repeat_scores = [[] for _ in range(n)]
                for i, d in zip(idx, s["details"].to_numpy()[keep]):
                    repeat_scores[i] = (_obj(d) or {}).get("repeat_scores") or []
            per_ev[ev] = EvaluatorColumns(present, score, passed, failed, repeat_scores)
        return cls(
            row_id=results["row_id"].to_numpy(dtype=object), repeat=results["repeat"].to_numpy(dtype=int),
            row_index=results["row_index"].to_numpy(dtype=int),
            inputs=_digests([to_json(x) for x in inputs]),
            error=results["error"].notna().to_numpy(), latency_ms=_floats(results["latency_ms"]),
            prompt_tokens=_floats(results["prompt_tokens"]), completion_tokens=_floats(results["completion_tokens"]),
            ttft_ms=_floats(results["ttft_ms"]) if "ttft_ms" in results else np.full(n, np.nan),
            tokens_per_s=_floats(results["tokens_per_s"]) if "tokens_per_s" in results else np.full(n, np.nan),
            tools=np.array([b"".join(trajectory_digests(t)) for t in results["trajectory"]] if "trajectory" in results
                           else [bytes(16)] * n, dtype="S16"),
            evaluators=per_ev, labels={k: [i.get(k) for i in inputs] for k in _labels(evaluators, configs)})


def read_columns(store: Store, run_id: str, variant: str, evaluators: Sequence[str],
                 configs: dict[str, Any] | None = None) -> Columns:
    """A variant's columns from an open store (:meth:`Columns.read` on its connection)."""
    return Columns.read(store.db, run_id, variant, evaluators, configs)


def first_appearance(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Of an object array of str ids: each element's code (the rank of its id's first appearance), the
    distinct ids in order of first appearance, and the mask of first appearances (numpy only, no pandas)."""
    if not len(ids):
        return np.zeros(0, dtype=np.intp), ids[:0], np.zeros(0, dtype=bool)
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    mask = np.zeros(len(ids), dtype=bool)
    mask[first] = True
    return rank[inverse.reshape(-1)], ids[np.sort(first)], mask


def index_of(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The position of each query in *keys* (distinct str ids), -1 where it is missing."""
    if not len(keys) or not len(queries):
        return np.full(len(queries), -1, dtype=np.intp)
    order = np.argsort(keys, kind="stable")
    at = np.searchsorted(keys[order], queries).clip(0, len(keys) - 1)
    pos = order[at]
    return np.where(keys[pos] == queries, pos, -1)


class RowMetrics:
    """One line per row id (dataset order), one float column per metric: what comparisons and gates read.
    :meth:`select` keeps the given row ids (in their order); :meth:`frame` is the same as a pandas table."""

    def __init__(self, row_ids: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        self.row_ids = row_ids
        self.columns = columns

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __len__(self) -> int:
        return len(self.row_ids)

    def select(self, row_ids: np.ndarray) -> RowMetrics:
        pos = index_of(self.row_ids, row_ids)
        if (pos < 0).any():
            raise KeyError(f"row ids not in the table: {list(row_ids[pos < 0][:5])}")
        return RowMetrics(self.row_ids[pos], {k: v[pos] for k, v in self.columns.items()})

    def frame(self) -> Any:
        import pandas as pd  # only the callers that want a DataFrame pay for pandas

        return pd.DataFrame(self.columns, index=pd.Index(self.row_ids, name="row_id"))


def row_metrics(cols: Columns, evaluators: Sequence[str]) -> RowMetrics:
    """One line per row id (dataset order), one column per metric; repeats averaged.

    Columns: ``error_rate``, ``latency_ms.mean``, and per evaluator ``EV.pass_rate`` (when it
    gives pass/fail; a failed call or evaluator counts as a fail) and ``EV.mean``.
    """
    codes, row_ids, _ = first_appearance(cols.row_id)  # results come in dataset order

    def per_row(values: np.ndarray) -> np.ndarray:
        """Mean over a row's repeats, ignoring NaN; NaN when a row has no value."""
        ok = ~np.isnan(values)
        total = np.bincount(codes, weights=np.where(ok, values, 0.0), minlength=len(row_ids))
        count = np.bincount(codes, weights=ok.astype(float), minlength=len(row_ids))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count, np.nan)

    call_err = cols.error
    out: dict[str, np.ndarray] = {}
    out["error_rate"] = per_row(call_err.astype(float))
    out["latency_ms.mean"] = per_row(np.where(call_err, np.nan, cols.latency_ms))
    for ev in evaluators:
        e = cols.evaluators[ev]
        failed = call_err | (e.present & e.error)
        if not np.isnan(e.passed).all():
            out[f"{ev}.pass_rate"] = per_row(np.where(failed, 0.0, e.passed))
        out[f"{ev}.mean"] = per_row(np.where(failed, np.nan, e.score))
    return RowMetrics(row_ids, out)


def row_table(cols: Columns, evaluators: Sequence[str]) -> Any:
    """:func:`row_metrics` as a pandas DataFrame indexed by ``row_id``."""
    return row_metrics(cols, evaluators).frame()


def tool_changes(base: Columns, cand: Columns, row_ids: np.ndarray) -> np.ndarray:
    """Per row of *row_ids* (its first result on each side): ``"sequence"``, ``"arguments"`` or ``""`` --
    :func:`~promptgauge.results.trajectory.tool_change` over the 16-byte tool digests, vectorised."""
    empty = np.frombuffer(b"".join(tool_digests([])), dtype="S8")
    halves = []
    for cols in (base, cand):
        first = first_appearance(cols.row_id)[2]
        pos = index_of(cols.row_id[first], row_ids)
        h = cols.tools[first][pos].view("S8").reshape(-1, 2).copy()
        h[h[:, 0] == b""] = empty  # no trajectory (NO_TRAJECTORY: numpy reads zero bytes as b""): no tool calls
        halves.append(h)
    a, b = halves
    return np.select([a[:, 0] != b[:, 0], a[:, 1] != b[:, 1]], ["sequence", "arguments"], "")


def inputs_digest(text: str) -> bytes:
    """A row's inputs, as the store writes them (:func:`promptgauge.store.to_json`), in 16 bytes."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _repeats(evaluator: str, configs: dict[str, Any] | None) -> int:
    return ((configs or {}).get(evaluator) or {}).get("repeats") or 1


def _labels(evaluators: Sequence[str], configs: dict[str, Any] | None) -> list[str]:
    """The human label columns the evaluators are checked against."""
    return sorted({label for ev in evaluators if (label := ((configs or {}).get(ev) or {}).get("human_label"))})


def _obj(value: Any) -> Any:
    """An inputs/details cell: parsed already (a dict), JSON text, or missing."""
    return json.loads(value) if isinstance(value, str) else value


def _fetch(cur: sqlite3.Cursor, convert: list[Callable[[Sequence[Any]], Any]]) -> list[Any]:
    """The cursor's columns, each converted chunk by chunk (no list of every row at once)."""
    parts: list[list[Any]] = [[] for _ in convert]
    while chunk := cur.fetchmany(FETCH):
        for part, conv, column in zip(parts, convert, zip(*chunk)):
            part.append(conv(column))
    return [_join(p, conv) for p, conv in zip(parts, convert)]


def _join(parts: list[Any], conv: Callable[[Sequence[Any]], Any]) -> Any:
    if not parts:
        return conv(())
    return np.concatenate(parts) if isinstance(parts[0], np.ndarray) else [x for p in parts for x in p]


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _ints(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _floats(values: Sequence[Any]) -> np.ndarray:
    """Numbers; None (SQL NULL) becomes NaN."""
    return np.asarray(values, dtype=float)


def _bools(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(values, dtype=bool)


def _digests(texts: Sequence[str]) -> np.ndarray:
    return np.array([inputs_digest(t) for t in texts], dtype="S16")


def _tool_digests(values: Sequence[str | None]) -> np.ndarray:
    """The :data:`TOOL_CALLS` texts as digests (zeros without a trajectory)."""
    out = np.zeros(len(values), dtype="S16")
    empty = b"".join(tool_digests([]))
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            out[i] = empty if v == "[]" else b"".join(
                tool_digests(json.loads(v)) if v.startswith("[") else trajectory_digests(v))
        except (ValueError, TypeError, IndexError, AttributeError):  # not a trajectory after all
            pass
    return out


def _json_lists(values: Sequence[str | None]) -> list[Any]:
    return [json.loads(v) if v else [] for v in values]
