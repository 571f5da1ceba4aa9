"""The relay under a rude upstream: closes with every code mid-reply, garbage, unknown and oversize frames, slowness.

Each case ends with no crash, everything stored kept, and a clear message in the tab.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import translation
from websockets.asyncio.server import serve

from chat.models import Conversation
from chat.presentation import texts
from chat.sandbox.server import SandboxConfig, SandboxServer
from chat.turns.service import get_relay
from chat.vizochok.messages import MAX_SERVER_FRAME_BYTES
from tests.chat.conftest import READY, connected, make_shopper, receive_until, reload, send, stored

pytestmark = pytest.mark.django_db(transaction=True)


async def status_of(conversation: Conversation) -> str:
    return (await reload(conversation)).status


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        (1000, "upstream_lost"),
        (1001, "upstream_lost"),
        (1006, "upstream_lost"),
        (1011, "upstream_lost"),
        (4029, "upstream_lost"),
        (4001, "auth_failed"),
        (4002, "auth_failed"),
        (4003, "auth_failed"),
        (4004, "auth_failed"),
    ],
)
async def test_upstream_closing_mid_reply(sandbox: Any, code: int, shown: str) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()
        await send(tab, kind="message", text="borscht", key="k1")
        await receive_until(tab, "-text")
        await sandbox.drop_all(code=code)
        html = await receive_until(tab, READY)
        sandbox.resume_turns()
        assert f'data-code="{shown}"' in html
        if shown == "upstream_lost":
            # Resumed: the next message goes through at once.
            await send(tab, kind="message", text="milk", key="k2")
            assert "product-card" in await receive_until(tab, READY)
    messages = await stored(conversation)
    cut = [m for m in messages if m.role == "assistant" and m.kind == "text" and not m.complete]
    assert len(cut) == 1  # what streamed before the close is kept
    assert messages[0].text == "borscht"
    assert await status_of(conversation) == Conversation.Status.IDLE


#: Reference §10.2's codes that end a turn and are not waited out by the relay (``agent_busy`` and a short
#: ``rate_limit_exceeded`` are: tests/chat/web/test_stop_retry.py, test_consumer.py).
TURN_ENDING_CODES = [
    "user_message_limit",
    "user_conversation_limit",
    "tenant_daily_token_limit",
    "tenant_monthly_token_limit",
    "session_token_limit",
    "max_rounds_exceeded",
    "message_too_large",
    "invalid_json",
    "internal_error",
    "no_catalog_data",
]


@pytest.mark.parametrize("code", TURN_ENDING_CODES)
async def test_every_documented_error_ends_the_turn_in_its_own_words(sandbox: Any, settings: Any, code: str) -> None:
    """Each code of the reference shows the tab its own wording (not the generic one), keeps what streamed, and
    leaves the conversation usable."""
    settings.VIZOCHOK_ERROR_GRACE = 0.05  # the next turn need not wait a second for a response_complete after it
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.fail_next_turn(code, after_deltas=2)
        await send(tab, kind="message", text="borscht", key="k1")
        html = await receive_until(tab, READY)
        shown = re.search(rf'data-code="{code}"[^>]*><span class="chat-error__text">([^<]+)<', html)
        assert shown is not None, html
        generic = set()
        for language in ("uk", "en"):
            with translation.override(language):
                generic.add(texts.error_text("something_new"))
        assert shown[1] not in generic  # its own words, not the generic ones
        await send(tab, kind="message", text="milk", key="k2")
        assert "product-card" in await receive_until(tab, READY)
    assert await status_of(conversation) == Conversation.Status.IDLE


async def test_garbage_unknown_and_oversize_upstream_frames(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, "-text")
        await sandbox.send_raw_to_all("this is not json")
        await sandbox.send_raw_to_all('{"no": "type"}')
        await sandbox.send_raw_to_all('{"type": "product_cards", "items": [{"sku": 1}]}')
        await sandbox.send_raw_to_all('{"type": "text_delta", "delta": "' + "x" * (MAX_SERVER_FRAME_BYTES + 1) + '"}')
        await sandbox.send_raw_to_all('{"type": "meal_plan", "days": [{"day": "Mon", "meals": ["борщ"]}]}')
        sandbox.resume_turns()
        html = await receive_until(tab, READY)
    assert 'class="notice"' in html  # the unknown type, shown neutrally
    assert "x" * 1000 not in html  # the oversize frame was refused, not relayed
    assert "chat-error" not in html
    kinds = [m.kind for m in await stored(conversation)]
    assert "notice" in kinds
    assert "product_cards" in kinds  # the real cards still arrived


async def test_a_slow_upstream_ends_with_a_timeout_and_keeps_the_text(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_TURN_TIMEOUT = 0.5
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()  # the upstream goes quiet mid-reply
        await send(tab, kind="message", text="milk", key="k1")
        html = await receive_until(tab, READY)
        sandbox.resume_turns()
    assert 'data-code="turn_timeout"' in html
    cut = [m for m in await stored(conversation) if m.role == "assistant" and m.kind == "text"]
    assert [m.complete for m in cut] == [False]
    assert await status_of(conversation) == Conversation.Status.IDLE


async def test_the_daily_conversation_limit_is_explained(settings: Any) -> None:
    config = SandboxConfig(tokens_per_second=0.0, ping_interval=0.0, conversations_per_user_per_day=1)
    async with SandboxServer(config) as server:
        settings.VIZOCHOK_WS_URL = server.url
        key, first = await make_shopper("anon-limited")
        second = await database_sync_to_async(Conversation.objects.create)(
            session_key=key, user_id="anon-limited", store_id="s"
        )
        try:
            async with connected(key, first) as tab:
                await send(tab, kind="message", text="milk", key="k1")
                assert "product-card" in await receive_until(tab, READY)
            async with connected(key, second) as tab:
                await send(tab, kind="message", text="milk", key="k2")
                html = await receive_until(tab, READY)
        finally:
            await get_relay().close()
    assert 'data-code="user_conversation_limit"' in html
    assert "too many conversations today" in html


async def test_an_upstream_that_never_authenticates_ends_the_turn_within_the_auth_timeout(settings: Any) -> None:
    """It accepts the WebSocket and never answers ``auth``: one attempt, a clear error, no 83 s spinner."""
    connections: list[Any] = []

    async def silent(ws: Any) -> None:
        connections.append(ws)
        await ws.wait_closed()

    async with serve(silent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        settings.VIZOCHOK_WS_URL = f"ws://127.0.0.1:{port}/ws"
        settings.VIZOCHOK_AUTH_TIMEOUT = 0.5
        key, conversation = await make_shopper()
        try:
            async with connected(key, conversation) as tab:
                await send(tab, kind="message", text="milk", key="k1")
                html = await receive_until(tab, READY, timeout=3.0)  # old: 6 attempts and 25 s of backoff
        finally:
            await get_relay().close()
    assert 'data-code="upstream_unavailable"' in html
    assert len(connections) == 1
    assert await status_of(conversation) == Conversation.Status.IDLE
