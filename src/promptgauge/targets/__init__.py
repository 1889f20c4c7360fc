"""Targets: what a variant's rendered prompt is sent to.

A variant names its target with one string:

- ``local:smollm2`` -- the embedded model (llama-cpp-python, in process);
- ``openai:MODEL`` -- OpenAI or any compatible server (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``);
- ``azure:DEPLOYMENT`` -- Azure OpenAI (``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``,
  ``OPENAI_API_VERSION``); without a key, Entra ID bearer tokens (:mod:`.entra`);
- ``python:module:function`` -- any Python callable (sync or async);
- ``flow:PATH`` -- a promptflow flow (``flow.dag.yaml`` or ``flow.flex.yaml``), run in process;
- ``NAME`` or ``NAME:MODEL`` -- an entry of the suite's ``targets:`` section (also ``type: http``:
  any HTTP JSON endpoint);
- no target, for a ``.prompty`` variant -- the prompty's own ``model.configuration``.

API keys come only from the environment (``api_key_env`` names the variable). The
factory takes the root folder and the ``targets:`` section (a suite's or a monitor
file's), never the whole configuration.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TargetError, located
from ..public import public_url
from .base import Completion, Target

if TYPE_CHECKING:
    from ..prompts import Prompt
    from ..suite import TargetConfig

__all__ = ["KINDS", "Completion", "Target", "TargetFactory"]

KINDS = ("local", "openai", "azure", "python", "flow", "http")
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_AZURE_API_VERSION = "2024-06-01"


def expand_env(value: str, *, field: str, secrets: set[str] | None = None) -> str:
    """Replace ``${env:VAR}`` references; a missing variable is an error naming it. Each value put in is
    added to *secrets* (what :func:`promptgauge.public.scrub` takes out of error texts)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise TargetError(f"environment variable {name} is not set", field=field)
        if secrets is not None:
            secrets.add(os.environ[name])
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


class _Lazy:
    """An openai client made on first use: making one costs ~40 ms (its SSL context), and a run
    answered from the cache or a cassette never needs it. An Entra ID client's credential
    (``credential``, made on first use too) is closed with it when the factory made it."""

    def __init__(self, make: Any, credential: Any = None, *, owns_credential: bool = False) -> None:
        self._make = make
        self._client: Any = None
        self._credential = credential
        self._owns_credential = owns_credential

    @property
    def credential(self) -> Any:
        """The token credential of an Entra ID client (None for a key); made on first use."""
        if callable(self._credential) and not hasattr(self._credential, "get_token"):
            self._credential = self._credential()
        return self._credential

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._owns_credential and self._credential is not None and hasattr(self._credential, "get_token"):
            from .entra import close_credential

            await close_credential(self._credential)


@dataclasses.dataclass
class _Inline:
    """An endpoint named inline (``openai:MODEL``, ``flow:PATH``, a prompty's ``model.configuration``):
    the settings of a ``targets:`` entry the factory reads, with their defaults."""

    type: str
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    auth: str | None = None
    managed_identity_client_id: str | None = None
    credential: str | None = None
    azure_endpoint: str | None = None
    api_version: str | None = None
    model_path: str | None = None
    function: str | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    rpm: int | None = None
    tpm: int | None = None
    url: str | None = None
    response: str | None = None
    flow: str | None = None
    variant: str | None = None
    connections: dict[str, str] = dataclasses.field(default_factory=dict)
    init: dict[str, Any] = dataclasses.field(default_factory=dict)
    environment: dict[str, str] = dataclasses.field(default_factory=dict)
    #: Where the key's variable was named, for messages (a prompty's ``model.configuration.api_key``).
    key_field: str | None = None


class TargetFactory:
    """Builds targets from the ``targets:`` section of a suite or a monitor file, sharing one HTTP client per
    endpoint. *root* is the folder relative paths (model files, flows, Python modules) start from."""

    def __init__(self, root: Path, targets: Mapping[str, TargetConfig], *, timeout: float,
                 offline: bool = False) -> None:
        self.root = Path(root)
        self.targets = targets
        self.timeout = timeout
        self.offline = offline  # replaying a cassette: no API key is needed
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._built: dict[str, Target] = {}
        #: Every value expanded from ``${env:VAR}`` and every API key read: never written anywhere
        #: (targets describe themselves with :func:`promptgauge.public.public_url`; error texts are scrubbed).
        self.secrets: set[str] = set()

    def get(self, ref: str) -> Target:
        if ref not in self._built:
            self._built[ref] = self._build(ref)
        return self._built[ref]

    def for_prompt(self, prompt: Prompt, name: str) -> Target:
        """The target a ``.prompty`` names in ``model.configuration`` (promptflow's format)."""
        cfg = prompt.configuration
        field = "model.configuration"
        if not cfg.get("type"):
            via = f"promptflow connection '{cfg['connection']}'" if cfg.get("connection") else "no configuration type"
            raise TargetError(
                f"the variant has no target and its prompty has {via}", file=prompt.path, field=field,
                hint="give the variant a target: (e.g. openai:gpt-4o-mini or a targets: entry), or set "
                "model.configuration.type: azure_openai / openai",
            )
        key = cfg.get("api_key")
        key_env = None
        if key is not None:
            m = _ENV_REF.fullmatch(str(key).strip())
            if not m:
                raise TargetError("API keys are read from the environment only: write api_key: ${env:VARIABLE}",
                                  file=prompt.path, field=field + ".api_key")
            key_env = m.group(1)
        model = prompt.deployment
        if not model:
            raise TargetError("no model: set azure_deployment (azure_openai) or model (openai)", file=prompt.path,
                              field=field)
        urls = {k: cfg.get(k) for k in ("base_url", "azure_endpoint", "api_version")}
        for k, value in {"model": model, **urls}.items():
            if value is not None and not isinstance(value, str):
                raise TargetError(f"{k} is a {type(value).__name__}, not text", file=prompt.path, field=f"{field}.{k}",
                                  hint="quote it in the YAML front matter")
        tc = _Inline(type="azure" if cfg["type"] == "azure_openai" else "openai", model=model, api_key_env=key_env,
                     key_field=field + ".api_key", **urls)
        with located(file=prompt.path, field=field):
            return self._from_config(name, tc, None)

    async def aclose(self) -> None:
        for target in self._built.values():
            await target.aclose()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        self._built.clear()

    def _build(self, ref: str) -> Target:
        name, _, rest = ref.partition(":")
        if name in self.targets:
            return self._from_config(ref, self.targets[name], rest or None)
        if name == "local":
            from .local import LocalTarget, model_file

            return LocalTarget(ref, model_file(rest or "smollm2"), rest or "smollm2")
        if name == "python":
            from .python import PythonTarget, import_callable

            return PythonTarget(ref, import_callable(rest, search_path=str(self.root)), rest)
        if name == "flow" and rest:
            return self._from_config(ref, _Inline(type="flow", flow=rest), None)
        if name in ("openai", "azure") and rest:
            return self._from_config(ref, _Inline(type=name), rest)
        known = ", ".join(sorted(self.targets)) or "none defined"
        raise TargetError(
            f"unknown target '{ref}'",
            hint=f"use local:smollm2, openai:MODEL, azure:DEPLOYMENT, python:module:function, "
            f"or a name from the suite's targets: section ({known})",
        )

    def resolve(self, relative: str | Path) -> Path:
        """A path from the configuration, made absolute against the root folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    def _from_config(self, ref: str, cfg: TargetConfig | _Inline, model: str | None) -> Target:
        field = f"targets.{ref.split(':')[0]}"
        if cfg.type == "local":
            from .local import LocalTarget, model_file

            label = model or cfg.model or "smollm2"
            path = self.resolve(cfg.model_path) if cfg.model_path else model_file(label)
            if not Path(path).is_file():
                raise TargetError(f"model file not found: {path}", field=field + ".model_path")
            return LocalTarget(ref, Path(path), label)
        if cfg.type == "python":
            from .python import PythonTarget, import_callable

            func_ref = model or cfg.function
            if not func_ref:
                raise TargetError("a python target needs 'function: module:function'", field=field)
            return PythonTarget(ref, import_callable(func_ref, search_path=str(self.root)), func_ref)
        if cfg.type == "http":
            from .http import HttpTarget

            if not cfg.url:
                raise TargetError("an http target needs 'url:'", field=field)
            headers = {k: expand_env(v, field=f"{field}.headers.{k}", secrets=self.secrets)
                       for k, v in cfg.headers.items()}
            return HttpTarget(ref, expand_env(cfg.url, field=field + ".url", secrets=self.secrets),
                              response=cfg.response, headers=headers, timeout=self.timeout,
                              public=public_url(cfg.url), secrets=self.secrets)
        if cfg.type == "flow":
            from .promptflow import load_flow_target

            if not cfg.flow:
                raise TargetError("a flow target needs 'flow: path/to/flow.dag.yaml'", field=field)
            return load_flow_target(ref, self.resolve(cfg.flow), cfg, self, field)
        model = model or cfg.model
        if not model:
            raise TargetError(f"no model given: write '{ref}:MODEL' or set 'model:'", field=field)
        from .openai_chat import OpenAIChatTarget

        client, _ = self.client(cfg, field)
        return OpenAIChatTarget(ref, client, model, kind=cfg.type, endpoint=self.public_endpoint(cfg), rpm=cfg.rpm,
                                tpm=cfg.tpm, secrets=self.secrets)

    def public_endpoint(self, cfg: TargetConfig | _Inline) -> str | None:
        """The endpoint of an openai/azure target as it may be written: the unexpanded template (or the
        environment's URL) without userinfo and query values (:func:`promptgauge.public.public_url`)."""
        if cfg.type == "azure":
            return public_url(cfg.azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
                              or ("https://offline.invalid" if self.offline else None))
        return public_url(cfg.base_url or os.environ.get("OPENAI_BASE_URL") or None) or "https://api.openai.com/v1"

    def client(self, cfg: TargetConfig | _Inline, field: str) -> tuple[Any, str | None]:
        """The (shared) openai client of an openai/azure endpoint, and the endpoint's real URL (secrets expanded:
        for the call only, never to be written; see :meth:`public_endpoint`)."""
        import openai

        headers = {k: expand_env(v, field=f"{field}.headers.{k}", secrets=self.secrets) for k, v in cfg.headers.items()}
        if cfg.type == "azure":
            endpoint = cfg.azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
            if not endpoint and self.offline:
                endpoint = "https://offline.invalid"  # replaying a cassette: never contacted
            if not endpoint:
                raise TargetError("Azure OpenAI needs an endpoint: set AZURE_OPENAI_ENDPOINT or azure_endpoint:", field=field)
            endpoint = expand_env(endpoint, field=field + ".azure_endpoint", secrets=self.secrets)
            key_env = cfg.api_key_env or "AZURE_OPENAI_API_KEY"
            version = cfg.api_version or os.environ.get("OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION
            if self._entra(cfg, key_env, field):
                return self._entra_client(cfg, endpoint, version, headers, field, key_env), endpoint
            key = self._key(key_env, field, explicit=bool(cfg.api_key_env), key_field=getattr(cfg, "key_field", None)) \
                or "not-needed"
            cache_key = ("azure", endpoint, key_env, version, tuple(sorted(headers.items())))
            if cache_key not in self._clients:
                self._clients[cache_key] = _Lazy(lambda: openai.AsyncAzureOpenAI(
                    azure_endpoint=endpoint, api_key=key, api_version=version, max_retries=0,
                    timeout=self.timeout, default_headers=headers or None,
                ))
            return self._clients[cache_key], endpoint
        for name in ("auth", "managed_identity_client_id", "credential"):
            if getattr(cfg, name, None) and not (name == "auth" and cfg.auth == "key"):
                raise TargetError(f"'{name}' is for azure targets (Entra ID); this target is of type {cfg.type}",
                                  field=f"{field}.{name}", hint="set type: azure, or remove the key")
        base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or None
        if base_url:
            base_url = expand_env(base_url, field=field + ".base_url", secrets=self.secrets)
        key_env = cfg.api_key_env or "OPENAI_API_KEY"
        # A local server often needs no key; the SDK insists on one, so a placeholder is sent.
        key = self._key(key_env, field, explicit=bool(cfg.api_key_env), required=base_url is None,
                        key_field=getattr(cfg, "key_field", None))
        cache_key = ("openai", base_url, key_env, tuple(sorted(headers.items())))
        if cache_key not in self._clients:
            self._clients[cache_key] = _Lazy(lambda: openai.AsyncOpenAI(
                base_url=base_url, api_key=key or "not-needed", max_retries=0, timeout=self.timeout,
                default_headers=headers or None,
            ))
        return self._clients[cache_key], base_url or "https://api.openai.com/v1"

    def _entra(self, cfg: TargetConfig | _Inline, key_env: str, field: str) -> bool:
        """Whether an azure target authenticates with Entra ID: ``auth: entra``, a credential or managed identity
        named, or no ``auth:`` and no API key (promptflow's and azure-ai-evaluation's rule). Replaying a
        cassette (offline) needs neither."""
        auth = getattr(cfg, "auth", None)
        entra_keys = [k for k in ("managed_identity_client_id", "credential") if getattr(cfg, k, None)]
        if auth == "key":
            if entra_keys:
                raise TargetError(f"'{entra_keys[0]}' is for Entra ID, but this target has auth: key",
                                  field=f"{field}.{entra_keys[0]}", hint="set auth: entra, or remove the key")
            return False
        if auth == "entra" and cfg.api_key_env:
            raise TargetError("auth: entra uses bearer tokens, not the API key api_key_env names",
                              field=f"{field}.api_key_env", hint="remove api_key_env, or set auth: key")
        if self.offline:
            return False
        if auth is None and not entra_keys and (cfg.api_key_env or os.environ.get(key_env)):
            return False
        return True

    def _entra_client(self, cfg: TargetConfig | _Inline, endpoint: str, version: str, headers: dict[str, str],
                      field: str, key_env: str) -> _Lazy:
        """The shared ``AsyncAzureOpenAI`` client of an Entra ID endpoint, with a bearer-token provider."""
        import openai

        from . import entra

        ref, client_id = getattr(cfg, "credential", None), getattr(cfg, "managed_identity_client_id", None)
        if ref:
            with located(field=f"{field}.credential"):
                credential: Any = entra.load_credential(ref, self.root, f"{field}.credential")
        else:
            why = (f"Azure OpenAI without an API key ({key_env} is not set) authenticates with Entra ID, which"
                   if getattr(cfg, "auth", None) is None and not client_id else "Entra ID (auth: entra)")
            entra.require_azure_identity(field, why, f"or set {key_env} (an API key)")
            if client_id:
                client_id = expand_env(client_id, field=f"{field}.managed_identity_client_id")

            def credential() -> Any:
                return entra.default_credential(client_id)
        cache_key = ("azure-entra", endpoint, ref, client_id, version, tuple(sorted(headers.items())))
        if cache_key not in self._clients:
            if ref:
                entra.require_azure_identity(f"{field}.credential", "an Entra ID credential")

            def make() -> Any:
                return openai.AsyncAzureOpenAI(
                    azure_endpoint=endpoint, azure_ad_token_provider=entra.token_provider(lazy.credential, self.secrets),
                    api_version=version, max_retries=0, timeout=self.timeout, default_headers=headers or None)

            lazy = _Lazy(make, credential, owns_credential=not ref)
            self._clients[cache_key] = lazy
        return self._clients[cache_key]

    def _key(self, env_name: str, field: str, *, explicit: bool, required: bool = True,
             key_field: str | None = None) -> str | None:
        """The API key in *env_name*. A variable the configuration names (``api_key_env``, a prompty's
        ``api_key: ${env:VAR}``) must be set, like any ``${env:VAR}``; the default variable only when
        *required* (no ``base_url``: a local server often needs no key). Not when replaying (offline)."""
        key = os.environ.get(env_name)
        if self.offline:
            return key
        if explicit and key is None:
            raise TargetError(f"environment variable {env_name} is not set", field=key_field or f"{field}.api_key_env",
                              hint=f"export {env_name}=... (the API key is read from the environment only)")
        if required and not key:
            raise TargetError(f"the API key is read from the environment: set {env_name}", field=field)
        if key:
            self.secrets.add(key)
        return key
