"""The store staff's admin in Debian's Chromium: the conversation list fits a 1280 px screen and a phone without
sideways scrolling, and the insights page draws its charts (the drawing made for the screen's width) with axe-core
finding nothing in the light or the dark scheme.

The app server is the suite's (Daphne, its own SQLite file); a superuser and demo chats are added to its database
with the management commands, as an operator would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import AppServer, new_page
from tests.browser.test_accessibility import AXE, RUN_AXE
from tests.processes import ROOT

pytestmark = pytest.mark.browser

PASSWORD = "staff-pass-2026"
#: How far the page or the result table may be wider than the window (a rounding pixel, not a scrollbar).
OVERFLOW = """() => {
  const results = document.querySelector('#changelist .results') || document.documentElement;
  return {page: document.documentElement.scrollWidth - window.innerWidth,
          results: results.scrollWidth - results.clientWidth};
}"""


def manage(server: AppServer, *args: str, **env: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**server.env, **env}, check=True, capture_output=True
    )


@pytest.fixture(scope="module")
def staff_server(app_server: AppServer) -> AppServer:
    manage(app_server, "seed_demo_conversations", "--conversations", "80", "--messages", "800", "--days", "20")
    manage(app_server, "createsuperuser", "--noinput", "--username", "staff", "--email", "staff@example.test",
           DJANGO_SUPERUSER_PASSWORD=PASSWORD)  # fmt: skip
    return app_server


@pytest.fixture(scope="module")
def signed_in(browser: Any, staff_server: AppServer) -> dict[str, Any]:
    """The staff member's session, signed in once through the login form and shared by the module's pages (each
    sign-in is a password hash the server computes on purpose slowly: PBKDF2, a million rounds)."""
    page = new_page(browser, staff_server.url, locale="uk-UA")
    try:
        page.goto("/admin/login/")
        page.fill("#id_username", "staff")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")  # signed in (the login page has #content too)
        state: dict[str, Any] = page.context.storage_state()
    finally:
        page.context.close()
    return state


@pytest.fixture(params=[(1280, 800), (390, 844)], ids=["1280", "390"])
def staff(request: Any, browser: Any, staff_server: AppServer, signed_in: dict[str, Any]) -> Iterator[Any]:
    width, height = request.param
    # bypass_csp: axe is injected inline.
    page = new_page(browser, staff_server.url, locale="uk-UA", bypass_csp=True, storage_state=signed_in)
    page.set_viewport_size({"width": width, "height": height})
    yield page
    shots = os.environ.get("VIZOCHOK_SCREENSHOTS")
    if shots:
        page.screenshot(path=os.path.join(shots, f"admin-{request.node.name}.png"))
    page.context.close()


def test_the_conversation_list_fits_without_scrolling_sideways(staff: Any) -> None:
    staff.goto("/admin/chat/conversation/")
    assert staff.locator("#result_list tbody tr").count() > 10
    assert staff.evaluate(OVERFLOW) == {"page": 0, "results": 0}
    first = staff.locator("#result_list tbody tr").first
    assert first.locator(".field-conversation a").inner_text().strip()  # the first message names the chat


def test_the_insights_draw_the_chart_for_the_screen(staff: Any) -> None:
    staff.goto("/admin/insights/?period=30")
    assert staff.evaluate(OVERFLOW)["page"] == 0
    wide, narrow = staff.locator("#chart-activity .vz-svg-wide"), staff.locator("#chart-activity .vz-svg-narrow")
    shown = narrow if staff.viewport_size["width"] < 640 else wide
    hidden = wide if shown is narrow else narrow
    assert shown.is_visible() and not hidden.is_visible()
    assert shown.locator("rect").count() > 10
    assert staff.locator("#chart-activity table tbody tr").count() == 30


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe's violations in the light and the dark scheme, the page reloaded in each: Django's admin declares its
    dark colours in a media query that Chromium does not re-apply to a page already shown."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed: run `npm ci --prefix tests/browser` (.ci/run does)")
    found: list[dict[str, Any]] = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.reload()
        page.add_script_tag(path=str(AXE))
        found += [{"scheme": scheme, **violation} for violation in page.evaluate(RUN_AXE)]
    return found


# One test per page (each ~7 s of axe at a width): all three in one test took over 15 s on a busy 2-core machine.
@pytest.mark.parametrize("which", ["list", "conversation", "insights"])
def test_the_admin_pages_pass_axe(staff: Any, staff_server: AppServer, which: str) -> None:
    path = {
        "list": "/admin/chat/conversation/",
        "insights": "/admin/insights/?period=30",
    }.get(which) or staff_server_first_conversation(staff)
    staff.goto(path)
    found = axe_violations(staff)
    assert found == [], (path, found)


def staff_server_first_conversation(page: Any) -> str:
    page.goto("/admin/chat/conversation/")
    return str(page.locator("#result_list tbody tr .field-conversation a").first.get_attribute("href"))


def test_the_ranking_tables_show_every_column_and_row(staff: Any) -> None:
    """Top products was 453 px wide in a 395 px box at 1280 px, its quantity cut and rows hidden (issue 25)."""
    staff.goto("/admin/insights/?period=30")
    boxes = staff.evaluate(
        """() => [...document.querySelectorAll('.vz-data-ranking')].map(box => ({
             rows: box.querySelectorAll('tbody tr').length,
             wide: box.scrollWidth - box.clientWidth, tall: box.scrollHeight - box.clientHeight}))"""
    )
    # Top products, the queries without products, and the down-rating reasons (none rated in this data).
    assert len(boxes) == 3 and boxes[0]["rows"] > 5
    assert [(box["wide"], box["tall"]) for box in boxes] == [(0, 0)] * 3
    assert staff.evaluate(OVERFLOW)["page"] == 0


def test_the_now_panel_loads_and_refreshes_itself(staff: Any) -> None:
    """Issue 25: htmx fills the panel from its admin-only endpoint, then polls it (the time it shows moves on)."""
    staff.goto("/admin/insights/?period=today")
    staff.wait_for_selector(".vz-now [data-now=sockets]")
    assert staff.locator(".vz-now [data-now=sockets]").inner_text().endswith("3")
    first = staff.locator(".vz-now time").get_attribute("datetime")
    staff.wait_for_function(
        "(first) => document.querySelector('.vz-now time').getAttribute('datetime') !== first",
        arg=first,
        timeout=12_000,
    )
