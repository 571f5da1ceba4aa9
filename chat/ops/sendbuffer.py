"""How much a browser socket has not taken yet, so a tab that stops reading is closed instead of growing the server.

Under Daphne an application's ``send`` never waits: each frame goes straight to Twisted's transport, which keeps
whatever the kernel's socket buffer cannot take in user space, without bound. A client that never reads (or reads
far slower than it asks for catch-ups) grew one process from 87 to 166 MB that way (issue 15). The measure reads
server internals, so it lives fenced in ``chat.compat.daphne_buffer`` (:class:`SendBuffer`); under another server,
or with the fence off, it is unknown (None) and nothing is closed here.

:func:`attach` (in vizochok_site/asgi.py, outermost, where the server's own ``send`` is seen) puts one in the scope.
"""

from __future__ import annotations

import logging
from typing import Any

from chat.compat.daphne_buffer import SendBuffer

logger = logging.getLogger("chat.ops.sendbuffer")

SCOPE_KEY = "vizochok.send_buffer"

__all__ = ["SCOPE_KEY", "SendBuffer", "attach"]


def attach(application: Any) -> Any:
    """ASGI middleware: each WebSocket scope carries a :class:`SendBuffer` for the server's ``send``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket":
            scope = {**scope, SCOPE_KEY: SendBuffer(send)}
        return await application(scope, receive, send)

    return app
