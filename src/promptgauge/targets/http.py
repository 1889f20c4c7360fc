"""Any HTTP JSON endpoint as a target: each row's inputs are POSTed as JSON.

The reply's text is the value at ``response:`` (a dotted path such as
``answer`` or ``choices.0.text``), or the whole body when it is a string;
every key of a JSON-object reply becomes a ``${target.<key>}`` column.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import httpx2

from ..errors import CallError, call_error_for_status, retry_after_seconds
from ..public import public_url, scrub
from .base import Completion


class HttpTarget:
    serial = False
    seeded = False
    cacheable = False  # the application under test: its answers must be fresh

    def __init__(self, name: str, url: str, *, response: str | None, headers: dict[str, str], timeout: float,
                 public: str | None = None, secrets: Collection[str] = ()) -> None:
        self.name = name
        self.url = url  # secrets expanded: for the call only
        self.public = public if public is not None else public_url(url)
        self.secrets = secrets
        self.response = response
        self.client = httpx2.AsyncClient(headers=headers, timeout=timeout)

    async def complete(self, messages, parameters, inputs) -> Completion:
        try:
            return await self._complete(messages, inputs)
        except CallError as exc:  # an error text may quote the URL or the server's echo of a header
            exc.args = (scrub(str(exc), self.secrets),)
            raise

    async def _complete(self, messages, inputs) -> Completion:
        body: dict[str, Any] = dict(inputs)
        if messages is not None:
            body["messages"] = messages
        try:
            resp = await self.client.post(self.url, json=body)
        except httpx2.TimeoutException:
            raise CallError("timeout: the endpoint did not answer in time", retryable=True) from None
        except httpx2.HTTPError as exc:
            raise CallError(f"connection error: {exc}", retryable=True) from None
        if resp.status_code >= 400:
            raise call_error_for_status(resp.status_code, resp.text[:200], retry_after_seconds(resp.headers))
        try:
            data = resp.json()
        except ValueError:
            raise CallError(f"the endpoint did not answer JSON: {resp.text[:80]!r}", retryable=True) from None
        return Completion(text=_text(data, self.response), extra=dict(data) if isinstance(data, dict) else {})

    async def aclose(self) -> None:
        await self.client.aclose()

    def describe(self) -> dict[str, Any]:
        return {"kind": "http", "endpoint": self.public}


def _text(data: Any, path: str | None) -> str:
    if path is None:
        if isinstance(data, dict):
            for key in ("response", "answer", "output", "text"):
                if key in data:
                    return str(data[key])
            raise CallError(f"reply has no 'response' field (set response: in the target); keys: {', '.join(data)}")
        return str(data)
    cur = data
    for part in path.split("."):
        if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise CallError(f"reply has no '{path}' (stopped at '{part}')")
    return "" if cur is None else str(cur)
