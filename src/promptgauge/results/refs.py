"""References to results, as the command line and the library take them.

``FILE.json`` (a results file), ``RUN`` (a run id or a unique prefix of one), ``RUN:VARIANT``,
``latest`` or ``latest:VARIANT``, and a bare ``VARIANT`` (that variant of the latest run).
"""

from __future__ import annotations

import os

from ..errors import StoreError
from ..store import Store
from .files import load_results_file
from .side import Results, load_results


def resolve_results(ref: str | None, store: Store | None, *, suite: str | None, role: str,
                    default_run: str | None = None) -> Results:
    """Results from a reference: ``FILE.json``, ``RUN``, ``RUN:VARIANT``, ``latest[:VARIANT]`` or ``VARIANT``.

    ``RUN`` may be a unique prefix of a run id; ``VARIANT`` alone means that variant of
    the latest run (of *suite*, when given). Results from the store are frameless.
    """
    if ref and (ref.endswith(".json") or os.sep in ref):
        return load_results_file(ref)
    if store is None:
        raise StoreError(f"no store to find '{ref or 'latest'}' in", hint="run a suite first, or pass --store")
    run, _, variant = (ref or "latest").partition(":")
    if run in ("latest", ""):
        return load_results(store, default_run or store.run(suite=suite).run_id, variant or None, role=role,
                            frames=False)
    try:
        return load_results(store, store.run(run).run_id, variant or None, role=role, frames=False)
    except StoreError:
        if variant:
            raise
    latest = store.run(default_run, suite=suite) if (default_run or suite) else store.run()
    if run in latest.manifest.get("variants", {}):
        return load_results(store, latest.run_id, run, role=role, frames=False)
    raise StoreError(
        f"'{run}' is neither a run in the store nor a variant of the latest run {latest.run_id}",
        file=store.path, hint="list runs with: promptgauge runs; variants of the latest run: "
        + ", ".join(latest.manifest.get("variants", {})),
    )
