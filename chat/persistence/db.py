"""Database calls from async code: batched onto Django's database thread, and riding out a brief outage.

This is the one path async code takes to the database: nothing outside ``chat.persistence`` wraps database work in
``sync_to_async`` or calls Django's async ORM methods (``tests/chat/test_architecture.py``), so every call is
batched, retried by the same rules and dropped when its shopper has gone.

Every call goes to the one database thread Channels keeps (``thread_sensitive``), which shares the GIL with the
event loop. A trip there costs more than most of our statements (waking the thread, handing the result back; about
0.1 ms of CPU on a small VM), so calls made while the thread is busy go there together, in submission order, in one
trip; each still runs in its own transaction and its caller's context, and fails or succeeds alone.

A failover, a restart or a dropped connection must not lose what a turn is storing (the reply, a cart change):
the relay retries its writes with backoff for a while. A shopper's send retries only briefly and is then refused
with a clear message, so the tab is not left hanging; and once that shopper's tab is gone (:data:`caller_gone`)
the send's work that has not run yet is dropped: a send that waited out a write lock must not claim the
conversation for nobody. Each attempt is bounded too (SQLite's busy timeout, ``vizochok_site/settings.py``), so the
retry budget is what a shopper waits, not one attempt's lock wait.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError

from chat.ops.loops import PerLoop

logger = logging.getLogger("chat.persistence.db")

T = TypeVar("T")

#: Delays between attempts for the relay's own writes (about 16 s in all).
RELAY_RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Delays for work done while a shopper waits on a send (under 2 s in all); such work is dropped, not run, once
#: :data:`caller_gone` is set.
SEND_RETRIES = (0.2, 0.5, 1.0)
#: One attempt: for callers that try again on their own schedule (a heartbeat, a watcher) or must answer at once
#: (a readiness probe).
ONCE: tuple[float, ...] = ()

UNAVAILABLE = (OperationalError, InterfaceError)

#: Set by a browser socket (``chat.web.consumer``) for its handlers: an event set once its client disconnected.
caller_gone: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "vizochok_caller_gone", default=None
)


class CallerGone(Exception):
    """Send-path work dropped before it ran: the shopper who waited for it has left."""


async def call(fn: Callable[..., T], *args: Any, retries: tuple[float, ...] = RELAY_RETRIES, **kwargs: Any) -> T:
    """Run ``fn`` on Django's database thread, retrying while the database is unreachable.

    Channels closes a connection that failed before the next trip, so each retry starts on a fresh one.
    """
    gone = caller_gone.get() if retries is SEND_RETRIES else None
    for delay in (*retries, None):
        if gone is not None and gone.is_set():
            raise CallerGone(fn.__name__)
        try:
            return await _batchers.get().submit(fn, args, kwargs, gone)
        except UNAVAILABLE as exc:
            if delay is None:
                raise
            logger.warning("database unavailable (%s); retrying %s in %.1f s", exc, fn.__name__, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


_Call = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...], dict[str, Any], threading.Event | None]


def _run_all(calls: list[_Call]) -> list[tuple[bool, Any]]:
    """On the database thread: each call in order, in its caller's context; what each returned or raised.

    A send-path call whose shopper left while it waited for this thread is not run (:class:`CallerGone`).
    """
    outcomes: list[tuple[bool, Any]] = []
    unreachable: Exception | None = None
    for context, fn, args, kwargs, gone in calls:
        if gone is not None and gone.is_set():
            outcomes.append((False, CallerGone(fn.__name__)))
            continue
        if unreachable is not None:
            # Each attempt would wait its own timeout for a connection (the pool's, SQLite's lock), holding this one
            # thread, and every conversation's calls behind it, that long again: the rest retry on their schedules.
            outcomes.append((False, type(unreachable)(f"not tried, the database was unavailable: {unreachable}")))
            continue
        try:
            outcomes.append((True, context.run(fn, *args, **kwargs)))
        except UNAVAILABLE as exc:
            unreachable = exc
            outcomes.append((False, exc))
        except Exception as exc:  # the caller's own exception, raised in its own task (db.call)
            outcomes.append((False, exc))
    return outcomes


#: Built once: a ``SyncToAsync`` is reusable, and building one inspects the function each time.
_run_all_there = database_sync_to_async(_run_all)


class _Batcher:
    """The calls of one event loop waiting for the database thread; one trip takes all that are waiting."""

    def __init__(self) -> None:
        self._waiting: list[tuple[_Call, asyncio.Future[Any]]] = []
        self._trip: asyncio.Task[None] | None = None

    def submit(
        self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], gone: threading.Event | None = None
    ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append(((contextvars.copy_context(), fn, args, kwargs, gone), future))
        if self._trip is None or self._trip.done():
            self._trip = loop.create_task(self._trips())
        return future

    async def _trips(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                outcomes = await _run_all_there([call for call, _future in batch])
            except BaseException as exc:  # the trip itself failed (the loop is closing): every caller hears it
                for _call, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_call, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # its caller was cancelled: the call ran all the same, as any write would
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)


#: The calls of each event loop (a future belongs to the loop that made it).
_batchers: PerLoop[_Batcher] = PerLoop(_Batcher)
