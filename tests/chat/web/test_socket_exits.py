"""A browser socket gives back its caps and the open-socket gauge on every way out (issue 15, item 1).

channels runs ``disconnect()`` only when the disconnect message is dispatched: a handler that raises ends the
application first, and a server cancels an application that does not finish in time. Faults are injected into
the real consumer (a handler that raises or never returns); everything else is the real application and database.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.core.cache import cache

from chat.ops import metrics, ratelimit
from chat.web.consumer import ChatConsumer
from tests.chat.conftest import READY, communicator, make_shopper, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


def held_sockets(user_id: str) -> int:
    return int(cache.get(ratelimit._key("sockets-session", user_id)) or 0)


def gauge() -> float:
    return float(metrics.ACTIVE_SOCKETS._value.get())


async def test_a_handler_that_raises_is_a_refusal_and_the_socket_stays(sandbox: Any, monkeypatch: Any) -> None:
    key, conversation = await make_shopper("anon-raises")
    before = gauge()
    tab = communicator(key, conversation)
    assert (await tab.connect())[0]
    real_handle = ChatConsumer._handle

    async def broken(self: ChatConsumer, data: dict[str, Any]) -> None:
        if data.get("kind") == "boom":
            raise RuntimeError("a bug somewhere below")
        await real_handle(self, data)

    monkeypatch.setattr(ChatConsumer, "_handle", broken)
    await send(tab, kind="boom")
    html = await receive_until(tab, "chat-error")
    assert 'data-code="relay_error"' in html and READY in html
    await send(tab, kind="sync", after=0)
    assert READY in await receive_until(tab, READY)  # still open, still answering
    assert held_sockets("anon-raises") == 1 and gauge() == before + 1
    await tab.disconnect()
    assert held_sockets("anon-raises") == 0 and gauge() == before


async def test_a_cancelled_application_gives_its_socket_back(sandbox: Any, monkeypatch: Any) -> None:
    """Daphne cancels an application still busy 10 s after its client left; disconnect() never runs then."""
    key, conversation = await make_shopper("anon-stuck")
    before = gauge()
    stuck = asyncio.Event()

    async def hangs(self: ChatConsumer, data: dict[str, Any]) -> None:
        stuck.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(ChatConsumer, "_handle", hangs)
    tab = communicator(key, conversation)
    assert (await tab.connect())[0]
    assert held_sockets("anon-stuck") == 1 and gauge() == before + 1
    await send(tab, kind="sync", after=0)
    await asyncio.wait_for(stuck.wait(), 5)
    tab.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await tab.future
    assert held_sockets("anon-stuck") == 0 and gauge() == before


async def test_a_flood_of_syncs_is_merged_into_paced_catch_ups(sandbox: Any, settings: Any) -> None:
    """200 syncs on one socket made the server render the conversation 200 times (issue 15, item 3)."""
    settings.VIZOCHOK_SYNC_INTERVAL = 0.5
    key, conversation = await make_shopper("anon-syncs")
    tab = communicator(key, conversation)
    assert (await tab.connect())[0]
    try:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
        for _ in range(200):
            await send(tab, kind="sync", after=0)
        await send(tab, kind="nonsense")  # answered after every sync before it was read
        catch_ups = 0
        async with asyncio.timeout(5):
            while True:
                frame = await tab.receive_from(timeout=5)
                catch_ups += 'id="cart-panel-body"' in frame
                if "unknown_kind" in frame:
                    break
        async with asyncio.timeout(5):
            while catch_ups < 2:  # the merged one, after the interval
                catch_ups += 'id="cart-panel-body"' in await tab.receive_from(timeout=5)
        assert await tab.receive_nothing(timeout=1.5)  # and no more
        assert catch_ups == 2
    finally:
        await tab.disconnect()
