"""The deployment-wide limit on upstream sockets: fair order, hand-over, reclaiming idle sockets, Redis leases."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from chat.turns.slots import LocalSlots, RedisSlots, SlotTimeout

REDIS_URL = os.environ.get("VIZOCHOK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def test_local_slots_queue_in_arrival_order() -> None:
    slots = LocalSlots(1)
    held = await slots.acquire(1.0)
    order: list[int] = []
    all_waiting = asyncio.Event()

    def queued() -> None:
        if slots.waiting == 5:
            all_waiting.set()

    async def wait(number: int) -> None:
        lease = await slots.acquire(5.0, on_wait=queued)
        order.append(number)
        await lease.release()

    waiters = [asyncio.create_task(wait(number)) for number in range(5)]
    await all_waiting.wait()
    await held.release()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2, 3, 4]
    assert slots.in_use == 0


async def test_a_waiter_reclaims_an_idle_socket() -> None:
    slots = LocalSlots(1)
    idle = await slots.acquire(1.0)
    reclaimed = asyncio.Event()

    def reclaim() -> None:
        reclaimed.set()
        asyncio.get_running_loop().create_task(idle.release())

    idle.mark_idle(reclaim)
    waiting = [0]
    lease = await slots.acquire(1.0, on_wait=lambda: waiting.__setitem__(0, waiting[0] + 1))
    assert reclaimed.is_set()
    assert waiting == [1]
    assert slots.in_use == 1
    await lease.release()


async def test_a_busy_socket_is_not_reclaimed_and_the_wait_times_out() -> None:
    slots = LocalSlots(1)
    busy = await slots.acquire(1.0)
    busy.mark_idle(lambda: pytest.fail("reclaimed while busy"))
    busy.mark_busy()
    with pytest.raises(SlotTimeout):
        await slots.acquire(0.05)
    assert slots.waiting == 0
    await busy.release()
    assert slots.in_use == 0


async def test_release_is_idempotent() -> None:
    slots = LocalSlots(2)
    lease = await slots.acquire(1.0)
    await lease.release()
    await lease.release()
    assert slots.in_use == 0


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LocalSlots(0)


@pytest.fixture
async def redis_slots() -> AsyncIterator[list[RedisSlots]]:
    redis = pytest.importorskip("redis.asyncio")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
    finally:
        await client.aclose()
    key = f"test:slots:{uuid.uuid4().hex}"
    # Two "processes": separate clients sharing one key, as two app processes would.
    made = [RedisSlots(REDIS_URL, key, 2, ttl=3.0, poll=0.01) for _ in range(2)]
    yield made
    for slots in made:
        await slots._redis.delete(key)
        await slots.close()


@pytest.mark.redis
async def test_redis_slots_hold_the_limit_across_processes(redis_slots: list[RedisSlots]) -> None:
    first, second = redis_slots
    a = await first.acquire(1.0)
    b = await second.acquire(1.0)
    with pytest.raises(SlotTimeout):
        await first.acquire(0.1)
    third = asyncio.create_task(second.acquire(2.0))
    await a.release()
    c = await third
    assert await first._redis.zcard(first.key) == 2
    for lease in (b, c):
        await lease.release()
    assert await first._redis.zcard(first.key) == 0


@pytest.mark.redis
async def test_a_crashed_holders_lease_expires(redis_slots: list[RedisSlots]) -> None:
    first, second = redis_slots
    # A lease written by a process that died: no renewal, an expiry in the past.
    await first._redis.zadd(first.key, {"dead-1": 0, "dead-2": 0})
    lease = await second.acquire(1.0)
    await lease.release()


class LosesCancellation(RedisSlots):
    """A Redis call that swallows the cancellation landing in it. redis-py 8.1 on Python 3.11 did so for about 2% of
    the queue timeouts that fired during a call (the call returned normally, the task still marked cancelling), and
    the turn then waited for a slot for ever; this makes that happen every time."""

    lost = False

    async def _try(self, member: str) -> bool:
        if not self.lost:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.2)  # the queue timeout fires in here
            self.lost = True
        return await super()._try(member)


@pytest.mark.redis
async def test_the_queue_timeout_holds_when_a_cancellation_is_lost(redis_slots: list[RedisSlots]) -> None:
    first, second = redis_slots
    held = [await first.acquire(1.0), await second.acquire(1.0)]
    lossy = LosesCancellation(REDIS_URL, first.key, 2, ttl=3.0, poll=0.01)
    try:
        with pytest.raises(SlotTimeout):
            await asyncio.wait_for(lossy.acquire(0.05), 2.0)
    finally:
        await lossy.close()
        for lease in held:
            await lease.release()


@pytest.mark.redis
async def test_redis_slots_count_usage_and_waiting_turns_of_every_process(redis_slots: list[RedisSlots]) -> None:
    """The admin's "Now" panel (issue 25): sockets in use and turns in line, whichever process holds them."""
    first, second = redis_slots
    assert await first.usage() == (0, 0)
    a = await first.acquire(1.0)
    b = await second.acquire(1.0)
    listed = asyncio.Event()
    waiting = asyncio.create_task(second.acquire(2.0, on_wait=listed.set))
    await asyncio.wait_for(listed.wait(), 2)  # the other process's turn is listed as it starts to wait
    assert await first.usage() == (2, 1)
    await a.release()
    c = await waiting
    assert await first.usage() == (2, 0)
    for lease in (b, c):
        await lease.release()
    assert await second.usage() == (0, 0)
    await first._redis.delete(first.waiting_key)


async def test_local_slots_count_usage_and_waiting_turns() -> None:
    slots = LocalSlots(1)
    lease = await slots.acquire(1.0)
    waiting = asyncio.create_task(slots.acquire(1.0))
    await asyncio.sleep(0)
    assert await slots.usage() == (1, 1)
    await lease.release()
    await (await waiting).release()
    assert await slots.usage() == (0, 0)
