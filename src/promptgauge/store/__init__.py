"""The store: one SQLite file holding runs, their results and scores, and the monitor's tables.

- :mod:`.runs` -- :class:`Store`: runs, results, scores and manifests, written as they happen;
- :mod:`.monitor` -- :class:`MonitorStore`: the monitoring tables of the same file.

With :mod:`promptgauge.results` (and the response cache) the only place that speaks SQL.
"""

from .monitor import MONITOR_SCHEMA_VERSION, Checkpoint, MonitorStore
from .runs import SCHEMA_VERSION, RunInfo, Store, reader, to_json, variant_frames

__all__ = ["MONITOR_SCHEMA_VERSION", "SCHEMA_VERSION", "Checkpoint", "MonitorStore", "RunInfo", "Store", "reader",
           "to_json", "variant_frames"]
