"""Entry tokens, widget options, WebSocket origins and bound sessions, against the real ASGI stack and database."""

from __future__ import annotations

import time
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore

from chat.models import Conversation
from chat.turns.upstream import EmbeddedSandbox, upstream_config
from chat.web import embed, identity
from chat.web.routing import websocket_urlpatterns
from tests.chat.conftest import READY, TIMEOUT, communicator, receive_until, send

SECRET = "s" * 40


def test_a_minted_token_verifies_with_its_claims() -> None:
    token = embed.mint_token(
        {"user_id": "u-1", "store_id": "shop.kyiv", "exp": 2_000_000_000, "lang": "en", "extra": 1}, SECRET
    )
    claims = embed.verify_token(token, SECRET)
    assert (claims.user_id, claims.store_id, claims.exp, claims.lang) == ("u-1", "shop.kyiv", 2_000_000_000, "en")


@pytest.mark.parametrize(
    ("claims", "secret", "reason"),
    [
        ({"user_id": "u", "store_id": "s", "exp": 2_000_000_000}, "another-secret", "invalid"),
        ({"user_id": "u", "store_id": "s", "exp": 1_000}, SECRET, "expired"),
        ({"user_id": "u", "store_id": "s"}, SECRET, "invalid"),
        ({"user_id": "<script>", "store_id": "s", "exp": 2_000_000_000}, SECRET, "invalid"),
        ({"user_id": "u", "store_id": "-s", "exp": 2_000_000_000}, SECRET, "invalid"),
        ({"user_id": "u" * 101, "store_id": "s", "exp": 2_000_000_000}, SECRET, "invalid"),
    ],
)
def test_bad_tokens_are_refused(claims: dict[str, Any], secret: str, reason: str) -> None:
    with pytest.raises(embed.InvalidToken) as refused:
        embed.verify_token(embed.mint_token(claims, secret), SECRET)
    assert refused.value.reason == reason


def test_expiry_has_a_small_leeway_and_no_secret_disables_tokens() -> None:
    now = time.time()
    token = embed.mint_token({"user_id": "u", "store_id": "s", "exp": int(now) - 10}, SECRET)
    assert embed.verify_token(token, SECRET, now=now).user_id == "u"
    with pytest.raises(embed.InvalidToken) as refused:
        embed.verify_token(token, "")
    assert refused.value.reason == "disabled"


def test_a_tampered_payload_fails_the_signature() -> None:
    token = embed.mint_token({"user_id": "u", "store_id": "s", "exp": 2_000_000_000}, SECRET)
    other = embed.mint_token({"user_id": "admin", "store_id": "s", "exp": 2_000_000_000}, SECRET)
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
    settings.VIZOCHOK_WIDGET_PRIMARY_COLOR = "not a colour"
    page = client.get("/", {"welcome_message": "<img src=x onerror=alert(1)>", "lang": "en"}).content.decode()
    assert "Deployment bot" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "data-theme-primary" not in page
    # The session keeps the embed's options for navigations inside the frame.
    assert "&lt;img src=x" in client.get("/").content.decode()


@pytest.mark.django_db
def test_the_demo_storefront_is_debug_only(client: Any, settings: Any) -> None:
    settings.DEBUG = False
    assert client.get("/demo/").status_code == 404
    settings.DEBUG = True
    settings.VIZOCHOK_EMBED_SECRET = SECRET
    assert client.get("/demo/").status_code == 200
    token = client.get("/demo/token/").json()["token"]
    assert embed.verify_token(token, SECRET).user_id == "demo-shopper"


# --- sockets ---------------------------------------------------------------------------------------------------


def _validated(origins: list[str]) -> Any:
    return embed.EmbedOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), origins)


@database_sync_to_async
def _bound_shopper(user_id: str, store_id: str, conversation_store: str) -> tuple[str, Conversation]:
    session = SessionStore()
    session[identity.SESSION_BOUND_USER_KEY] = user_id
    session[identity.SESSION_BOUND_STORE_KEY] = store_id
    session.create()
    conversation = Conversation.objects.create(
        session_key=session.session_key or "", user_id=user_id, store_id=conversation_store
    )
    return session.session_key or "", conversation


async def _connects(application: Any, session_key: str, conversation: Conversation, origin: bytes) -> bool:
    tab = WebsocketCommunicator(
        application,
        f"/ws/chat/?c={conversation.public_id}&lang=en",
        headers=[(b"origin", origin), (b"cookie", f"sessionid={session_key}".encode())],
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
    ],
)
async def test_websocket_origins_come_from_the_configured_list(origin: bytes, allowed: bool, settings: Any) -> None:
    settings.VIZOCHOK_WS_ALLOWED_ORIGINS = ["null", "capacitor://localhost"]
    session_key, conversation = await _bound_shopper("u-1", "store-7", "store-7")
    assert await _connects(_validated(embed.websocket_origins()), session_key, conversation, origin) is allowed


@pytest.mark.django_db(transaction=True)
async def test_null_origin_is_refused_unless_configured(settings: Any) -> None:
    settings.VIZOCHOK_WS_ALLOWED_ORIGINS = []
    session_key, conversation = await _bound_shopper("u-1", "store-7", "store-7")
    assert not await _connects(_validated(embed.websocket_origins()), session_key, conversation, b"null")


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
    config = await upstream_config("shopper-42", EmbeddedSandbox(), "store-7")
    assert config.store_id == "store-7" and config.user_id == "shopper-42"

    # The same shopper's conversation in another store is not reachable from this bound session.
    _key, elsewhere = await _bound_shopper("shopper-42", "store-7", "store-8")
    tab = communicator(session_key, elsewhere)
    accepted, code = await tab.connect(timeout=TIMEOUT)
    assert not accepted and code == 4403
    await tab.disconnect()
