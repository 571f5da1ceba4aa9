"""A socket opened for the turn at the head of the line before its slot is granted (``VIZOCHOK_OPEN_AHEAD``).

Between one turn's close and the next turn's first token the key's slot does nothing while the next socket's TCP
and TLS handshakes and its upgrade take their round trips (in ``bench_peak``, on loopback, most of the slot-time
lost at the busy hour; against the real API a TLS handshake more). The API counts a socket against the key's three
from its ``auth``, where the key arrives (reference §3, §4.1), so the turn next in line opens its socket while it
waits and authenticates once the slot is its own.

Nothing here leans on that reading: if the API counts sockets before ``auth`` after all, the socket opened ahead is
closed with 4029, this process stops opening ahead (one warning), and the turn opens afresh once it holds its slot,
as without this. A socket opened ahead that waited longer than :data:`AHEAD_FOR` is not used either (the API closes
a socket that sends no ``auth`` within 10 s).
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
_closing: set[asyncio.Task[None]] = set()


class AheadPolicy:
    """Whether this process opens sockets ahead: on by the setting, off for good once the upstream refuses one."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def heard(self, ws: OpenedAhead) -> None:
        """A socket opened ahead ended unused: if the key's limit refused it, the upstream counts before ``auth``."""
        if ws.refused_by_limit and self.enabled:
            self.enabled = False
            logger.warning(
                "the upstream closed a socket opened ahead with 4029 before its auth: it counts sockets before auth, "
                "so this process no longer opens sockets ahead of their slot"
            )


class OpenAhead:
    """At most one socket opened ahead for one waiting turn: :meth:`start` at the head of the line, then either
    :meth:`take` once the slot is granted or :meth:`drop` if the turn leaves the line unserved."""

    def __init__(self, policy: AheadPolicy, open_socket: Callable[[], Awaitable[OpenedAhead]]) -> None:
        self._policy = policy
        self._open_socket = open_socket
        self._task: asyncio.Task[OpenedAhead] | None = None
        self._started = 0.0

    def start(self) -> None:
        if self._task is not None or not self._policy.enabled:
            return
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._task = loop.create_task(self._open())

    async def _open(self) -> OpenedAhead:
        return await self._open_socket()

    async def take(self) -> OpenedAhead | None:
        """The socket opened ahead, open and young enough to authenticate on; None: open one now."""
        task, self._task = self._task, None
        if task is None:
            return None
        try:
            ws = await asyncio.shield(task)
        except asyncio.CancelledError:  # the turn was stopped while its socket was still opening
            self._task = task
            self.drop()
            raise
        except Exception as exc:  # the fresh open that follows meets the same fault and tells it
            logger.info("a socket opened ahead failed to open: %s", exc)
            return None
        if ws.open and asyncio.get_running_loop().time() - self._started <= AHEAD_FOR:
            return ws
        _close(ws, self._policy)
        return None

    def drop(self) -> None:
        """The turn left the line unserved (stopped, refused, timed out): its socket opened ahead is closed."""
        task, self._task = self._task, None
        if task is None:
            return
        policy = self._policy

        def close_opened(done: asyncio.Task[OpenedAhead]) -> None:
            if not done.cancelled() and done.exception() is None:
                _close(done.result(), policy)

        task.cancel()  # nothing if it is done already
        task.add_done_callback(close_opened)

    def settle(self, ws: OpenedAhead | None) -> None:
        """After the session opened: a socket opened ahead whose handshake failed tells the policy why."""
        if ws is not None and not ws.open:
            self._policy.heard(ws)


def _close(ws: OpenedAhead, policy: AheadPolicy) -> None:
    async def close() -> None:
        try:
            await ws.close()
        finally:
            policy.heard(ws)

    task = asyncio.get_running_loop().create_task(close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)
