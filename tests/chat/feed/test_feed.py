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


def wholes(frames: list[str]) -> list[tuple[str, int]]:
    """(bubble, length) of each piece that carries its bubble whole (the first one, or one that finished a line)."""
    return [(m[1], int(m[2])) for m in re.finditer(r'id="([^"]+)-tail"[^>]*data-length="(\d+)"', "".join(frames))]


async def test_a_piece_that_finishes_a_line_carries_the_whole_bubble_with_its_length() -> None:
    feed, got, _ = await feed_with_tab(interval=0)
    feed.begin("b")
    feed.add("**Milk**")
    feed.add(" and")
    feed.add(" bread\nnext")
    await feed.drain()
    assert offsets(got)[:2] == [(0, "**Milk**"), (8, " and")]
    # The third piece finished a line: it goes out as the whole bubble, the finished line formatted, with its length.
    html = "".join(got)
    assert wholes(got) == [("b", len("**Milk** and bread\nnext"))]
    whole = html[html.index('id="b-done" hx-swap-oob') :]
    assert "<strong>Milk</strong>" in whole and "**" not in whole


async def test_line_breaks_a_hostile_upstream_sends_one_at_a_time_cannot_multiply_the_bubble() -> None:
    """A long bubble, then a frame of one line break at a time: each re-sent the whole bubble, rendered (one 60 KB
    reply and 60 frames of 33 bytes went out as 3.7 MB). Past a small bubble a finished line is shown whole only
    once the bubble grew by an eighth since its last whole showing: what goes out stays a small multiple of it."""
    feed, got, _ = await feed_with_tab(interval=0)
    feed.begin("b")
    feed.add("word " * 12_000)
    for _ in range(60):
        feed.add("\n")
    await feed.drain()
    sent = sum(len(html) for html in got)
    assert sent < 3 * 60_000 + 60 * 200, sent
    assert offsets(got)[-1][1] == "\n" or wholes(got)  # the breaks still reach the page, as text


async def test_a_short_reply_shows_every_finished_line_formatted_at_once() -> None:
    feed, got, _ = await feed_with_tab(interval=0)
    feed.begin("b")
    for line in ["**One**\n", "**Two**\n", "**Three**\n"]:
        feed.add(line)
    await feed.drain()
    assert [length for _bubble, length in wholes(got)] == [16, 26]  # the first piece makes the bubble itself


async def test_offsets_count_code_points_as_the_page_does() -> None:
    feed, got, _ = await feed_with_tab(interval=0)
    feed.begin("b")
    feed.add("👍🏽 ok")  # two code points before the space (the page counts with Array.from, not UTF-16 units)
    feed.add("!")
    await feed.drain()
    assert offsets(got) == [(0, "👍🏽 ok"), (5, "!")]


async def test_text_piled_up_in_the_interval_goes_out_when_it_ends_joined_at_its_offset() -> None:
    feed, got, tabs = await feed_with_tab(interval=0.02)
    second = asyncio.Event()

    async def collect(html: str) -> None:
        got.append(html)
        if len(got) == 2:
            second.set()

    tabs.attach("g", "tab", collect, "en")
    feed.begin("b")
    feed.add("one")  # out at once
    feed.add(" two")
    feed.add(" three")  # both wait for the interval, then go out as one piece
    await asyncio.wait_for(second.wait(), 2)
    assert offsets(got) == [(0, "one"), (3, " two three")]


async def test_a_tab_catching_up_gets_the_text_not_sent_yet_too() -> None:
    feed, _got, _ = await feed_with_tab(interval=10)
    assert feed.live() is None
    feed.begin("b")
    assert feed.live() is None  # no text yet: nothing to catch up on
    feed.add("sent")
    feed.add(" waiting")  # held for the interval
    assert feed.live() == ("b", "sent waiting")
    feed.end()
    assert feed.live() is None


async def test_a_new_bubble_ends_the_previous_one_and_counts_from_zero() -> None:
    feed, got, _ = await feed_with_tab(interval=10)
    feed.begin("b1")
    feed.add("first")
    feed.add(" unsent")  # held: the stored reply replaces it
    feed.begin("b2")
    feed.add("second")  # held too: one streaming frame per conversation per interval, whichever bubble
    feed.add("")  # nothing: no piece
    feed.put("<p>after</p>")  # anything else sends the pending text first
    await feed.drain()
    assert [m[1] for m in re.finditer(r'id="([^"]+)-tail"', "".join(got))] == ["b1", "b2"]
    assert offsets(got) == [(0, "first"), (0, "second")]
    assert feed.live() == ("b2", "second")


async def test_nothing_goes_out_for_text_outside_a_bubble_or_an_empty_piece() -> None:
    feed, got, _ = await feed_with_tab()
    feed.add("stray")  # no bubble begun: text that belongs to nothing is not shown
    feed.put("")
    assert feed.end() == ""
    await feed.drain()
    assert got == []
