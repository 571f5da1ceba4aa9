"""Delta coalescing: the first chunk goes out at once, later ones at most once per interval, nothing is lost."""

from __future__ import annotations

import asyncio

from chat.feed.stream import BubbleStream
from chat.turns.window import SlidingWindow


async def test_first_delta_is_immediate_then_coalesced() -> None:
    emitted: list[tuple[str, bool]] = []
    done = asyncio.Event()

    def emit(bubble: str, text: str, first: bool) -> None:
        emitted.append((text, first))
        if "".join(part for part, _ in emitted) == "Hello, world":
            done.set()

    stream = BubbleStream("b1", emit, interval=0.05)
    for delta in ["Hel", "lo", ", ", "wor", "ld"]:
        stream.add(delta)
    assert emitted == [("Hel", True)]  # no waiting for the first one
    await asyncio.wait_for(done.wait(), 2)
    assert emitted == [("Hel", True), ("lo, world", False)]
    assert stream.text == "Hello, world"


async def test_finish_cancels_the_pending_flush() -> None:
    emitted: list[str] = []
    stream = BubbleStream("b1", lambda bubble, text, first: emitted.append(text), interval=10)
    stream.add("a")
    stream.add("b")
    assert stream.finish() == "ab"
    assert emitted == ["a"]  # the final bubble replaces the rest; no late chunk after it


def test_sliding_window_counts_and_ages_out() -> None:
    now = [0.0]
    window = SlidingWindow(limit=2, seconds=60, clock=lambda: now[0])
    assert window.retry_after() == 0
    window.record()
    now[0] = 10
    window.record()
    assert window.retry_after() == 50
    now[0] = 60
    assert window.retry_after() == 0
