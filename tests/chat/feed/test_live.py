"""``chat.feed.live``: what a catch-up in another process reads of a running turn, kept in Redis by the feed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from channels_redis.core import RedisChannelLayer

from chat.feed.feed import ConversationFeed, Place
from chat.feed.live import LiveText
from chat.feed.tabs import LocalTabs
from tests.processes import redis_url

pytestmark = pytest.mark.redis


@pytest.fixture
async def live() -> AsyncIterator[LiveText]:
    mirror = LiveText(redis_url(), prefix=f"test:live:{uuid.uuid4().hex}:")
    try:
        await mirror._client.ping()
    except Exception as exc:
        await mirror.close()
        pytest.skip(f"Redis is not reachable at {redis_url()}: {exc}")
    yield mirror
    keys = await mirror._client.keys(f"{mirror._prefix}*")
    if keys:
        await mirror._client.delete(*keys)
    await mirror.close()


async def test_the_place_in_line_is_mirrored_in_order_with_what_the_tabs_were_sent(live: LiveText) -> None:
    tabs, got = LocalTabs(), []

    async def collect(html: str) -> None:
        got.append(html)

    tabs.attach("g", "tab", collect, "en")
    layer = RedisChannelLayer(hosts=[redis_url()], prefix=f"test:layer:{uuid.uuid4().hex}")
    feed = ConversationFeed("g", tabs, layer, interval=0.0, live=live)
    try:
        feed.put(Place(3, 12.0))
        await feed.drain()
        assert 'data-position="3"' in got[-1]
        assert await live.read_place("g") == (3, 12.0)  # what a tab joining in another process is told
        feed.put(Place(2, 8.0))
        feed.put(Place(0, 0.0))  # out of the line: the mirror goes with the last place sent
        await feed.drain()
        assert await live.read_place("g") is None
        assert await live.read_place("another group") is None
    finally:
        await layer.close_pools()
