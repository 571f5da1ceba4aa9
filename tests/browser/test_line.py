"""The line in a real browser: a waiting turn's place on the page (``#chat[data-queue-position]``, ``#chat-status``).

One upstream socket for the server (``VIZOCHOK_MAX_CONNECTIONS=1``) and slow replies, so a second shopper's turn
waits while the first one's reply streams.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page, open_chat, send_text


@pytest.fixture(scope="module")
def one_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    server = AppServer(tmp_path_factory.mktemp("line"), VIZOCHOK_MAX_CONNECTIONS="1", VIZOCHOK_SANDBOX_PACE="10")
    server.start()
    yield server
    server.stop()


def shot(page: Any, name: str) -> None:
    """A screenshot to look at, when VIZOCHOK_SCREENSHOTS names a folder (not committed)."""
    folder = os.environ.get("VIZOCHOK_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


@pytest.mark.parametrize("viewport", [(390, 844), (360, 640)], ids=["390x844", "360x640"])
def test_a_waiting_turn_shows_its_place_then_goes_on(
    browser: Any, one_socket: AppServer, viewport: tuple[int, int]
) -> None:
    holder = new_page(browser, one_socket.url)
    waiter = new_page(browser, one_socket.url)
    waiter.set_viewport_size({"width": viewport[0], "height": viewport[1]})
    try:
        open_chat(holder)
        open_chat(waiter)
        send_text(holder, "borscht")
        holder.wait_for_selector(".msg--streaming")  # the only upstream socket is busy with a long reply
        send_text(waiter, "milk")
        waiter.wait_for_selector("#chat[data-queue-position='1']")
        assert waiter.inner_text("#chat-status").startswith("You are first in line · ~")
        assert waiter.get_attribute("#chat", "data-state") == "busy"
        shot(waiter, f"line-{viewport[0]}x{viewport[1]}")
        # Served when the first reply ends: the place goes, the reply comes.
        waiter.wait_for_selector("#chat:not([data-queue-position])", timeout=60_000)
        waiter.wait_for_selector("#chat[data-state=ready]", timeout=60_000)
        assert waiter.locator(".msg[data-role=assistant]").count() >= 1
    finally:
        holder.context.close()
        waiter.context.close()
