"""The deployment's line in front of the key's upstream sockets.

The API closes a 4th concurrent socket per key with 4029 (reference §14), so every upstream socket this deployment
opens holds a slot first, and turns that find none wait in one line for the whole deployment:

- **Order.** Each client address gets the slots in turn (round-robin): a ticket's round is the line's current round
  when its address has nothing queued, else one past that address's last ticket; the line is served by (round,
  arrival). A flooding address queues behind itself, so another address's first turn is at most one ticket per
  address away from the front.
- **Idle sockets give way.** A socket kept warm between turns is given up the moment a turn waits, wherever each is.
- **Fair shares.** An address may have ``per_client`` turns in line; a turn whose estimated wait exceeds
  ``max_wait`` is refused at once (with when to try again) instead of timing out later.
- **No-progress timeout.** A turn gives up only when the line has not moved (no turn served anywhere, its place
  unchanged) for the whole timeout; ``max_wait`` bounds the wait as a whole.

``LocalSlots`` is the line of one process. ``RedisSlots`` shares it through Redis: every step is one Lua script,
timed by Redis's own clock (``TIME``), never a process's, so a process with a skewed clock or one that stalled past
its lease's TTL cannot evict live leases nor revive its own expired one (a lost lease is reported to its holder,
which closes its socket). Waiters and idle holders hear of every move through pub/sub, not a timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger("chat.turns.slots")

Reclaim = Callable[[], None]
#: Told a waiting turn's place (1 = next) and the estimated seconds until it is served, whenever either changes.
OnPlace = Callable[[int, float], None]
#: Told that a lease was lost (it expired while its process stalled): its socket must close.
OnLost = Callable[[], None]

#: A waiter re-checks its place at least this often even if no move is heard (a lost pub/sub message).
RECHECK = 1.0
#: A queued ticket whose process stops re-checking is dropped after this long (the process died).
TICKET_TTL = 5.0
#: How long a socket asked to give up its slot has to do so before another idle one is asked.
RECLAIM_GRACE = 2.0


class SlotTimeout(Exception):
    """The line did not move for the no-progress timeout, or the wait exceeded its bound."""


class LineRefused(Exception):
    """Not put in line: the address has too many turns queued (``per_client``) or the line is too long (``line``)."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class LinePolicy:
    #: Turns one client address may have waiting in line at once (0 = no cap).
    per_client: int = 0
    #: Seconds a turn may be expected to wait; a longer line refuses it at once (0 = never refused for length).
    max_wait: float = 0.0
    #: The service time assumed before any turn has been measured.
    initial_service: float = 5.0


class Lease(Protocol):
    def mark_idle(self, reclaim: Reclaim) -> None: ...
    def mark_busy(self) -> None: ...
    async def release(self) -> None: ...


class Slots(Protocol):
    async def acquire(
        self,
        timeout: float,
        on_wait: Callable[[], None] | None = None,
        *,
        client: str = "",
        on_place: OnPlace | None = None,
        on_lost: OnLost | None = None,
        reservation: str = "",
    ) -> Lease: ...

    async def check(self, client: str, *, reserve: bool = False) -> str:
        """Raise :class:`LineRefused` if a turn of ``client`` would be refused now (before anything is stored).

        ``reserve``: hold its place against the address's cap until :meth:`acquire` takes it up (``reservation``) or
        :meth:`unreserve` gives it back (else it lapses in a few seconds): turns let in at the same moment count
        together, so a burst cannot slip past the cap between the door and the line.
        """
        ...

    async def unreserve(self, reservation: str) -> None: ...

    async def usage(self) -> tuple[int, int]:
        """Sockets in use and turns waiting for one, in the whole deployment (the admin's "Now" panel)."""
        ...

    @property
    def in_use(self) -> int: ...
    @property
    def waiting(self) -> int: ...


def estimate(place: int, limit: int, service: float) -> float:
    """Seconds until the turn at ``place`` is served: one service time per full round of the ``limit`` slots."""
    return math.ceil(place / limit) * service if place > 0 else 0.0


class _Deadlines:
    """The waiter's two bounds: no progress for ``timeout``, and (with a policy bound) the whole wait."""

    def __init__(self, timeout: float, max_wait: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout
        start = self.loop.time()
        self.progress = start
        self.end = start + max_wait if max_wait > 0 else math.inf
        self.place = 0
        self.grants = -1

    def moved(self, place: int, grants: int) -> bool:
        """Record the line's state; True if it moved (a turn was served anywhere, or this one came nearer)."""
        moved = grants != self.grants or (self.place and place < self.place)
        changed = place != self.place
        if moved or self.grants < 0:
            self.progress = self.loop.time()
        self.place, self.grants = place, grants
        return bool(changed)

    def left(self) -> float:
        """Seconds until the next bound; raises SlotTimeout once one has passed."""
        now = self.loop.time()
        left = min(self.progress + self.timeout, self.end) - now
        if left <= 0:
            raise SlotTimeout
        return left


# --- one process ----------------------------------------------------------------------------------------------


class _LocalLease:
    def __init__(self, slots: LocalSlots) -> None:
        self._slots = slots
        self._released = False
        self._busy_since: float | None = slots._now()
        self.reclaim: Reclaim | None = None

    def mark_idle(self, reclaim: Reclaim) -> None:
        self._slots._served(self)
        self.reclaim = reclaim
        if self not in self._slots._idle:
            self._slots._idle.append(self)
        self._slots._reclaim_for_waiters()

    def mark_busy(self) -> None:
        self.reclaim = None
        if self._busy_since is None:
            self._busy_since = self._slots._now()
        with contextlib.suppress(ValueError):
            self._slots._idle.remove(self)

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._slots._served(self)
        self.reclaim = None
        with contextlib.suppress(ValueError):
            self._slots._idle.remove(self)
        self._slots._give_back()


class _Ticket:
    __slots__ = ("client", "granted", "moved", "round", "seq")

    def __init__(self, client: str, round_: int, seq: int) -> None:
        self.client = client
        self.round = round_
        self.seq = seq
        self.granted = False
        self.moved = asyncio.Event()

    @property
    def order(self) -> tuple[int, int]:
        return self.round, self.seq


class LocalSlots:
    """The line of one process: the same order and shares as :class:`RedisSlots`, in memory."""

    def __init__(self, limit: int, policy: LinePolicy | None = None) -> None:
        if limit < 1:
            raise ValueError("the upstream connection limit must be at least 1")
        self.limit = limit
        self.policy = policy or LinePolicy()
        self.service = self.policy.initial_service
        self._used = 0
        self._line: list[_Ticket] = []
        self._round = 0
        self._seq = 0
        self._grants = 0
        #: Per client address: tickets in line, and the round of its last one (queued or served).
        self._clients: dict[str, int] = {}
        self._lasts: dict[str, int] = {}
        #: Places reserved at the door (reservation -> its client address and when it lapses).
        self._pending: dict[str, tuple[str, float]] = {}
        self._idle: list[_LocalLease] = []

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    @property
    def in_use(self) -> int:
        return self._used

    @property
    def waiting(self) -> int:
        return len(self._line)

    async def usage(self) -> tuple[int, int]:
        """This process is the whole deployment."""
        return self._used, len(self._line)

    def _round_for(self, client: str) -> int:
        last = self._lasts.get(client)
        return self._round if last is None else max(self._round, last + 1)

    def _refusal(self, client: str) -> LineRefused | None:
        count = self._clients.get(client, 0)
        now = self._now()
        for reservation, (_client, lapses) in list(self._pending.items()):
            if lapses <= now:
                del self._pending[reservation]
        count += sum(1 for owner, _lapses in self._pending.values() if owner == client)
        if self.policy.per_client and count >= self.policy.per_client:
            return LineRefused("per_client", self.service)
        if self.policy.max_wait > 0 and self._used >= self.limit:
            round_ = self._round_for(client)
            place = 1 + sum(1 for ticket in self._line if ticket.round <= round_)
            wait = estimate(place, self.limit, self.service)
            if wait > self.policy.max_wait:
                return LineRefused("line", wait - self.policy.max_wait)
        return None

    async def check(self, client: str, *, reserve: bool = False) -> str:
        refusal = self._refusal(client)
        if refusal is not None:
            raise refusal
        if not reserve:
            return ""
        reservation = uuid.uuid4().hex
        self._pending[reservation] = (client, self._now() + TICKET_TTL)
        return reservation

    async def unreserve(self, reservation: str) -> None:
        self._pending.pop(reservation, None)

    async def acquire(
        self,
        timeout: float,
        on_wait: Callable[[], None] | None = None,
        *,
        client: str = "",
        on_place: OnPlace | None = None,
        on_lost: OnLost | None = None,
        reservation: str = "",
    ) -> _LocalLease:
        reserved = self._pending.pop(reservation, None) is not None
        if self._used < self.limit and not self._line:
            self._used += 1
            self._lasts[client] = max(self._round, self._lasts.get(client, self._round))  # served this round
            return _LocalLease(self)
        if not reserved:
            await self.check(client)
        ticket = self._join(client)
        if on_wait is not None:
            on_wait()
        self._reclaim_for_waiters()
        deadlines = _Deadlines(timeout, self.policy.max_wait)
        try:
            while not ticket.granted:
                place = self._line.index(ticket) + 1
                if deadlines.moved(place, self._grants) and on_place is not None:
                    on_place(place, estimate(place, self.limit, self.service))
                ticket.moved.clear()
                try:
                    async with asyncio.timeout(deadlines.left()):
                        await ticket.moved.wait()
                except TimeoutError:
                    deadlines.left()  # raises once a bound has passed
        except BaseException:
            if ticket.granted:
                self._give_back()  # granted at the very moment we gave up: hand the slot on rather than leak it
            else:
                self._leave(ticket)
            raise
        return _LocalLease(self)

    def _join(self, client: str) -> _Ticket:
        self._seq += 1
        ticket = _Ticket(client, self._round_for(client), self._seq)
        self._clients[client] = self._clients.get(client, 0) + 1
        self._lasts[client] = ticket.round
        # Few tickets wait at once (bounded per address); a sorted insert keeps the head at index 0.
        index = len(self._line)
        while index and self._line[index - 1].order > ticket.order:
            index -= 1
        self._line.insert(index, ticket)
        self._moved()
        return ticket

    def _drop(self, ticket: _Ticket) -> None:
        self._line.remove(ticket)
        count = self._clients[ticket.client]
        if count > 1:
            self._clients[ticket.client] = count - 1
            return
        del self._clients[ticket.client]
        if len(self._lasts) > 1000:  # last rounds behind the current one mean nothing: keep the map small
            self._lasts = {c: r for c, r in self._lasts.items() if r >= self._round or c in self._clients}

    def _leave(self, ticket: _Ticket) -> None:
        with contextlib.suppress(ValueError, KeyError):
            self._drop(ticket)
            self._moved()

    def _moved(self) -> None:
        for ticket in self._line:
            ticket.moved.set()

    def _give_back(self) -> None:
        if self._line:
            ticket = self._line[0]
            self._drop(ticket)
            self._round = ticket.round
            self._grants += 1
            ticket.granted = True  # the slot passes straight to the first in line
            ticket.moved.set()
            self._moved()
            return
        self._used -= 1

    def _served(self, lease: _LocalLease) -> None:
        since, lease._busy_since = lease._busy_since, None
        if since is not None:
            self.service = 0.8 * self.service + 0.2 * (self._now() - since)

    def _reclaim_for_waiters(self) -> None:
        """Close idle sockets while turns wait: a waiting shopper matters more than a warm socket."""
        while self._line and self._idle:
            lease = self._idle.pop(0)
            if lease.reclaim is not None:
                reclaim, lease.reclaim = lease.reclaim, None
                reclaim()


# --- every process, through Redis -----------------------------------------------------------------------------

# ARGV, the same for every script: limit, lease TTL (ms), ticket TTL (ms), per-client cap, max wait (ms),
# initial service time (ms), client, ticket id, lease id, reclaim grace (ms), a reservation made at the door, and
# the calling process's waiting tickets with their lease ids ("ticket lease ticket lease ...", for a release).
_PRELUDE = """
local LEASES, LINE, TICKETS, ALIVE, COUNTS, LASTS, STATE, IDLE, RECLAIMING, SINCE, PENDING, PENDS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local LIMIT, TTL, ALIVE_TTL, CAP, MAX_WAIT, SERVICE0 =
  tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local CLIENT, TICKET, LEASE, GRACE, RESERVED = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11]
local HEIRS = ARGV[12] or ''
local CHANNEL = LEASES .. ':events'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function service()
  return tonumber(redis.call('HGET', STATE, 'service')) or SERVICE0
end

local function drop_ticket(m)
  if redis.call('ZREM', LINE, m) == 0 then return false end
  redis.call('ZREM', ALIVE, m)
  local client = redis.call('HGET', TICKETS, m)
  redis.call('HDEL', TICKETS, m)
  if client and redis.call('HINCRBY', COUNTS, client, -1) <= 0 then
    redis.call('HDEL', COUNTS, client)
    -- Its last round stays while it is current: a client served this round queues its next turn for the next one.
    local round = tonumber(redis.call('HGET', STATE, 'round')) or 0
    if (tonumber(redis.call('HGET', LASTS, client)) or -1) < round then redis.call('HDEL', LASTS, client) end
  end
  return true
end

local function forget_lease(m)
  redis.call('ZREM', IDLE, m)
  redis.call('ZREM', RECLAIMING, m)
  redis.call('HDEL', SINCE, m)
end

-- a place reserved at the door (before anything was stored), not yet taken up by its turn
local function drop_pending(r)
  if redis.call('ZREM', PENDING, r) == 0 then return false end
  local client = redis.call('HGET', TICKETS, r)
  redis.call('HDEL', TICKETS, r)
  if client and redis.call('HINCRBY', PENDS, client, -1) <= 0 then redis.call('HDEL', PENDS, client) end
  return true
end

local function purge()
  local moved = false
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', now)) do
    redis.call('ZREM', LEASES, m)
    forget_lease(m)
    moved = true
  end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', ALIVE, '-inf', now)) do
    if drop_ticket(m) then moved = true end
  end
  redis.call('ZREMRANGEBYSCORE', RECLAIMING, '-inf', now)
  for _, r in ipairs(redis.call('ZRANGEBYSCORE', PENDING, '-inf', now)) do drop_pending(r) end
  -- The line's counters outlive a quiet day, not a key that is no longer used.
  redis.call('PEXPIRE', STATE, 86400000)
  redis.call('PEXPIRE', LASTS, 86400000)
  if moved then redis.call('PUBLISH', CHANNEL, 'm') end
end

local function served(m)
  local since = tonumber(redis.call('HGET', SINCE, m))
  if since then
    redis.call('HSET', STATE, 'service', math.floor(service() * 0.8 + (now - since) * 0.2))
    redis.call('HDEL', SINCE, m)
  end
end

local function ask_idle(want)
  while want > 0 do
    local oldest = redis.call('ZRANGE', IDLE, 0, 0)
    if #oldest == 0 then return end
    redis.call('ZREM', IDLE, oldest[1])
    redis.call('ZADD', RECLAIMING, now + GRACE, oldest[1])
    redis.call('PUBLISH', CHANNEL, 'r:' .. oldest[1])
    want = want - 1
  end
end

-- the ticket's turn takes a free slot as lease ``lease``: the line's round becomes the ticket's
local function grant(member, lease)
  local round = redis.call('ZSCORE', LINE, member)
  drop_ticket(member)
  redis.call('HSET', STATE, 'round', round)
  redis.call('HINCRBY', STATE, 'grants', 1)
  redis.call('ZADD', LEASES, now + TTL, lease)
  redis.call('HSET', SINCE, lease, now)
  redis.call('PUBLISH', CHANNEL, 'm')
end

-- {1, 0, grants, service} granted | {0, place - 1, grants, service} waiting | {-3, ...} the ticket is gone
local function try(member)
  local grants = tonumber(redis.call('HGET', STATE, 'grants')) or 0
  if not redis.call('ZSCORE', LINE, member) then
    -- Handed its slot by a release in its own process (_RELEASE) before it asked: its lease is live.
    if LEASE ~= '' and redis.call('ZSCORE', LEASES, LEASE) then return {1, 0, grants, service()} end
    return {-3, 0, 0, service()}
  end
  redis.call('ZADD', ALIVE, now + ALIVE_TTL, member)
  local rank = redis.call('ZRANK', LINE, member)
  local free = LIMIT - redis.call('ZCARD', LEASES)
  if rank < free then
    grant(member, LEASE)
    return {1, 0, grants + 1, service()}
  end
  ask_idle(rank + 1 - free - redis.call('ZCARD', RECLAIMING))
  return {0, rank - math.max(free, 0), grants, service()}
end

-- A client's next ticket goes one round past its last one (queued or served), never before the current round.
local function round_for()
  local round = tonumber(redis.call('HGET', STATE, 'round')) or 0
  local last = tonumber(redis.call('HGET', LASTS, CLIENT))
  if last then round = math.max(round, last + 1) end
  return round
end

-- Last rounds of clients with nothing queued fall behind the current round and mean nothing then: pruned now and
-- then, so the hash stays as small as the set of recent clients.
local function prune_lasts()
  if redis.call('HLEN', LASTS) < 1000 then return end
  local round = tonumber(redis.call('HGET', STATE, 'round')) or 0
  local entries = redis.call('HGETALL', LASTS)
  for i = 1, #entries, 2 do
    if tonumber(entries[i + 1]) < round and not redis.call('HGET', COUNTS, entries[i]) then
      redis.call('HDEL', LASTS, entries[i])
    end
  end
end

-- nil if a turn of CLIENT may join; else {code, seconds to wait (ms)}
local function refusal(count, round)
  local pending = tonumber(redis.call('HGET', PENDS, CLIENT)) or 0
  if CAP > 0 and count + pending >= CAP then return {-1, service()} end
  if MAX_WAIT > 0 then
    local free = LIMIT - redis.call('ZCARD', LEASES)
    local place = redis.call('ZCOUNT', LINE, '-inf', round) + 1 - math.max(free, 0)
    if place > 0 then
      local wait = math.ceil(place / LIMIT) * service()
      if wait > MAX_WAIT then return {-2, wait - MAX_WAIT} end
    end
  end
  return nil
end
"""

_JOIN = """
purge()
local count = tonumber(redis.call('HGET', COUNTS, CLIENT)) or 0
prune_lasts()
local round = round_for()
if not (RESERVED ~= '' and drop_pending(RESERVED)) then  -- a reservation was let in at the door already
  local refused = refusal(count, round)
  if refused then return {refused[1], refused[2], 0, 0, ''} end
end
local seq = redis.call('HINCRBY', STATE, 'seq', 1)
local member = string.format('%016d', seq) .. ':' .. TICKET
redis.call('ZADD', LINE, round, member)
redis.call('HSET', TICKETS, member, CLIENT)
redis.call('HINCRBY', COUNTS, CLIENT, 1)
redis.call('HSET', LASTS, CLIENT, round)
local result = try(member)
return {result[1], result[2], result[3], result[4], member}
"""

_CHECK = """
purge()
local count = tonumber(redis.call('HGET', COUNTS, CLIENT)) or 0
local refused = refusal(count, round_for())
if refused then return refused end
if TICKET ~= '' then  -- reserve the place: turns let in at once count against the address's cap together
  redis.call('ZADD', PENDING, now + ALIVE_TTL, TICKET)
  redis.call('HSET', TICKETS, TICKET, CLIENT)
  redis.call('HINCRBY', PENDS, CLIENT, 1)
end
return {0, 0}
"""

_UNRESERVE = """
drop_pending(TICKET)
return 1
"""

_TRY = """
purge()
return try(TICKET)
"""

_LEAVE = """
local left = drop_ticket(TICKET)
if redis.call('ZREM', LEASES, LEASE) == 1 then
  forget_lease(LEASE)
  left = true
end
if left then redis.call('PUBLISH', CHANNEL, 'm') end
return 1
"""

_RENEW = """
purge()
if redis.call('ZSCORE', LEASES, LEASE) then
  redis.call('ZADD', LEASES, 'XX', now + TTL, LEASE)
  return 1
end
return 0
"""


# 1 idle | 2 give it up now (a turn waits) | 0 lost
_IDLE = """
purge()
if not redis.call('ZSCORE', LEASES, LEASE) then return 0 end
served(LEASE)
if redis.call('ZCARD', LINE) > LIMIT - redis.call('ZCARD', LEASES) + redis.call('ZCARD', RECLAIMING) then
  redis.call('ZADD', RECLAIMING, now + GRACE, LEASE)
  return 2
end
redis.call('ZADD', IDLE, now, LEASE)
return 1
"""

_BUSY = """
redis.call('ZREM', IDLE, LEASE)
if redis.call('ZSCORE', LEASES, LEASE) then redis.call('HSET', SINCE, LEASE, now) end
return 1
"""

# The ticket the slot was handed to ('' if none): when the head of the line waits in the releasing process (one of
# HEIRS), the release grants it the slot at once, as its own try would, and that process wakes it: no pub/sub
# message and no try in between. A head in another process takes it as before (the move, then its try).
_RELEASE = """
purge()
served(LEASE)
forget_lease(LEASE)
if redis.call('ZREM', LEASES, LEASE) == 0 then return '' end
local head = redis.call('ZRANGE', LINE, 0, 0)[1]
if head and HEIRS ~= '' and LIMIT - redis.call('ZCARD', LEASES) > 0 then
  for member, lease in string.gmatch(HEIRS, '(%S+) (%S+)') do
    if member == head then
      grant(head, lease)
      return head
    end
  end
end
redis.call('PUBLISH', CHANNEL, 'm')
return ''
"""


class _RedisLease:
    def __init__(self, slots: RedisSlots, member: str, on_lost: OnLost | None) -> None:
        self._slots = slots
        self.member = member
        self._on_lost = on_lost
        self._released = False
        self.reclaim: Reclaim | None = None
        #: Idle/busy marks go to Redis in the order they were made (each after the previous one).
        self._marking: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._renewer = asyncio.get_running_loop().create_task(self._renew())

    @property
    def held(self) -> bool:
        return not self._released

    async def renew(self) -> bool:
        """Extend the lease iff it is still held (not expired, not taken): False means it is lost."""
        if self._released:
            return False
        if await self._slots._run("renew", lease=self.member):
            return True
        self._lost()
        return False

    async def _renew(self) -> None:
        # Stopped by an event, not cancelled: a cancellation landing inside a redis-py call can leave its
        # connection out of step (or be lost); the renewer only ever stops between calls.
        while not self._released:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._slots.ttl / 3):
                    await self._stop.wait()
            if self._released:
                return
            try:
                await self.renew()
            except Exception:  # Redis unreachable for a moment: the next renewal tries again, the TTL decides
                logger.warning("could not renew an upstream slot lease", exc_info=True)

    def _lost(self) -> None:
        if self._released:
            return
        logger.warning("upstream slot lease %s was lost (expired); its socket is closed", self.member)
        self._forget()
        callback, self._on_lost = self._on_lost, None
        reclaim, self.reclaim = self.reclaim, None
        if callback is not None:
            callback()
        elif reclaim is not None:
            reclaim()

    def _forget(self) -> None:
        self._released = True
        self._stop.set()
        self._slots._leases.pop(self.member, None)
        self._slots._local_used -= 1

    def _mark(self, script: str) -> None:
        previous = self._marking

        async def mark() -> None:
            if previous is not None:
                with contextlib.suppress(BaseException):
                    await previous
            try:
                result = await self._slots._run(script, lease=self.member)
            except Exception:
                logger.warning("could not mark an upstream slot %s", script, exc_info=True)
                return
            if script == "idle" and result in (0, 2):
                self._give_up(lost=result == 0)

        self._marking = asyncio.get_running_loop().create_task(mark())

    def _give_up(self, *, lost: bool = False) -> None:
        """Close the idle socket: a turn waits for its slot (or the slot was lost)."""
        if lost:
            self._lost()
            return
        reclaim, self.reclaim = self.reclaim, None
        if reclaim is not None:
            reclaim()

    def mark_idle(self, reclaim: Reclaim) -> None:
        if self._released:
            reclaim()
            return
        self.reclaim = reclaim
        self._mark("idle")

    def mark_busy(self) -> None:
        self.reclaim = None
        if not self._released:
            self._mark("busy")

    async def release(self) -> None:
        if self._released:
            return
        self.reclaim = None
        self._forget()
        slots = self._slots
        heir = await slots._run("release", lease=self.member, heirs=slots._heirs())
        if heir:
            slots._handed(heir.decode() if isinstance(heir, bytes) else str(heir))


#: Read only: live leases (KEYS[1]) and tickets whose process still beats (KEYS[2]), on Redis's clock.
_USAGE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
return {redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf'), redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')}
"""


class RedisSlots:
    """The deployment's line and leases in Redis (scores and expiries in Redis's clock)."""

    _SCRIPTS = {
        "join": _JOIN,
        "check": _CHECK,
        "unreserve": _UNRESERVE,
        "try": _TRY,
        "leave": _LEAVE,
        "renew": _RENEW,
        "idle": _IDLE,
        "busy": _BUSY,
        "release": _RELEASE,
    }

    def __init__(
        self,
        url: str,
        key: str,
        limit: int,
        *,
        ttl: float = 30.0,
        poll: float = RECHECK,
        policy: LinePolicy | None = None,
        clock: Callable[[], float] = time.time,
        client: type[Any] | None = None,
    ) -> None:
        from redis.asyncio import Redis

        if limit < 1:
            raise ValueError("the upstream connection limit must be at least 1")
        # Bounded reads: a lost reply must fail a release or a renewal, never hang the turn that awaits it.
        # ``client``: a Redis client class of the caller's (the tests inject faults of the client library there).
        self._redis = (client or Redis).from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
        self._url = url
        self.key = key
        self.limit = limit
        self.ttl = ttl
        self.poll = poll
        self.policy = policy or LinePolicy()
        #: This process's clock. Nothing about leases or the line reads it (Redis's clock decides); it is a seam
        #: for tests that prove a skewed process changes nothing.
        self.clock = clock
        self._keys = [key, *(f"{key}:{part}" for part in _PARTS)]
        self.channel = f"{key}:events"
        self._scripts = {name: self._redis.register_script(_PRELUDE + body) for name, body in self._SCRIPTS.items()}
        self._usage = self._redis.register_script(_USAGE)
        self._local_used = 0
        #: This process's waiters (ticket -> its wake-up) and leases (member -> lease), for pub/sub messages.
        self._waiters: dict[str, asyncio.Event] = {}
        #: The lease id each waiting ticket of this process would hold, and the tickets a release here has just
        #: handed a slot to (``_RELEASE``): those are granted without asking Redis again.
        self._lease_ids: dict[str, str] = {}
        self._granted: set[str] = set()
        self._leases: dict[str, _RedisLease] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def in_use(self) -> int:
        return self._local_used

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def usage(self) -> tuple[int, int]:
        """Every process's unexpired leases and tickets in line, judged on Redis's clock like the leases."""
        leased, waiting = await self._usage(keys=[self._keys[0], self._keys[1 + _PARTS.index("alive")]])
        return int(leased), int(waiting)

    def _heirs(self) -> str:
        return " ".join(f"{member} {lease}" for member, lease in self._lease_ids.items())

    def _handed(self, member: str) -> None:
        """A release here granted ``member`` (a ticket of this process) its slot: it goes on at once."""
        wake = self._waiters.get(member)
        if wake is not None:
            self._granted.add(member)
            wake.set()

    async def _run(
        self,
        script: str,
        *,
        client: str = "",
        ticket: str = "",
        lease: str = "",
        reserved: str = "",
        heirs: str = "",
    ) -> Any:
        args: list[str | int] = [
            self.limit,
            int(self.ttl * 1000),
            int(max(TICKET_TTL, 3 * self.poll) * 1000),
            self.policy.per_client,
            int(self.policy.max_wait * 1000),
            int(self.policy.initial_service * 1000),
            client,
            ticket,
            lease,
            int(RECLAIM_GRACE * 1000),
            reserved,
            heirs,
        ]
        return await self._scripts[script](keys=self._keys, args=args)

    async def _try(self, member: str, lease: str = "") -> list[Any]:
        return list(await self._run("try", ticket=member, lease=lease))

    async def check(self, client: str, *, reserve: bool = False) -> str:
        ticket = uuid.uuid4().hex if reserve else ""
        code, wait = await self._run("check", client=client, ticket=ticket)
        if code == -1:
            raise LineRefused("per_client", int(wait) / 1000)
        if code == -2:
            raise LineRefused("line", int(wait) / 1000)
        return ticket

    async def unreserve(self, reservation: str) -> None:
        if reservation:
            await self._run("unreserve", ticket=reservation)

    async def acquire(
        self,
        timeout: float,
        on_wait: Callable[[], None] | None = None,
        *,
        client: str = "",
        on_place: OnPlace | None = None,
        on_lost: OnLost | None = None,
        reservation: str = "",
    ) -> _RedisLease:
        await self._listen()
        lease = uuid.uuid4().hex
        deadlines = _Deadlines(timeout, self.policy.max_wait)
        wake = asyncio.Event()
        ticket = uuid.uuid4().hex
        # Woken from before the join: its answer ("wait") and a move just after it come on two connections, and
        # a move heard first would otherwise be lost until the next re-check.
        self._waiters[ticket] = wake
        try:
            code, place, grants, service, member = await self._run(
                "join", client=client, ticket=ticket, lease=lease, reserved=reservation
            )
        except BaseException:
            # Given up (a Stop, a gone tab) with the answer unread: Redis may have granted the lease already, which
            # would hold one of the key's sockets until its TTL. A ticket left in line expires unpolled.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._run("leave", lease=lease))
            raise
        finally:
            self._waiters.pop(ticket, None)
        member = member.decode() if isinstance(member, bytes) else str(member)
        if code == -1:
            raise LineRefused("per_client", int(place) / 1000)
        if code == -2:
            raise LineRefused("line", int(place) / 1000)
        granted = code == 1
        self._waiters[member] = wake
        self._lease_ids[member] = lease
        try:
            if not granted and on_wait is not None:
                on_wait()
            while not granted:
                if code == -3:
                    # The ticket expired (this process stalled past its TTL): back in line, at its end.
                    code, place, grants, service, joined = await self._run(
                        "join", client=client, ticket=uuid.uuid4().hex, lease=lease
                    )
                    self._forget_waiter(member)
                    member = joined.decode() if isinstance(joined, bytes) else str(joined)
                    self._waiters[member] = wake
                    self._lease_ids[member] = lease
                    if code < 0 and code != -3:
                        raise SlotTimeout
                    granted = code == 1
                    continue
                if deadlines.moved(int(place) + 1, int(grants)) and on_place is not None:
                    on_place(int(place) + 1, estimate(int(place) + 1, self.limit, int(service) / 1000))
                # The timeout's cancellation can be lost inside a redis-py call (8.1 on Python 3.11: the call
                # returns normally): no timeout wraps a call here, and the deadline is checked on every pass.
                left = deadlines.left()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(left, self.poll)):
                        await wake.wait()
                deadlines.left()
                if member in self._granted:  # handed its slot by a release in this process: Redis has said so
                    granted = True
                    break
                # Cleared before asking, not after: a move heard while the try is under way (another turn served
                # and done meanwhile) must wake the next wait at once, not be lost until the next re-check.
                wake.clear()
                code, place, grants, service = await self._try(member, lease)
                # A release here may grant it while its try is under way (the wake-up then came before the wait).
                granted = code == 1 or member in self._granted
        except BaseException:
            self._forget_waiter(member)
            with contextlib.suppress(Exception):
                # Also gives back a slot granted just as this turn gave up (the reply lost to a cancellation).
                await asyncio.shield(self._run("leave", ticket=member, lease=lease))
            raise
        self._forget_waiter(member)
        self._local_used += 1
        held = _RedisLease(self, lease, on_lost)
        self._leases[lease] = held
        return held

    def _forget_waiter(self, member: str) -> None:
        self._waiters.pop(member, None)
        self._lease_ids.pop(member, None)
        self._granted.discard(member)

    # --- pub/sub: the line moved, or an idle socket is asked to give way ------------------------------------

    async def _listen(self) -> None:
        if self._listener is None or self._listener.done():
            self._listening.clear()
            self._listener = asyncio.get_running_loop().create_task(self._subscribe())
            # Once, when starting: a move published before the subscription is missed (a waiter re-checks every
            # ``poll`` anyway), and a subscription that keeps failing must not slow every turn down.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._listening.wait()

    async def _subscribe(self) -> None:
        from redis.asyncio import Redis

        while True:
            client = Redis.from_url(self._url, socket_connect_timeout=5.0)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._listening.set()
                    while True:
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                        if message is not None:
                            self._heard(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("the upstream line's subscription failed; resubscribing", exc_info=True)
                self._wake_all()  # nobody waits on a message that may have been missed
                await asyncio.sleep(1.0)
            finally:
                await client.aclose()

    def _heard(self, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        if text.startswith("r:"):
            lease = self._leases.get(text[2:])
            if lease is not None:
                lease._give_up()
        else:
            self._wake_all()

    def _wake_all(self) -> None:
        for wake in self._waiters.values():
            wake.set()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        await self._redis.aclose()


_PARTS = ("line", "tickets", "alive", "counts", "lasts", "state", "idle", "reclaiming", "since", "pending", "pends")


def make_slots(
    limit: int, redis_url: str, key: str, *, ttl: float = 30.0, policy: LinePolicy | None = None
) -> LocalSlots | RedisSlots:
    """``ttl``: how long a crashed process's lease outlives it (live leases are renewed every ttl/3)."""
    if redis_url:
        return RedisSlots(redis_url, key, limit, ttl=ttl, policy=policy)
    return LocalSlots(limit, policy)
