"""The turn engine end to end: real browser sockets to the relay, the relay to the sandbox on loopback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from chat.models import Turn
from tests.chat.conftest import READY, TIMEOUT, make_shopper, receive_until, send, stored

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_upstream_is_reconnected_on_the_documented_schedule_after_a_drop(sandbox: Any) -> None:
    """Reference §12: the first reconnect waits min(1000·2⁰, 10000) ms ±25 %, also right after a drop."""
    from tests.chat.conftest import connected

    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()
        await send(tab, kind="message", text="borscht", key="k1")
        await receive_until(tab, "-text")
        dropped = time.monotonic()
        await sandbox.drop_all(code=1011)
        await sandbox.wait_for_connections(0)
        async with asyncio.timeout(TIMEOUT):
            await sandbox.wait_for_connections(1)
        waited = time.monotonic() - dropped
        sandbox.resume_turns()
        await receive_until(tab, READY)
    assert 0.75 <= waited <= 1.25 + 0.25, waited  # the schedule's first step (+ a little for the handshake)


async def test_each_tab_gets_the_turn_in_its_own_language(sandbox: Any) -> None:
    from tests.chat.conftest import communicator

    key, conversation = await make_shopper()
    english, ukrainian = communicator(key, conversation), communicator(key, conversation)
    ukrainian.scope["query_string"] = f"c={conversation.public_id}&lang=uk".encode()
    for tab in (english, ukrainian):
        assert (await tab.connect(timeout=TIMEOUT))[0]
    try:
        await send(english, kind="message", text="milk", key="k1")
        said_en = await receive_until(english, READY)
        said_uk = await receive_until(ukrainian, READY)
    finally:
        await english.disconnect()
        await ukrainian.disconnect()
    assert "Searching the catalog" in said_en
    assert "Searching the catalog" not in said_uk and "Шукаю" in said_uk
    assert 'lang="uk"' not in said_en


async def test_a_finished_turn_is_recorded_for_the_insights(sandbox: Any) -> None:
    from channels.db import database_sync_to_async

    from tests.chat.conftest import connected

    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
    turns = await database_sync_to_async(lambda: list(Turn.objects.filter(conversation=conversation)))()
    messages = await stored(conversation)
    assert len(turns) == 1
    turn = turns[0]
    assert (turn.seq, turn.query, turn.outcome, turn.had_cards) == (messages[0].seq, "milk", "answered", True)
    assert turn.first_token_ms is not None and turn.duration_ms is not None
    assert turn.first_token_ms <= turn.duration_ms
