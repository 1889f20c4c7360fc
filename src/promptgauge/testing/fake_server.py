"""A local fake OpenAI-compatible HTTP server for tests and benchmarks.

`FakeOpenAIServer` speaks enough of the OpenAI REST API for the real `openai`
SDK (`OpenAI`, `AsyncOpenAI`, `AzureOpenAI`) to talk to it unchanged:

- ``POST /v1/chat/completions`` (also ``stream: true``: server-sent events sent with
  ``Transfer-Encoding: chunked``, one chunk per event, ``chunk_latency`` seconds apart), with
  function tool calling: ``tools``, ``tool_choice`` (``"auto"``, ``"none"``,
  ``"required"``, a named function), ``parallel_tool_calls``, assistant
  ``tool_calls`` and ``role: "tool"`` results in the history, and streamed
  ``tool_calls`` deltas (index, id, name, then the arguments in pieces)
- ``POST /v1/completions`` (legacy text completions)
- ``POST /v1/embeddings`` (deterministic bag-of-words hashed vectors)
- ``GET /v1/models``
- the same under ``/openai/deployments/{deployment}/...`` (Azure style)

Replies are deterministic (see `FakeOpenAIServer.default_reply`), latency is
configurable (``latency`` before the first byte of a reply, ``chunk_latency`` between the
events of a stream: time to first token vs. generation time), and faults (429 + Retry-After, 500, slow, malformed JSON,
dropped connection) can be injected at random with a seeded rate, queued
for the next requests, or scheduled for given request numbers (`fail_at`); ``stream_cut = N``
drops a streamed reply's connection after N events.
`concurrency_timeline` tells how many requests were in flight as each arrived.
Everything is settable at runtime and thread-safe.

    with FakeOpenAIServer(latency=0.05) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x")

Tool calls. A chat request that carries ``tools`` is answered by the first
matching rule of the server's tool script (`ToolRule`, or any callable), else
by in-band ``TOOL:`` lines, else with the responder's text; then
``tool_choice`` and ``parallel_tool_calls`` apply (see `FakeOpenAIServer.script_tools`).
Rules, in-band lines and `default_reply` depend on the request only, and a
call's id is ``call_`` + a hash of the messages and the call's index
(`tool_call_id`), so the same request gets the same reply on every server:

    srv.script_tools(
        ToolRule(match=r"order", step=0, calls=[ToolCall("lookup_order", {"order_id": 42})]),
        ToolRule(has_tool_results=True, reply="Order status: {tool:lookup_order}"),
    )

In-band, with no Python: a line ``TOOL: <name> <arguments>`` in a system or
user message makes the first model call of the exchange call that tool
(several lines = parallel calls; the arguments are sent verbatim, so they may
be malformed JSON; none means ``{}``); ``TOOL@1: ...`` lines are the second
call's, and so on (steps are counted from the message carrying the lines).
At a step without ``TOOL`` lines the server answers with text: a ``REPLY:``
line (``{tool:<name>}`` filled from the tool results), else the tool results.

A ``role: "tool"`` message that does not answer a ``tool_calls`` id of the
assistant message before it, or tool calls left unanswered, get a 400 as on
OpenAI. Usage counts whitespace-separated words: message texts, history tool
calls and tool definitions as prompt tokens; the reply text or the calls'
names and arguments as completion tokens.

Command line: ``python -m promptgauge.testing.fake_server --port 8000``
(in-band ``REPLY:`` and ``TOOL:`` lines work as is; ``--tool-script rules.json``
loads `ToolRule` objects from JSON, see `ToolRule.from_dict`).
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import itertools
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs, unquote, urlsplit

from .fake_tools import (  # noqa: F401 - the tool scripting's public names are this module's too
    ToolAnswer,
    ToolCall,
    ToolRule,
    ToolScriptEntry,
    _as_tool_answer,
    _BadRequest,
    _content_text,
    _fill_tool_template,
    _inband_tool_calls,
    _last_user_text,
    _placeholder_arguments,
    _quote_tool_results,
    _validate_tool_messages,
    _validate_tools,
    load_tool_script,
    tool_call_id,
)

__all__ = [
    "FAULT_KINDS",
    "FakeOpenAIServer",
    "RecordedRequest",
    "Responder",
    "ToolAnswer",
    "ToolCall",
    "ToolRule",
    "ToolScriptEntry",
    "embed_text",
    "load_tool_script",
    "tool_call_id",
]

FAULT_KINDS: tuple[str, ...] = ("429", "500", "slow", "malformed", "drop")
"""Every fault kind the server can inject."""

Responder = Callable[[dict[str, Any]], str]
"""Maps a request body (chat or legacy completion) to the reply text."""

MAX_RECORDED_REQUESTS = 10_000
DEFAULT_MODELS = ("gpt-4o-mini", "text-embedding-3-small")
MALFORMED_BODY = b'{"choices": ['
DEFAULT_RETRY_AFTER = 0.05
DEFAULT_SLOW_SECONDS = 5.0
#: The managed-identity token endpoint (Azure App Service protocol: ``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``).
IDENTITY_PATH = "/msi/token"
IDENTITY_HEADER = "fake-identity-header"

_ROUTE = re.compile(
    r"^/(?:v1|openai(?:/deployments/(?P<deployment>[^/]+))?)"
    r"/(?P<endpoint>chat/completions|completions|embeddings|models)/?$"
)
_ENDPOINT_METHOD = {"chat/completions": "POST", "completions": "POST", "embeddings": "POST", "models": "GET"}
_REPLY_LINE = re.compile(r"^[ \t]*REPLY:[ \t]?(.*)$", re.MULTILINE)
_WORD = re.compile(r"\w+")
_STREAM_PIECE = re.compile(r"\S+\s*|\s+")
_ARGUMENT_PIECE = re.compile(r"\w+|\s+|[^\w\s]+")  # a partition: the pieces join back to the arguments


class RecordedRequest(NamedTuple):
    """One request as the server saw it: URL path (no query) and parsed JSON body (None if absent)."""

    path: str
    body: Any


def _tool_call_tokens(calls: Sequence[ToolCall]) -> int:
    """Completion tokens of tool calls: words of names and arguments."""
    return sum(_word_count(call.name) + _word_count(call.arguments_json()) for call in calls)


def _chat_prompt_tokens(request: Mapping[str, Any]) -> int:
    """Prompt tokens of a chat request: words of message texts, history tool calls and tool definitions."""
    tokens = sum(_word_count(t) for t in _request_texts(request))
    for message in request["messages"]:
        for call in (message.get("tool_calls") if isinstance(message, dict) else None) or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                tokens += _word_count(str(function.get("name") or "")) + _word_count(str(function.get("arguments") or ""))
    for tool in request.get("tools") or []:
        function = tool["function"]
        tokens += _word_count(function["name"]) + _word_count(str(function.get("description") or ""))
        if function.get("parameters") is not None:
            tokens += _word_count(json.dumps(function["parameters"]))
    return tokens


def embed_text(text: str, dimensions: int = 64) -> list[float]:
    """Deterministic L2-normalised embedding of `text`: a hashed bag of lower-cased words.

    Texts sharing words get a higher cosine similarity; identical word bags get 1.0.
    Word counts are hashed with BLAKE2b into `dimensions` non-negative buckets, so
    the vector is the same in every process. Text without words embeds like "".
    """
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()) or [""]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest, "little") % dimensions] += 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def _word_count(text: str) -> int:
    """Token count used in `usage`: whitespace-separated words."""
    return len(text.split())


def _request_texts(request: Mapping[str, Any]) -> list[str]:
    """All prompt texts of a chat request (message contents) or a completion request (the prompt)."""
    if "messages" in request:
        return [_content_text(m.get("content")) for m in request["messages"] if isinstance(m, dict)]
    prompt = request.get("prompt")
    return [prompt] if isinstance(prompt, str) else []


def _prompt_list(prompt: Any, field: str) -> list[str]:
    """A legacy `prompt` or embeddings `input` (string, strings, token ids or lists of them) as texts."""
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return [" ".join(map(str, prompt))]
    if isinstance(prompt, list) and prompt:
        texts = []
        for item in prompt:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, list) and all(isinstance(t, int) for t in item):
                texts.append(" ".join(map(str, item)))
            else:
                raise _BadRequest(f"'{field}' must be a string, a list of strings or a list of token ids.")
        return texts
    raise _BadRequest(f"'{field}' is required: a string, a list of strings or a list of token ids.")


def _error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """An error payload in the OpenAI format."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _Stream(list):
    """A streamed reply: its events, sent as server-sent events (see `_Handler._send_stream`)."""


def _sse_event(event: dict[str, Any] | None) -> bytes:
    """One server-sent event: a `data:` line (None: the closing `data: [DONE]`)."""
    return b"data: " + (json.dumps(event).encode() if event is not None else b"[DONE]") + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    """Request handler; the per-server state lives in `self.server.app`."""

    protocol_version = "HTTP/1.1"  # keep-alive; every reply carries Content-Length
    # Without this, Nagle's algorithm plus the client's delayed ACK add ~40 ms to every reply.
    disable_nagle_algorithm = True
    server_version = "promptgauge-fake-openai/1"
    server: _HTTPServer

    def setup(self) -> None:
        """Register the connection so `stop()` can close idle keep-alive connections."""
        super().setup()
        if not self.server.app._register(self.connection):
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.app._unregister(self.connection)

    def do_GET(self) -> None:
        """Serve a GET request."""
        self._handle("GET")

    def do_POST(self) -> None:
        """Serve a POST request."""
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Log to stderr only when the server is verbose."""
        if self.server.app.verbose:
            super().log_message(format, *args)

    def _handle(self, method: str) -> None:
        """Read the body, record the request, then answer it (or inject a fault)."""
        app = self.server.app
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path == IDENTITY_PATH and method == "GET":
            self._identity_token(app)
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        index = app._begin(path, body, self.headers.get("Authorization"))
        try:
            self._respond(app, method, path, body, index)
        finally:
            app._end()

    def _respond(self, app: FakeOpenAIServer, method: str, path: str, body: Any, index: int = 0) -> None:
        """Route, authenticate, apply the fault drawn for this request, and reply."""
        match = _ROUTE.match(path)
        if match is None or _ENDPOINT_METHOD[match["endpoint"]] != method:
            self._send_error(404, f"Unknown route: {method} {path}", "invalid_request_error", "not_found")
            return
        if not app._authorized(self.headers):
            self._send_error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            return
        fault = app._next_fault(index)
        app._sleep(app.latency)
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault == "429":
            retry_after = app.retry_after
            headers = ({"Retry-After": retry_after} if isinstance(retry_after, str) else
                       {"Retry-After": f"{retry_after:g}", "retry-after-ms": f"{retry_after * 1000:g}"})
            self._send_error(429, "Rate limit reached (fake).", "requests", "rate_limit_exceeded", headers)
        elif fault == "500":
            self._send_error(500, "The server had an error (fake).", "server_error")
        elif fault == "malformed":
            self._send(200, MALFORMED_BODY)
        else:
            if fault == "slow":
                app._sleep(app.slow_seconds)
            self._reply(app, match["endpoint"], unquote(match["deployment"] or ""), body)

    def _identity_token(self, app: FakeOpenAIServer) -> None:
        """A managed identity's token, as App Service's identity endpoint gives it (not counted as a request)."""
        query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if self.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
            self._send_json(401, {"error": "invalid_request", "error_description": "missing X-IDENTITY-HEADER"})
            return
        token = app._issue_token(query)
        self._send_json(200, {"access_token": token, "expires_on": str(int(time.time() + app.token_lifetime)),
                              "resource": query.get("resource", ""), "token_type": "Bearer",
                              "client_id": query.get("client_id", "")})

    def _reply(self, app: FakeOpenAIServer, endpoint: str, deployment: str, body: Any) -> None:
        """Answer a well-routed request normally."""
        if endpoint == "models":
            self._send_json(200, app._models())
            return
        if not isinstance(body, dict):
            self._send_error(400, "The request body must be a JSON object.", "invalid_request_error")
            return
        model = body.get("model") or deployment or "fake-model"
        try:
            if endpoint == "chat/completions":
                payload = app._chat(body, model)
            elif endpoint == "completions":
                payload = app._completion(body, model)
            else:
                payload = app._embeddings(body, model)
        except _BadRequest as exc:
            self._send_json(400, _error_body(str(exc), "invalid_request_error", param=exc.param))
        except Exception as exc:  # noqa: BLE001  # a user responder or tool rule failed: show it to the client
            self._send_error(500, f"Responder failed: {exc!r}", "server_error")
        else:
            if isinstance(payload, _Stream):
                self._send_stream(app, payload)
            else:
                self._send_json(200, payload)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a complete response with Content-Length (required for keep-alive)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_stream(self, app: FakeOpenAIServer, events: Sequence[dict[str, Any]]) -> None:
        """Server-sent events with ``Transfer-Encoding: chunked``: one chunk per event, flushed at once,
        `chunk_latency` seconds after the previous one (the first goes out at once), then ``[DONE]``."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, event in enumerate([*events, None]):
            if app.stream_cut is not None and i >= app.stream_cut:  # the connection drops mid-stream
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if i:
                app._sleep(app.chunk_latency)
            data = _sse_event(event)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send `payload` as JSON."""
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _send_error(
        self, status: int, message: str, type_: str, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send an OpenAI-format error."""
        self._send_json(status, _error_body(message, type_, code), headers)


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server with a deep accept queue; one daemon thread per connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # well above any client concurrency we test with
    app: FakeOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that went away (timeouts, dropped connections); report anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeOpenAIServer:
    """A fake OpenAI-compatible server on a background thread; use as a context manager.

    Args:
        latency: seconds slept before answering each request (settable at runtime): a stream's
            time to first token.
        chunk_latency: seconds between the events of a streamed reply (settable at runtime).
        seed: seed of the random generator that draws faults.
        responder: ``(request_json) -> str`` giving the reply text of chat and
            legacy completions; None means `default_reply`.
        replies: exact last-user-message -> reply, used by `default_reply`.
        tool_script: rules deciding the answer to chat requests that carry ``tools``
            (`ToolRule` objects or ``(request_json) -> calls | text | None``
            callables; the first that answers wins); see `script_tools`.
        api_key: if set, requests need ``Authorization: Bearer <key>`` or
            ``api-key: <key>``, else they get 401.
        bearer_tokens: if set (a collection, read live: a fake credential may add the tokens it hands
            out), requests need ``Authorization: Bearer <token>`` with one of them (Entra ID bearer
            tokens; an ``api-key`` header is then refused unless it is *api_key*), else they get 401.
            Every request's ``Authorization`` header is kept in `authorizations`. Tokens the server's own
            managed-identity endpoint issued (`identity_endpoint`) are accepted too.
        host, port: where to listen; port 0 picks a free port (see `port` after start).
        models: model ids listed by ``GET /v1/models``.
        embedding_dimensions: default vector length when a request gives no ``dimensions``.
        verbose: log each request to stderr.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        chunk_latency: float = 0.0,
        seed: int = 0,
        responder: Responder | None = None,
        replies: Mapping[str, str] | None = None,
        tool_script: Iterable[ToolScriptEntry] | None = None,
        api_key: str | None = None,
        bearer_tokens: Collection[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = DEFAULT_MODELS,
        embedding_dimensions: int = 64,
        verbose: bool = False,
    ) -> None:
        self.latency = latency
        self.chunk_latency = chunk_latency
        #: When set, a streamed reply's connection drops after this many events (no ``[DONE]``).
        self.stream_cut: int | None = None
        self.responder = responder
        self.replies: dict[str, str] = dict(replies or {})
        self.tool_script: list[ToolScriptEntry] = list(tool_script or ())
        self.api_key = api_key
        self.bearer_tokens = bearer_tokens
        #: Seconds a token of the managed-identity endpoint lives (its ``expires_on``).
        self.token_lifetime = 3600.0
        self._issued: list[str] = []
        self._identity_requests: list[dict[str, str]] = []
        self.host = host
        self.port = port
        self.models = list(models)
        self.embedding_dimensions = embedding_dimensions
        self.verbose = verbose
        self.retry_after = DEFAULT_RETRY_AFTER
        self.slow_seconds = DEFAULT_SLOW_SECONDS
        self._initial = (latency, chunk_latency, seed, responder, dict(self.replies), list(self.tool_script), api_key)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._fault_rate = 0.0
        self._fault_kinds: tuple[str, ...] = FAULT_KINDS
        self._queued_faults: collections.deque[str] = collections.deque()
        self._scheduled_faults: dict[int, str] = {}
        self._ids = itertools.count(1)
        self._in_flight = 0
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset_stats()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve on a background thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAIServer is already running")
        self._stopping.clear()
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.app = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fake-openai:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake sleeping handlers, close every connection, join the server thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        with self._lock:
            self._stopping.set()
            connections = list(self._connections)
        httpd.shutdown()
        httpd.server_close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """``http://host:port`` (for ``AzureOpenAI(azure_endpoint=...)``)."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def identity_endpoint(self) -> str:
        """A managed-identity token endpoint in Azure App Service's protocol: set ``IDENTITY_ENDPOINT`` to it and
        ``IDENTITY_HEADER`` to :data:`IDENTITY_HEADER`, and azure-identity's ``ManagedIdentityCredential`` (and so
        ``DefaultAzureCredential``) gets its tokens here."""
        return self.root_url + IDENTITY_PATH

    @property
    def identity_requests(self) -> list[dict[str, str]]:
        """The query of each token request to `identity_endpoint` (``resource``, ``client_id``...), oldest first."""
        with self._lock:
            return [dict(q) for q in self._identity_requests]

    @property
    def issued_tokens(self) -> list[str]:
        """The tokens `identity_endpoint` handed out, oldest first."""
        with self._lock:
            return list(self._issued)

    def _issue_token(self, query: Mapping[str, str]) -> str:
        with self._lock:
            self._identity_requests.append(dict(query))
            token = f"fake-mi-token-{len(self._issued) + 1}-" + hashlib.sha256(repr(sorted(query.items())).encode()).hexdigest()[:12]
            self._issued.append(token)
            return token

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` (for ``OpenAI(base_url=...)``)."""
        return self.root_url + "/v1"

    # -- faults --------------------------------------------------------------

    def set_faults(
        self,
        rate: float,
        kinds: Sequence[str] = FAULT_KINDS,
        *,
        retry_after: float | str = DEFAULT_RETRY_AFTER,
        slow_seconds: float = DEFAULT_SLOW_SECONDS,
        seed: int | None = None,
    ) -> None:
        """Give each request a fault with probability `rate`, its kind drawn uniformly from `kinds`.

        `retry_after` is sent on 429s (``Retry-After`` in seconds and
        ``retry-after-ms``; a string is sent verbatim as ``Retry-After`` alone, e.g. an HTTP
        date or a malformed value); "slow" sleeps `slow_seconds` before a normal reply.
        A `seed` reseeds the fault generator; None keeps its current state.
        ``set_faults(0)`` turns random faults off.
        """
        kinds = tuple(kinds)
        unknown = sorted(set(kinds) - set(FAULT_KINDS))
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be a non-empty subset of {FAULT_KINDS}, got {kinds!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {rate!r}")
        with self._lock:
            self._fault_rate, self._fault_kinds = rate, kinds
            self.retry_after, self.slow_seconds = retry_after, slow_seconds
            if seed is not None:
                self._rng.seed(seed)

    def fail_at(self, start: int, kind: str, n: int = 1) -> None:
        """Make API requests number `start` .. `start + n - 1` (counted from 1 since the last
        `reset_stats()`, as `request_count` counts) fail with `kind`: a burst at a known point of a run."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; valid kinds: {FAULT_KINDS}")
        with self._lock:
            self._scheduled_faults.update(dict.fromkeys(range(start, start + n), kind))

    def fail_next(self, kind: str, n: int = 1) -> None:
        """Make the next `n` API requests fail with `kind` (before any random fault is drawn)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; valid kinds: {FAULT_KINDS}")
        with self._lock:
            self._queued_faults.extend([kind] * n)

    def clear_faults(self) -> None:
        """Turn random faults off and drop queued ones."""
        with self._lock:
            self._fault_rate = 0.0
            self._queued_faults.clear()
            self._scheduled_faults.clear()

    def reset(self) -> None:
        """Back to the construction-time behaviour (latency, seed, responder, replies, tool script, api key).

        No faults, no stats.
        """
        latency, self.chunk_latency, seed, responder, replies, tool_script, api_key = self._initial
        self.stream_cut = None
        self.latency, self.responder, self.replies, self.api_key = latency, responder, dict(replies), api_key
        self.bearer_tokens = None
        self.token_lifetime = 3600.0
        with self._lock:
            self._issued.clear()
            self._identity_requests.clear()
        self.tool_script = list(tool_script)
        self.clear_faults()
        with self._lock:
            self.retry_after, self.slow_seconds = DEFAULT_RETRY_AFTER, DEFAULT_SLOW_SECONDS
            self._rng.seed(seed)
        self.reset_stats()

    # -- stats ---------------------------------------------------------------

    def reset_stats(self) -> None:
        """Zero the request, connection and fault counters and forget recorded requests."""
        with self._lock:
            self._request_count = 0
            self._connection_count = 0
            self._requests: collections.deque[RecordedRequest] = collections.deque(maxlen=MAX_RECORDED_REQUESTS)
            self._authorizations: collections.deque[str | None] = collections.deque(maxlen=MAX_RECORDED_REQUESTS)
            self._fault_count: collections.Counter[str] = collections.Counter()
            self._max_concurrent = self._in_flight
            self._timeline: list[tuple[float, int, int]] = []

    @property
    def request_count(self) -> int:
        """HTTP requests received since the last `reset_stats()`."""
        return self._request_count

    @property
    def connection_count(self) -> int:
        """TCP connections accepted since the last `reset_stats()` (1 for a keep-alive client)."""
        return self._connection_count

    @property
    def requests(self) -> list[RecordedRequest]:
        """The last (up to 10 000) requests as ``(path, body)``, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def authorizations(self) -> list[str | None]:
        """The ``Authorization`` header of each recorded request (None without one), in the order of `requests`."""
        with self._lock:
            return list(self._authorizations)

    @property
    def fault_count(self) -> dict[str, int]:
        """Faults injected so far, by kind."""
        with self._lock:
            return dict(self._fault_count)

    @property
    def max_concurrent(self) -> int:
        """Peak number of requests in flight at once."""
        return self._max_concurrent

    @property
    def concurrency_timeline(self) -> list[tuple[float, int, int]]:
        """Per request since the last `reset_stats()`, in arrival order: ``(monotonic time, request number,
        requests in flight with it)`` -- how concurrency at the server rose and fell."""
        with self._lock:
            return list(self._timeline)

    # -- replies ---------------------------------------------------------------

    def script_tools(self, *rules: ToolScriptEntry) -> None:
        """Replace the tool script: the rules answering chat requests that carry ``tools``.

        Each rule is a `ToolRule` or a callable ``(request_json) -> answer``; the
        first rule whose answer is not None (or empty) decides. An answer is a list
        of tool calls (`ToolCall`, ``(name, arguments)`` or ``{name, arguments}``;
        several = parallel calls) or the final text. With no rule answering,
        in-band ``TOOL:`` lines decide, else the responder's text. Then
        ``tool_choice`` and ``parallel_tool_calls`` apply: ``"none"`` gives text,
        a named function keeps only (or makes up, with placeholder arguments from
        its schema) calls to it, ``"required"`` makes up a call to the first tool
        if there is none, and ``parallel_tool_calls: false`` keeps the first call.
        ``script_tools()`` clears the script.

            srv.script_tools(
                ToolRule(step=0, calls=[("lookup_order", {"order_id": 42}), ("lookup_order", {"order_id": 7})]),
                ToolRule(step=1, calls=[ToolCall("refund", "{not json")]),
                ToolRule(has_tool_results=True, reply="Done: {tool_results}"),
            )
        """
        self.tool_script = list(rules)

    def default_reply(self, request: Mapping[str, Any]) -> str:
        """The default responder.

        1. If a message (or the prompt) has a line ``REPLY: <text>``, reply ``<text>``
           (the last such line of the latest message that has one), with
           ``{tool:<name>}`` and ``{tool_results}`` filled from the tool results (see `ToolRule`).
        2. Else if the last user message (or the prompt) is a key of `replies`, reply its value.
        3. Else if tool results came after the last user message, reply them, one
           ``<name>: <result>`` line each.
        4. Else reply ``"echo: " + <last user message>``.
        """
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        for text in reversed(_request_texts(request)):
            directives = _REPLY_LINE.findall(text)
            if directives:
                return _fill_tool_template(directives[-1].rstrip(), messages)
        last = _last_user_text(request)
        if last in self.replies:
            return self.replies[last]
        return _quote_tool_results(messages) or "echo: " + last

    def _reply_text(self, request: Mapping[str, Any]) -> str:
        """Reply text from the responder in use."""
        return (self.responder or self.default_reply)(dict(request))

    def _tool_answer(self, request: dict[str, Any], functions: Sequence[Mapping[str, Any]]) -> tuple[ToolCall, ...] | str:
        """Tool calls or text for a request that carries tools: the script, in-band lines, then `tool_choice`."""
        messages = [m for m in request["messages"] if isinstance(m, dict)]
        answer = None
        for rule in list(self.tool_script):
            answer = _as_tool_answer(rule(dict(request)))
            if answer is not None:
                break
        else:
            answer = _inband_tool_calls(messages)
        choice = request.get("tool_choice")
        if choice == "none":
            calls: tuple[ToolCall, ...] = ()
        else:
            calls = answer if isinstance(answer, tuple) else ()
            if isinstance(choice, dict):
                forced = choice["function"]["name"]
                calls = tuple(call for call in calls if call.name == forced)
                if not calls:
                    function = next(f for f in functions if f["name"] == forced)
                    calls = (ToolCall(forced, _placeholder_arguments(function.get("parameters"))),)
            elif choice == "required" and not calls:
                calls = (ToolCall(functions[0]["name"], _placeholder_arguments(functions[0].get("parameters"))),)
            if request.get("parallel_tool_calls") is False:
                calls = calls[:1]
        if calls:
            return calls
        return answer if isinstance(answer, str) else self._reply_text(request)

    def _chat(self, request: dict[str, Any], model: str) -> dict[str, Any] | _Stream:
        """A chat completion, or its SSE stream when ``stream`` is true."""
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' is required: a non-empty list of {role, content} objects.", "messages")
        functions = _validate_tools(request)
        _validate_tool_messages(messages)
        answer = self._tool_answer(request, functions) if functions else self._reply_text(request)
        text, calls = (answer, ()) if isinstance(answer, str) else (None, answer)
        completion_tokens = _word_count(text) if text is not None else _tool_call_tokens(calls)
        usage = self._usage(_chat_prompt_tokens(request), completion_tokens)
        tool_calls = [
            {
                "id": tool_call_id(messages, index),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for index, call in enumerate(calls)
        ]
        finish_reason = "tool_calls" if tool_calls else "stop"
        head = {"id": f"chatcmpl-fake{next(self._ids)}", "created": int(time.time()), "model": model}
        if not request.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            return {**head, "object": "chat.completion", "choices": [choice], "usage": usage}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**head, "object": "chat.completion.chunk", "choices": [choice]}

        if text is not None:
            events = [chunk({"role": "assistant", "content": ""})]
            events += [chunk({"content": piece}) for piece in _STREAM_PIECE.findall(text)]
        else:  # as OpenAI streams tool calls: index, id, type and name first, then the arguments in pieces
            events = []
            for index, call in enumerate(tool_calls):
                opening = {"index": index, "id": call["id"], "type": "function"}
                opening["function"] = {"name": call["function"]["name"], "arguments": ""}
                delta: dict[str, Any] = {"tool_calls": [opening]}
                if index == 0:
                    delta = {"role": "assistant", "content": None, **delta, "refusal": None}
                events.append(chunk(delta))
                events += [
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                    for piece in _ARGUMENT_PIECE.findall(call["function"]["arguments"])
                ]
        events.append(chunk({}, finish_reason))
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append({**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        return _Stream(events)

    def _completion(self, request: dict[str, Any], model: str) -> dict[str, Any] | _Stream:
        """A legacy text completion (one choice per prompt), or its SSE stream."""
        prompts = _prompt_list(request.get("prompt"), "prompt")
        texts = [self._reply_text({**request, "prompt": prompt}) for prompt in prompts]
        usage = self._usage(sum(map(_word_count, prompts)), sum(map(_word_count, texts)))
        head = {
            "id": f"cmpl-fake{next(self._ids)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
        }

        def choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
            return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}

        if not request.get("stream"):
            return {**head, "choices": [choice(i, t, "stop") for i, t in enumerate(texts)], "usage": usage}
        events = [
            {**head, "choices": [choice(i, piece, None)]}
            for i, text in enumerate(texts)
            for piece in _STREAM_PIECE.findall(text)
        ]
        events += [{**head, "choices": [choice(i, "", "stop")]} for i in range(len(texts))]
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append({**head, "choices": [], "usage": usage})
        return _Stream(events)

    def _embeddings(self, request: dict[str, Any], model: str) -> dict[str, Any]:
        """Embeddings of ``input`` (float lists, or base64 float32 when asked)."""
        texts = _prompt_list(request.get("input"), "input")
        dimensions = request.get("dimensions") or self.embedding_dimensions
        if not isinstance(dimensions, int) or dimensions < 1:
            raise _BadRequest("'dimensions' must be a positive integer.")
        as_base64 = request.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector: Any = embed_text(text, dimensions)
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(map(_word_count, texts))
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _models(self) -> dict[str, Any]:
        """The ``GET /v1/models`` listing."""
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "promptgauge"} for m in self.models]
        return {"object": "list", "data": data}

    @staticmethod
    def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        """A `usage` object."""
        total = prompt_tokens + completion_tokens
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}

    # -- used by the handler threads ----------------------------------------

    def _register(self, connection: socket.socket) -> bool:
        """Track a new connection; False if the server is stopping."""
        with self._lock:
            if self._stopping.is_set():
                return False
            self._connections.add(connection)
            self._connection_count += 1
            return True

    def _unregister(self, connection: socket.socket) -> None:
        """Forget a closed connection."""
        with self._lock:
            self._connections.discard(connection)

    def _begin(self, path: str, body: Any, authorization: str | None = None) -> int:
        """Count and record a request; track concurrency. Returns the request's number (from 1)."""
        with self._lock:
            self._request_count += 1
            self._requests.append(RecordedRequest(path, body))
            self._authorizations.append(authorization)
            self._in_flight += 1
            self._max_concurrent = max(self._max_concurrent, self._in_flight)
            if len(self._timeline) < MAX_RECORDED_REQUESTS:
                self._timeline.append((time.monotonic(), self._request_count, self._in_flight))
            return self._request_count

    def _end(self) -> None:
        """A request is answered."""
        with self._lock:
            self._in_flight -= 1

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        """Whether the request carries the API key or an accepted bearer token (always true without either)."""
        if self.api_key is None and self.bearer_tokens is None:
            return True
        auth = headers.get("Authorization") or ""
        if self.api_key is not None and (auth == f"Bearer {self.api_key}" or headers.get("api-key") == self.api_key):
            return True
        tokens = self.bearer_tokens
        if tokens is None or not auth.startswith("Bearer "):
            return False
        token = auth[len("Bearer "):]
        return token in tokens or token in self._issued

    def _next_fault(self, index: int = 0) -> str | None:
        """The fault for request number *index*: a scheduled one, a queued one, else a random draw, else None."""
        with self._lock:
            if index in self._scheduled_faults:
                kind = self._scheduled_faults.pop(index)
            elif self._queued_faults:
                kind = self._queued_faults.popleft()
            elif self._fault_rate > 0 and self._rng.random() < self._fault_rate:
                kind = self._rng.choice(self._fault_kinds)
            else:
                return None
            self._fault_count[kind] += 1
            return kind

    def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a fake OpenAI API until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m promptgauge.testing.fake_server", description="Fake OpenAI-compatible server."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default: 8000)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--chunk-latency", type=float, default=0.0, help="seconds between the events of a stream")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per request")
    parser.add_argument("--fault-kinds", default=",".join(FAULT_KINDS), help="comma-separated subset of kinds")
    parser.add_argument("--retry-after", type=float, default=DEFAULT_RETRY_AFTER, help="seconds sent on 429")
    parser.add_argument("--slow-seconds", type=float, default=DEFAULT_SLOW_SECONDS, help="delay of a 'slow' fault")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault generator")
    parser.add_argument("--api-key", default=None, help="require this API key")
    parser.add_argument(
        "--tool-script", default=None, metavar="FILE", help="JSON list of tool rules (see ToolRule.from_dict)"
    )
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.fault_kinds.split(",") if kind.strip()]
    try:
        tool_script = load_tool_script(args.tool_script) if args.tool_script else []
    except (OSError, ValueError, TypeError) as exc:
        parser.error(f"--tool-script: {exc}")
    server = FakeOpenAIServer(
        latency=args.latency,
        chunk_latency=args.chunk_latency,
        seed=args.seed,
        tool_script=tool_script,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        verbose=args.verbose,
    )
    try:
        server.set_faults(args.fault_rate, kinds, retry_after=args.retry_after, slow_seconds=args.slow_seconds)
    except ValueError as exc:
        parser.error(str(exc))
    server.start()
    print(f"Fake OpenAI server at {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
