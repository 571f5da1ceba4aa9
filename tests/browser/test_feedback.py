"""Rating a reply (issue 25) in Debian's Chromium: the buttons of the UI contract, a change shown in a second tab,
the reasons after "not helpful", the polite announcement, the host event, a reload, at 390×844 and 360×640."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page, open_chat, send_text, wait_ready

pytestmark = pytest.mark.browser

UP = ".msg[data-role=assistant] button[data-action=rate][data-value=up]"
DOWN = ".msg[data-role=assistant] button[data-action=rate][data-value=down]"


def shot(page: Any, name: str) -> None:
    folder = os.environ.get("VIZOCHOK_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"{name}.png"))


@pytest.mark.parametrize("size", [(390, 844), (360, 640)], ids=["390x844", "360x640"])
def test_rating_a_reply(browser: Any, app_server: AppServer, size: tuple[int, int]) -> None:
    page = new_page(browser, app_server.url)
    page.set_viewport_size({"width": size[0], "height": size[1]})
    open_chat(page)
    send_text(page, "pancakes")
    wait_ready(page)
    reply = page.locator(".msg[data-role=assistant][data-kind=text]").first
    seq = reply.get_attribute("data-seq")
    up, down = (
        reply.locator("button[data-action=rate][data-value=up]"),
        reply.locator("button[data-action=rate][data-value=down]"),
    )
    assert up.get_attribute("aria-pressed") == "false" and down.get_attribute("aria-pressed") == "false"
    assert up.is_visible() and down.is_visible()
    box = up.bounding_box()
    assert box is not None and box["width"] >= 24 and box["height"] >= 24  # a finger's target
    events = page.evaluate_handle(
        "() => { const seen = [];"
        " window.addEventListener('vizochok:feedback', e => seen.push(e.detail)); return seen; }"
    )

    other = new_page(browser, app_server.url)  # a second tab of the same shopper
    other.context.add_cookies(page.context.cookies())
    other.goto(page.url)
    wait_ready(other)

    up.click()
    page.wait_for_selector(f'#msg-{seq} button[data-action=rate][data-value=up][aria-pressed="true"]')
    other.wait_for_selector(f'#msg-{seq} button[data-action=rate][data-value=up][aria-pressed="true"]')
    assert page.evaluate("() => document.activeElement.dataset.value") == "up"  # focus stays on the control
    page.wait_for_function("() => document.getElementById('chat-announcer').textContent.length > 0")
    assert "helpful" in page.locator("#chat-announcer").inner_text()
    assert events.json_value() == [{"seq": int(seq or 0), "value": "up", "reason": None}]
    shot(page, f"rating-up-{size[0]}")

    page.locator(f"#msg-{seq} button[data-action=rate][data-value=down]").click()  # the other value changes it
    page.wait_for_selector(f'#msg-{seq} button[data-action=rate][data-value=down][aria-pressed="true"]')
    assert page.locator(f"#msg-{seq} button[data-action=rate][data-value=up]").get_attribute("aria-pressed") == "false"
    reasons = page.locator(f"#msg-{seq} button[data-action=rate-reason]")
    assert [reasons.nth(i).get_attribute("data-value") for i in range(reasons.count())] == [
        "wrong_products",
        "wrong_price",
        "not_understood",
        "other",
    ]
    page.locator(f"#msg-{seq} textarea[name=feedback_text]").fill("Хотів без цукру")
    page.locator(f"#msg-{seq} button[data-action=rate-reason][data-value=wrong_products]").click()
    page.wait_for_selector(
        f'#msg-{seq} button[data-action=rate-reason][data-value=wrong_products][aria-pressed="true"]'
    )
    other.wait_for_selector(
        f'#msg-{seq} button[data-action=rate-reason][data-value=wrong_products][aria-pressed="true"]'
    )
    assert events.json_value()[-1] == {"seq": int(seq or 0), "value": "down", "reason": "wrong_products"}
    page.locator(f"#msg-{seq}").scroll_into_view_if_needed()
    shot(page, f"rating-reasons-{size[0]}")
    assert page.evaluate("() => document.documentElement.scrollWidth - innerWidth") == 0

    page.reload()
    wait_ready(page)
    assert page.locator(f"#msg-{seq} button[data-action=rate][data-value=down]").get_attribute("aria-pressed") == "true"
    assert page.locator(f"#msg-{seq} textarea[name=feedback_text]").input_value() == "Хотів без цукру"

    page.locator(f"#msg-{seq} button[data-action=rate][data-value=down]").click()  # the same again clears it
    page.wait_for_selector(f'#msg-{seq} button[data-action=rate][data-value=down][aria-pressed="false"]')
    assert page.locator(f"#msg-{seq} button[data-action=rate-reason]").count() == 0
    other.wait_for_selector(f'#msg-{seq} button[data-action=rate][data-value=down][aria-pressed="false"]')
    other.context.close()
    page.context.close()
