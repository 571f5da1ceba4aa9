"""Reloads and second tabs mid-reply (chat.feed.feed): whatever the moment, a streaming bubble only ever shows a
prefix of the reply it streams — never a middle piece alone, never a piece twice."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page, open_chat, send_text, wait_ready

pytestmark = pytest.mark.browser

#: Every text a streaming bubble shows, as it changes, by bubble id.
RECORD_BUBBLES = """
(() => {
  window.__samples = [];
  const seen = () => {
    document.querySelectorAll('.msg--streaming').forEach((bubble) => {
      const text = document.getElementById(bubble.id + '-text');
      if (text) window.__samples.push([bubble.id, text.textContent]);
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
        (user_seq,) = db.execute("SELECT MAX(seq) FROM chat_message WHERE role = 'user'").fetchone()
        rows = db.execute(
            "SELECT text FROM chat_message WHERE role = 'assistant' AND kind = 'text' AND seq > ? ORDER BY seq",
            [user_seq],
        ).fetchall()
    return [text for (text,) in rows]


@pytest.mark.parametrize("moment", [0.15, 0.35, 0.55, 0.85])
def test_a_reload_mid_reply_shows_only_prefixes_of_the_reply(browser: Any, server: AppServer, moment: float) -> None:
    page = new_page(browser, server.url)
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
    for bubble, text in samples:
        assert any(reply.startswith(text) for reply in replies), (moment, bubble, text, replies)


def test_a_second_tab_opened_mid_reply_shows_only_prefixes(browser: Any, server: AppServer) -> None:
    first = new_page(browser, server.url)
    try:
        open_chat(first)
        send_text(first, "pancakes")
        first.wait_for_selector(".msg--streaming")
        second = first.context.new_page()
        second.add_init_script(RECORD_BUBBLES)
        second.goto("/?lang=uk")
        second.wait_for_selector("#chat[data-state=ready]")
        samples = second.evaluate("window.__samples")
        replies = replies_of_last_turn(server)
    finally:
        first.context.close()
    for _bubble, text in samples:
        assert any(reply.startswith(text) for reply in replies), (text, replies)
