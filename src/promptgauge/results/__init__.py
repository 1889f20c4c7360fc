"""Results: one variant of one run, the only home (with :mod:`promptgauge.store`) of run results.

- :mod:`.side` -- :class:`Results` and :func:`load_results` (from the store);
- :mod:`.columns` -- the numbers as compact columns, and the per-row table;
- :mod:`.rows` -- the per-row view (:class:`RowView`) of the rows a report shows;
- :mod:`.files` -- results files (``promptgauge.results/1``): promoted baselines, snapshots;
- :mod:`.summary` -- aggregates of a run: call statistics and per-evaluator metrics;
- :mod:`.refs` -- references: ``FILE.json``, ``RUN``, ``RUN:VARIANT``, ``latest``, ``VARIANT``.

``Side`` is the former name of :class:`Results` (one side of a comparison), kept as an alias.
"""

from .columns import Columns, EvaluatorColumns, inputs_digest, read_columns, row_table
from .files import (
    RESULTS_SCHEMA,
    load_results_file,
    results_text,
    results_to_json,
    write_results_file,
)
from .refs import resolve_results
from .rows import RowView
from .side import Results, load_results
from .summary import SUMMARY_SCHEMA, columns_summary, summarize, variant_summary

Side = Results

__all__ = [
    "Columns",
    "EvaluatorColumns",
    "RESULTS_SCHEMA",
    "Results",
    "RowView",
    "SUMMARY_SCHEMA",
    "Side",
    "columns_summary",
    "inputs_digest",
    "load_results",
    "load_results_file",
    "read_columns",
    "resolve_results",
    "results_text",
    "results_to_json",
    "row_table",
    "summarize",
    "variant_summary",
    "write_results_file",
]
