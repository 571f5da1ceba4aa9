"""Reloads and second tabs mid-reply (chat.feed.feed): whatever the moment, a streaming bubble only ever shows a
prefix of the reply it streams — never a middle piece alone, never a piece twice.

A bubble shows its finished lines formatted and the line being written as plain text, and says how many characters
of the reply it shows (data-length): every sample's plain line must be exactly that stretch of the stored reply, and
a bubble never shrinks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import AppServer, ConsoleErrors, new_page, open_chat, send_text, wait_ready

pytestmark = pytest.mark.browser

#: Every text a streaming bubble shows, as it changes, by bubble id.
RECORD_BUBBLES = """
(() => {
  window.__samples = [];
  const seen = () => {
    document.querySelectorAll('.msg--streaming').forEach((bubble) => {
      const tail = document.getElementById(bubble.id + '-tail');
      if (tail) window.__samples.push([bubble.id, Number(bubble.dataset.length), tail.textContent]);
    });
  };
  new MutationObserver(seen).observe(document, { childList: true, subtree: true, characterData: true });
})();
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(tmp_path_factory.mktemp("feed"), VIZOCHOK_SANDBOX_PACE="60").start()
    yield server
    server.stop()


def replies_of_last_turn(server: AppServer) -> list[str]:
    with sqlite3.connect(server.db) as db:
        conversation, user_seq = db.execute(
            "SELECT conversation_id, seq FROM chat_message WHERE role = 'user' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        rows = db.execute(
            "SELECT text FROM chat_message WHERE conversation_id = ? AND role = 'assistant' AND kind = 'text' "
            "AND seq > ? ORDER BY seq",
            [conversation, user_seq],
        ).fetchall()
    return [text for (text,) in rows]


def assert_prefixes(samples: list[tuple[str, int, str]], replies: list[str]) -> None:
    """Each sample: the bubble's plain line is the reply's text from its last line break up to the bubble's length."""
    longest: dict[str, int] = {}
    for bubble, length, tail in samples:
        reply = replies[int(bubble.rsplit("-", 1)[1]) - 1]  # live-<seq>-<n>: the turn's n-th text
        start = reply.rfind("\n", 0, length) + 1
        assert tail == reply[start:length], (bubble, length, tail, reply)
        assert length >= longest.get(bubble, 0), (bubble, length)  # never shrinks
        longest[bubble] = length


@pytest.mark.parametrize("moment", [0.15, 0.35, 0.55, 0.85])
def test_a_reload_mid_reply_shows_only_prefixes_of_the_reply(
    browser: Any, server: AppServer, moment: float, console_errors: ConsoleErrors
) -> None:
    """...and logs no error (issue 22: htmx:oobErrorNoTarget for the live bubble's tail the new page lacked)."""
    page = console_errors.watch(new_page(browser, server.url))
    page.add_init_script(RECORD_BUBBLES)
    try:
        open_chat(page)
        send_text(page, "borscht")
        page.wait_for_selector(".msg--streaming")
        time.sleep(moment)  # the moment of the reload is the test's parameter, not a wait for an event
        page.reload()
        wait_ready(page)
        samples = page.evaluate("window.__samples")
        replies = replies_of_last_turn(server)
    finally:
        page.context.close()
    assert replies
    assert_prefixes(samples, replies)


def test_a_second_tab_opened_mid_reply_shows_only_prefixes(
    browser: Any, server: AppServer, console_errors: ConsoleErrors
) -> None:
    first = console_errors.watch(new_page(browser, server.url))
    try:
        open_chat(first)
        send_text(first, "pancakes")
        first.wait_for_selector(".msg--streaming")
        second = console_errors.watch(first.context.new_page())
        second.add_init_script(RECORD_BUBBLES)
        second.goto("/?lang=uk")
        second.wait_for_selector("#chat[data-state=ready]")
        samples = second.evaluate("window.__samples")
        replies = replies_of_last_turn(server)
    finally:
        first.context.close()
    assert_prefixes(samples, replies)
