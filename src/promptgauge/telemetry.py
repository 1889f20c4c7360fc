"""No telemetry, ever: switched off for the libraries promptgauge may load, before they load.

Importing azure-ai-evaluation (or promptflow's SDK, which it imports) runs
``promptflow._sdk._utilities.tracing_utils``, which builds promptflow's telemetry log handler: an
Azure Monitor log exporter. Creating that exporter fetches its configuration from
``settings.sdk.monitor.azure.com`` (its "control plane") and starts "statsbeat" usage metrics; the
handler then exports promptflow's activity logs unless ``pf config set telemetry.enabled=false``
was run. promptflow flows also start a trace service unless tracing is disabled.

:func:`off` runs when the ``promptgauge`` package is imported -- so for every entry point (the
CLI, the pytest plugin, the Python API) before any of those libraries is: it sets the switches
those libraries read from the environment (:data:`ENV`). promptflow reads its telemetry consent
from a file, not the environment, so :func:`silence_loaded` turns its handler off once it exists:
the registry calls it after loading any evaluator module, the flow target after loading promptflow.
"""

from __future__ import annotations

import os
import sys

#: Environment switches, forced: Azure Monitor's control plane and statsbeat, promptflow's tracing.
ENV = {
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "PF_DISABLE_TRACING": "true",
}


def off() -> None:
    """Set :data:`ENV` in this process (and so in the processes it starts)."""
    os.environ.update(ENV)


def silence_loaded() -> None:
    """Turn promptflow's telemetry log handler off if it has been created (never creates it)."""
    module = sys.modules.get("promptflow._sdk._telemetry.logging_handler")
    getter = getattr(module, "get_promptflow_sdk_log_handler", None)
    info = getattr(getter, "cache_info", None)
    if info is None or not info().currsize:
        return
    try:
        getter()._is_telemetry_enabled = False
    except Exception:  # noqa: BLE001 - a promptflow without this attribute: its consent stays as configured
        return
