"""Results: one variant of one run, the only home (with :mod:`promptgauge.store`) of run results.

- :mod:`.side` -- :class:`Results` and :func:`load_results` (from the store);
- :mod:`.columns` -- the numbers as compact columns, and the per-row table;
- :mod:`.rows` -- the per-row view (:class:`RowView`) of the rows a report shows;
- :mod:`.files` -- results files (``promptgauge.results/1``): promoted baselines, snapshots;
- :mod:`.summary` -- aggregates of a run: call statistics and per-evaluator metrics;
- :mod:`.trajectory` -- a result's trajectory: tool-call digests, the compact tool sequence, the first
  divergence of two trajectories, a trajectory cut for a report;
- :mod:`.refs` -- references: ``FILE.json``, ``RUN``, ``RUN:VARIANT``, ``latest``, ``VARIANT``.

``Side`` is the former name of :class:`Results` (one side of a comparison), kept as an alias.
"""

from .columns import Columns, EvaluatorColumns, inputs_digest, read_columns, row_table, tool_changes
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
from .trajectory import (
    cut_trajectory,
    first_divergence,
    load_trajectory,
    step_groups,
    tool_change,
    tool_sequence,
    trajectory_digests,
)

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
    "cut_trajectory",
    "first_divergence",
    "inputs_digest",
    "load_results",
    "load_results_file",
    "load_trajectory",
    "read_columns",
    "resolve_results",
    "results_text",
    "results_to_json",
    "row_table",
    "step_groups",
    "summarize",
    "tool_change",
    "tool_changes",
    "tool_sequence",
    "trajectory_digests",
    "variant_summary",
    "write_results_file",
]
