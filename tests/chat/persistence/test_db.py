"""``chat.persistence.db.call``: calls made while the database thread is busy go there together, in order, each on
its own."""

from __future__ import annotations

import asyncio
import threading

import pytest

from chat.ops.logs import conversation_var
from chat.persistence import db

pytestmark = pytest.mark.django_db(transaction=True)


async def test_waiting_calls_run_in_order_each_with_its_own_outcome_and_context() -> None:
    ran: list[tuple[str, str]] = []
    release = threading.Event()
    entered = threading.Event()

    def hold() -> str:
        entered.set()
        release.wait(5)
        return "held"

    def note(name: str) -> str:
        ran.append((name, conversation_var.get()))
        if name == "bad":
            raise ValueError(name)
        return name

    async def as_conversation(conversation: str, name: str) -> str:
        conversation_var.set(conversation)
        return await db.call(note, name)

    first = asyncio.ensure_future(db.call(hold))
    await asyncio.to_thread(entered.wait, 5)  # the database thread is busy now: the next calls wait together
    waiting = [asyncio.ensure_future(as_conversation(f"c{n}", name)) for n, name in enumerate(("a", "bad", "b"))]
    await asyncio.sleep(0)  # they are submitted
    release.set()
    results = await asyncio.gather(first, *waiting, return_exceptions=True)

    assert results[0] == "held" and results[1] == "a" and results[3] == "b"
    assert isinstance(results[2], ValueError)  # raised in its own caller only
    assert ran == [("a", "c0"), ("bad", "c1"), ("b", "c2")]  # in order, each in its caller's context


async def test_a_cancelled_caller_does_not_stop_the_others() -> None:
    release = threading.Event()
    entered = threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(5)

    held = asyncio.ensure_future(db.call(hold))
    await asyncio.to_thread(entered.wait, 5)
    gone = asyncio.ensure_future(db.call(lambda: "gone"))
    kept = asyncio.ensure_future(db.call(lambda: "kept"))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await kept == "kept"
    await held
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_send_path_work_of_a_caller_that_left_is_dropped_before_it_runs() -> None:
    """Issue 24, item 7: a send queued behind a busy database thread ran after its tab had closed."""
    ran: list[str] = []
    release, entered, gone = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(5)

    async def send_path(name: str) -> None:
        db.caller_gone.set(gone)
        await db.call(ran.append, name, retries=db.SEND_RETRIES)

    async def relay_write(name: str) -> None:
        db.caller_gone.set(gone)  # the turn's own writes run whether or not a tab still watches
        await db.call(ran.append, name)

    first = asyncio.ensure_future(db.call(hold))
    await asyncio.to_thread(entered.wait, 5)
    send, write = asyncio.ensure_future(send_path("send")), asyncio.ensure_future(relay_write("write"))
    await asyncio.sleep(0)  # both wait for the thread now
    gone.set()  # the tab closes
    release.set()
    await first
    with pytest.raises(db.CallerGone):
        await send
    await write
    assert ran == ["write"]
    with pytest.raises(db.CallerGone):  # and nothing more is submitted for it
        await send_path("later")
    assert ran == ["write"]


def test_once_the_database_is_unreachable_the_rest_of_a_trip_fails_at_once() -> None:
    """Each call waits for a connection up to its timeout (1 s from the pool, SQLite's lock): one wait per trip, not
    one per call, holds up the one database thread. Each skipped caller retries on its own schedule (db.call)."""
    import contextvars

    from django.db import OperationalError

    ran: list[str] = []

    def unreachable() -> None:
        ran.append("first")
        raise OperationalError("couldn't get a connection after 1.00 sec")

    def later(name: str) -> str:
        ran.append(name)
        return name

    context = contextvars.copy_context()
    outcomes = db._run_all(
        [(context, unreachable, (), {}, None), (context, later, ("a",), {}, None), (context, later, ("b",), {}, None)]
    )
    assert ran == ["first"]
    assert [ok for ok, _value in outcomes] == [False, False, False]
    assert all(isinstance(value, db.UNAVAILABLE) for _ok, value in outcomes)
    assert "not tried" in str(outcomes[1][1])
