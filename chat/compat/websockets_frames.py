"""websockets: a whole text frame goes to the upstream session as the transport reads it.

The library's own path queues a frame in its message assembler, wakes a reader task and hands the message over
through ``recv()``: on the relay's stream of small frames that cost more than parsing them (docs/benchmarks.md). A
frame takes the short path only when nothing waits in the assembler, so frames keep their order; fragmented and
binary messages, and every frame before the session starts (``on_text`` unset), take the library's path, which the
session reads as before. UTF-8 is checked the same way: invalid text falls through to the library, which fails the
connection (1007).

It overrides ``Connection.process_event`` and reads ``recv_messages.frames`` (the assembler's queue), internals of
the pinned websockets. Off (``VIZOCHOK_COMPAT_WEBSOCKETS_TEXT=0``) or under another version, the upstream client
gets the library's own ``ClientConnection`` and reads every frame through ``recv()``.

Django-free, like the protocol layer that uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from chat.compat.fences import fence

logger = logging.getLogger("chat.compat.websockets_frames")

FENCE = fence(
    "WEBSOCKETS_TEXT",
    {"websockets": {"17.4"}},
    "each whole text frame goes to the upstream session as it is read, not through the message assembler",
)


class DirectTextConnection(ClientConnection):
    """A client connection that hands each whole text frame to ``on_text`` (when set) as the transport reads it."""

    on_text: Callable[[str], None] | None = None

    def process_event(self, event: Event) -> None:
        on_text = self.on_text
        if (
            on_text is not None
            and isinstance(event, Frame)
            and event.opcode is Opcode.TEXT
            and event.fin
            and not len(self.recv_messages.frames)
        ):
            try:
                text = bytes(event.data).decode()
            except UnicodeDecodeError:
                pass
            else:
                try:
                    on_text(text)
                except Exception:  # as the reader task does: a failing reader drops the connection, never the loop
                    logger.exception("upstream reader failed; dropping the connection")
                    self.transport.abort()
                return
        super().process_event(event)


def connection_class() -> type[ClientConnection]:
    """The class for ``websockets.asyncio.client.connect(create_connection=...)``: the short path when it applies."""
    return DirectTextConnection if FENCE.active() else ClientConnection
