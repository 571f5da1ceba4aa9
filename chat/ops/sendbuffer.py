"""How much a browser socket has not taken yet, so a tab that stops reading is closed instead of growing the server.

Under Daphne an application's ``send`` never waits: each frame goes straight to Twisted's transport, which keeps
whatever the kernel's socket buffer cannot take in user space, without bound. A client that never reads (or reads
far slower than it asks for catch-ups) grew one process from 87 to 166 MB that way (issue 15). ASGI has no way to
ask how much is queued, so :class:`SendBuffer` looks at the Daphne protocol behind the server's ``send`` callable
(``functools.partial(Server.handle_reply, protocol)``) and at its transport's buffer (Twisted's ``FileDescriptor``
keeps ``dataBuffer[offset:]`` plus ``_tempDataLen`` bytes not yet written; autobahn may queue more in
``send_queue``). Those are internals of the pinned versions; tests/chat/web/test_attacks.py checks them against a
real Daphne process. Under another server the measure is unknown (None) and nothing is closed here; servers that
apply back-pressure (uvicorn's websockets) make ``send`` wait instead.

:func:`attach` (in vizochok_site/asgi.py, outermost, where the server's own ``send`` is seen) puts one in the scope.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

logger = logging.getLogger("chat.ops.sendbuffer")

SCOPE_KEY = "vizochok.send_buffer"


class SendBuffer:
    """The socket's not-yet-sent bytes in this process, and a way to drop the connection."""

    def __init__(self, send: Any) -> None:
        protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
        transport = getattr(protocol, "transport", None)
        known = transport is not None and hasattr(transport, "dataBuffer") and hasattr(transport, "_tempDataLen")
        self._protocol = protocol if known else None
        self._transport = transport if known else None

    @property
    def measurable(self) -> bool:
        return self._transport is not None

    def pending(self) -> int | None:
        """Bytes written to the socket that the kernel has not taken yet (None: not measurable here)."""
        transport = self._transport
        if transport is None:
            return None
        queued: int = len(transport.dataBuffer) - getattr(transport, "offset", 0) + transport._tempDataLen
        send_queue = getattr(self._protocol, "send_queue", None) or ()
        return queued + sum(len(data) for data, _sync in send_queue)

    def abort(self) -> None:
        """Drop the TCP connection at once (RST): a close frame would wait behind everything not read."""
        drop = getattr(self._protocol, "dropConnection", None)
        if drop is not None:
            drop(abort=True)
        elif self._transport is not None:
            self._transport.abortConnection()


def attach(application: Any) -> Any:
    """ASGI middleware: each WebSocket scope carries a :class:`SendBuffer` for the server's ``send``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket":
            scope = {**scope, SCOPE_KEY: SendBuffer(send)}
        return await application(scope, receive, send)

    return app
