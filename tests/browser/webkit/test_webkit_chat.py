"""The core flows of the chat page in WebKit (iOS apps embed the chat in WKWebView, which is WebKit).

Only the page's public hooks (docs/ui-contract.md) are used: the DOM hooks and the ``vizochok:*`` events that
the page also posts to the native bridges. Every wait is on a condition, polled by WebDriverWait.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.webkit.conftest import CuttableProxy

pytestmark = pytest.mark.webkit

TIMEOUT = 20

#: Records the host events (the ones native bridges receive) from now on, in order, in ``window.__hostEvents``.
RECORD_HOST_EVENTS = """
window.__hostEvents = [];
for (const name of ["connect", "disconnect", "cart_changed", "product_click", "error", "checkout"]) {
  window.addEventListener("vizochok:" + name, (event) => window.__hostEvents.push({name, detail: event.detail}));
}
"""


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = TIMEOUT) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def state(driver: Any) -> str | None:
    value = driver.execute_script("const chat = document.getElementById('chat'); return chat && chat.dataset.state;")
    return str(value) if value is not None else None


def wait_ready(driver: Any) -> None:
    wait_for(driver, lambda d: state(d) == "ready")


def count(driver: Any, selector: str) -> int:
    return int(driver.execute_script("return document.querySelectorAll(arguments[0]).length;", selector))


def attribute(driver: Any, selector: str, name: str) -> str | None:
    value = driver.execute_script(
        "const el = document.querySelector(arguments[0]); return el && el.getAttribute(arguments[1]);", selector, name
    )
    return None if value is None else str(value)


def host_events(driver: Any) -> list[dict[str, Any]]:
    return list(driver.execute_script("return window.__hostEvents || [];"))


def open_as_new_shopper(driver: Any, proxy: CuttableProxy) -> None:
    driver.get(proxy.url + "/healthz")  # on the site's origin, so its cookies can be dropped: a new shopper
    driver.delete_all_cookies()
    driver.get(proxy.url + "/?lang=en")
    wait_ready(driver)


def send(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "form#composer textarea[name=text]").send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "form#composer button[type=submit]").click()


def ask_for_milk(driver: Any) -> None:
    """One whole turn: the shopper's bubble, a streamed reply with product cards, then ready again."""
    send(driver, "milk")
    wait_for(driver, lambda d: count(d, ".msg[data-role=user]") == 1)
    wait_for(driver, lambda d: count(d, ".product-card[data-sku]") > 0 and state(d) == "ready")
    assert count(driver, ".msg[data-role=assistant] .msg__text") >= 1


def shot(driver: Any, name: str) -> None:
    folder = os.environ.get("VIZOCHOK_SCREENSHOTS", "")
    if folder:
        os.makedirs(folder, exist_ok=True)
        driver.save_screenshot(os.path.join(folder, f"webkit-{name}.png"))


def test_a_streamed_reply_with_cards_survives_a_reload(webkit: Any, proxy: CuttableProxy) -> None:
    open_as_new_shopper(webkit, proxy)
    ask_for_milk(webkit)
    shot(webkit, "after-search")
    messages, cards = count(webkit, "#chat-log .msg"), count(webkit, ".product-card[data-sku]")
    reply = webkit.execute_script("return document.querySelector('.msg[data-role=assistant] .msg__text').textContent")
    assert reply.strip()

    webkit.refresh()
    # The history is in the first paint, before the socket opens.
    assert (count(webkit, "#chat-log .msg"), count(webkit, ".product-card[data-sku]")) == (messages, cards)
    wait_ready(webkit)
    assert count(webkit, "#chat-log .msg") == messages
    user_text = webkit.execute_script("return document.querySelector('.msg[data-role=user] .msg__text').textContent")
    assert user_text.strip() == "milk"


def test_add_updates_the_badge_and_tells_the_host(webkit: Any, proxy: CuttableProxy) -> None:
    from selenium.webdriver.common.by import By

    open_as_new_shopper(webkit, proxy)
    assert attribute(webkit, "#cart-badge", "data-count") == "0"
    ask_for_milk(webkit)
    webkit.execute_script(RECORD_HOST_EVENTS)
    card = webkit.find_element(By.CSS_SELECTOR, ".product-card[data-sku]")
    sku = card.get_attribute("data-sku")
    card.find_element(By.CSS_SELECTOR, "button[data-action=add]").click()
    wait_for(webkit, lambda d: attribute(d, "#cart-badge", "data-count") == "1")
    wait_ready(webkit)
    events = host_events(webkit)
    clicks = [event["detail"] for event in events if event["name"] == "product_click"]
    assert clicks == [{"sku": sku, "quantity": 1}]
    changes = [event["detail"] for event in events if event["name"] == "cart_changed"]
    assert len(changes) == 1
    assert [item["sku"] for item in changes[0]["items"]] == [sku]

    webkit.refresh()
    wait_ready(webkit)
    assert attribute(webkit, "#cart-badge", "data-count") == "1"


def test_a_dropped_socket_reconnects_and_the_chat_goes_on(webkit: Any, proxy: CuttableProxy) -> None:
    open_as_new_shopper(webkit, proxy)
    webkit.execute_script(RECORD_HOST_EVENTS)
    assert proxy.cut() >= 1  # the page's socket (and any idle HTTP connection) drops without a closing handshake

    def reconnected(driver: Any) -> bool:
        names = [event["name"] for event in host_events(driver)]
        return names[:1] == ["disconnect"] and "connect" in names

    wait_for(webkit, reconnected)
    disconnect = host_events(webkit)[0]["detail"]
    assert disconnect["code"] == 1006
    wait_ready(webkit)
    ask_for_milk(webkit)  # the new socket carries a whole turn
    assert count(webkit, ".msg[data-role=user]") == 1


def test_a_quantity_the_unit_does_not_allow_is_explained_on_the_card_and_not_sent(
    webkit: Any, proxy: CuttableProxy
) -> None:
    from selenium.webdriver.common.by import By

    open_as_new_shopper(webkit, proxy)
    ask_for_milk(webkit)
    webkit.execute_script(RECORD_HOST_EVENTS)
    card = webkit.find_element(By.CSS_SELECTOR, '.product-card[data-unit="pcs"]')
    quantity = card.find_element(By.CSS_SELECTOR, "input[name=quantity]")
    quantity.clear()
    quantity.send_keys("1.5")  # not a whole piece: the page says so on the card, in the shopper's language
    card.find_element(By.CSS_SELECTOR, "button[data-action=add]").click()
    problem = card.find_element(By.CSS_SELECTOR, ".product-card__problem")
    wait_for(webkit, lambda d: problem.is_displayed() and problem.text.strip())
    assert quantity.get_attribute("aria-invalid") == "true"
    assert count(webkit, ".chat-error") == 0  # nothing reached the server
    assert [event for event in host_events(webkit) if event["name"] == "product_click"] == []
    assert attribute(webkit, "#cart-badge", "data-count") == "0"
