"""Whether a browser socket's client has gone, known while one of its handlers still runs.

A Channels consumer reads its next ASGI message only after the current handler returns, so a handler waiting on
the database (a send, a catch-up) cannot see that its tab closed meanwhile: a send that waited out a write lock
still claimed the conversation for a shopper who had left (issue 24). This middleware reads the server's messages
as they come, hands them on in order, and sets the scope's event at the disconnect, so send-path database work
(``chat.persistence.db``) can be dropped when nobody waits for it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

SCOPE_KEY = "vizochok.departed"


def watch(application: Any) -> Any:
    """ASGI middleware: each WebSocket scope carries a :class:`threading.Event` set when its client disconnects
    (a threading event: the database thread reads it)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("type") != "websocket":
            return await application(scope, receive, send)
        departed = threading.Event()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def pump() -> None:
            while not departed.is_set():
                message = await receive()
                if message.get("type") == "websocket.disconnect":
                    departed.set()
                inbox.put_nowait(message)

        reading = asyncio.get_running_loop().create_task(pump())
        try:
            return await application({**scope, SCOPE_KEY: departed}, inbox.get, send)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # never masks how the application ended
                await reading

    return app
