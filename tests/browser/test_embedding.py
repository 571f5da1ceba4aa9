"""Embedding in the real browser: the demo storefront frames the chat cross-site, entry tokens bind a session.

The storefront is served as ``http://localhost:PORT`` and the chat as ``http://127.0.0.1:PORT``: two sites, so
the iframe is a real third party (its cookies must be ``SameSite=None; Secure; Partitioned``, its events reach the
parent only because that origin is configured, and the CSP must list it in ``frame-ancestors``).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat.web.embed import mint_token
from tests.browser.conftest import AppServer, new_page, send_text, wait_ready

SECRET = secrets.token_urlsafe(32)  # generated per run: no secret in the repository


@pytest.fixture(scope="module")
def embed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    # The development setup: the demo storefront is served only there.
    server = AppServer(
        tmp_path_factory.mktemp("embed"), VIZOCHOK_EMBED_SECRET=SECRET, VIZOCHOK_SANDBOX_PACE="0", DJANGO_DEBUG="1"
    )
    storefront = f"http://localhost:{server.port}"
    server.env.update(
        VIZOCHOK_FRAME_ANCESTORS=f"'self' {storefront}",
        VIZOCHOK_EMBED_PARENT_ORIGINS=storefront,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def shop_page(browser: Any, embed_server: AppServer) -> Iterator[Any]:
    page = new_page(browser, f"http://localhost:{embed_server.port}")
    yield page
    page.context.close()


@pytest.fixture
def chat_page(browser: Any, embed_server: AppServer) -> Iterator[Any]:
    page = new_page(browser, embed_server.url)
    yield page
    page.context.close()


def _token(**claims: Any) -> str:
    return mint_token({"exp": int(time.time()) + 120, "jti": uuid.uuid4().hex, **claims}, SECRET)


def _tampered(token: str) -> str:
    """The token with its signature's first character changed. Not its last: base64url ignores that one's two low
    bits, so a changed tail can decode to the same signature (one run in about a thousand), and the token, minted at
    collection, was then refused only as expired."""
    payload, signature = token.split(".")
    return f"{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"


def _conversations(server: AppServer) -> list[tuple[str, str, str]]:
    with sqlite3.connect(server.db) as db:
        return db.execute("SELECT public_id, user_id, store_id FROM chat_conversation ORDER BY id").fetchall()


def _shot(page: Any, name: str) -> None:
    folder = os.environ.get("VIZOCHOK_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def test_demo_storefront_frames_the_chat_and_hears_cart_changed(shop_page: Any, embed_server: AppServer) -> None:
    shop_page.goto(f"/demo/?lang=en&chat_origin={embed_server.url}")
    button = shop_page.locator(".vizochok-embed__button")
    assert button.get_attribute("aria-expanded") == "false"
    _shot(shop_page, "embed-closed")
    # The storefront's own button opens the panel and sends a host command through postMessage.
    shop_page.click("#demo-ask-milk")
    chat = shop_page.frame_locator(".vizochok-embed__frame")
    card = chat.locator(".product-card").first
    card.wait_for()
    chat.locator("#chat[data-state=ready]").wait_for()
    _shot(shop_page, "embed-open")
    assert chat.locator("h1").inner_text() == "Помічник Візочок"  # the widget options reached the page
    assert chat.locator("#composer-text").get_attribute("placeholder") == "Що купуємо сьогодні?"
    assert shop_page.locator("#demo-events li[data-type=connect]").count() >= 1

    card.locator("button[data-action=add]").click()
    shop_page.wait_for_selector("#demo-cart[data-count='1']")  # vizochok:cart_changed crossed the frame
    event = shop_page.locator("#demo-events li[data-type=cart_changed]").first.inner_text()
    assert card.get_attribute("data-sku") in event
    # The demo signed its shopper with the entry token: the conversation belongs to that user and store.
    assert ("ext-demo-shopper", "sandbox-store") in [(user, store) for _pk, user, store in _conversations(embed_server)]


def test_a_token_binds_the_session_and_leaves_the_url(chat_page: Any, embed_server: AppServer) -> None:
    chat_page.goto(f"/?token={_token(user_id='shopper-42', store_id='store-7', lang='en')}")
    wait_ready(chat_page)
    assert "token=" not in chat_page.url
    public_id = chat_page.url.split("c=")[1].split("&")[0]
    assert chat_page.locator("html").get_attribute("lang") == "en"
    send_text(chat_page, "milk")
    chat_page.locator(".product-card").first.wait_for()
    wait_ready(chat_page)
    assert (public_id.replace("-", ""), "ext-shopper-42", "store-7") in _conversations(embed_server)  # SQLite: hex

    # The host may reopen a given conversation of that shopper; somebody else's gives a fresh one.
    chat_page.goto(f"/?token={_token(user_id='shopper-42', store_id='store-7', conversation_id=public_id)}")
    wait_ready(chat_page)
    assert f"c={public_id}" in chat_page.url
    assert chat_page.locator(".msg[data-role=user]").count() == 1
    chat_page.goto(f"/?token={_token(user_id='shopper-43', store_id='store-7', conversation_id=public_id)}")
    wait_ready(chat_page)
    assert f"c={public_id}" not in chat_page.url
    assert chat_page.locator(".msg[data-role=user]").count() == 0


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (_tampered(_token(user_id="shopper-42", store_id="store-7")), "invalid"),
        (
            mint_token(
                {"user_id": "shopper-42", "store_id": "store-7", "exp": int(time.time()) + 60, "jti": "j" * 32},
                "not-our-secret",
            ),
            "invalid",
        ),
        (_token(user_id="shopper-42", store_id="store-7", exp=int(time.time()) - 600), "expired"),
        ("garbage", "invalid"),
    ],
)
def test_a_refused_token_gets_a_clear_page_and_no_session(chat_page: Any, token: str, reason: str) -> None:
    response = chat_page.goto(f"/?token={token}&lang=en")
    assert response.status == 403
    assert chat_page.locator(f"#token-error[data-reason={reason}]").is_visible()
    assert chat_page.locator("h1").inner_text().startswith("This chat link")
    assert not [cookie for cookie in chat_page.context.cookies() if cookie["name"] == "sessionid"]


def test_headers_frame_ancestors_and_partitioned_cookies(chat_page: Any, embed_server: AppServer) -> None:
    storefront = f"http://localhost:{embed_server.port}"
    # Before any embed visit: other pages may be framed only by this site, and keep Lax cookies.
    plain = chat_page.request.get("/admin/login/")
    assert "frame-ancestors 'self';" in plain.headers["content-security-policy"] + ";"
    assert storefront not in plain.headers["content-security-policy"]
    assert plain.headers["x-frame-options"] == "DENY"
    assert "SameSite=Lax" in plain.headers["set-cookie"] and "Partitioned" not in plain.headers["set-cookie"]

    framed = chat_page.request.get("/?embed=1")
    assert f"frame-ancestors 'self' {storefront}" in framed.headers["content-security-policy"]
    assert "x-frame-options" not in framed.headers
    cookie = framed.headers["set-cookie"]
    assert "SameSite=None" in cookie and "Secure" in cookie and "Partitioned" in cookie


@pytest.mark.parametrize("size", [{"width": 390, "height": 844}, {"width": 360, "height": 640}], ids=["390", "360"])
def test_on_a_phone_the_widget_is_all_chat(shop_page: Any, embed_server: AppServer, size: dict[str, int]) -> None:
    """No bar of the widget's own above the chat, the bot's whole name, and the chat's own close button."""
    shop_page.set_viewport_size(size)
    shop_page.goto(f"/demo/?lang=uk&chat_origin={embed_server.url}")
    shop_page.click(".vizochok-embed__button")
    chat = shop_page.frame_locator(".vizochok-embed__frame")
    chat.locator("#chat[data-state=ready]").wait_for()
    if chat.locator("#cart-badge[data-count='0']").count():  # a cart in the header takes room from the name
        chat.locator("#composer-text").fill("молоко")
        chat.locator("#composer-text").press("Enter")
        chat.locator(".product-card button[data-action=add]").first.click()
        chat.locator("#cart-badge:not([data-count='0'])").wait_for()
        chat.locator("#chat[data-state=ready]").wait_for()
    panel = shop_page.locator(".vizochok-embed__panel").bounding_box()
    frame = shop_page.locator(".vizochok-embed__frame").bounding_box()
    assert frame["y"] == panel["y"] == 0 and frame["height"] == size["height"]
    title = chat.locator("h1")
    assert title.inner_text() == "Помічник Візочок"
    assert title.evaluate("(h) => h.scrollWidth <= h.clientWidth && h.scrollHeight <= h.clientHeight")
    _shot(shop_page, f"embed-phone-{size['width']}")
    chat.locator("button[data-action=close]").click()
    shop_page.wait_for_selector(".vizochok-embed__panel", state="hidden")
    assert shop_page.locator(".vizochok-embed__button").get_attribute("aria-expanded") == "false"
