"""WebKit (iOS's WKWebView) on a network that fails silently: the page's own heartbeat and its outbox (issue 22).

The page reaches a short-heartbeat app through :class:`tests.netproxy.NetProxy`, which blackholes the network
(nothing forwarded, nothing closed). Only public hooks are read: ``#chat[data-state]`` and ``.msg[data-outbox]``;
what the shopper typed is checked in the database, stored exactly once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import AppServer
from tests.browser.webkit.test_webkit_chat import count, send, state, wait_for, wait_ready
from tests.netproxy import NetProxy

pytestmark = pytest.mark.webkit

#: The UI contract: a silent network loss is noticed within this many seconds while the page is visible.
NOTICED_WITHIN = 10


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    app = AppServer(
        tmp_path_factory.mktemp("webkit-network"),
        VIZOCHOK_PAGE_HEARTBEAT_INTERVAL="1",
        VIZOCHOK_PAGE_HEARTBEAT_TIMEOUT="2",
        DJANGO_DEBUG="1",  # WebKit keeps no Secure cookie from a plain-HTTP page (tests/browser/webkit/conftest.py)
    ).start()
    yield app
    app.stop()


@pytest.fixture
def net(server: AppServer) -> Iterator[NetProxy]:
    with NetProxy(server.port) as running:
        yield running


def open_as_new_shopper(driver: Any, net: NetProxy) -> str:
    driver.get(net.url + "/healthz")  # on the site's origin, so its cookies can be dropped: a new shopper
    driver.delete_all_cookies()
    driver.get(net.url + "/?lang=en")
    wait_ready(driver)
    return str(driver.execute_script("return document.getElementById('chat-conversation').value;"))


def stored_texts(server: AppServer, public_id: str) -> list[str]:
    with sqlite3.connect(server.db) as db:
        rows = db.execute(
            "SELECT m.text FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id "
            "WHERE c.public_id = ? AND m.role = 'user' ORDER BY m.seq",
            [public_id.replace("-", "")],
        ).fetchall()
    return [text for (text,) in rows]


def test_a_blackholed_network_is_noticed_within_10_s(webkit: Any, net: NetProxy) -> None:
    open_as_new_shopper(webkit, net)
    lost_at = net.blackhole()
    wait_for(webkit, lambda d: state(d) == "offline", timeout=NOTICED_WITHIN)
    assert time.monotonic() - lost_at < NOTICED_WITHIN
    assert webkit.execute_script("return !document.getElementById('connection-banner').hidden;")
    net.restore()
    wait_ready(webkit)


def test_a_message_typed_while_blackholed_is_pending_then_stored_once(
    webkit: Any, net: NetProxy, server: AppServer
) -> None:
    public_id = open_as_new_shopper(webkit, net)
    net.blackhole()
    wait_for(webkit, lambda d: state(d) == "offline", timeout=NOTICED_WITHIN)
    send(webkit, "bread")
    wait_for(webkit, lambda d: count(d, ".msg[data-outbox] button[data-action=discard]") == 1)
    text = webkit.execute_script("return document.querySelector('.msg[data-outbox] .msg__text').textContent;")
    assert text == "bread"

    net.blackhole(sockets_only=True)  # reloaded with the socket still dead (the page from a cache)
    webkit.refresh()
    wait_for(webkit, lambda d: count(d, ".msg[data-outbox]") == 1)
    assert stored_texts(server, public_id) == []

    net.restore()
    wait_for(webkit, lambda d: count(d, ".msg[data-outbox]") == 0 and state(d) == "ready", timeout=30)
    assert stored_texts(server, public_id) == ["bread"]
    assert count(webkit, ".msg[data-role=user]") == 1
