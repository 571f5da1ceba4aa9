"""Nothing lost when sockets drop: the browser's socket, the page's visibility, the upstream itself, two tabs."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page, open_chat, send_text, wait_ready
from tests.processes import ROOT, free_port, wait_for_port

pytestmark = pytest.mark.browser

#: Records every WebSocket the page opens and every frame it sends, so a test can cut or replay them.
CAPTURE_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__sent = [];
  function Capturing(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    window.__sockets.push(ws);
    const send = ws.send.bind(ws);
    ws.send = (data) => { window.__sent.push(data); return send(data); };
    return ws;
  }
  Capturing.prototype = Native.prototype;
  Object.assign(Capturing, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Capturing;
})();
"""

CUT_SOCKET = "() => window.__sockets[window.__sockets.length - 1].close(3001, 'test cut')"


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    """Replies stream for a few seconds, so a test can act mid-reply."""
    server = AppServer(tmp_path_factory.mktemp("slow"), VIZOCHOK_SANDBOX_PACE="25").start()
    yield server
    server.stop()


@pytest.fixture
def slow_page(browser: Any, slow_server: AppServer) -> Iterator[Any]:
    page = new_page(browser, slow_server.url)
    page.add_init_script(CAPTURE_SOCKETS)
    yield page
    page.context.close()


def assistant_replies(page: Any) -> int:
    return int(page.locator(".msg[data-role=assistant][data-seq]").count())


def test_socket_cut_mid_reply_catches_up_without_duplicates(slow_page: Any) -> None:
    page = slow_page
    open_chat(page)
    send_text(page, "borscht")
    page.wait_for_selector(".msg--streaming")
    page.evaluate(CUT_SOCKET)
    page.wait_for_selector("#chat[data-state=offline]")
    assert page.locator("#connection-banner").is_visible()
    wait_ready(page)
    assert page.locator("#connection-banner").is_hidden()
    assert page.locator(".msg--streaming").count() == 0
    page.wait_for_selector("form.checklist")
    live = (assistant_replies(page), page.locator("form.checklist").count(), page.locator("#chat-log .msg").count())
    page.reload()
    wait_ready(page)
    assert (
        assistant_replies(page),
        page.locator("form.checklist").count(),
        page.locator("#chat-log .msg").count(),
    ) == live
    assert page.locator(".msg__cut").count() == 0  # the upstream turn was never interrupted


def test_hidden_then_shown_page_reconnects(slow_page: Any) -> None:
    page = slow_page
    open_chat(page)
    page.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.evaluate(CUT_SOCKET)  # the phone dropped the socket while the app was in the background
    page.wait_for_selector("#chat[data-state=offline]")
    page.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    wait_ready(page)
    assert page.evaluate("() => document.activeElement && document.activeElement.id") == "composer-text"
    send_text(page, "milk")
    page.wait_for_selector(".product-card")
    wait_ready(page)


def test_a_resent_frame_after_reconnect_is_not_a_second_turn(slow_page: Any) -> None:
    page = slow_page
    open_chat(page)
    send_text(page, "milk")
    wait_ready(page)
    page.evaluate(CUT_SOCKET)
    page.wait_for_selector("#chat[data-state=offline]")
    wait_ready(page)
    users = page.locator(".msg[data-role=user]").count()
    # Replay the original send (same idempotency key) on the new socket, then a catch-up: frames are handled in
    # order, so once the catch-up's answer arrives the replay has been dealt with.
    page.evaluate(
        """() => new Promise((resolve) => {
          const frame = window.__sent.find((data) => data.includes('"kind":"message"'));
          const ws = window.__sockets[window.__sockets.length - 1];
          ws.addEventListener('message', (event) => { if (event.data.includes('turn-state')) resolve(); });
          ws.send(frame);
          ws.send(JSON.stringify({kind: 'sync', after: 0}));
        })"""
    )
    assert page.locator(".msg[data-role=user]").count() == users
    assert page.locator("#chat").get_attribute("data-state") == "ready"
    page.reload()
    assert page.locator(".msg[data-role=user]").count() == users


def test_two_tabs_stay_in_sync(browser: Any, slow_server: AppServer) -> None:
    first = new_page(browser, slow_server.url)
    try:
        second = first.context.new_page()
        open_chat(first)
        open_chat(second)
        send_text(first, "milk")
        second.wait_for_selector('.msg[data-role=user] >> text="milk"')
        second.wait_for_selector("#chat[data-state=busy]")
        assert second.locator("#composer button[type=submit]").is_hidden()  # Send waits; Stop shows instead
        assert second.locator("button[data-action=stop]").is_visible()
        second.wait_for_selector(".product-card")
        wait_ready(first)
        wait_ready(second)
        second.locator(".product-card button[data-action=add]").first.click()
        first.wait_for_selector("#cart-badge[data-count='1']")
        second.wait_for_selector("#cart-badge[data-count='1']")
        wait_ready(first)
        assert first.locator("#chat-log .msg").count() == second.locator("#chat-log .msg").count()
    finally:
        first.context.close()


class SandboxProcess:
    """The sandbox as its own process, so a test can kill the upstream for real and bring it back."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SandboxProcess:
        return self.spawn().wait()

    def spawn(self) -> SandboxProcess:
        """Start the process without waiting for it to listen (it boots Django meanwhile, in parallel)."""
        command = [
            sys.executable,
            "manage.py",
            "vizochok_sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--pace",
            "25",
        ]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        return self

    def wait(self) -> SandboxProcess:
        assert self.process is not None
        wait_for_port(self.port, self.process, 20, describe="the sandbox")
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def test_upstream_killed_mid_reply(browser: Any, tmp_path: Path) -> None:
    port = free_port()
    # The two processes boot side by side (each a few seconds of Django start-up); the app needs no upstream to start.
    sandbox = SandboxProcess(port, tmp_path / "sandbox.log").spawn()
    app = AppServer(tmp_path, VIZOCHOK_WS_URL=f"ws://127.0.0.1:{port}/api/v1/ws/chat").start()
    sandbox.wait()
    page = new_page(browser, app.url)
    try:
        open_chat(page)
        send_text(page, "borscht")
        page.wait_for_selector(".msg--streaming")
        sandbox.kill()
        sandbox.start()  # back on the same port: the relay's retry finds it
        page.wait_for_selector('.chat-error[data-code="upstream_lost"]')
        wait_ready(page)
        assert page.locator(".msg__cut").count() == 1  # what streamed is kept, marked as interrupted
        send_text(page, "milk")
        page.wait_for_selector(".product-card")
        wait_ready(page)
        page.reload()
        assert page.locator(".msg__cut").count() == 1
        assert page.locator(".product-card").count() > 0
    finally:
        page.context.close()
        app.stop()
        sandbox.kill()


def test_a_message_typed_while_offline_is_sent_once_on_reconnect(slow_page: Any) -> None:
    page = slow_page
    open_chat(page)
    page.evaluate(CUT_SOCKET)
    page.wait_for_selector("#chat[data-state=offline]")
    send_text(page, "milk")
    # The second one either waits in the outbox (the socket still down: it goes after the first one's turn) or, once
    # the first is on its way again (a send wakes the socket at once), stays in the composer while that turn runs.
    # Either way nothing is lost and nothing goes twice.
    send_text(page, "bread")
    page.wait_for_function(
        """() => {
          const sent = [...document.querySelectorAll('.msg[data-role=user] .msg__text')]
            .map((el) => el.textContent.trim()).join('|');
          const typed = document.querySelector('#composer textarea[name=text]').value.trim();
          const settled = document.querySelector('#chat').dataset.state === 'ready'
            && !document.querySelector('.msg[data-outbox]');
          return settled && (sent === 'milk|bread' || (sent === 'milk' && typed === 'bread'));
        }""",
        timeout=30_000,
    )
    assert page.locator(".product-card").count() > 0


def test_new_conversation_and_recent_list(page: Any) -> None:
    open_chat(page)
    send_text(page, "milk")
    wait_ready(page)
    first = page.locator("#chat").get_attribute("ws-connect")
    page.click("button[data-action=menu]")
    page.click("#new-conversation")
    wait_ready(page)
    assert page.locator("#chat").get_attribute("ws-connect") != first
    assert page.locator("#chat-log .msg").count() == 0
    page.click("button[data-action=menu]")
    page.locator('.menu__list a >> text="milk"').click()
    wait_ready(page)
    assert page.locator(".msg[data-role=user] .msg__text").all_inner_texts() == ["milk"]
