"""Results: one variant of one run, the only home (with :mod:`promptgauge.store`) of run results.

- :mod:`.side` -- :class:`Results` and :func:`load_results` (from the store);
- :mod:`.columns` -- the numbers as compact columns, and the per-row table;
- :mod:`.rows` -- the per-row view (:class:`RowView`) of the rows a report shows;
- :mod:`.files` -- results files (``promptgauge.results/1``): promoted baselines, snapshots;
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

Side = Results

__all__ = ["RESULTS_SCHEMA", "Columns", "EvaluatorColumns", "Results", "RowView", "Side", "inputs_digest",
           "load_results", "load_results_file", "read_columns", "resolve_results", "results_text", "results_to_json",
           "row_table", "write_results_file"]
