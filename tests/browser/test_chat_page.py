"""The chat page in Debian's Chromium: streaming, history, shopping interactions, hostile data."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from typing import Any

import pytest

from tests.browser.conftest import AppServer, ConsoleErrors, new_page, open_chat, send_text, wait_ready

pytestmark = pytest.mark.browser

ARTIFACTS = os.environ.get("VIZOCHOK_SCREENSHOTS", "")


def shot(page: Any, name: str) -> None:
    if ARTIFACTS:
        os.makedirs(ARTIFACTS, exist_ok=True)
        page.screenshot(path=os.path.join(ARTIFACTS, f"{name}.png"))


def test_a_reply_streams_then_survives_a_reload(page: Any) -> None:
    open_chat(page)
    send_text(page, "milk")
    page.wait_for_selector('.msg[data-role=user] >> text="milk"')
    page.wait_for_selector("#chat[data-state=busy]")
    # The bubble grows while the reply streams, then is replaced by the final rendered one.
    page.wait_for_selector(".msg--streaming")
    wait_ready(page)
    page.wait_for_selector(".product-card")
    assert page.locator(".msg--streaming").count() == 0
    assert page.locator("#chat-status").inner_text() == ""
    final = page.locator(".msg[data-role=assistant]").first.inner_text()
    assert final.strip()
    shot(page, "after-search")

    before = page.locator("#chat-log .msg").count()
    page.reload()
    # First paint already has the history: no socket needed for it.
    assert page.locator("#chat-log .msg").count() == before
    assert page.locator(".msg[data-role=assistant]").first.inner_text() == final
    wait_ready(page)
    assert page.locator("#chat-log .msg").count() == before


def test_add_from_a_card_updates_the_badge(page: Any) -> None:
    open_chat(page)
    send_text(page, "milk")
    wait_ready(page)
    card = page.locator(".product-card").first
    card.locator("button[data-action=increment]").click()
    assert card.locator("input[name=quantity]").input_value() == "2"
    events = page.evaluate_handle(
        "() => { const seen = [];"
        " window.addEventListener('vizochok:cart_changed', e => seen.push(e.detail)); return seen; }"
    )
    card.locator("button[data-action=add]").click()
    page.wait_for_selector("#cart-badge[data-count='1']")  # one line, of two pieces
    wait_ready(page)
    assert page.locator("#cart-panel .cart-line__input").first.input_value() == "2"
    assert card.get_attribute("data-pending") is None
    detail = events.evaluate("seen => seen[0]")
    assert detail["action"] == "item_selected"
    assert detail["items"][0]["sku"] == card.get_attribute("data-sku")


def test_stepper_honours_pieces_and_weighed_goods(page: Any) -> None:
    open_chat(page)
    send_text(page, "apples")
    wait_ready(page)
    weighed = page.locator(".product-card[data-unit=kg]").first
    assert weighed.get_attribute("data-step") == "0.1"
    minimum = weighed.get_attribute("data-min")
    weighed.locator("button[data-action=increment]").click()
    weighed.locator("button[data-action=increment]").click()
    value = float(weighed.locator("input[name=quantity]").input_value())
    assert value == pytest.approx(float(minimum) + 0.2)
    assert weighed.locator(".stepper__unit").inner_text() == "kg"
    for _ in range(5):
        weighed.locator("button[data-action=decrement]").click(force=True)
    assert float(weighed.locator("input[name=quantity]").input_value()) == pytest.approx(float(minimum))
    assert weighed.locator("button[data-action=decrement]").is_disabled()


def test_quick_reply_becomes_the_shoppers_bubble(page: Any) -> None:
    open_chat(page)
    send_text(page, "milk")
    wait_ready(page)
    pill = page.locator(".quick-reply").first
    label = pill.inner_text()
    pill.click()
    page.wait_for_selector(f'.msg[data-role=user] >> text="{label}"')
    wait_ready(page)
    # Used pills go away; the new turn may offer new ones.
    assert page.locator(f'.quick-reply[data-value="{pill.get_attribute("data-value")}"]').count() <= 1


def test_checklist_submit_fills_the_cart_and_disables_the_list(page: Any) -> None:
    open_chat(page)
    send_text(page, "borscht")
    wait_ready(page)
    checklist = page.locator("form.checklist").first
    boxes = checklist.locator("input[type=checkbox][name=item]")
    assert boxes.count() >= 3
    checklist.locator("button[data-check=none]").click()
    boxes.nth(0).check()
    boxes.nth(1).check()
    checklist.locator("button[type=submit]").click()
    page.wait_for_selector("#cart-badge:not([data-count='0'])")
    wait_ready(page)
    assert page.locator("form.checklist fieldset[disabled]").count() == 1


def test_cart_panel_removes_an_item(page: Any) -> None:
    open_chat(page)
    send_text(page, "milk")
    wait_ready(page)
    page.locator(".product-card button[data-action=add]").first.click()
    page.wait_for_selector("#cart-badge[data-count='1']")
    wait_ready(page)
    page.click("#cart-badge")
    panel = page.locator("#cart-panel")
    assert panel.is_visible()
    shot(page, "cart-panel")
    panel.locator("button[data-action=remove]").first.click()
    page.wait_for_selector("#cart-badge[data-count='0']")
    wait_ready(page)
    assert "cart-line" not in panel.inner_html()


def test_hostile_product_data_renders_inert(page: Any, app_server: AppServer, console_errors: ConsoleErrors) -> None:
    # Its hostile image URLs (an http:// one on a port browsers refuse) fail to load: that is the browser, not the page.
    console_errors.allow("Failed to load resource")
    open_chat(page)
    send_text(page, "milk")
    wait_ready(page)
    conversation_id = page.locator("#chat").get_attribute("ws-connect").split("c=")[1].split("&")[0]
    payload = (
        '{"type":"product_cards","items":['
        '{"sku":"gone-1","name":"Gone","price":2,"image_url":"https://127.0.0.1:9/x.png"},'
        '{"sku":"evil-1","name":"<script>window.pwned=1</script><img src=x '
        'onerror=window.pwned=2>","price":1,"image_url":"javascript:alert(1)","brand":"<b>x</b>"}]}'
    )
    with sqlite3.connect(app_server.db) as db:
        (pk, seq) = db.execute(
            "select id, last_seq from chat_conversation where public_id = ?", (conversation_id.replace("-", ""),)
        ).fetchone()
        db.execute("update chat_conversation set last_seq = ? where id = ?", (seq + 1, pk))
        db.execute(
            "insert into chat_message"
            " (conversation_id, seq, role, kind, text, payload, complete, client_key, created_at)"
            " values (?, ?, 'assistant', 'product_cards', '', ?, 1, '', datetime('now'))",
            (pk, seq + 1, payload),
        )
    page.reload()
    card = page.locator('.product-card[data-sku="evil-1"]')
    card.wait_for()
    assert "<script>" in card.locator(".product-card__name").inner_text()
    assert card.locator("img").count() == 0  # a javascript: URL never reaches src
    assert page.evaluate("() => window.pwned") is None
    # An image that cannot load gives way to the placeholder instead of a broken icon.
    page.wait_for_selector('.product-card[data-sku="gone-1"] .product-card__placeholder')
    page.wait_for_function("() => !document.querySelector('.product-card[data-sku=\"gone-1\"] img')")
    assert page.locator('.product-card[data-sku="milk-001"] img').count() == 1  # good images stay


def test_a_refused_send_gives_the_text_back(page: Any) -> None:
    # The page itself never sends more than the limit (test_phone.py); here the frame grows on its way, so the relay
    # refuses it before anything is stored, and the page must give the shopper's words back.
    def route(socket: Any) -> None:
        server = socket.connect_to_server()

        def to_server(frame: str | bytes) -> None:
            data = json.loads(frame)
            if data.get("kind") == "message":
                data["text"] = "x" * 2001
            server.send(json.dumps(data))

        socket.on_message(to_server)
        server.on_message(socket.send)

    page.route_web_socket(re.compile(r".*/ws/chat/.*"), route)
    open_chat(page)
    send_text(page, "milk, please")
    page.wait_for_selector('.chat-error[data-code="message_too_long"]')
    wait_ready(page)
    assert page.locator("#composer textarea[name=text]").input_value() == "milk, please"
    assert page.locator(".msg[data-role=user]").count() == 0


def test_cart_quantity_is_edited_with_the_languages_decimal_mark(browser: Any, app_server: AppServer) -> None:
    page = new_page(browser, app_server.url, locale="uk-UA")
    try:
        open_chat(page, "/?lang=uk")
        send_text(page, "яблука")
        wait_ready(page)
        card = page.locator(".product-card[data-unit=kg]").first
        card.locator("button[data-action=add]").click()
        wait_ready(page)
        page.wait_for_selector("#cart-badge:not([data-count='0'])")
        page.click("#cart-badge")
        field = page.locator("#cart-panel .cart-line__input").first
        assert "," in field.input_value() or field.input_value().isdigit()
        field.fill("0,3")
        field.press("Enter")  # a typed quantity goes on Enter (or when the field is left)
        page.wait_for_selector(".cart-note[data-action=quantity_updated]")
        wait_ready(page)
        assert page.get_attribute("#cart-badge", "data-count") == "1"  # still one line
        assert page.locator("#cart-panel .cart-line__input").first.input_value() == "0,3"
    finally:
        page.context.close()


def test_a_typed_quantity_is_added(page: Any) -> None:
    open_chat(page)
    send_text(page, "milk")
    wait_ready(page)
    card = page.locator('.product-card[data-unit="pcs"]').first
    card.locator("input[name=quantity]").fill("3")
    assert card.locator("button[data-action=decrement]").is_enabled()
    card.locator("button[data-action=add]").click()
    page.wait_for_selector("#cart-badge[data-count='1']")
    wait_ready(page)
    assert page.locator("#cart-panel .cart-line__input").first.input_value() == "3"
    card.locator("input[name=quantity]").fill("1.5")  # not a whole piece: said on the card, nothing sent
    card.locator("button[data-action=add]").click()
    assert card.locator(".product-card__problem").is_visible()
    assert page.locator("#cart-panel .cart-line__input").first.input_value() == "3"
    assert page.locator(".msg--action").count() == 1


def test_a_refused_checklist_submit_can_be_corrected(page: Any) -> None:
    open_chat(page)
    send_text(page, "borscht")
    wait_ready(page)
    checklist = page.locator("form.checklist").first
    checklist.locator("button[data-check=none]").click()
    checklist.locator("button[type=submit]").click()  # nothing chosen: refused, nothing sent
    page.wait_for_selector('.chat-error[data-code="nothing_selected"]')
    wait_ready(page)
    assert checklist.locator("fieldset").is_enabled()
    checklist.locator("input[type=checkbox][name=item]").first.check()
    checklist.locator("button[type=submit]").click()
    page.wait_for_selector("#cart-badge:not([data-count='0'])")
    wait_ready(page)
    assert page.locator("form.checklist fieldset[disabled]").count() == 1


@pytest.fixture(scope="module")
def paged_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two cards per message, so the sandbox's search results need "Show more"."""
    server = AppServer(tmp_path_factory.mktemp("paged"), VIZOCHOK_CARDS_PER_MESSAGE="2").start()
    yield server
    server.stop()


def test_show_more_brings_the_next_cards_and_they_work(browser: Any, paged_server: AppServer) -> None:
    page = new_page(browser, paged_server.url)
    try:
        open_chat(page)
        send_text(page, "milk")
        page.wait_for_selector(".cards .product-card")  # the cards (ready alone may be the state before the send)
        wait_ready(page)
        cards = page.locator(".cards").last
        assert cards.locator(".product-card").count() == 2
        shot(page, "cards-show-more")
        more = cards.locator(".cards__more-btn")
        more.click()
        page.wait_for_function("() => document.querySelectorAll('.cards:last-of-type .product-card').length > 2")
        fetched = cards.locator(".product-card").nth(2)
        add = fetched.locator("button[data-action=add]")
        page.wait_for_function("() => document.activeElement && document.activeElement.closest('.product-card')")
        assert add.evaluate("button => button === document.activeElement")  # keyboard focus stays in the list
        add.click()  # a fetched card sends over the socket like the others
        page.wait_for_selector("#cart-badge[data-count='1']")
        wait_ready(page)
        assert page.locator("#chat-log .chat-error").count() == 0
        page.reload()  # the first paint pages the same way
        wait_ready(page)
        assert page.locator(".cards").last.locator(".product-card").count() == 2
    finally:
        page.context.close()


#: Holds every frame the server sends until ``window.__release()``: a catch-up that is slow to come (a busy server,
#: a phone network), so a test can act between the page's catch-up request (``window.__opened``) and its answer.
HOLD_FRAMES = """
(() => {
  const held = [];
  window.__holding = true;
  window.__opened = false;
  const Native = window.WebSocket;
  function Opening(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    const send = ws.send.bind(ws);
    ws.send = (data) => { window.__opened = true; return send(data); }; // the page's first frame: its catch-up
    return ws;
  }
  Opening.prototype = Native.prototype;
  Object.assign(Opening, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  window.WebSocket = Opening;
  window.__release = () => {
    window.__holding = false;
    held.splice(0).forEach(([fn, evt]) => fn.call(evt.target, evt));
  };
  const add = Native.prototype.addEventListener;
  Native.prototype.addEventListener = function (type, listener, options) {
    if (type !== "message") return add.call(this, type, listener, options);
    const wrapped = (evt) => (window.__holding ? held.push([listener, evt]) : listener.call(this, evt));
    (this.__wrapped = this.__wrapped || new Map()).set(listener, wrapped);
    return add.call(this, type, wrapped, options);
  };
  const remove = Native.prototype.removeEventListener;
  Native.prototype.removeEventListener = function (type, listener, options) {
    const wrapped = this.__wrapped && this.__wrapped.get(listener);
    return remove.call(this, type, wrapped || listener, options);
  };
})();
"""

#: Every #chat[data-state] from now on, with whether the shopper's reply was stored by then.
RECORD_STATES = """
() => {
  const chat = document.getElementById("chat");
  window.__states = [];
  new MutationObserver(() => window.__states.push([
    chat.dataset.state, !!document.querySelector(".msg[data-role=assistant][data-kind=text][data-seq]"),
  ])).observe(chat, { attributes: true, attributeFilter: ["data-state"] });
}
"""


def test_a_send_before_the_catch_up_ends_is_busy_until_its_reply(page: Any) -> None:
    """A message sent while the socket's catch-up is on its way: the catch-up's "ready" is from before the send, so
    the page stays busy until its own turn ends (CI saw "ready" mid-reply, and a test read a streaming bubble)."""
    page.add_init_script(HOLD_FRAMES)
    page.goto("/?lang=en")
    page.wait_for_function("() => window.__opened")
    page.evaluate(RECORD_STATES)
    send_text(page, "pancakes")
    page.evaluate("() => window.__release()")
    page.wait_for_selector(".msg[data-role=assistant][data-kind=text][data-seq]")
    wait_ready(page)
    states = page.evaluate("() => window.__states")
    early_ready = [state for state, replied in states if state == "ready" and not replied]
    assert not early_ready, states
    assert page.locator(".msg[data-role=user][data-kind=text][data-seq]").count() == 1
