"""Alert delivery by webhook: one JSON POST per pass that raised new alerts.

The URL and header values may use ``${env:VAR}``: webhook URLs often embed a
secret, so they are read from the environment and never written to reports.
A delivery that fails is reported and retried by the next pass.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from ..targets import expand_env
from .config import WebhookConfig


def deliver(cfg: WebhookConfig, payload: dict[str, Any]) -> str | None:
    """POST *payload*; None on a 2xx answer, else why it failed (after ``cfg.retries`` retries)."""
    url = expand_env(cfg.url, field="webhook.url")
    headers = {"Content-Type": "application/json", "User-Agent": "promptgauge-monitor"}
    headers.update({k: expand_env(v, field=f"webhook.headers.{k}") for k, v in cfg.headers.items()})
    body = json.dumps(payload, ensure_ascii=False, default=str).encode()
    error = None
    for attempt in range(cfg.retries + 1):
        if attempt:
            time.sleep(min(2.0 ** (attempt - 1), 10.0))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=cfg.timeout) as resp:
                if 200 <= resp.status < 300:
                    return None
                error = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code not in (408, 429):
                break
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    return error
