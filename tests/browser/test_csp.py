"""The chat works under its Content-Security-Policy: no inline script or style is needed, none is blocked."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import open_chat, send_text, wait_ready


def test_the_chat_runs_under_its_csp_without_violations(page: Any) -> None:
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    response = page.goto("/?lang=en")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    open_chat(page)
    send_text(page, "milk")
    page.wait_for_selector(".product-card[data-sku]")
    wait_ready(page)
    violations = page.evaluate("() => document.querySelectorAll('style:not([data-allowed])').length")
    assert violations == 0  # htmx injected no inline <style> (includeIndicatorStyles is off)
    assert not [text for text in problems if "Content Security Policy" in text], problems
