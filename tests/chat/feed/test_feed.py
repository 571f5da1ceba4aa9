"""``chat.feed.feed``: streamed text goes out coalesced with its offsets, in order with everything else, rendered
once per language of the tabs that receive it."""

from __future__ import annotations

import asyncio
import functools
import re

from django.utils import translation

from chat.compat.channels_layer import RelayChannelLayer
from chat.feed.feed import ConversationFeed
from chat.feed.tabs import LocalTabs
from chat.presentation import rendering


def offsets(frames: list[str]) -> list[tuple[int, str]]:
    """(offset, text) of each streamed piece: a chunk says its offset; the first piece is the bubble from 0."""
    found = []
    for frame in frames:
        for m in re.finditer(r'data-length="(\d+)".*?-tail">([^<]*)<|data-offset="(\d+)">([^<]*)<', frame):
            found.append((0, m[2]) if m[1] is not None else (int(m[3]), m[4]))
    return found


async def feed_with_tab(language: str = "en", interval: float = 0.05) -> tuple[ConversationFeed, list[str], LocalTabs]:
    tabs, got = LocalTabs(), []

    async def collect(html: str) -> None:
        got.append(html)

    tabs.attach("g", "tab", collect, language)
    return ConversationFeed("g", tabs, RelayChannelLayer(), interval=interval), got, tabs


async def test_first_piece_is_immediate_then_coalesced_with_offsets() -> None:
    feed, got, _ = await feed_with_tab()
    feed.begin("live-1-1")
    for delta in ["Hel", "lo", ", ", "wor", "ld"]:
        feed.add(delta)
    feed.put("<p>after</p>")  # anything else flushes the pending text first, in order
    await feed.drain()
    assert offsets(got) == [(0, "Hel"), (3, "lo, world")]
    assert "".join(got).endswith("<p>after</p>")
    assert feed.live() == ("live-1-1", "Hello, world")


async def test_end_drops_unsent_text_and_returns_the_whole_reply() -> None:
    feed, got, _ = await feed_with_tab(interval=10)
    feed.begin("b")
    feed.add("a")
    feed.add("b")
    assert feed.end() == "ab"
    await feed.drain()
    assert offsets(got) == [(0, "a")]  # the stored reply replaces the rest; no late piece after it
    assert feed.live() is None


async def test_each_tab_gets_its_own_language_rendered_once_per_language() -> None:
    feed, english, tabs = await feed_with_tab("en")
    ukrainian: list[str] = []
    calls: list[str] = []

    async def collect(html: str) -> None:
        ukrainian.append(html)

    tabs.attach("g", "tab-uk", collect, "uk")
    tabs.attach("g", "tab-uk-2", collect, "uk")

    def status() -> str:
        calls.append(str(translation.get_language()))
        return rendering.status("searching")

    feed.put(status)
    await feed.drain()
    assert sorted(calls) == ["en", "uk"]  # three tabs, two languages, two renderings
    assert "catalog" in english[0].lower()
    assert "catalog" not in ukrainian[0].lower() and ukrainian[0] == ukrainian[1]


async def test_a_burst_of_pieces_goes_out_in_order() -> None:
    feed, got, _ = await feed_with_tab()
    for n in range(50):
        feed.put(functools.partial(str, f"<i>{n}</i>"))
    await asyncio.wait_for(feed.drain(), 2)
    assert re.findall(r"<i>(\d+)</i>", "".join(got)) == [str(n) for n in range(50)]
