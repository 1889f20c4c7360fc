"""Production monitoring: score logged traffic with the suite's evaluators, watch trends, alert on drift.

``promptgauge monitor --config monitor.yaml`` (or :func:`monitor`) reads new
records since the last checkpoint, samples and redacts them, scores them,
stores the scores as a time series in the run store, compares the latest
window with a reference, and writes a trend report.
"""

from ..errors import BadRecord
from .config import MonitorConfig, load_monitor_config
from .core import PassResult, monitor, run_pass
from .sources import Reader, Record

__all__ = ["BadRecord", "MonitorConfig", "PassResult", "Reader", "Record", "load_monitor_config", "monitor",
           "run_pass"]
