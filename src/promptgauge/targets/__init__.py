"""Targets: what a variant's rendered prompt is sent to.

A variant names its target with one string:

- ``local:smollm2`` -- the embedded model (llama-cpp-python, in process);
- ``openai:MODEL`` -- OpenAI or any compatible server (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``);
- ``azure:DEPLOYMENT`` -- Azure OpenAI (``AZURE_OPENAI_ENDPOINT``, ``AZURE_OPENAI_API_KEY``,
  ``OPENAI_API_VERSION``);
- ``python:module:function`` -- any Python callable (sync or async);
- ``flow:PATH`` -- a promptflow flow (``flow.dag.yaml`` or ``flow.flex.yaml``), run in process;
- ``NAME`` or ``NAME:MODEL`` -- an entry of the suite's ``targets:`` section (also ``type: http``:
  any HTTP JSON endpoint);
- no target, for a ``.prompty`` variant -- the prompty's own ``model.configuration``.

API keys come only from the environment (``api_key_env`` names the variable).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from ..errors import TargetError, located
from .base import Completion, Target

if TYPE_CHECKING:
    from ..prompts import Prompt
    from ..suite import Suite, TargetConfig

__all__ = ["Completion", "Target", "TargetFactory", "KINDS"]

KINDS = ("local", "openai", "azure", "python", "flow", "http")
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_AZURE_API_VERSION = "2024-06-01"


def expand_env(value: str, *, field: str) -> str:
    """Replace ``${env:VAR}`` references; a missing variable is an error naming it."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise TargetError(f"environment variable {name} is not set", field=field)
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


class _Lazy:
    """An openai client made on first use: making one costs ~40 ms (its SSL context), and a run
    answered from the cache or a cassette never needs it."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


class TargetFactory:
    """Builds targets for a suite (or a monitor file: its ``targets:`` and root), sharing one HTTP client per
    endpoint."""

    def __init__(self, suite: "Suite", *, timeout: float, offline: bool = False) -> None:
        self.suite = suite
        self.timeout = timeout
        self.offline = offline  # replaying a cassette: no API key is needed
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._built: dict[str, Target] = {}

    def get(self, ref: str) -> Target:
        if ref not in self._built:
            self._built[ref] = self._build(ref)
        return self._built[ref]

    def for_prompt(self, prompt: "Prompt", name: str) -> Target:
        """The target a ``.prompty`` names in ``model.configuration`` (promptflow's format)."""
        from ..suite import TargetConfig

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
        tc = TargetConfig(type="azure" if cfg["type"] == "azure_openai" else "openai", model=model,
                          base_url=cfg.get("base_url"), azure_endpoint=cfg.get("azure_endpoint"),
                          api_version=cfg.get("api_version"), api_key_env=key_env)
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
        if name in self.suite.targets:
            return self._from_config(ref, self.suite.targets[name], rest or None)
        if name == "local":
            from .local import LocalTarget, model_file

            return LocalTarget(ref, model_file(rest or "smollm2"), rest or "smollm2")
        if name == "python":
            from .python import PythonTarget, import_callable

            return PythonTarget(ref, import_callable(rest, search_path=str(self.suite.root)), rest)
        if name == "flow" and rest:
            from ..suite import TargetConfig

            return self._from_config(ref, TargetConfig(type="flow", flow=rest), None)
        if name in ("openai", "azure") and rest:
            from ..suite import TargetConfig

            return self._from_config(ref, TargetConfig(type=name), rest)
        known = ", ".join(sorted(self.suite.targets)) or "none defined"
        raise TargetError(
            f"unknown target '{ref}'",
            hint=f"use local:smollm2, openai:MODEL, azure:DEPLOYMENT, python:module:function, "
            f"or a name from the suite's targets: section ({known})",
        )

    def _from_config(self, ref: str, cfg: "TargetConfig", model: str | None) -> Target:
        field = f"targets.{ref.split(':')[0]}"
        if cfg.type == "local":
            from .local import LocalTarget, model_file

            from pathlib import Path

            label = model or cfg.model or "smollm2"
            path = self.suite.resolve(cfg.model_path) if cfg.model_path else model_file(label)
            if not Path(path).is_file():
                raise TargetError(f"model file not found: {path}", field=field + ".model_path")
            return LocalTarget(ref, Path(path), label)
        if cfg.type == "python":
            from .python import PythonTarget, import_callable

            func_ref = model or cfg.function
            if not func_ref:
                raise TargetError("a python target needs 'function: module:function'", field=field)
            return PythonTarget(ref, import_callable(func_ref, search_path=str(self.suite.root)), func_ref)
        if cfg.type == "http":
            from .http import HttpTarget

            if not cfg.url:
                raise TargetError("an http target needs 'url:'", field=field)
            headers = {k: expand_env(v, field=f"{field}.headers.{k}") for k, v in cfg.headers.items()}
            return HttpTarget(ref, expand_env(cfg.url, field=field + ".url"), response=cfg.response,
                              headers=headers, timeout=self.timeout)
        if cfg.type == "flow":
            from .promptflow import load_flow_target

            if not cfg.flow:
                raise TargetError("a flow target needs 'flow: path/to/flow.dag.yaml'", field=field)
            return load_flow_target(ref, self.suite.resolve(cfg.flow), cfg, self, field)
        model = model or cfg.model
        if not model:
            raise TargetError(f"no model given: write '{ref}:MODEL' or set 'model:'", field=field)
        from .openai_chat import OpenAIChatTarget

        client, endpoint = self._client(cfg, field)
        return OpenAIChatTarget(ref, client, model, kind=cfg.type, endpoint=endpoint, rpm=cfg.rpm, tpm=cfg.tpm)

    def _client(self, cfg: "TargetConfig", field: str) -> tuple[Any, str | None]:
        import openai

        headers = {k: expand_env(v, field=f"{field}.headers.{k}") for k, v in cfg.headers.items()}
        if cfg.type == "azure":
            endpoint = cfg.azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
            if not endpoint and self.offline:
                endpoint = "https://offline.invalid"  # replaying a cassette: never contacted
            if not endpoint:
                raise TargetError("Azure OpenAI needs an endpoint: set AZURE_OPENAI_ENDPOINT or azure_endpoint:", field=field)
            endpoint = expand_env(endpoint, field=field + ".azure_endpoint")
            key_env = cfg.api_key_env or "AZURE_OPENAI_API_KEY"
            version = cfg.api_version or os.environ.get("OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION
            key = self._key(key_env, field) or "not-needed"
            cache_key = ("azure", endpoint, key_env, version, tuple(sorted(headers.items())))
            if cache_key not in self._clients:
                self._clients[cache_key] = _Lazy(lambda: openai.AsyncAzureOpenAI(
                    azure_endpoint=endpoint, api_key=key, api_version=version, max_retries=0,
                    timeout=self.timeout, default_headers=headers or None,
                ))
            return self._clients[cache_key], endpoint
        base_url = cfg.base_url or os.environ.get("OPENAI_BASE_URL") or None
        if base_url:
            base_url = expand_env(base_url, field=field + ".base_url")
        key_env = cfg.api_key_env or "OPENAI_API_KEY"
        # A local server often needs no key; the SDK insists on one, so a placeholder is sent.
        key = self._key(key_env, field, required=base_url is None)
        cache_key = ("openai", base_url, key_env, tuple(sorted(headers.items())))
        if cache_key not in self._clients:
            self._clients[cache_key] = _Lazy(lambda: openai.AsyncOpenAI(
                base_url=base_url, api_key=key or "not-needed", max_retries=0, timeout=self.timeout,
                default_headers=headers or None,
            ))
        return self._clients[cache_key], base_url or "https://api.openai.com/v1"

    def _key(self, env_name: str, field: str, *, required: bool = True) -> str | None:
        key = os.environ.get(env_name)
        if required and not key and not self.offline:
            raise TargetError(f"the API key is read from the environment: set {env_name}", field=field)
        return key
