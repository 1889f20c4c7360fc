"""What may be written of a configured endpoint: the one place that says so.

A target's URL (``url``, ``base_url``, ``azure_endpoint``) and headers may carry secrets,
written in the suite as ``${env:VAR}`` and expanded only in memory for the call. Whatever
describes a target -- the run manifest, ``summary.json``, every report, the stored suite
configuration -- uses :func:`public_url`: the *unexpanded* template (``${env:VAR}`` kept as
written), without userinfo, query values or fragment; and :func:`public_headers`: header
names, each value masked unless it is only ``${env:VAR}`` references. :func:`scrub` takes
the expanded secret values out of a text (an error message) before it is stored.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: What a masked value or a scrubbed secret becomes.
MASK = "***"
#: Secret values shorter than this are not scrubbed from texts (they would hit ordinary words and numbers).
MIN_SECRET = 4
_ENV_ONLY = re.compile(r"^(?:\s*\$\{env:[A-Za-z_][A-Za-z0-9_]*\}\s*)+$")


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
