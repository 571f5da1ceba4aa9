"""Where the upstream is and how to reach it, from settings.

With ``VIZOCHOK_WS_URL`` unset the built-in sandbox is the upstream: it is started inside this process on a
loopback port the first time a turn needs it, so ``runserver`` alone gives a working chat and the relay still
speaks the real protocol over a real socket.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from chat.vizochok.client import UpstreamConfig

logger = logging.getLogger("chat.turns.upstream")


class EmbeddedSandbox:
    """The in-process sandbox of one event loop (Daphne runs one; tests may run several in turn)."""

    def __init__(self) -> None:
        self._server: object | None = None
        self._url: str | None = None
        self._lock = asyncio.Lock()

    async def url(self) -> str:
        async with self._lock:
            if self._url is None:
                from chat.sandbox.server import SandboxConfig, SandboxServer

                server = SandboxServer(SandboxConfig(tokens_per_second=settings.VIZOCHOK_SANDBOX_PACE))
                await server.start("127.0.0.1", 0)
                self._server, self._url = server, server.url
                logger.info("embedded sandbox upstream listening at %s", self._url)
            return self._url

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()  # type: ignore[attr-defined]
            self._server = self._url = None


async def upstream_config(user_id: str, sandbox: EmbeddedSandbox, store_id: str = "") -> UpstreamConfig:
    """The config for one upstream session of ``user_id`` (as the upstream knows the shopper: the entry points map
    our namespaced ids, ``chat.web.identity.upstream_user_id``) in ``store_id``; the key stays here, on the server.

    ``store_id`` is the conversation's: a session bound by a host's entry token talks to the host's store.
    """
    url = settings.VIZOCHOK_WS_URL or await sandbox.url()
    return UpstreamConfig(
        url=url,
        token=settings.VIZOCHOK_API_KEY,
        store_id=store_id or settings.VIZOCHOK_STORE_ID,
        user_id=user_id,
        turn_timeout=settings.VIZOCHOK_TURN_TIMEOUT,
        error_grace=settings.VIZOCHOK_ERROR_GRACE,
        settle_grace=settings.VIZOCHOK_SETTLE_GRACE,
        auth_timeout=settings.VIZOCHOK_AUTH_TIMEOUT,
        deflate=settings.VIZOCHOK_UPSTREAM_DEFLATE,
    )
