"""Entry tokens, widget options, WebSocket origins and bound sessions, against the real ASGI stack and database."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore

from chat.models import Conversation
from chat.turns.service import get_relay
from chat.web import embed, identity
from chat.web.routing import websocket_urlpatterns
from tests.chat.conftest import READY, TIMEOUT, communicator, receive_until, reload, send

SECRET = "s" * 40


def soon() -> int:
    return int(time.time()) + 120


def claims(**values: Any) -> dict[str, Any]:
    return {"user_id": "u", "store_id": "s", "exp": soon(), "jti": "a-unique-token-id-0001", **values}


def test_a_minted_token_verifies_with_its_claims() -> None:
    token = embed.entry_token("u-1", "shop.kyiv", SECRET, ttl=60, lang="en", extra=1)
    verified = embed.verify_token(token, SECRET)
    assert (verified.user_id, verified.store_id, verified.lang) == ("u-1", "shop.kyiv", "en")
    assert len(verified.jti) == 32 and verified.exp > time.time()


@pytest.mark.parametrize(
    ("values", "secret", "reason"),
    [
        ({}, "another-secret", "invalid"),
        ({"exp": 1_000}, SECRET, "expired"),
        ({"exp": None}, SECRET, "invalid"),
        ({"exp": True}, SECRET, "invalid"),
        ({"exp": 2_000_000_000}, SECRET, "invalid"),  # further ahead than VIZOCHOK_TOKEN_MAX_LIFETIME
        ({"jti": None}, SECRET, "invalid"),
        ({"jti": "short"}, SECRET, "invalid"),
        ({"jti": "x" * 129}, SECRET, "invalid"),
        ({"user_id": "<script>"}, SECRET, "invalid"),
        ({"store_id": "-s"}, SECRET, "invalid"),
        ({"user_id": "u" * 101}, SECRET, "invalid"),
        ({"user_id": "user-1"}, SECRET, "invalid"),  # a Django user's id
        ({"user_id": "Anon-0123abcd"}, SECRET, "invalid"),  # an anonymous shopper's
    ],
)
def test_bad_tokens_are_refused(values: dict[str, Any], secret: str, reason: str) -> None:
    with pytest.raises(embed.InvalidToken) as refused:
        embed.verify_token(embed.mint_token(claims(**values), secret), SECRET)
    assert refused.value.reason == reason


def test_expiry_has_a_small_leeway_and_no_secret_disables_tokens() -> None:
    now = time.time()
    token = embed.mint_token(claims(exp=int(now) - 10), SECRET)
    assert embed.verify_token(token, SECRET, now=now).user_id == "u"
    with pytest.raises(embed.InvalidToken) as refused:
        embed.verify_token(token, "")
    assert refused.value.reason == "disabled"


def test_the_lifetime_cap_is_a_setting(settings: Any) -> None:
    token = embed.mint_token(claims(exp=soon() + 3600), SECRET)
    with pytest.raises(embed.InvalidToken):
        embed.verify_token(token, SECRET)
    settings.VIZOCHOK_TOKEN_MAX_LIFETIME = 2 * 3600
    assert embed.verify_token(token, SECRET).user_id == "u"


@pytest.mark.django_db
def test_a_token_is_spent_once_and_forgotten_after_it_expires() -> None:
    from chat.models import SpentEntryToken

    first = embed.verify_token(embed.mint_token(claims(jti="jti-of-the-first-token", exp=soon()), SECRET), SECRET)
    embed.spend(first)
    with pytest.raises(embed.InvalidToken) as refused:
        embed.spend(first)
    assert refused.value.reason == "used"
    SpentEntryToken.objects.update(expires_at=datetime(2000, 1, 1, tzinfo=UTC))  # long expired
    embed.spend(embed.verify_token(embed.mint_token(claims(jti="jti-of-the-second-token"), SECRET), SECRET))
    assert list(SpentEntryToken.objects.values_list("jti", flat=True)) == ["jti-of-the-second-token"]


def test_a_tampered_payload_fails_the_signature() -> None:
    token = embed.mint_token(claims(), SECRET)
    other = embed.mint_token(claims(user_id="admin"), SECRET)
    with pytest.raises(embed.InvalidToken):
        embed.verify_token(other.split(".")[0] + "." + token.split(".")[1], SECRET)


def test_widget_options_keep_only_safe_values() -> None:
    cleaned = embed.clean_options(
        {
            "primary_color": "#2D8A4E",
            "font_family": "'Inter', system-ui, sans-serif",
            "border_radius": "12px",
            "bot_name": "  Помічник\n  ",
            "bot_avatar": "javascript:alert(1)",
            "placeholder": "x" * 500,
            "unknown": "1",
        }
    )
    assert cleaned["primary_color"] == "#2D8A4E" and cleaned["border_radius"] == "12px"
    assert cleaned["bot_name"] == "Помічник" and len(cleaned["placeholder"]) == 100
    assert "bot_avatar" not in cleaned and "unknown" not in cleaned
    for hostile in ({"primary_color": "red;}body{x"}, {"font_family": "a;b"}, {"border_radius": "calc(1px)"}):
        assert embed.clean_options(hostile) == {}
    assert embed.WidgetOptions(primary_color="#ffee00").primary_text == "#000000"
    assert embed.WidgetOptions(primary_color="#1f7a42").primary_text == "#ffffff"


@pytest.mark.django_db
def test_the_page_escapes_options_and_takes_deployment_defaults(client: Any, settings: Any) -> None:
    settings.VIZOCHOK_WIDGET_BOT_NAME = "Deployment bot"
    settings.VIZOCHOK_WIDGET_WELCOME_MESSAGE = "<img src=x onerror=alert(1)>"
    settings.VIZOCHOK_WIDGET_PRIMARY_COLOR = "not a colour"
    page = client.get("/", {"lang": "en"}).content.decode()
    assert "Deployment bot" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "data-theme-primary" not in page


@pytest.mark.django_db
def test_a_tokens_widget_claim_is_cleaned_and_kept_for_the_frame(client: Any, settings: Any) -> None:
    settings.VIZOCHOK_EMBED_SECRET = SECRET
    widget = {"bot_name": "Host bot", "welcome_message": "<b>hi</b>", "bot_avatar": "javascript:alert(1)", "x": "y"}
    token = embed.entry_token("u-5", "s", SECRET, widget=widget)
    assert embed.verify_token(token, SECRET).widget == {"bot_name": "Host bot", "welcome_message": "<b>hi</b>"}
    assert client.get("/", {"token": token}).status_code == 302
    page = client.get("/", {"lang": "en", "bot_name": "Bank Security"}).content.decode()
    assert "Host bot" in page and "&lt;b&gt;hi&lt;/b&gt;" in page and "Bank Security" not in page


@pytest.mark.django_db
def test_the_demo_storefront_is_debug_only(client: Any, settings: Any) -> None:
    settings.DEBUG = False
    assert client.get("/demo/").status_code == 404
    settings.DEBUG = True
    settings.VIZOCHOK_EMBED_SECRET = SECRET
    assert client.get("/demo/").status_code == 200
    token = client.get("/demo/token/").json()["token"]
    assert embed.verify_token(token, SECRET).user_id == "demo-shopper"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("checkout", "debug", "shown"),
    [
        ("https://shop.example/checkout", False, True),
        ("http://shop.example/checkout", True, True),
        ("http://shop.example/checkout", False, False),
        ("javascript:alert(document.cookie)", True, False),
        ("JavaScript:alert(1)//https://shop.example", False, False),
        ("data:text/html,<script>alert(1)</script>", True, False),
    ],
)
def test_the_page_never_offers_a_checkout_url_the_checks_refuse(
    client: Any, settings: Any, checkout: str, debug: bool, shown: bool
) -> None:
    """Issue 24, item 8: ``javascript:`` and (in production) ``http:`` checkout URLs were rendered as they were."""
    settings.VIZOCHOK_CHECKOUT_URL = checkout
    settings.DEBUG = debug
    page = client.get("/", {"lang": "en"}).content.decode()
    assert ('data-action="checkout"' in page) is shown
    assert ("javascript:" in page.lower()) is False
    assert ("http://shop.example" in page) is (shown and debug)


# --- sockets ---------------------------------------------------------------------------------------------------


def _validated() -> Any:
    return embed.websocket_origin_validator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))


@database_sync_to_async
def _bound_shopper(user_id: str, store_id: str, conversation_store: str) -> tuple[str, Conversation]:
    session = SessionStore()
    session[identity.SESSION_BOUND_USER_KEY] = user_id
    session[identity.SESSION_BOUND_STORE_KEY] = store_id
    session.create()
    key = session.session_key
    assert key is not None  # create() saved it under a new key
    conversation = Conversation.objects.create(
        session_key=key, user_id=identity.host_user_id(user_id), store_id=conversation_store
    )
    return key, conversation


async def _connects(
    application: Any,
    session_key: str,
    conversation: Conversation,
    origin: bytes,
    host: bytes = b"testserver",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> bool:
    tab = WebsocketCommunicator(
        application,
        f"/ws/chat/?c={conversation.public_id}&lang=en",
        headers=[
            (b"origin", origin),
            (b"host", host),
            (b"cookie", f"sessionid={session_key}".encode()),
            *(extra or []),
        ],
    )
    accepted, _code = await tab.connect(timeout=TIMEOUT)
    await tab.disconnect()
    return bool(accepted)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (b"http://testserver", True),
        (b"null", True),
        (b"capacitor://localhost", True),
        (b"https://evil.example", False),
        (b"capacitor://evil", False),
        (b"https://testserver", False),  # the socket came over plain HTTP: the page did too
        (b"http://testserver:8080", False),  # another port of the same host is another site
        (b"http://testserver/path", False),
    ],
)
async def test_websocket_origins_are_this_site_or_the_configured_list(
    origin: bytes, allowed: bool, settings: Any
) -> None:
    settings.VIZOCHOK_WS_ALLOWED_ORIGINS = ["null", "capacitor://localhost"]
    session_key, conversation = await _bound_shopper("u-1", "store-7", "store-7")
    assert await _connects(_validated(), session_key, conversation, origin) is allowed


@pytest.mark.django_db(transaction=True)
async def test_null_origin_is_refused_unless_configured(settings: Any) -> None:
    settings.VIZOCHOK_WS_ALLOWED_ORIGINS = []
    session_key, conversation = await _bound_shopper("u-1", "store-7", "store-7")
    assert not await _connects(_validated(), session_key, conversation, b"null")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (b"https://chat.example.com", True),
        (b"https://chat.example.com:443", True),
        (b"http://chat.example.com", False),  # a page on plain HTTP under our name (a network attacker's)
        (b"https://chat.example.com:8443", False),
        (b"https://evil.chat.example.com", False),
    ],
)
async def test_behind_a_tls_proxy_the_origin_must_be_https(origin: bytes, allowed: bool, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    session_key, conversation = await _bound_shopper("u-1", "store-7", "store-7")
    tls = [(b"x-forwarded-proto", b"https")]
    assert await _connects(_validated(), session_key, conversation, origin, b"chat.example.com", tls) is allowed


@pytest.mark.django_db(transaction=True)
async def test_a_host_outside_allowed_hosts_is_refused(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    session_key, conversation = await _bound_shopper("u-1", "store-7", "store-7")
    assert not await _connects(_validated(), session_key, conversation, b"http://evil.example", b"evil.example")


@pytest.mark.django_db(transaction=True)
async def test_a_bound_session_talks_to_its_own_store(sandbox: Any) -> None:
    session_key, conversation = await _bound_shopper("shopper-42", "store-7", "store-7")
    tab = communicator(session_key, conversation)
    accepted, _code = await tab.connect(timeout=TIMEOUT)
    assert accepted
    try:
        await send(tab, kind="message", text="milk", key="k1")
        frames = await receive_until(tab, READY, timeout=10)
        assert "product-card" in frames
    finally:
        await tab.disconnect()
    assert (await reload(conversation)).user_id == "ext-shopper-42"  # the host's shopper, in the host namespace
    runner = get_relay().existing((await reload(conversation)).pk)
    assert runner is not None and runner.user_id == "shopper-42"  # the host's own id goes upstream
    assert runner.store_id == "store-7"
    assert identity.upstream_user_id("user-7") == "user-7"

    # The same shopper's conversation in another store is not reachable from this bound session.
    _key, elsewhere = await _bound_shopper("shopper-42", "store-7", "store-8")
    tab = communicator(session_key, elsewhere)
    accepted, code = await tab.connect(timeout=TIMEOUT)
    assert not accepted and code == 4403
    await tab.disconnect()
