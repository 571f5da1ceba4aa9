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


def _two_bubbles(session: Any, request: Any) -> Any:
    """A reply of two text blocks back to back (the second starts before the first could be stored)."""
    from chat.sandbox.assistant import Frame
    from chat.sandbox.server import Reply
    from chat.vizochok.messages import ResponseComplete, Status, TextDelta, TextEnd

    session.turns += 1
    frames: list[Frame] = [Status(code="thinking")]
    frames += [TextDelta(delta=word) for word in ("Milk ", "is ", "here.")] + [TextEnd()]
    frames += [TextDelta(delta=word) for word in ("Anything ", "else?")] + [TextEnd()]
    return Reply([*frames, ResponseComplete(conversation_id=session.conversation_id)])


async def test_a_turn_commits_three_times_and_keeps_every_block(sandbox: Any) -> None:
    """The claim, the shopper's message, and the end: the reply, the turn's end and its record are one transaction
    (the database thread is shared with the event loop's GIL: each commit and trip there costs the stream)."""
    from channels.db import database_sync_to_async
    from django.db import connection

    from tests.chat.conftest import connected

    commits: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        # A statement outside a transaction commits by itself; a transaction commits once, after its BEGIN.
        if sql == "BEGIN" or not context["connection"].in_atomic_block:
            commits.append(sql.split(None, 1)[0])
        return execute(sql, params, many, context)

    @database_sync_to_async
    def watch(on: bool) -> None:  # on the database thread, whose connection the relay uses
        connection.ensure_connection()
        if on:
            connection.execute_wrappers.append(count)
        else:
            connection.execute_wrappers.remove(count)

    sandbox.config.reply_hook = _two_bubbles
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="warm up", key="k0")  # the first turn also stores the upstream id
        await receive_until(tab, READY)
        await watch(True)
        try:
            await send(tab, kind="message", text="milk", key="k1")
            await receive_until(tab, READY)
        finally:
            await watch(False)
    messages = await stored(conversation)
    assert [(m.role, m.text) for m in messages[-3:]] == [
        ("user", "milk"),
        ("assistant", "Milk is here."),
        ("assistant", "Anything else?"),
    ]
    # claim, shopper's message, first block (stored before the second one streams), end of the turn
    assert len(commits) == 4, commits
