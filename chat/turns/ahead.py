"""A socket opened for the turn at the head of the line before its slot is granted (``VIZOCHOK_OPEN_AHEAD``).

Between one turn's close and the next turn's first token the key's slot does nothing while the next socket's TCP
and TLS handshakes and its upgrade take their round trips (against the real API, three round trips per turn that
waited). The API counts a socket against the key's three from its ``auth``, where the key arrives (reference §3,
§4.1), so the turn next in line opens its socket while it waits and authenticates once the slot is its own.

Nothing here leans on that reading: if the API counts sockets before ``auth`` after all, a socket opened ahead is
closed with 4029 before it sent anything; this process then stops opening ahead (one warning) and the turn opens
afresh once it holds its slot, as without this. A 4029 in answer to ``auth`` says nothing of the kind (the key's
other sockets may not all be counted closed yet) and goes through the usual retries. The API closes a socket that
sends no ``auth`` within 10 s, so a socket opened ahead is replaced by a fresh one before it is :data:`AHEAD_FOR`
old, for as long as the turn waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from chat.vizochok.client import OpenedAhead

logger = logging.getLogger("chat.turns.ahead")

#: Seconds after it opened that a socket opened ahead is still used: the API closes a socket that has sent no
#: ``auth`` after 10 s (4001, reference §4.1), and the ``auth`` must arrive before that with a margin.
AHEAD_FOR = 7.0


class AheadPolicy:
    """Whether this process opens sockets ahead (on by the setting, off for good once the upstream refuses one
    before its ``auth``), and the closes of unused ones still under way (awaited when the relay closes)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._closing: set[asyncio.Task[None]] = set()

    def heard(self, ws: OpenedAhead) -> None:
        """A socket opened ahead closed before it sent anything: if the key's limit refused it (4029), the upstream
        counts sockets before ``auth``."""
        if ws.refused_by_limit and self.enabled:
            self.enabled = False
            logger.warning(
                "the upstream closed a socket opened ahead with 4029 before its auth: it counts sockets before auth, "
                "so this process no longer opens sockets ahead of their slot"
            )

    def close_unused(self, ws: OpenedAhead) -> None:
        if not ws.open:
            self.heard(ws)  # closed by the upstream before this process sent anything on it
        task = asyncio.get_running_loop().create_task(ws.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Wait for the closes under way (graceful shutdown, tests)."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class OpenAhead:
    """One fresh socket kept open ahead for one waiting turn: :meth:`start` at the head of the line, then either
    :meth:`take` once the slot is granted or :meth:`drop` if the turn leaves the line unserved."""

    def __init__(self, policy: AheadPolicy, open_socket: Callable[[], Awaitable[OpenedAhead]]) -> None:
        self._policy = policy
        self._open_socket = open_socket
        self._keeper: asyncio.Task[None] | None = None
        #: The socket being opened or open now, with the loop time its opening started (None: it failed).
        self._current: asyncio.Future[tuple[OpenedAhead, float] | None] | None = None
        self._taken: OpenedAhead | None = None

    def start(self) -> None:
        if self._keeper is None and self._policy.enabled:
            self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def _keep(self) -> None:
        """Open a socket, and replace it with a fresh one each time it nears the API's auth deadline, until taken
        or dropped (a cancellation: the socket not taken is closed)."""
        loop = asyncio.get_running_loop()
        while self._policy.enabled:
            current = self._current = loop.create_future()
            started = loop.time()
            try:
                ws = await self._open_socket()
            except asyncio.CancelledError:
                current.cancel()
                raise
            except Exception as exc:  # the fresh open after the grant meets the same fault and tells it
                logger.info("a socket opened ahead failed to open: %s", exc)
                current.set_result(None)
                return
            current.set_result((ws, started))
            try:
                await asyncio.sleep(started + AHEAD_FOR - loop.time())
            except asyncio.CancelledError:
                if ws is not self._taken:
                    self._policy.close_unused(ws)
                raise
            self._policy.close_unused(ws)  # too old to authenticate on now: a fresh one replaces it

    async def take(self) -> OpenedAhead | None:
        """The socket opened ahead, open and young enough to authenticate on; None: open one now."""
        keeper, self._keeper = self._keeper, None
        current = self._current
        if keeper is None or current is None:
            return None
        try:
            opened = await asyncio.shield(current)
        except asyncio.CancelledError:
            if not current.cancelled():  # this turn was stopped while its socket was still opening
                keeper.cancel()
                raise
            opened = None
        if opened is not None:
            self._taken = opened[0]
        keeper.cancel()
        if opened is None:
            return None
        ws, started = opened
        if ws.open and asyncio.get_running_loop().time() - started <= AHEAD_FOR:
            return ws
        self._policy.close_unused(ws)
        return None

    def drop(self) -> None:
        """The turn left the line unserved (stopped, refused, timed out): its socket opened ahead is closed."""
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
