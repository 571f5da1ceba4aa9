"""The deployment-wide limit on upstream sockets.

The API closes a 4th concurrent socket per key with 4029 (reference §14), so every upstream socket this
deployment opens holds a slot first. Waiting turns queue in arrival order; an idle socket kept open for reuse is
reclaimed as soon as somebody waits. With Redis the count is shared by every process (leases with a TTL, so a
crashed process cannot leak slots for longer than the TTL).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger("chat.turns.slots")

Reclaim = Callable[[], None]


class SlotTimeout(Exception):
    """No slot became free within the queue timeout."""


class Lease(Protocol):
    def mark_idle(self, reclaim: Reclaim) -> None: ...
    def mark_busy(self) -> None: ...
    async def release(self) -> None: ...


class Slots(Protocol):
    async def acquire(self, timeout: float, on_wait: Callable[[], None] | None = None) -> Lease: ...
    @property
    def in_use(self) -> int: ...
    @property
    def waiting(self) -> int: ...

    async def usage(self) -> tuple[int, int]: ...


class _LocalLease:
    def __init__(self, slots: LocalSlots) -> None:
        self._slots = slots
        self._released = False
        self.reclaim: Reclaim | None = None

    def mark_idle(self, reclaim: Reclaim) -> None:
        self.reclaim = reclaim
        self._slots._idle.append(self)
        self._slots._reclaim_for_waiters()

    def mark_busy(self) -> None:
        self.reclaim = None
        with contextlib.suppress(ValueError):
            self._slots._idle.remove(self)

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.mark_busy()
        self._slots._give_back()


class LocalSlots:
    """A fair (FIFO) counting semaphore for one process."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the upstream connection limit must be at least 1")
        self.limit = limit
        self._used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._idle: list[_LocalLease] = []

    @property
    def in_use(self) -> int:
        return self._used

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def usage(self) -> tuple[int, int]:
        """Sockets in use and turns waiting for one (this process is the whole deployment)."""
        return self._used, self.waiting

    async def acquire(self, timeout: float, on_wait: Callable[[], None] | None = None) -> _LocalLease:
        if self._used < self.limit and not self.waiting:
            self._used += 1
            return _LocalLease(self)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if on_wait is not None:
            on_wait()
        self._reclaim_for_waiters()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                # Granted at the very moment we gave up: hand the slot on rather than leak it.
                self._give_back()
            raise SlotTimeout from None
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return _LocalLease(self)

    def _give_back(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the first waiter
                return
        self._used -= 1

    def _reclaim_for_waiters(self) -> None:
        """Close idle sockets while turns wait: a waiting shopper matters more than a warm socket."""
        while self.waiting and self._idle:
            lease = self._idle.pop(0)
            if lease.reclaim is not None:
                reclaim, lease.reclaim = lease.reclaim, None
                reclaim()


class _RedisLease:
    def __init__(self, slots: RedisSlots, member: str) -> None:
        self._slots = slots
        self.member = member
        self._released = False
        self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._slots.ttl / 3)
            with contextlib.suppress(Exception):
                await self._slots._redis.zadd(self._slots.key, {self.member: time.time() + self._slots.ttl})

    def mark_idle(self, reclaim: Reclaim) -> None:
        # Other processes cannot reach this socket; the short idle grace bounds how long it keeps the slot.
        pass

    def mark_busy(self) -> None:
        pass

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._renewer.cancel()
        await self._slots._redis.zrem(self._slots.key, self.member)
        self._slots._local_used -= 1


_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  return 1
end
return 0
"""


class RedisSlots:
    """The same limit shared by every process through a Redis sorted set of leases (score = expiry)."""

    def __init__(
        self, url: str, key: str, limit: int, *, ttl: float = 30.0, poll: float = 0.05, client: type[Any] | None = None
    ) -> None:
        from redis.asyncio import Redis

        # Bounded reads: a lost reply must fail a release or a renewal, never hang the turn that awaits it.
        # ``client``: a Redis client class of the caller's (the tests inject faults of the client library there).
        self._redis = (client or Redis).from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        self.key = key
        self.limit = limit
        self.ttl = ttl
        self.poll = poll
        self._local_used = 0
        self._queue: collections.deque[object] = collections.deque()
        self._script = self._redis.register_script(_ACQUIRE)
        #: The turns waiting for a slot in every process, as a sorted set (score = when the entry lapses): what
        #: the admin's "Now" panel counts (``usage``); a killed process's entries lapse by themselves.
        self.waiting_key = f"{key}:waiting"

    @property
    def in_use(self) -> int:
        return self._local_used

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def usage(self) -> tuple[int, int]:
        """Sockets in use and turns waiting for one, in every process: the unexpired entries of both sets."""
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(self.key, now, "+inf")
            pipe.zcount(self.waiting_key, now, "+inf")
            leased, waiting = await pipe.execute()
        return int(leased), int(waiting)

    async def _listed(self, member: str, until: float | None) -> None:
        """Put a waiting turn on the shared waiting list (or off it, ``until`` None); counting is best effort."""
        try:
            if until is None:
                await self._redis.zrem(self.waiting_key, member)
            else:
                await self._redis.zadd(self.waiting_key, {member: until})
        except Exception:  # the panel may miss a turn; the turn itself must not fail for it
            logger.warning("could not update the waiting list in Redis", exc_info=True)

    async def _try(self, member: str) -> bool:
        now = time.time()
        return bool(await self._script(keys=[self.key], args=[now, self.limit, now + self.ttl, member]))

    async def acquire(self, timeout: float, on_wait: Callable[[], None] | None = None) -> _RedisLease:
        member = uuid.uuid4().hex
        ticket = object()
        self._queue.append(ticket)
        waited = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    # Only the head of this process's queue polls, so turns here are served in arrival order.
                    if self._queue[0] is ticket and await self._try(member):
                        self._local_used += 1
                        return _RedisLease(self, member)
                    # The timeout's cancellation can be lost inside a redis-py call (8.1 on Python 3.11: the call
                    # returns normally), after which it never fires again: the deadline is checked here as well.
                    if loop.time() >= deadline:
                        raise SlotTimeout
                    if not waited:
                        await self._listed(member, time.time() + timeout + self.ttl)
                        if on_wait is not None:
                            on_wait()
                    waited = True
                    await asyncio.sleep(self.poll)
        except TimeoutError:
            raise SlotTimeout from None
        finally:
            self._queue.remove(ticket)
            if waited:
                await asyncio.shield(self._listed(member, None))

    async def close(self) -> None:
        await self._redis.aclose()


def make_slots(limit: int, redis_url: str, key: str, *, ttl: float = 30.0) -> LocalSlots | RedisSlots:
    """``ttl``: how long a crashed process's lease outlives it (live leases are renewed every ttl/3)."""
    if redis_url:
        return RedisSlots(redis_url, key, limit, ttl=ttl)
    return LocalSlots(limit)
