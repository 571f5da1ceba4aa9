"""A browser socket gives back its caps and the open-socket gauge on every way out (issue 15, item 1).

channels runs ``disconnect()`` only when the disconnect message is dispatched: a handler that raises ends the
application first, and a server cancels an application that does not finish in time. The faults come from below
the real consumer, as they would in production: the database refuses a write with an error the consumer does not
expect (a SQLite trigger), or the database thread is busy for longer than the application is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.cache import cache
from django.db import connection

from chat.models import Conversation
from chat.ops import metrics, ratelimit
from tests.chat.conftest import READY, communicator, make_shopper, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


def held_sockets(user_id: str) -> int:
    return int(cache.get(ratelimit._key("sockets-session", user_id)) or 0)


def gauge() -> float:
    return float(metrics.ACTIVE_SOCKETS._value.get())


@contextlib.contextmanager
def failing_conversation_updates() -> Iterator[None]:
    """Every UPDATE of a conversation (a send claims it) fails with an IntegrityError: a bug below the consumer, not
    an outage (an outage is an OperationalError, which the consumer answers with ``service_unavailable``)."""
    if connection.vendor != "sqlite":
        pytest.skip("the fault is a SQLite trigger")
    table = Conversation._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TRIGGER test_fault BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, 'a bug below'); END"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS test_fault")


async def test_a_handler_that_raises_is_a_refusal_and_the_socket_stays(sandbox: Any) -> None:
    key, conversation = await make_shopper("anon-raises")
    before = gauge()
    tab = communicator(key, conversation)
    assert (await tab.connect())[0]
    faults = failing_conversation_updates()
    await database_sync_to_async(faults.__enter__)()
    try:
        await send(tab, kind="message", text="milk", key="k-raises")
        html = await receive_until(tab, "chat-error")
        assert 'data-code="relay_error"' in html and READY in html
    finally:
        await database_sync_to_async(faults.__exit__)(None, None, None)
    await send(tab, kind="sync", after=0)
    assert READY in await receive_until(tab, READY)  # still open, still answering
    assert held_sockets("anon-raises") == 1 and gauge() == before + 1
    await tab.disconnect()
    assert held_sockets("anon-raises") == 0 and gauge() == before


async def test_a_cancelled_application_gives_its_socket_back(sandbox: Any) -> None:
    """Daphne cancels an application still busy 10 s after its client left; disconnect() never runs then.

    The application is busy for real: its send waits for the one database thread, which a slow statement holds.
    """
    key, conversation = await make_shopper("anon-stuck")
    before = gauge()
    tab = communicator(key, conversation)
    assert (await tab.connect())[0]
    assert held_sockets("anon-stuck") == 1 and gauge() == before + 1
    holding, release = threading.Event(), threading.Event()

    def slow_statement() -> None:
        holding.set()
        release.wait(15)

    busy = asyncio.ensure_future(database_sync_to_async(slow_statement)())
    try:
        await asyncio.to_thread(holding.wait, 5)
        await send(tab, kind="message", text="milk", key="k-stuck")
        async with asyncio.timeout(5):
            # Until the application has taken the frame (the queue has no event for it); each turn a yield, no delay.
            while not tab.input_queue.empty():  # noqa: ASYNC110
                await asyncio.sleep(0)
        tab.future.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tab.future
        assert held_sockets("anon-stuck") == 0 and gauge() == before
    finally:
        release.set()
        await busy


async def test_a_flood_of_syncs_is_merged_into_paced_catch_ups(sandbox: Any, settings: Any) -> None:
    """200 syncs on one socket made the server render the conversation 200 times (issue 15, item 3). Now at most one
    catch-up per interval while they come, and one more for those merged at the end: the bound is read off the time
    the syncs took to arrive, so a loaded machine (which spreads them out) cannot fail it, and 200 renders would."""
    interval = 0.5
    settings.VIZOCHOK_SYNC_INTERVAL = interval
    key, conversation = await make_shopper("anon-syncs")
    tab = communicator(key, conversation)
    assert (await tab.connect())[0]
    try:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(200):
            await send(tab, kind="sync", after=0)
        await send(tab, kind="nonsense")  # answered after every sync before it was read
        catch_ups = 0
        async with asyncio.timeout(10):
            while True:
                frame = await tab.receive_from(timeout=10)
                catch_ups += 'id="cart-panel-body"' in frame
                if "unknown_kind" in frame:
                    break
        arrived = loop.time() - started
        while not await tab.receive_nothing(timeout=1.5):  # the merged one after the interval, and no more
            catch_ups += 'id="cart-panel-body"' in await tab.receive_from(timeout=1)
        assert 1 <= catch_ups <= 2 + math.ceil(arrived / interval), (catch_ups, arrived)
    finally:
        await tab.disconnect()
