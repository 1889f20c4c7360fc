"""promptgauge: score prompt and model variants on curated datasets, compare them, gate promotion.

The public API, loaded lazily (the pytest plugin imports this package in every
pytest session, so importing it must stay cheap)::

    import promptgauge as pg
    report = pg.run("promptgauge.yaml")      # score, store, compare, gate, reports
    report.passed, report.reports["html"]

Monitoring: ``promptgauge.api.monitor`` (``promptgauge.monitor`` is its package).
"""

from __future__ import annotations

import importlib
from typing import Any

from .telemetry import off as _telemetry_off

__version__ = "0.1.0"

_telemetry_off()  # before any third-party library is imported, for every entry point (promptgauge.telemetry)

_API = {
    "run": "api", "compare": "api", "promote": "api", "trend": "api", "ci": "api", "dry_run": "api",
    "RunReport": "api", "CompareReport": "api",
    "load_suite": "suite", "Suite": "suite",
    "load_dataset": "datasets",
    "UserError": "errors", "PromptGaugeError": "errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'promptgauge' has no attribute {name!r}")
