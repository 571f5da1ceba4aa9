"""The page's reconnect schedule, measured at a real TCP proxy in front of the real app server.

The page loads through the proxy, so its chat socket runs through it too. The proxy can cut every connection and
refuse new ones (it accepts, records the attempt, holds it a moment as a slow network would, then drops it), or
answer the WebSocket handshake and close at once with a chosen close code. What the page does is read off the
proxy's clock: when each connection attempt came, and whether two were ever in flight together.

The schedule is the VIZOCHOK SDK's (reference §12): retry n waits min(1000 * 2^n, 10000) ms +/- 25 %, at most 30
tries, never after close codes 4001-4004; a wake-up (``online``, the page shown again) may try at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page, open_chat, send_text, wait_ready
from tests.processes import free_port

pytestmark = pytest.mark.browser

#: Scheduling slack on top of the jitter bounds: timers, the proxy's thread, a busy 2-core machine.
EARLY = 0.06
LATE = 0.45

#: Counts, in the page, sockets created while another was still connecting or open, and sends on a socket that
#: was still connecting (what makes Chromium log "Still in CONNECTING state").
WATCH_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  const seen = { created: 0, overlapping: 0, sendWhileConnecting: 0, sockets: [], createdAt: [], closedAt: [] };
  window.__ws = seen;
  function Watched(url, protocols) {
    if (seen.sockets.some((s) => s.readyState === 0 || s.readyState === 1)) seen.overlapping += 1;
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    seen.sockets.push(ws);
    seen.created += 1;
    seen.createdAt.push(performance.now());
    ws.addEventListener("close", () => seen.closedAt.push(performance.now()));
    const send = ws.send.bind(ws);
    ws.send = (data) => {
      if (ws.readyState === 0) seen.sendWhileConnecting += 1;
      return send(data);
    };
    return ws;
  }
  Watched.prototype = Native.prototype;
  Object.assign(Watched, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Watched;
})();
"""

ONLINE = "() => window.dispatchEvent(new Event('online'))"
VISIBLE = (
    "() => { Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
    " document.dispatchEvent(new Event('visibilitychange')); }"
)


@dataclass
class Attempt:
    """One WebSocket handshake that reached the proxy."""

    accepted: float
    closed: float | None = None


class Proxy:
    """A TCP proxy on loopback, run by asyncio in a thread of its own."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target_port = target_port
        self.mode = "pass"  # "pass" | "refuse" | "close"
        self.hold = 0.0
        self.close_code = 1000
        self.attempts: list[Attempt] = []
        self._changed = threading.Condition()
        self._live: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> Proxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        return self

    def stop(self) -> None:
        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._live):
                writer.transport.abort()
            # Each connection's handler ends once its transport is gone; stopping the loop under a pending one
            # would leave asyncio's "Task was destroyed but it is pending!" in the suite's output.
            if self._handlers:
                await asyncio.wait(set(self._handlers), timeout=5)

        self._call(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # --- what a test does ------------------------------------------------------------------------------------

    def cut(self, hold: float) -> float:
        """The network goes: every connection drops, new ones are accepted, held ``hold`` s, then dropped."""

        async def cut() -> float:
            self.mode, self.hold = "refuse", hold
            for writer in list(self._live):
                writer.transport.abort()
            return time.monotonic()

        with self._changed:
            self.attempts = []
        return float(self._call(cut()))

    def restore(self) -> None:
        async def restore() -> None:
            self.mode = "pass"

        self._call(restore())

    def close_with(self, code: int) -> None:
        """Every chat socket is answered and then closed at once with ``code``."""

        async def close_with() -> None:
            self.mode, self.close_code = "close", code

        with self._changed:
            self.attempts = []
        self._call(close_with())

    def wait(self, predicate: Callable[[list[Attempt]], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.attempts), timeout)

    def attempt(self, index: int, *, closed: bool = False, timeout: float = 15) -> Attempt:
        def arrived(attempts: list[Attempt]) -> bool:
            return len(attempts) > index and (not closed or attempts[index].closed is not None)

        assert self.wait(arrived, timeout), f"attempt {index} did not come: {self.attempts}"
        return self.attempts[index]

    # --- the proxy itself ------------------------------------------------------------------------------------

    def _record(self, attempt: Attempt | None, closed: bool = False) -> None:
        with self._changed:
            if attempt is not None and closed:
                attempt.closed = time.monotonic()
            elif attempt is not None:
                self.attempts.append(attempt)
            self._changed.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = time.monotonic()
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._live.add(writer)
        attempt: Attempt | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /ws/chat/"):
                attempt = Attempt(accepted)
                self._record(attempt)
            if self.mode == "refuse":
                await asyncio.sleep(self.hold)
                writer.transport.abort()
            elif self.mode == "close" and attempt is not None:
                await self._answer_and_close(head, reader, writer)
            else:
                await self._pipe(head, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._live.discard(writer)
            writer.transport.abort()
            self._record(attempt, closed=True)

    async def _pipe(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._live.add(up_writer)
        up_writer.write(head)

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            except ConnectionError:
                pass
            finally:
                sink.transport.abort()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            self._live.discard(up_writer)

    async def _answer_and_close(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:] if ": " in line)
        key = {name.lower(): value for name, value in headers.items()}["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        writer.write(bytes([0x88, 2]) + self.close_code.to_bytes(2, "big"))  # an unmasked close frame
        await writer.drain()
        await asyncio.wait_for(reader.read(64), 5)  # the page's close frame


@pytest.fixture(scope="module")
def proxy(app_server: AppServer) -> Iterator[Proxy]:
    running = Proxy(app_server.port).start()
    yield running
    running.stop()


@pytest.fixture
def watched(browser: Any, proxy: Proxy) -> Iterator[tuple[Any, list[str]]]:
    proxy.restore()
    page = new_page(browser, proxy.url)
    page.add_init_script(WATCH_SOCKETS)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page, problems
    page.context.close()


def schedule(n: int) -> tuple[float, float]:
    """The bounds of retry ``n``'s wait, in seconds, with the scheduling slack."""
    base = min(1.0 * 2**n, 10.0)
    return base * 0.75 - EARLY, base * 1.25 + LATE


def fits(gap: float, n: int) -> bool:
    low, high = schedule(n)
    return low <= gap <= high


def test_a_cut_network_is_retried_on_the_sdk_schedule_one_socket_at_a_time(
    watched: tuple[Any, list[str]], proxy: Proxy, app_server: AppServer
) -> None:
    page, problems = watched
    open_chat(page)
    public_id = page.get_attribute("#chat", "ws-connect").split("c=")[1].split("&")[0]
    # Another tab of the same shopper, straight to the server: it keeps talking while this one is cut off.
    other = page.context.new_page()
    open_chat(other, f"{app_server.url}/?lang=en&c={public_id}")

    proxy.cut(hold=0.3)
    page.wait_for_selector("#chat[data-state=offline]")
    send_text(other, "milk")

    first = proxy.attempt(0, closed=True)
    second = proxy.attempt(1)
    # Wake-ups while an attempt is still connecting must not open a second socket beside it.
    page.evaluate(ONLINE)
    page.evaluate(VISIBLE)
    second = proxy.attempt(1, closed=True)
    # A wake-up while waiting tries at once, without using up a step of the schedule.
    page.wait_for_function("() => __ws.sockets.every((ws) => ws.readyState === 3)")  # the page saw the close
    woke_at = time.monotonic()
    page.evaluate(ONLINE)
    third = proxy.attempt(2, closed=True)
    proxy.restore()
    fourth = proxy.attempt(3)
    wait_ready(page)

    # The first step is read on the page's clock, from the close it saw to the socket it made next: the cut's close
    # reaches a busy browser late (CI saw 1.9 s from the proxy's cut for a 1 s step), which is no step of the page's.
    page_clock = page.evaluate("() => ({created: __ws.createdAt, closed: __ws.closedAt})")
    gaps = [
        (page_clock["created"][1] - page_clock["closed"][0]) / 1000,
        second.accepted - (first.closed or 0),
        third.accepted - woke_at,
        fourth.accepted - (third.closed or 0),
    ]
    assert fits(gaps[0], 0) and fits(gaps[1], 1) and gaps[2] < 0.5 and fits(gaps[3], 2), gaps
    assert len(proxy.attempts) == 4, proxy.attempts
    counts = page.evaluate("() => ({overlapping: __ws.overlapping, sendWhileConnecting: __ws.sendWhileConnecting})")
    assert counts == {"overlapping": 0, "sendWhileConnecting": 0}
    assert not [text for text in problems if "CONNECTING" in text], problems
    # Chromium itself logs each refused handshake ("WebSocket connection to … failed"); the page logs nothing.
    assert not [text for text in problems if not text.startswith("WebSocket connection to")], problems

    # Caught up: what the other tab said and got while this one was cut off is here, once.
    page.wait_for_selector('.msg[data-role=user] >> text="milk"')
    page.wait_for_selector(".product-card")
    wait_ready(other)
    wait_ready(page)
    assert page.locator(".msg[data-role=user]").count() == 1
    assert page.locator("#chat-log .msg").count() == other.locator("#chat-log .msg").count()


@pytest.mark.parametrize("code", [4001, 4004])
def test_an_auth_close_is_never_retried(watched: tuple[Any, list[str]], proxy: Proxy, code: int) -> None:
    page, _problems = watched
    proxy.close_with(code)
    page.goto("/?lang=en")
    proxy.attempt(0, closed=True)
    page.wait_for_selector("#chat[data-state=error]")
    page.evaluate(ONLINE)
    # Nothing can be awaited for "no retry": wait past the first step's latest moment (1.25 s) and a half.
    assert not proxy.wait(lambda attempts: len(attempts) > 1, timeout=schedule(0)[1] + 0.5), proxy.attempts
    assert page.locator("#connection-banner").is_visible()


def test_the_schedule_itself(watched: tuple[Any, list[str]]) -> None:
    """Every step of the 30, at both ends of the jitter, from the page's own module."""
    page, _problems = watched
    open_chat(page)
    steps = page.evaluate(
        """async () => {
          const { retryDelay, maxRetries } = await import('/static/chat/connection.js');
          const steps = [];
          for (let n = 0; n < 32; n++) steps.push([retryDelay(n, () => 0), retryDelay(n, () => 0.999999)]);
          return { steps, max: maxRetries() };
        }"""
    )
    assert steps["max"] == 30
    for n, (low, high) in enumerate(steps["steps"]):
        base = min(1000 * 2**n, 10000)
        assert low == pytest.approx(base * 0.75) and high == pytest.approx(base * 1.25, rel=1e-5), (n, low, high)
