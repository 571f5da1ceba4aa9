"""Readiness asks the upstream for a real ``auth`` round trip (issue 15, item 13), against real sockets."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import AsyncClient
from websockets.asyncio.server import ServerConnection, serve

from chat.sandbox.server import SandboxConfig, SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)


class Upstream:
    """A WebSocket server that counts its connections and runs ``handler`` for each."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.connections = 0

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        await self.handler(ws)


async def silent(ws: ServerConnection) -> None:
    await ws.wait_closed()


async def full(ws: ServerConnection) -> None:
    await ws.recv()
    await ws.close(4029, "too many connections")


async def readyz(settings: Any, url: str) -> tuple[int, dict[str, Any]]:
    settings.VIZOCHOK_WS_URL = url
    response = await AsyncClient().get("/readyz")
    return response.status_code, response.json()


async def test_an_upstream_that_accepts_but_never_authenticates_is_not_ready(settings: Any) -> None:
    upstream = Upstream(silent)
    async with serve(upstream._handle, "127.0.0.1", 0) as server:
        started = time.monotonic()
        status, body = await readyz(settings, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws")
    assert status == 503 and body["checks"]["upstream"]["status"] == "failed: HandshakeTimeout"
    assert time.monotonic() - started < 4  # the probe's own short timeout, once
    assert upstream.connections == 1


async def test_a_real_upstream_is_ready_and_probed_once_per_cache_period(settings: Any) -> None:
    settings.VIZOCHOK_READY_UPSTREAM_CACHE = 60
    async with SandboxServer(SandboxConfig(tokens_per_second=0.0, ping_interval=0.0)) as sandbox:
        for _ in range(3):
            status, body = await readyz(settings, sandbox.url)
            assert status == 200 and body["checks"]["upstream"]["status"] == "ok"
        assert sandbox.connections == 0  # closed once started: the key's socket is given back at once


@pytest.mark.parametrize("token", ["sk_test_relay", "pk_test_storefront"])
async def test_the_probe_resumes_its_own_conversation_instead_of_starting_one_each_time(
    settings: Any, token: str
) -> None:
    """The API starts a conversation at ``auth`` (reference §2, step 3), and may count it against the daily 20
    (§13, §22 item 8): a probe every 10 s would have spent them, with a public key the whole store's. It names the
    conversation its first round trip started, so later ones restore it."""
    settings.VIZOCHOK_READY_UPSTREAM_CACHE = 0
    settings.VIZOCHOK_API_KEY = token
    async with SandboxServer(SandboxConfig(tokens_per_second=0.0, ping_interval=0.0)) as sandbox:
        for _ in range(4):
            status, body = await readyz(settings, sandbox.url)
            assert status == 200 and body["checks"]["upstream"]["status"] == "ok"
        assert len(sandbox.sessions) == 1
        assert sum(sandbox._daily.values()) == 1


async def test_the_probe_forgets_its_conversation_where_auth_refuses_one(settings: Any) -> None:
    """Where ``auth`` refuses a conversation id (§22 item 7, the sandbox's ``resume_in_auth="refused"``), the probe's
    second round trip named one and was refused: /readyz answered 503 for good."""
    settings.VIZOCHOK_READY_UPSTREAM_CACHE = 0
    config = SandboxConfig(tokens_per_second=0.0, ping_interval=0.0, resume_in_auth="refused")
    async with SandboxServer(config) as sandbox:
        for _ in range(3):
            status, body = await readyz(settings, sandbox.url)
            assert status == 200 and body["checks"]["upstream"]["status"] == "ok", body


async def test_an_upstream_at_its_connection_limit_still_answered(settings: Any) -> None:
    upstream = Upstream(full)
    async with serve(upstream._handle, "127.0.0.1", 0) as server:
        status, body = await readyz(settings, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws")
    assert status == 200 and body["checks"]["upstream"]["status"] == "ok (connection limit)"


async def test_a_refused_key_is_not_ready(settings: Any) -> None:
    settings.VIZOCHOK_API_KEY = "not-a-key"  # the sandbox closes 4003 for a token that is not sk_/pk_
    async with SandboxServer(SandboxConfig(tokens_per_second=0.0, ping_interval=0.0)) as sandbox:
        status, body = await readyz(settings, sandbox.url)
    assert status == 503 and body["checks"]["upstream"]["status"] == "failed: AuthRejected"
    assert "not-a-key" not in str(body)
