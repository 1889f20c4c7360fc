"""What may be written of a configured endpoint: the one place that says so.

A target's URL (``url``, ``base_url``, ``azure_endpoint``) and headers may carry secrets,
written in the suite as ``${env:VAR}`` and expanded only in memory for the call. Whatever
describes a target -- the run manifest, ``summary.json``, every report, the stored suite
configuration -- uses :func:`public_url`: the *unexpanded* template (``${env:VAR}`` kept as
written), without userinfo, query values or fragment; and :func:`public_headers`: header
names, each value masked unless it is only ``${env:VAR}`` references; :func:`public_parameters`: call
parameters and configuration with every header mapping (``extra_headers``...) and every secret-named value
(``api_key``, ``*_token``, ``*_secret``, ``password``...) masked. :func:`scrub` takes
the expanded secret values out of a text (an error message) before it is stored.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: What a masked value or a scrubbed secret becomes.
MASK = "***"
#: Secret values shorter than this are not scrubbed from texts (they would hit ordinary words and numbers).
MIN_SECRET = 4
_ENV_ONLY = re.compile(r"^(?:\s*\$\{env:[A-Za-z_][A-Za-z0-9_]*\}\s*)+$")
#: Keys whose mapping is HTTP headers (the openai SDK's per-request ``extra_headers``, a target's ``headers``).
HEADER_KEYS = frozenset({"extra_headers", "headers", "default_headers"})
#: A key naming a secret value: ``api_key``, ``access_token``, ``client_secret``, ``password``... (not
#: ``max_tokens``, not ``api_key_env``, which names a variable).
_SECRET_NAME = re.compile(r"(?i)^(?:.*[_-])?(?:api[_-]?key|apikey|token|secret|password|passwd|authorization|cookie)$")


def public_url(url: str | None) -> str | None:
    """*url* without userinfo, query values and fragment: ``https://u:p@h/v1?code=X#f`` -> ``https://h/v1?code=``.

    Give it the template as written (``${env:VAR}`` unexpanded): a reference is not a secret.
    A query parameter without ``=`` (a bare token) is dropped whole.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # an unparseable URL: keep only what comes before any query, userinfo dropped
        head = url.split("?", 1)[0].split("#", 1)[0]
        return re.sub(r"//[^/@]*@", "//", head)
    netloc = parts.netloc.rpartition("@")[2]
    keys = [piece.split("=", 1)[0] + "=" for piece in re.split(r"[&;]", parts.query) if "=" in piece]
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(keys), ""))


def public_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Header names with their values masked, except a value made only of ``${env:VAR}`` references."""
    return {str(k): (str(v) if isinstance(v, str) and _ENV_ONLY.match(v) else MASK) for k, v in (headers or {}).items()}


def digest(value: Any) -> str:
    """A stand-in for a secret that still tells two values apart (for a cache key): ``sha256:`` and 16 hex digits."""
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]


def public_parameters(value: Any, hide: Callable[[Any], str] = lambda _: MASK) -> Any:
    """*value* (call parameters, a configuration) with header mappings and secret-named values replaced by
    ``hide(value)`` (the mask; :func:`digest` where distinct values must stay distinct), at any depth."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if key in HEADER_KEYS and isinstance(v, Mapping):
                out[key] = {str(h): (x if isinstance(x, str) and _ENV_ONLY.match(x) else hide(x)) for h, x in v.items()}
            elif _SECRET_NAME.match(key) and v not in (None, "") and not (isinstance(v, str) and _ENV_ONLY.match(v)):
                out[key] = hide(v)
            else:
                out[key] = public_parameters(v, hide)
        return out
    if isinstance(value, list):
        return [public_parameters(v, hide) for v in value]
    return value


def public_target(config: Mapping[str, Any]) -> dict[str, Any]:
    """A ``targets:`` entry (as a dict) fit to be stored: public URLs and headers."""
    out = dict(config)
    for key in ("url", "base_url", "azure_endpoint"):
        if out.get(key):
            out[key] = public_url(str(out[key]))
    if out.get("headers"):
        out["headers"] = public_headers(out["headers"])
    return out


def scrub(text: str, secrets: Collection[str]) -> str:
    """*text* with every secret value (of at least :data:`MIN_SECRET` characters) replaced by :data:`MASK`."""
    for secret in sorted((s for s in secrets if s and len(s) >= MIN_SECRET), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
