"""The chat on a phone against an upstream of its own (issue 16): Stop, Retry after the upstream died, and the cart
panel with its checkout, at 390x844 and 360x640.

Split from ``test_phone.py`` (whose helpers it shares) so that the suite's workers can run the two files side by
side: together they were the suite's longest file, which the run waited on at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page, open_chat, send_text, wait_ready
from tests.browser.test_accessibility import axe_violations
from tests.browser.test_phone import PHONES, shot, within_viewport
from tests.browser.test_resilience import SandboxProcess
from tests.processes import free_port

pytestmark = pytest.mark.browser


# --- Stop and Retry --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppServer, SandboxProcess]]:
    """The app with the sandbox as a process of its own (paced, so a reply takes seconds; killable for real)."""
    tmp = tmp_path_factory.mktemp("upstream")
    port = free_port()
    sandbox = SandboxProcess(port, tmp / "sandbox.log").spawn()  # boots while the app does
    # The development setup: the checkout page below is the app's own http: address, which only development allows.
    app = AppServer(
        tmp, VIZOCHOK_WS_URL=f"ws://127.0.0.1:{port}/api/v1/ws/chat", VIZOCHOK_OPEN_RETRIES="1", DJANGO_DEBUG="1"
    )
    app.env["VIZOCHOK_CHECKOUT_URL"] = f"{app.url}/shop/checkout/"  # the store's own page (a 404 here: it is not ours)
    app.start()
    sandbox.wait()
    yield app, sandbox
    app.stop()
    if sandbox.process is not None and sandbox.process.poll() is None:
        sandbox.kill()


@pytest.fixture(params=PHONES)
def upstream_phone(
    request: pytest.FixtureRequest, browser: Any, own_upstream: tuple[AppServer, SandboxProcess]
) -> Iterator[tuple[Any, SandboxProcess]]:
    app, sandbox = own_upstream
    page = new_page(browser, app.url, locale="uk-UA", bypass_csp=True)  # bypass: axe is injected inline
    page.set_viewport_size(request.param)
    yield page, sandbox
    page.context.close()


def test_stop_mid_reply_then_the_next_turn_works(upstream_phone: tuple[Any, SandboxProcess]) -> None:
    page, _sandbox = upstream_phone
    open_chat(page, "/?lang=uk")
    stop = page.locator("button[data-action=stop]")
    assert stop.is_hidden()
    send_text(page, "борщ")  # a long recipe: seconds of streaming at this pace
    page.wait_for_function("() => (document.querySelector('.msg--streaming .msg__tail') || {}).textContent")
    assert stop.is_visible() and page.locator("#composer button[type=submit]").is_hidden()
    width = page.viewport_size["width"]
    shot(page, f"stop-{width}-streaming")
    stop.click()
    page.wait_for_selector("#chat[data-state=ready]", timeout=1500)  # within a second (and a little for the page)
    stopped = page.locator(".msg[data-role=assistant][data-stopped]")
    assert stopped.count() == 1 and page.locator(".msg--streaming").count() == 0
    assert "Зупинено" in stopped.inner_text() and stopped.locator(".msg__text").inner_text().strip()
    assert stopped.locator("button[data-action=retry]").is_visible()
    shot(page, f"stop-{width}-stopped")
    assert axe_violations(page) == []
    kept = stopped.locator(".msg__text").inner_text()

    send_text(page, "молоко")
    page.wait_for_selector(".product-card")
    wait_ready(page)
    assert stopped.locator("button[data-action=retry]").is_hidden()  # Retry belongs to the last turn only
    page.reload()
    wait_ready(page)
    assert page.locator(".msg[data-role=assistant][data-stopped] .msg__text").inner_text() == kept


def test_retry_after_a_failed_turn(upstream_phone: tuple[Any, SandboxProcess]) -> None:
    page, sandbox = upstream_phone
    open_chat(page, "/?lang=uk")
    sandbox.kill()
    try:
        send_text(page, "молоко")
        error = page.locator(".chat-error[data-code=upstream_unavailable]")
        error.wait_for()
        wait_ready(page)
    finally:
        sandbox.start()
    retry = error.locator("button[data-action=retry]")
    assert retry.is_visible()
    shot(page, f"retry-{page.viewport_size['width']}-failed")
    assert axe_violations(page) == []
    retry.click()
    page.wait_for_selector(".product-card")
    wait_ready(page)
    assert page.locator(".msg[data-role=user] .msg__text").all_inner_texts() == ["молоко", "молоко"]
    assert retry.is_hidden()


# --- a cart to act on ----------------------------------------------------------------------------------------------


def test_the_cart_panel_has_subtotals_checkout_and_undo(upstream_phone: tuple[Any, SandboxProcess]) -> None:
    page, _sandbox = upstream_phone
    width = page.viewport_size["width"]
    open_chat(page, "/?lang=uk")
    send_text(page, "молоко")
    wait_ready(page)
    first = page.locator('.product-card[data-sku="milk-001"]')  # 36,50 ₴ on promo
    first.locator("button[data-action=increment]").click()
    first.locator("button[data-action=add]").click()
    page.wait_for_selector("#cart-badge[data-count='1']")
    wait_ready(page)
    page.locator('.product-card[data-sku="milk-002"] button[data-action=add]').click()
    page.wait_for_selector("#cart-badge[data-count='2']")
    wait_ready(page)

    page.click("#cart-badge")
    panel = page.locator("#cart-panel")
    page.wait_for_selector("#cart-panel[open]")
    line = panel.locator('.cart-line[data-sku="milk-001"]')
    assert line.locator(".cart-line__subtotal strong").inner_text().replace(" ", "\u00a0") == "73,00\u00a0₴"
    assert line.locator("input[name=quantity]").input_value() == "2"  # the stepper says the quantity
    checkout = panel.locator("[data-action=checkout]")
    assert checkout.is_visible() and within_viewport(page, "#cart-panel [data-action=checkout]")
    assert checkout.bounding_box()["y"] + checkout.bounding_box()["height"] > page.viewport_size["height"] - 90
    shot(page, f"cart-{width}")

    # A host takes checkout over: it gets the cart, and the page stays.
    page.evaluate(
        "() => window.addEventListener('vizochok:checkout',"
        " (e) => { window.__checkout = e.detail; e.preventDefault(); }, { once: true })"
    )
    address = page.url
    checkout.click()
    detail = page.evaluate("() => window.__checkout")
    assert sorted(item["sku"] for item in detail["items"]) == ["milk-001", "milk-002"]
    assert float(detail["total"]) == 73.0 + 49.9
    assert page.url == address

    panel.locator('.cart-line[data-sku="milk-002"] button[data-action=remove]').click()
    page.wait_for_selector("#cart-badge[data-count='1']")
    wait_ready(page)
    undo = panel.locator("button[data-action=undo]")
    assert undo.is_visible() and "прибрано" in panel.locator(".cart-panel__undo").inner_text()
    shot(page, f"cart-{width}-undo")
    assert axe_violations(page) == []  # the cart with subtotals, checkout and undo
    undo.click()
    page.wait_for_selector("#cart-badge[data-count='2']")
    wait_ready(page)
    assert panel.locator('.cart-line[data-sku="milk-002"] .cart-line__input').input_value() == "1"
    assert undo.count() == 0

    # Nobody takes it over: the store's checkout opens in the top window.
    checkout.click()
    page.wait_for_url("**/shop/checkout/")
