"""How much a browser socket has not taken yet, read from Daphne's, Twisted's and autobahn's internals.

ASGI has no way to ask how much a server has queued for a client, and Daphne's ``send`` never waits, so a client
that never reads grows the process without bound (issue 15). :class:`SendBuffer` looks at the Daphne protocol
behind the server's ``send`` callable (``functools.partial(Server.handle_reply, protocol)``) and at its transport's
buffer (Twisted's ``FileDescriptor`` keeps ``dataBuffer[offset:]`` plus ``_tempDataLen`` bytes not yet written;
autobahn may queue more in ``send_queue``). Those are internals of the pinned versions; tests/chat/compat/ and
tests/chat/web/test_attacks.py check them against a real Daphne process.

Off (``VIZOCHOK_COMPAT_DAPHNE_SEND_BUFFER=0``), under other versions or under another server, the measure is unknown
(None) and nothing is closed for not reading: the servers' own behaviour (uvicorn's websockets make ``send`` wait).
"""

from __future__ import annotations

import functools
from typing import Any

from chat.compat.fences import fence

FENCE = fence(
    "DAPHNE_SEND_BUFFER",
    {"daphne": {"4.2.3"}, "twisted": {"26.10.0"}, "autobahn": {"26.10.2"}},
    "a browser socket's unsent bytes are measured, so a tab that stops reading is dropped",
)


class SendBuffer:
    """The socket's not-yet-sent bytes in this process, and a way to drop the connection."""

    def __init__(self, send: Any) -> None:
        protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
        transport = getattr(protocol, "transport", None)
        known = transport is not None and hasattr(transport, "dataBuffer") and hasattr(transport, "_tempDataLen")
        known = known and FENCE.active()
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
