"""Entra ID (formerly Azure AD) for Azure OpenAI, as promptflow and azure-ai-evaluation do it.

An ``azure`` target without an API key (or with ``auth: entra``) authenticates with a bearer token
for the Cognitive Services scope: azure-identity's ``DefaultAzureCredential`` (environment, workload
identity, managed identity -- ``managed_identity_client_id`` for a user-assigned one --, Azure CLI,
...) behind ``get_bearer_token_provider``, given to the openai SDK's ``AsyncAzureOpenAI`` as
``azure_ad_token_provider``. The provider caches the token and asks the credential for a new one
before it expires (azure-core refreshes within five minutes of ``expires_on``).

``credential: module:attr`` names another credential: any object with azure-identity's
token-credential protocol (``get_token(*scopes) -> AccessToken(token, expires_on)``, sync or async),
or a callable without arguments that returns one -- a workload's own credential, or a test's fake one.

Every token handed out is added to the factory's secrets, so it is scrubbed from any error text
stored; tokens travel only in the ``Authorization`` header of a request and are never written.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..errors import TargetError

#: The scope of an Azure OpenAI (Cognitive Services) bearer token.
SCOPE = "https://cognitiveservices.azure.com/.default"
EXTRA_HINT = "pip install 'promptgauge[azure]' (it brings azure-identity)"


def require_azure_identity(field: str, why: str, hint: str = "or give the target an API key (auth: key)") -> None:
    """A :class:`TargetError` naming the extra when azure-identity cannot be imported."""
    try:
        import azure.identity  # noqa: F401
    except ImportError:
        raise TargetError(f"{why} needs azure-identity, which is not installed", field=field,
                          hint=f"{EXTRA_HINT}, {hint}") from None


def load_credential(ref: str, root: Path, field: str) -> Any:
    """The credential ``module:attr`` names: a token credential, or a callable that makes one."""
    from .python import import_object

    obj = import_object(ref, search_path=str(root))
    if inspect.isclass(obj) or (not hasattr(obj, "get_token") and callable(obj)):
        try:
            obj = obj()
        except (Exception, SystemExit) as exc:  # a class that needs arguments, a factory that fails or exits
            raise TargetError(f"cannot make a credential with {ref}(): {type(exc).__name__}: {exc}", field=field,
                              hint="name a credential object, or a class or function that needs no arguments") from None
    if not callable(getattr(obj, "get_token", None)):
        raise TargetError(f"'{ref}' is not a token credential: it has no get_token(*scopes) method", field=field,
                          hint="name an azure-identity credential (or an object with get_token(*scopes) -> "
                          "AccessToken(token, expires_on)), or a function without arguments returning one")
    return obj


def default_credential(managed_identity_client_id: str | None) -> Any:
    """azure-identity's ``DefaultAzureCredential`` (a user-assigned managed identity by its client id)."""
    from azure.identity import DefaultAzureCredential

    kwargs = {"managed_identity_client_id": managed_identity_client_id} if managed_identity_client_id else {}
    return DefaultAzureCredential(**kwargs)


def token_provider(credential: Any, secrets: set[str]) -> Callable[[], Awaitable[str]]:
    """An async bearer-token provider for the openai SDK: azure-identity's ``get_bearer_token_provider``
    (its async form for an async credential; a sync credential's blocking calls run in a thread).
    Each token it hands out is added to *secrets*."""
    if inspect.iscoroutinefunction(getattr(credential, "get_token", None)):
        from azure.identity.aio import get_bearer_token_provider as async_provider

        inner_async = async_provider(credential, SCOPE)

        async def provide_async() -> str:
            token = await inner_async()
            secrets.add(token)
            return token

        return provide_async
    from azure.identity import get_bearer_token_provider

    inner = get_bearer_token_provider(credential, SCOPE)
    lock = threading.Lock()  # concurrent first calls ask the credential once, not once per worker

    def locked() -> str:
        with lock:
            return inner()

    async def provide() -> str:
        token = await asyncio.to_thread(locked)
        secrets.add(token)
        return token

    return provide


class SyncTokenProvider:
    """A token provider with promptflow's interface (``get_token() -> str``) over a sync credential: what a
    flow target's ``AzureOpenAIConnection`` (``auth_mode: meid_token``) uses for its LLM nodes."""

    def __init__(self, credential: Any, secrets: set[str]) -> None:
        from azure.identity import get_bearer_token_provider

        self._inner = get_bearer_token_provider(credential, SCOPE)
        self._lock = threading.Lock()
        self._secrets = secrets

    def __deepcopy__(self, memo: dict[int, Any]) -> SyncTokenProvider:
        return self  # promptflow copies its connections: the copy shares the credential and the cached token

    def __copy__(self) -> SyncTokenProvider:
        return self

    def get_token(self) -> str:
        with self._lock:
            token = self._inner()
        self._secrets.add(token)
        return token


async def close_credential(credential: Any) -> None:
    """Close a credential this package made (DefaultAzureCredential holds HTTP sessions)."""
    close = getattr(credential, "close", None)
    if close is None:
        return
    result = close()
    if inspect.isawaitable(result):
        await result
