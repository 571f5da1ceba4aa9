"""The turn state (``data-item="turn-state"``, busy or ready) reaches the tabs only through the feed."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.utils import translation

from chat.feed.feed import turn_state
from tests.chat.feed.test_feed import feed_with_tab, offsets

CHAT = Path(__file__).resolve().parents[3] / "chat"


def told(frames: list[str]) -> list[str]:
    return re.findall(r'data-item="turn-state" data-state="(\w+)"', "".join(frames))


async def test_busy_goes_out_alone_and_ready_clears_the_status_line_first() -> None:
    feed, got, _ = await feed_with_tab()
    feed.tell("busy")
    await feed.drain()
    assert told(got) == ["busy"] and 'id="chat-status"' not in got[0]
    feed.tell("ready")
    await feed.drain()
    assert told(got) == ["busy", "ready"]
    last = got[-1]
    assert last.index('id="chat-status"') < last.index('data-state="ready"')


async def test_ready_goes_out_after_the_streamed_text_before_it() -> None:
    feed, got, _ = await feed_with_tab(interval=10)
    feed.begin("b")
    feed.add("one")  # out at once
    feed.add(" two")  # held for the interval: ready must not overtake it
    feed.tell("ready")
    await feed.drain()
    html = "".join(got)
    assert offsets(got) == [(0, "one"), (3, " two")]
    assert html.index("-tail") < html.index('data-state="ready"')


def test_a_tabs_own_answer_carries_the_same_fragment_in_its_language() -> None:
    with translation.override("uk"):
        assert told([turn_state(True), turn_state(False)]) == ["busy", "ready"]


def test_nothing_but_the_feed_renders_the_turn_state() -> None:
    """``rendering.state`` is called in ``chat/feed`` alone: the engine and the consumer ask the feed for it."""
    callers = []
    for path in sorted(CHAT.rglob("*.py")):
        if path.is_relative_to(CHAT / "feed") or path.is_relative_to(CHAT / "presentation"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "state"
                and getattr(node.value, "id", "") == "rendering"
            ):
                callers.append(f"{path.relative_to(CHAT)}:{node.lineno}")
    assert callers == []
