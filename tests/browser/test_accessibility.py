"""Accessibility of the chat page in Debian's Chromium: axe-core in every state, keyboard-only use, announcements.

axe-core (the npm package, pinned in tests/browser/package-lock.json) is injected into the real page. Each state is
checked in the light and the dark colour scheme, because contrast is where the two differ.

The states that only last a moment (a reply streaming, the socket gone) are held still by routing the page's
WebSocket through Playwright: frames still travel between the real page and the real server, but the test decides
when the rest of a reply is delivered and when the connection comes back. No sleeps, no pace to tune.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page, open_chat, send_text, wait_ready

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"

#: Runs axe on the whole document and returns its violations in a form that reads well in an assertion message.
RUN_AXE = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations.map((v) => ({
    rule: v.id,
    impact: v.impact,
    nodes: v.nodes.map((n) => n.target.join(' ') + ' :: ' + n.failureSummary.replace(/\\s+/g, ' ')),
  }));
}"""

#: Records every non-empty text the polite announcer speaks.
WATCH_ANNOUNCER = """() => {
  window.__announced = [];
  const announcer = document.getElementById('chat-announcer');
  new MutationObserver(() => {
    const text = announcer.textContent.trim();
    if (text) window.__announced.push(text);
  }).observe(announcer, { childList: true, characterData: true, subtree: true });
}"""

FOCUSED_ID = "() => document.activeElement ? document.activeElement.id : ''"


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe's violations for the current state in the light and the dark scheme (the scheme is restored after)."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `npm ci --prefix tests/browser` (.ci/run does)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        found += [{"scheme": scheme, **violation} for violation in page.evaluate(RUN_AXE)]
    page.emulate_media(color_scheme="light")
    return found


class HeldSocket:
    """The page's chat socket, routed through Playwright so a test can pause a reply or the connection.

    ``hold_after_first_delta``: once the frame that opens the streaming bubble has reached the page, later frames
    wait in ``held`` until ``release()``; ``hold_when``: the same after the first frame it returns true for.
    ``refuse``: new connections are closed at once, as if the network were down, until ``restore()``.
    """

    def __init__(self, page: Any) -> None:
        self.page = page
        self.hold_after_first_delta = False
        self.hold_when: Callable[[str], bool] | None = None
        self.holding = False
        self.held: list[str | bytes] = []
        self.refuse = False
        self.page_side: Any = None
        self.server_side: Any = None
        page.route_web_socket(re.compile(r".*/ws/chat/.*"), self._route)

    def _route(self, route: Any) -> None:
        if self.refuse:
            route.close(code=3002, reason="test: network down")
            return
        server = route.connect_to_server()
        self.page_side, self.server_side = route, server
        route.on_message(server.send)
        server.on_message(lambda frame: self._to_page(route, frame))

    def _to_page(self, route: Any, frame: str | bytes) -> None:
        if self.holding:
            self.held.append(frame)
            return
        route.send(frame)
        if self.hold_after_first_delta and "msg--streaming" in str(frame):
            self.hold_after_first_delta = False
            self.holding = True
        if self.hold_when is not None and self.hold_when(str(frame)):
            self.hold_when = None
            self.holding = True

    def release(self) -> None:
        self.holding = False
        frames, self.held = self.held, []
        for frame in frames:
            self.page_side.send(frame)

    def cut(self) -> None:
        """Drop the connection and refuse new ones: the page goes offline and keeps retrying."""
        self.refuse = True
        self.page_side.close(code=3001, reason="test: cut")

    def restore(self) -> None:
        """The network is back: the next attempt connects; ``online`` makes the page try at once."""
        self.refuse = False
        self.page.evaluate("() => window.dispatchEvent(new Event('online'))")


@pytest.fixture
def held(browser: Any, app_server: AppServer) -> Iterator[tuple[Any, HeldSocket]]:
    page = new_page(browser, app_server.url, bypass_csp=True)  # axe is injected as an inline script
    socket = HeldSocket(page)
    yield page, socket
    page.context.close()


# The chat's states in two tests (one walk through all twelve, 24 axe runs, took over 15 s on a busy 2-core machine):
# up to the first reply's cards, then from the checklist on, after the same first reply.


def test_every_state_up_to_the_first_reply_has_no_axe_violations(held: tuple[Any, HeldSocket]) -> None:
    page, socket = held
    states: dict[str, list[dict[str, Any]]] = {}

    open_chat(page)
    states["empty, with starters"] = axe_violations(page)
    page.click("button[data-action=menu]")
    states["menu open"] = axe_violations(page)
    page.keyboard.press("Escape")
    page.fill("#composer-text", "x" * 2100)
    states["message over the limit"] = axe_violations(page)
    page.fill("#composer-text", "")

    socket.hold_after_first_delta = True
    send_text(page, "milk")
    page.wait_for_selector(".msg--streaming")
    assert page.get_attribute("#chat", "data-state") == "busy"
    # The contract's ".msg time[datetime]": the reply being written carries its time too, in the page's words.
    assert page.locator("#chat-log .msg").count() == page.locator("#chat-log .msg time[datetime]").count()
    assert re.fullmatch(r"\d{1,2}:\d{2}( [AP]M)?", page.locator(".msg--streaming time[datetime]").inner_text())
    states["streaming"] = axe_violations(page)
    socket.release()
    wait_ready(page)
    page.wait_for_selector(".product-card")
    states["product cards"] = axe_violations(page)
    card = page.locator(".product-card").first
    card.locator("input[name=quantity]").fill("abc")
    card.locator("button[data-action=add]").click()
    states["a quantity explained"] = axe_violations(page)
    card.locator("input[name=quantity]").fill("1")
    card.locator(".product-card__name button").click()
    page.wait_for_selector("#product-sheet[open]")
    states["product sheet"] = axe_violations(page)
    page.keyboard.press("Escape")

    assert {name: found for name, found in states.items() if found} == {}


def test_every_state_from_the_checklist_on_has_no_axe_violations(held: tuple[Any, HeldSocket]) -> None:
    page, socket = held
    states: dict[str, list[dict[str, Any]]] = {}

    open_chat(page)
    send_text(page, "milk")  # the first half's turn, so the checklist comes as the second reply, as on one walk
    wait_ready(page)
    page.wait_for_selector(".product-card")
    send_text(page, "borscht")
    wait_ready(page)
    page.wait_for_selector("form.checklist")
    states["checklist"] = axe_violations(page)

    page.locator(".product-card button[data-action=add]").first.click()
    page.wait_for_selector("#cart-badge[data-count='1']")
    wait_ready(page)
    page.click("#cart-badge")
    page.wait_for_selector("#cart-panel[open]")
    states["cart panel open"] = axe_violations(page)
    page.keyboard.press("Escape")
    page.wait_for_selector("#cart-panel:not([open])", state="attached")

    socket.server_side.send(json.dumps({"kind": "no_such_kind", "key": "axe-error"}))
    page.wait_for_selector(".chat-error[data-code=unknown_kind]")
    states["error"] = axe_violations(page)

    socket.cut()
    page.wait_for_selector("#chat[data-state=offline]")
    assert page.locator("#connection-banner").is_visible()
    states["offline"] = axe_violations(page)
    send_text(page, "bread")
    page.wait_for_selector(".msg[data-outbox] button[data-action=discard]")
    states["offline, a message pending"] = axe_violations(page)
    socket.restore()
    wait_ready(page)

    assert {name: found for name, found in states.items() if found} == {}


def test_one_polite_announcement_per_finished_reply(held: tuple[Any, HeldSocket]) -> None:
    page, socket = held
    open_chat(page)
    # The log itself stays silent (it would read every token); the announcer speaks politely.
    assert page.get_attribute("#chat-log", "role") == "log"
    assert page.get_attribute("#chat-log", "aria-live") == "off"
    assert page.get_attribute("#chat-announcer", "aria-live") == "polite"
    page.evaluate(WATCH_ANNOUNCER)

    socket.hold_after_first_delta = True
    send_text(page, "milk")
    page.wait_for_selector(".msg--streaming")
    assert page.evaluate("() => window.__announced") == []
    socket.release()
    wait_ready(page)
    page.wait_for_function("() => window.__announced.length >= 1")
    reply = page.locator(".msg[data-role=assistant][data-seq] .msg__text").last.inner_text().strip()
    assert page.evaluate("() => window.__announced") == [reply[:600]]

    # A turn with two texts (the recipe, then how to use the checklist) is still one announcement, at its end.
    before = page.locator(".msg[data-role=assistant][data-seq]").count()
    send_text(page, "borscht")
    wait_ready(page)
    page.wait_for_function("() => window.__announced.length >= 2")
    texts = page.locator(".msg[data-role=assistant][data-seq] .msg__text").all_inner_texts()[before:]
    assert len(texts) == 2
    announced = page.evaluate("() => window.__announced")
    assert len(announced) == 2
    assert announced[1] == "\n\n".join(text.strip() for text in texts)[:600]


def test_keyboard_only_from_typing_to_the_cart(page: Any) -> None:
    open_chat(page)
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED_ID) == "composer-text":
            break
    assert page.evaluate(FOCUSED_ID) == "composer-text"
    page.keyboard.type("milk")
    page.keyboard.press("Enter")
    page.wait_for_selector(".product-card")
    wait_ready(page)
    assert page.evaluate(FOCUSED_ID) == "composer-text"  # focus comes back after the reply

    on_increment = "() => document.activeElement.matches('.product-card button[data-action=increment]')"
    for _ in range(40):
        page.keyboard.press("Shift+Tab")
        if page.evaluate(on_increment):
            break
    assert page.evaluate(on_increment)
    sku = page.evaluate("() => document.activeElement.closest('.product-card').dataset.sku")
    card = page.locator(f".product-card[data-sku='{sku}']")
    quantity = card.locator("input[name=quantity]")
    first = float(quantity.input_value())
    page.keyboard.press("Enter")
    chosen = quantity.input_value()
    assert float(chosen) > first
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.dataset.action") == "add"
    page.keyboard.press("Space")
    page.wait_for_selector("#cart-badge[data-count='1']")  # one cart line
    wait_ready(page)
    assert page.evaluate("() => document.activeElement.dataset.action") == "add"  # focus stays on the card

    # The cart panel opens from the keyboard, traps focus as a modal dialog and gives it back on Escape.
    for _ in range(40):
        page.keyboard.press("Shift+Tab")
        if page.evaluate(FOCUSED_ID) == "cart-badge":
            break
    assert page.evaluate(FOCUSED_ID) == "cart-badge"
    page.keyboard.press("Enter")
    page.wait_for_selector("#cart-panel[open]")
    assert page.evaluate("() => document.getElementById('cart-panel').contains(document.activeElement)")
    assert page.locator(f"#cart-panel .cart-line[data-sku='{sku}']").count() == 1
    page.keyboard.press("Escape")
    page.wait_for_selector("#cart-panel:not([open])", state="attached")
    assert page.evaluate(FOCUSED_ID) == "cart-badge"


def test_focus_returns_to_the_input_after_a_reconnect(held: tuple[Any, HeldSocket]) -> None:
    page, socket = held
    open_chat(page)
    socket.cut()
    page.wait_for_selector("#chat[data-state=offline]")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    socket.restore()
    wait_ready(page)
    assert page.evaluate(FOCUSED_ID) == "composer-text"


def test_reduced_motion_stops_the_streaming_cursor(held: tuple[Any, HeldSocket]) -> None:
    page, socket = held
    page.emulate_media(reduced_motion="reduce")
    open_chat(page)
    socket.hold_after_first_delta = True
    send_text(page, "milk")
    page.wait_for_selector(".msg--streaming")
    cursor = "() => getComputedStyle(document.querySelector('.msg--streaming .msg__tail'), '::after').animationName"
    assert page.evaluate(cursor) == "none"
    assert page.evaluate("() => getComputedStyle(document.getElementById('chat-log')).scrollBehavior") == "auto"
    page.emulate_media(reduced_motion="no-preference")
    assert page.evaluate(cursor) == "blink"
    socket.release()
    wait_ready(page)
