"""Under Daphne, a frame to a browser goes to its socket when it is sent, not on the reactor's next pass.

Twisted's ``FileDescriptor.write`` only buffers: it registers the socket with the selector for writing, and the
reactor writes on its next pass and unregisters it again. For the relay's many small frames that is two
``epoll_ctl`` calls, one more wake-up and Twisted's log and context wrappers per frame: in the paced benchmark about
a third of the event loop's time went there (docs/benchmarks.md). asyncio's own transports try the socket first and
buffer only what the kernel does not take; :func:`install` gives Twisted's TCP connections the same behaviour.

Whatever the kernel does not take is buffered and written by the reactor exactly as before, and once anything is
buffered every later write queues behind it, so order, back-pressure, the send-buffer measure
(``chat.compat.daphne_buffer``) and the discovery of a lost connection are unchanged. Connections that run TLS
inside Twisted keep Twisted's own path. It relies on ``tcp.Connection``'s private buffer fields (``dataBuffer``,
``offset``, ``_tempDataLen``, ``_writeDisconnected``) of the pinned Twisted; tests/chat/compat/test_twisted_tcp.py
checks them on real sockets, and every Daphne test runs through it. Off (``VIZOCHOK_COMPAT_TWISTED_WRITE=0``): every
write waits for the reactor's next pass, as in Twisted itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat.compat.fences import fence

FENCE = fence(
    "TWISTED_WRITE",
    {"twisted": {"26.10.0"}},
    "a write to a TCP connection goes to its socket at once instead of on the reactor's next pass",
)


def install() -> bool:
    """Make Twisted's TCP writes immediate (once per process); False when it does not apply (Twisted not installed,
    an unknown version, switched off)."""
    try:
        from twisted.internet import tcp
    except ImportError:
        return False
    if not FENCE.active():
        return False
    if getattr(tcp.Connection.write, "immediate", False):
        return True
    buffered: Callable[[Any, bytes], None] = tcp.Connection.write  # Twisted's own (untyped)

    def write(self: Any, data: bytes) -> None:
        idle = not self._tempDataLen and len(self.dataBuffer) == self.offset  # nothing waits for the reactor
        open_ = self.connected and not self.disconnecting and not self._writeDisconnected
        if idle and data and open_ and not self.TLS:
            sent = self.writeSomeData(data)
            if isinstance(sent, int):  # else the connection is lost: buffered below, the reactor's write sees it
                if sent >= len(data):
                    return
                data = data[sent:]
        buffered(self, data)

    write.immediate = True  # type: ignore[attr-defined]
    tcp.Connection.write = write  # type: ignore[method-assign]
    return True
