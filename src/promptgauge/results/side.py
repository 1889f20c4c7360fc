"""One variant of one run -- its results -- as read from the store or from a results file.

:class:`Results` holds the run's manifest and gives the numbers as compact columns
(:mod:`.columns`), the per-row table, the texts of the rows a report shows (:mod:`.rows`) and
the hashes the numbers rest on. :func:`load_results` reads one from the store; results files
are :mod:`.files`, references such as ``RUN:VARIANT`` :mod:`.refs`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CompareError
from ..store import Store, reader, variant_frames
from .columns import Columns, RowMetrics, row_metrics
from .rows import RowView, frame_rows, store_input_names, store_rows
from .trajectory import load_trajectory

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Results:
    """One variant of one run: its manifest and its per-row results and scores.

    Results from a results file (or ``load_results(..., frames=True)``) hold every result and
    score in ``results`` and ``scores``. Results with ``store`` set hold no frames: their numbers
    come from compact columns (:meth:`columns`) and the texts of the rows a report shows are
    read from the store file when asked (:meth:`rows`), so memory stays flat in rows.
    """

    run_id: str
    variant: str
    suite: str
    created_at: float
    manifest: dict[str, Any]
    evaluator_kinds: dict[str, str]
    results: pd.DataFrame | None  # row_id, repeat, row_index, inputs (dict), output, error, latency_ms, tokens,
    #                               trajectory (a tool loop's, else None)
    scores: pd.DataFrame | None  # row_id, repeat, evaluator, score, passed, error, details (dict | None)
    source: str = "store"
    _metrics: RowMetrics | None = field(default=None, repr=False)
    store: Path | None = None  # the store file frameless results read from
    _columns: Columns | None = field(default=None, init=False, repr=False)

    @property
    def label(self) -> str:
        where = "" if self.source == "store" else f" from {self.source}"
        return f"{self.variant} @ run {self.run_id}{where}"

    @property
    def evaluators(self) -> list[str]:
        return list(self.manifest.get("evaluators", {}))

    @property
    def directions(self) -> dict[str, bool]:
        """Evaluator -> whether its higher scores are better, as the run recorded it."""
        return {ev: bool(e.get("higher_is_better", True)) for ev, e in self.manifest.get("evaluators", {}).items()}

    def hashes(self) -> dict[str, Any]:
        """What these numbers rest on, by content hash."""
        m = self.manifest
        v = m.get("variants", {}).get(self.variant, {})
        params = v.get("parameters", {})
        return {
            "dataset": {"path": m.get("dataset", {}).get("path"), "sha256": m.get("dataset", {}).get("sha256"),
                        "rows": m.get("dataset", {}).get("rows")},
            "suite": m.get("suite", {}).get("sha256"),
            "prompt": {"path": v.get("prompt"), "sha256": v.get("prompt_sha256")},
            "model": v.get("target_info") or {"target": v.get("target")},
            "parameters": params,
            "parameters_sha256": _sha(params),
            "evaluators": {k: e.get("sha256") or e.get("source") for k, e in m.get("evaluators", {}).items()},
            "judges": judge_hashes(m),
        }

    def columns(self) -> Columns:
        """Every result's numbers, compact (see :mod:`promptgauge.results.columns`)."""
        if self._columns is None:
            configs = self.manifest.get("evaluators")
            if self.results is not None:
                self._columns = Columns.from_frames(self.results, self.scores, self.evaluators, configs)
            else:
                with reader(self.store) as db:
                    self._columns = Columns.read(db, self.run_id, self.variant, self.evaluators, configs)
        return self._columns

    def metrics(self) -> RowMetrics:
        """One line per row id (dataset order), one column per metric; repeats averaged (numpy columns)."""
        if self._metrics is None:
            self._metrics = row_metrics(self.columns(), self.evaluators)
        return self._metrics

    def table(self) -> pd.DataFrame:
        """:meth:`metrics` as a pandas DataFrame indexed by ``row_id``."""
        return self.metrics().frame()

    def summary(self) -> dict[str, Any]:
        """Call statistics and per-evaluator metrics (:func:`promptgauge.summary.columns_summary`)."""
        # The one import of a layer above: a summary is computed by promptgauge.summary.
        from .summary import columns_summary

        return columns_summary(self.columns(), self.evaluators, self.manifest.get("evaluators"))

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``results`` and ``scores`` with every text (read whole from the store for frameless results)."""
        if self.results is not None:
            return self.results, self.scores
        with reader(self.store) as db:
            return _parse_frames(*variant_frames(db, self.run_id, self.variant))

    def rows(self, row_ids: Any) -> dict[str, RowView]:
        """The per-row view of these rows (a few at a time: their texts are read for this)."""
        if self.results is not None:
            return frame_rows(self.results, self.scores, row_ids)
        with reader(self.store) as db:
            return store_rows(db, self.run_id, self.variant, list(row_ids))

    def input_names(self) -> list[str]:
        """The rows' input names, in order of first appearance."""
        if self.results is not None:
            return list(dict.fromkeys(k for inputs in self.results["inputs"] for k in inputs))
        with reader(self.store) as db:
            return store_input_names(db, self.run_id, self.variant)


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def load_results(store: Store, run_id: str | None, variant: str | None, *, role: str = "candidate",
                 frames: bool = True) -> Results:
    """A run's variant from the store; without *variant*, the run's only or gated variant.

    ``frames=False`` gives frameless results: compact columns, texts read from the store file
    for the rows shown (what runs and comparisons use: memory stays flat in rows).
    """
    info = store.run(run_id)
    variants = list(info.manifest.get("variants", {}))
    baseline = info.config.get("baseline")
    if variant is None:
        if len(variants) == 1:
            variant = variants[0]
        elif role == "baseline" and baseline in variants:
            variant = baseline
        else:
            others = [v for v in variants if v != baseline]
            if len(others) != 1:
                raise CompareError(
                    f"run {info.run_id} has variants {', '.join(variants)}: say which one is the {role}",
                    hint=f"write {info.run_id}:VARIANT",
                )
            variant = others[0]
    if variant not in variants:
        raise CompareError(f"run {info.run_id} has no variant '{variant}'", hint="its variants: " + ", ".join(variants))
    kinds = {e["name"]: e.get("type") or e["name"] for e in info.config.get("evaluators", [])}
    manifest = {**info.manifest, "variants": {variant: info.manifest["variants"][variant]}}
    if not frames:
        return Results(info.run_id, variant, info.suite, info.created_at, manifest, kinds, None, None,
                       store=store.path)
    results, scores = _parse_frames(*variant_frames(store.db, info.run_id, variant))
    return Results(info.run_id, variant, info.suite, info.created_at, manifest, kinds, results, scores)


def _parse_frames(results: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The store's frames with inputs and details parsed (dicts) and, of the raw target outputs, only a tool
    loop's ``trajectory`` (None for other rows)."""
    results["inputs"] = results["inputs"].map(json.loads)
    results["trajectory"] = results["outputs"].map(_trajectory)
    scores["details"] = scores["details"].map(lambda d: json.loads(d) if isinstance(d, str) else None)
    trajectories = results["outputs"].map(_trajectory)
    if trajectories.notna().any():
        results["trajectory"] = trajectories
    return results.drop(columns=["outputs"]), scores


def _trajectory(outputs: str | None) -> dict[str, Any] | None:
    """The trajectory in a result's outputs text (parsed only when the text names one)."""
    if not isinstance(outputs, str) or '"trajectory"' not in outputs:
        return None
    return load_trajectory(json.loads(outputs).get("trajectory"))


def judge_hashes(manifest: dict[str, Any]) -> dict[str, Any]:
    """Per LLM judge of a run's evaluators: its model, call parameters and prompt hash (``{}`` for a run recorded
    before judges' settings were; see :func:`promptgauge.evaluators.judge.judge_evidence`)."""
    return {k: e["judge"] for k, e in manifest.get("evaluators", {}).items() if isinstance(e, dict) and e.get("judge")}
