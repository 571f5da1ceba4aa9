"""A loopback TCP proxy for tests that need a network which fails the way a phone's does.

Put in front of the app server, it passes bytes both ways until told otherwise:

- :meth:`NetProxy.blackhole`: stop forwarding without closing anything, in both directions and for new connections
  too, as a train tunnel or a Wi-Fi that vanished does. Nothing is dropped: what the sides wrote waits and flows on
  :meth:`NetProxy.restore`, as TCP's retransmissions would deliver it once the network is back. With
  ``sockets_only`` plain HTTP still flows (a page served from a cache) while WebSocket connections stay dead.
- :meth:`NetProxy.cut`: close every open connection at once (the peers see a reset), and with ``refuse`` close new
  ones as they come, until :meth:`NetProxy.restore`.

asyncio runs it in a thread of its own, so synchronous tests (Playwright's sync API, Selenium) drive it directly.
It listens on 127.0.0.1 only, on a free port of its own (safe in parallel workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Bytes read per step; small enough that a blackhole stops a stream promptly.
CHUNK = 65536


@dataclass
class Connection:
    """One connection that reached the proxy: when, and the request line it opened with."""

    accepted: float
    request: str


class NetProxy:
    """A TCP pass-through on loopback to ``127.0.0.1:target_port`` that can blackhole or cut the network."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections: list[Connection] = []
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netproxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        #: Open gates by kind of connection: True for WebSocket upgrades, False for everything else.
        self._gates: dict[bool, asyncio.Event] = {}
        self._refusing = False
        self.port = 0
        self.url = ""

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> NetProxy:
        self._thread.start()

        async def start() -> int:
            self._gates = {True: asyncio.Event(), False: asyncio.Event()}
            for gate in self._gates.values():
                gate.set()
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            return int(self._server.sockets[0].getsockname()[1])

        self.port = self._call(start())
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            self._abort_all()
            for gate in self._gates.values():
                gate.set()  # pumps waiting on a blackhole wake up to find their sockets gone
            # Their sockets are gone, so every connection's task ends by itself; let them, rather than cancel them.
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            if tasks:
                await asyncio.wait(tasks, timeout=5)

        self._call(stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> NetProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # --- what a test does ------------------------------------------------------------------------------------

    def blackhole(self, *, sockets_only: bool = False) -> float:
        """Stop forwarding (nothing closes, nothing is lost); returns the moment it happened (monotonic)."""

        async def blackhole() -> float:
            self._gates[True].clear()
            if not sockets_only:
                self._gates[False].clear()
            else:
                self._gates[False].set()
            return time.monotonic()

        return float(self._call(blackhole()))

    def cut(self, *, refuse: bool = False) -> float:
        """Close every open connection at once; with ``refuse``, new ones too until :meth:`restore`."""

        async def cut() -> float:
            self._refusing = refuse
            self._abort_all()
            return time.monotonic()

        return float(self._call(cut()))

    def restore(self) -> None:
        """The network is back: forwarding resumes, held bytes flow, new connections are served."""

        async def restore() -> None:
            self._refusing = False
            for gate in self._gates.values():
                gate.set()

        self._call(restore())

    def socket_attempts(self) -> list[Connection]:
        """Connections that asked for the chat socket, in order."""
        with self._changed:
            return [c for c in self.connections if c.request.startswith("GET /ws/")]

    def wait_for(self, predicate: Callable[[NetProxy], bool], timeout: float) -> bool:
        """Wait (on the proxy's own notifications, not a sleep) until ``predicate(self)`` holds."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    # --- the proxy itself ------------------------------------------------------------------------------------

    def _abort_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            # The request line only names the connection for the test; the bytes are forwarded as they came.
            first = await reader.read(CHUNK)
            request = first.split(b"\r\n", 1)[0].decode("latin-1")
            with self._changed:
                self.connections.append(Connection(time.monotonic(), request))
                self._changed.notify_all()
            gate = self._gates[b"\r\nupgrade: websocket" in first.lower()]
            await gate.wait()
            if writer.transport.is_closing():
                return
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
            self._writers.add(upstream)
            upstream.write(first)
            await asyncio.gather(self._pump(reader, upstream, gate), self._pump(up_reader, writer, gate))
        except (ConnectionError, OSError):
            pass
        finally:
            for end in (writer, upstream):
                if end is not None:
                    self._writers.discard(end)
                    end.transport.abort()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, gate: asyncio.Event) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await gate.wait()  # blackholed: nothing is read, so nothing moves and nothing closes
                chunk = await source.read(CHUNK)
                if not chunk:
                    break
                await gate.wait()
                sink.write(chunk)
                await sink.drain()
        sink.transport.abort()
