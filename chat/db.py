"""Database calls from async code that ride out a brief database outage.

A failover, a restart or a dropped connection must not lose what a turn is storing (the reply, a cart change):
the relay retries its writes with backoff for a while. A shopper's send retries only briefly and is then refused
with a clear message, so the tab is not left hanging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError

logger = logging.getLogger("chat.db")

T = TypeVar("T")

#: Delays between attempts for the relay's own writes (about 16 s in all).
RELAY_RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
#: Delays for work done while a shopper waits on a send (under 2 s in all).
SEND_RETRIES = (0.2, 0.5, 1.0)

UNAVAILABLE = (OperationalError, InterfaceError)


async def call(fn: Callable[..., T], *args: Any, retries: tuple[float, ...] = RELAY_RETRIES, **kwargs: Any) -> T:
    """Run ``fn`` on Django's database thread, retrying while the database is unreachable.

    Channels closes a connection that failed before the next call, so each retry starts on a fresh one.
    """
    for delay in (*retries, None):
        try:
            return await database_sync_to_async(fn)(*args, **kwargs)
        except UNAVAILABLE as exc:
            if delay is None:
                raise
            logger.warning("database unavailable (%s); retrying %s in %.1f s", exc, fn.__name__, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
