"""A hostile upstream's 64 KB ``product_cards`` frame of 1,420 minimal items (issue 15, item 2).

Rendered whole it was megabytes of HTML in one browser frame, which Daphne and browsers refuse: the tab never got
the cards. Now a message shows its first cards and a "show more" control fetches the next ones from the stored
message, and no frame to a browser exceeds ``VIZOCHOK_MAX_FRAGMENT_BYTES``. Real sockets to a hostile upstream on
loopback, the real ASGI application and database.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from django.test import AsyncClient

from chat.vizochok.messages import MAX_FRAME_BYTES
from tests.chat.conftest import READY, TIMEOUT, connected, make_shopper, scripted_upstream, send

pytestmark = pytest.mark.django_db(transaction=True)

ITEMS = 1420
CARDS = json.dumps(
    {"type": "product_cards", "items": [{"sku": f"sku-{n:05d}", "name": "n", "price": 1} for n in range(ITEMS)]},
    separators=(",", ":"),
)


COMPLETE = '{"type":"response_complete"}'
TURN = [CARDS, COMPLETE]


def test_the_frame_is_inside_the_protocols_limit() -> None:
    assert 50_000 < len(CARDS.encode()) <= MAX_FRAME_BYTES  # a frame the upstream may legitimately send


async def frames_until(tab: Any, needle: str) -> list[str]:
    frames: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        while not frames or needle not in frames[-1]:
            frames.append(await tab.receive_from(timeout=TIMEOUT))
    return frames


def shopper_client(session_key: str) -> AsyncClient:
    client = AsyncClient()
    client.cookies["sessionid"] = session_key
    return client


def cards_in(html: str) -> list[str]:
    return re.findall(r'class="product-card" data-sku="([^"]+)"', html)


async def test_a_huge_card_list_is_shown_a_page_at_a_time(settings: Any) -> None:
    settings.VIZOCHOK_CARDS_PER_MESSAGE = 12
    key, conversation = await make_shopper("anon-cards")
    async with (
        scripted_upstream(settings, [CARDS, '{"type":"response_complete"}']),
        connected(key, conversation) as tab,
    ):
        await send(tab, kind="message", text="everything", key="k1")
        frames = await frames_until(tab, READY)
    assert max(len(frame.encode()) for frame in frames) <= settings.VIZOCHOK_MAX_FRAGMENT_BYTES
    html = "".join(frames)
    assert cards_in(html) == [f"sku-{n:05d}" for n in range(12)]
    more = re.search(r'hx-get="([^"]+)"[^>]*hx-vals=\'([^\']+)\'', html)
    assert more, "no show-more control"

    client = shopper_client(key)
    seen = cards_in(html)
    url, values = more.group(1), json.loads(more.group(2))
    pages = 0
    while True:
        response = await client.get(url, {**values, "c": str(conversation.public_id)})
        assert response.status_code == 200
        page = response.content.decode()
        assert len(page.encode()) <= settings.VIZOCHOK_MAX_FRAGMENT_BYTES
        seen += cards_in(page)
        pages += 1
        next_more = re.search(r"hx-vals=\'([^\']+)\'", page)
        if next_more is None:
            break
        values = json.loads(next_more.group(1))
    assert seen == [f"sku-{n:05d}" for n in range(ITEMS)] and pages == (ITEMS - 12 + 11) // 12


async def test_only_the_owner_gets_more_cards(settings: Any) -> None:
    key, conversation = await make_shopper("anon-owner")
    async with (
        scripted_upstream(settings, [CARDS, '{"type":"response_complete"}']),
        connected(key, conversation) as tab,
    ):
        await send(tab, kind="message", text="everything", key="k1")
        html = "".join(await frames_until(tab, READY))
    seq = re.search(r'"seq": "(\d+)"', html).group(1)  # type: ignore[union-attr]
    query = {"c": str(conversation.public_id), "seq": seq, "offset": "12"}
    stranger, _other = await make_shopper("anon-stranger")
    assert (await shopper_client(key).get("/conversations/cards/", query)).status_code == 200
    assert (await shopper_client(stranger).get("/conversations/cards/", query)).status_code == 404
    assert (await AsyncClient().get("/conversations/cards/", query)).status_code == 404
    owner = shopper_client(key)
    for bad in ({"offset": "-1"}, {"offset": "x"}, {"seq": "999"}, {"c": "not-a-uuid"}):
        assert (await owner.get("/conversations/cards/", {**query, **bad})).status_code == 404


async def test_no_fragment_to_a_browser_exceeds_the_cap(settings: Any) -> None:
    """Whatever renders too large (a cap set below one card page here) is replaced by a short notice."""
    settings.VIZOCHOK_MAX_FRAGMENT_BYTES = 8 * 1024
    key, conversation = await make_shopper("anon-capped")
    async with (
        scripted_upstream(settings, [CARDS, '{"type":"response_complete"}']),
        connected(key, conversation) as tab,
    ):
        await send(tab, kind="message", text="everything", key="k1")
        frames = await frames_until(tab, READY)
    assert max(len(frame.encode()) for frame in frames) <= 8 * 1024
    assert 'data-code="too_large_to_show"' in "".join(frames)


async def test_a_card_list_larger_than_a_client_frame_is_shown_too(settings: Any) -> None:
    """Reference §14 states 64 KB for client frames only: a server's larger list was refused, all its cards lost."""
    settings.VIZOCHOK_CARDS_PER_MESSAGE = 12
    items = [{"sku": f"big-{n:05d}", "name": "Milk " * 8, "price": 1} for n in range(3000)]
    frame = json.dumps({"type": "product_cards", "items": items})
    assert len(frame.encode()) > 2 * MAX_FRAME_BYTES
    key, conversation = await make_shopper("anon-big-cards")
    async with scripted_upstream(settings, [frame, COMPLETE]), connected(key, conversation) as tab:
        await send(tab, kind="message", text="everything", key="k1")
        html = "".join(await frames_until(tab, READY))
    assert cards_in(html) == [f"big-{n:05d}" for n in range(12)]
