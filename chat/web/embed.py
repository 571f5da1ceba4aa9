"""Embedding the chat: signed entry tokens, widget options, framed cookies, WebSocket origins and the demo storefront.

Native apps open the chat in a WebView and storefronts in an iframe; both replace the official JS widget, whose
``pk_`` key would sit in the host page. Here the host's *backend* signs who the shopper is instead, with a secret it
shares with this deployment (``VIZOCHOK_EMBED_SECRET``), and the VIZOCHOK key never leaves our server.

Token format (docs/embedding.md shows how to mint it in Python, Node, Swift and Kotlin)::

    base64url(JSON claims) "." base64url(HMAC-SHA256(secret, the first part as ASCII))

without ``=`` padding. Claims: ``user_id`` (required, ``[A-Za-z0-9_.:@-]``, at most 100 characters),
``store_id`` (required, letters, digits and ``_.:-``, starting with a letter or digit, at most 100), ``exp``
(required, Unix seconds), ``conversation_id`` (optional, one of this shopper's conversations)
and ``lang`` (optional). It is deliberately simpler than a JWT: one HMAC over one string is easy to get right in
any language, and nothing here has to guess an algorithm from the token itself.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import Morsel
from typing import Any
from urllib.parse import urlencode, urlsplit

from channels.security.websocket import OriginValidator
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.views.decorators.http import require_GET

logger = logging.getLogger("chat.web.embed")

#: Seconds of clock skew tolerated between the host's backend and this server.
EXP_LEEWAY = 30
MAX_TOKEN_CHARS = 4096
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,100}")
#: VIZOCHOK's own rule for ``auth.store_id`` (an identifier), so a bound store is never refused upstream.
STORE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
CONVERSATION_PATTERN = re.compile(r"[0-9a-fA-F-]{32,36}")
LANG_PATTERN = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")

#: Query parameter and session key that mark a framed/WebView visit (its cookies must work cross-site).
EMBED_PARAM = "embed"
SESSION_EMBED_KEY = "vizochok_embed"
SESSION_WIDGET_KEY = "vizochok_widget"


# --- entry tokens --------------------------------------------------------------------------------------------


class InvalidToken(Exception):
    """A token that binds nothing; ``reason`` picks the page the shopper sees (never the details)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason  # "disabled", "expired" or "invalid"


@dataclass(frozen=True, slots=True)
class EntryClaims:
    user_id: str
    store_id: str
    exp: int
    conversation_id: str | None = None
    lang: str | None = None


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise InvalidToken("invalid", "not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("invalid", "not base64url") from None


def _signature(secret: str, payload_b64: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), payload_b64.encode("ascii"), hashlib.sha256).digest()


def mint_token(claims: dict[str, Any], secret: str) -> str:
    """A signed entry token; what a host's backend does (here for tests, the demo and the docs' reference)."""
    payload_b64 = _b64encode(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    return f"{payload_b64}.{_b64encode(_signature(secret, payload_b64))}"


def verify_token(token: str, secret: str, now: float | None = None) -> EntryClaims:
    """The token's claims if its signature is ours and it has not expired; raises InvalidToken otherwise.

    The signature is checked (in constant time) before the payload is even parsed, so a forged token never
    reaches the JSON parser.
    """
    if not secret:
        raise InvalidToken("disabled", "VIZOCHOK_EMBED_SECRET is not set")
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise InvalidToken("invalid", "malformed")
    payload_b64, signature_b64 = token.split(".")
    if not hmac.compare_digest(_b64decode(signature_b64), _signature(secret, payload_b64)):
        raise InvalidToken("invalid", "bad signature")
    try:
        claims = json.loads(_b64decode(payload_b64))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("invalid", "payload is not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidToken("invalid", "payload is not an object")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise InvalidToken("invalid", "exp missing")
    if (time.time() if now is None else now) > exp + EXP_LEEWAY:
        raise InvalidToken("expired")
    user_id, store_id = claims.get("user_id"), claims.get("store_id")
    for name, value, pattern in (("user_id", user_id, ID_PATTERN), ("store_id", store_id, STORE_PATTERN)):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidToken("invalid", f"{name} missing or malformed")
    conversation_id = claims.get("conversation_id")
    if conversation_id is not None and (
        not isinstance(conversation_id, str) or not CONVERSATION_PATTERN.fullmatch(conversation_id)
    ):
        conversation_id = None  # an unknown conversation gives a fresh one, as a foreign one does
    lang = claims.get("lang")
    if not isinstance(lang, str) or not LANG_PATTERN.fullmatch(lang):
        lang = None
    return EntryClaims(str(user_id), str(store_id), int(exp), conversation_id, lang)


def enter_with_token(request: HttpRequest, token: str) -> HttpResponse:
    """``/?token=…``: bind a fresh session to the host's shopper and store, then drop the token from the URL.

    A refused token gets a page saying so (403) and no session: nothing about the visitor is stored, and any
    earlier session is left as it was rather than being bound to an identity nobody vouched for.
    """
    from chat import store
    from chat.models import Conversation
    from chat.web import identity

    try:
        claims = verify_token(token, settings.VIZOCHOK_EMBED_SECRET)
    except InvalidToken as refused:
        logger.info("entry token refused: %s", refused)
        language = identity.request_language(request)
        with translation.override(language):
            return render(
                request, "chat/token_error.html", {"reason": refused.reason, "language": language}, status=403
            )
    identity.bind_session(request, claims.user_id, claims.store_id, claims.lang, **{SESSION_EMBED_KEY: True})
    session_key = request.session.session_key or ""
    conversation = None
    if claims.conversation_id:
        try:
            conversation = Conversation.objects.filter(
                public_id=claims.conversation_id, user_id=claims.user_id, store_id=claims.store_id
            ).first()
        except ValidationError:
            conversation = None
        if conversation is None:  # not this shopper's (or unknown): a fresh one, never somebody else's
            conversation = store.new_conversation(session_key, claims.user_id, claims.store_id)
    else:
        conversation = store.conversation_for(session_key, claims.user_id, claims.store_id)
    widget_options(request)  # keep the embed's look for the navigations inside the frame
    request.session.save()
    location = f"{reverse('chat:page')}?{query_without(request, ['token', 'c'], c=str(conversation.public_id))}"
    response = HttpResponseRedirect(location)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"  # the token must not leak to anything the next page loads
    return response


# --- widget options --------------------------------------------------------------------------------------------

COLOR_PATTERN = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
FONT_PATTERN = re.compile(r"[A-Za-z0-9 ,'\"-]{1,120}")
RADIUS_PATTERN = re.compile(r"(?:0|\d{1,2}(?:\.\d{1,2})?(?:px|rem|em))")
_https_url = URLValidator(schemes=["https", "http"])


def _text(limit: int) -> Callable[[str], str | None]:
    def clean(value: str) -> str | None:
        value = " ".join(value.split())  # no control characters or line breaks in a title or placeholder
        return value[:limit] if value else None

    return clean


def _matching(pattern: re.Pattern[str]) -> Callable[[str], str | None]:
    def clean(value: str) -> str | None:
        value = value.strip()
        return value if pattern.fullmatch(value) else None

    return clean


def _avatar(value: str) -> str | None:
    value = value.strip()
    if not value or len(value) > 500:
        return None
    try:
        _https_url(value)
    except ValidationError:
        return None
    return value


#: Option name (query parameter, settings suffix) → cleaner returning the safe value or None.
WIDGET_OPTIONS: dict[str, Callable[[str], str | None]] = {
    "primary_color": _matching(COLOR_PATTERN),
    "font_family": _matching(FONT_PATTERN),
    "border_radius": _matching(RADIUS_PATTERN),
    "bot_name": _text(40),
    "bot_avatar": _avatar,
    "placeholder": _text(100),
    "welcome_message": _text(500),
}


@dataclass(slots=True)
class WidgetOptions:
    """The official widget's look-and-feel options, each already validated (None = the page's own default)."""

    primary_color: str | None = None
    font_family: str | None = None
    border_radius: str | None = None
    bot_name: str | None = None
    bot_avatar: str | None = None
    placeholder: str | None = None
    welcome_message: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def primary_text(self) -> str | None:
        """Black or white, whichever reads better on the primary colour (WCAG relative luminance)."""
        if not self.primary_color:
            return None
        hex_digits = self.primary_color[1:]
        if len(hex_digits) == 3:
            hex_digits = "".join(digit * 2 for digit in hex_digits)
        channels = [int(hex_digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
        return "#000000" if luminance > 0.179 else "#ffffff"

    @property
    def avatar_letter(self) -> str:
        return (self.bot_name or "В")[:1].upper()


def clean_options(raw: dict[str, str]) -> dict[str, str]:
    """Only the known options whose values pass their check; anything else is dropped silently."""
    cleaned: dict[str, str] = {}
    for name, cleaner in WIDGET_OPTIONS.items():
        value = raw.get(name)
        if isinstance(value, str):
            safe = cleaner(value)
            if safe is not None:
                cleaned[name] = safe
    return cleaned


def deployment_defaults() -> dict[str, str]:
    """``VIZOCHOK_WIDGET_*`` settings, validated like query parameters (a bad value is logged and ignored)."""
    raw = {name: getattr(settings, f"VIZOCHOK_WIDGET_{name.upper()}") for name in WIDGET_OPTIONS}
    cleaned = clean_options(raw)
    for name, value in raw.items():
        if value and name not in cleaned:
            logger.warning("VIZOCHOK_WIDGET_%s=%r is not a valid value and is ignored", name.upper(), value)
    return cleaned


def widget_options(request: HttpRequest) -> WidgetOptions:
    """Options of this visit: the embed's query parameters, else those the session kept, else the deployment's.

    An embed passes its options on the iframe's first URL only; the session keeps them so the conversation menu,
    the language links and "New conversation" (plain navigations inside the frame) keep the same look.
    """
    from_query = clean_options({name: request.GET[name] for name in WIDGET_OPTIONS if name in request.GET})
    session = getattr(request, "session", None)
    if session is not None and from_query:
        session[SESSION_WIDGET_KEY] = from_query
    kept = session.get(SESSION_WIDGET_KEY) if session is not None else None
    chosen = {**deployment_defaults(), **clean_options(kept if isinstance(kept, dict) else {}), **from_query}
    return WidgetOptions(**chosen)  # type: ignore[arg-type]  # option names only, never ``extra``


def is_embedded(request: HttpRequest) -> bool:
    """Whether this request belongs to a framed or WebView visit (its cookies must then be cross-site)."""
    if request.GET.get(EMBED_PARAM) == "1" or "token" in request.GET:
        return True
    session = getattr(request, "session", None)
    return bool(session is not None and session.get(SESSION_EMBED_KEY))


def parent_origins(request: HttpRequest) -> list[str]:
    """Where events may be posted and commands come from: the configured origins, plus this site itself."""
    own = f"{request.scheme}://{request.get_host()}"
    origins = list(settings.VIZOCHOK_EMBED_PARENT_ORIGINS)
    return origins if own in origins else [*origins, own]


def embeddable(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Lets storefronts frame this view: CSP ``frame-ancestors`` from ``VIZOCHOK_FRAME_ANCESTORS`` decides.

    chat.ops.security reads the request mark; X-Frame-Options (which can only say DENY or SAMEORIGIN) is dropped for
    these responses, since a browser that knows CSP ignores it anyway and one that does not would block the embed.
    Every other page keeps ``frame-ancestors 'self'`` and X-Frame-Options.
    """

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.vizochok_embeddable = True  # type: ignore[attr-defined]
        response = view(request, *args, **kwargs)
        response.xframe_options_exempt = True
        return response

    return wrapped


# --- cookies for framed visits ---------------------------------------------------------------------------------


class _PartitionedMorsel(Morsel):  # type: ignore[type-arg]
    """A Set-Cookie with ``Partitioned`` (CHIPS): Python < 3.14 cannot write the attribute itself."""

    def OutputString(self, attrs: Any = None) -> str:
        return super().OutputString(attrs) + "; Partitioned"


def _trustworthy(request: HttpRequest) -> bool:
    """HTTPS, or loopback (which browsers treat as secure): only there may a cookie be ``Secure``."""
    if request.is_secure():
        return True
    host = request.get_host().rsplit(":", 1)[0] if not request.get_host().startswith("[") else "[::1]"
    return host in {"localhost", "127.0.0.1", "[::1]"}


class EmbedCookieMiddleware:
    """Makes the session and CSRF cookies of framed visits ``SameSite=None; Secure; Partitioned``.

    In a storefront's iframe the chat is a third party: ``Lax`` cookies are never sent there, and browsers that
    block third-party cookies still keep a *partitioned* one (per top-level site). Ordinary visits keep ``Lax``.
    Must sit above SessionMiddleware and CsrfViewMiddleware so it sees the cookies they set.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not is_embedded(request) or not _trustworthy(request):
            return response
        names = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, settings.LANGUAGE_COOKIE_NAME}
        for name in names & set(response.cookies):
            original = response.cookies[name]
            morsel = _PartitionedMorsel()
            morsel.set(original.key, original.value, original.coded_value)
            for attribute in original:
                if original[attribute]:
                    morsel[attribute] = original[attribute]
            morsel["samesite"] = "None"
            morsel["secure"] = True
            dict.__setitem__(response.cookies, name, morsel)
        return response


# --- WebSocket origins -----------------------------------------------------------------------------------------


class EmbedOriginValidator(OriginValidator):
    """Channels' origin check, plus exact entries for WebViews whose pages send ``Origin: null``.

    ``null`` (and custom schemes such as ``capacitor://localhost``) come only from ``VIZOCHOK_WS_ALLOWED_ORIGINS``;
    ``*`` is refused there by the settings.
    """

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is not None and parsed_origin.geturl() == "null":
            return "null" in self.allowed_origins
        return bool(super().valid_origin(parsed_origin))


def websocket_origins() -> list[str]:
    """ALLOWED_HOSTS (any scheme, as before) plus the configured extra origins."""
    hosts = list(settings.ALLOWED_HOSTS) or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    return [*hosts, *settings.VIZOCHOK_WS_ALLOWED_ORIGINS]


def websocket_origin_validator(application: Any) -> EmbedOriginValidator:
    return EmbedOriginValidator(application, websocket_origins())


# --- demo storefront (DEBUG only) ------------------------------------------------------------------------------


def _demo_only() -> None:
    if not settings.DEBUG:
        raise Http404("the demo storefront is served only with DJANGO_DEBUG on")


def _chat_origin(request: HttpRequest) -> str:
    """Where the demo loads embed.js from: this site, or ``?chat_origin=`` if it names one of ALLOWED_HOSTS.

    Loading the chat from another host name (``localhost`` vs ``127.0.0.1``) makes it a real cross-site iframe.
    """
    own = f"{request.scheme}://{request.get_host()}"
    wanted = request.GET.get("chat_origin", "")
    parts = urlsplit(wanted)
    if parts.scheme in {"http", "https"} and parts.hostname and not parts.path and not parts.query:
        allowed = settings.ALLOWED_HOSTS
        if "*" in allowed or parts.hostname in allowed:
            return f"{parts.scheme}://{parts.netloc}"
    return own


@require_GET
def demo_storefront(request: HttpRequest) -> HttpResponse:
    """A fake shop embedding the chat with embed.js, to try the widget and for the browser tests."""
    _demo_only()
    options = {
        "position": request.GET.get("position") if request.GET.get("position") == "bottom-left" else "bottom-right",
        "language": request.GET.get("lang") if request.GET.get("lang") in {"uk", "en"} else "uk",
    }
    context = {
        "chat_origin": _chat_origin(request),
        "options": options,
        "token_url": "/demo/token/" if settings.VIZOCHOK_EMBED_SECRET else "",
    }
    response = render(request, "chat/demo_storefront.html", context)
    # What a storefront with a strict CSP adds for the chat: its origin for the script, its stylesheet and the frame.
    chat_origin = context["chat_origin"]
    response["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {chat_origin}; style-src 'self' {chat_origin}; "
        f"frame-src {chat_origin}; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'self'"
    )
    return response


@require_GET
def demo_token(request: HttpRequest) -> JsonResponse:
    """What a storefront's backend does: sign its signed-in customer for five minutes (here a fixed demo one)."""
    _demo_only()
    if not settings.VIZOCHOK_EMBED_SECRET:
        raise Http404("VIZOCHOK_EMBED_SECRET is not set")
    claims = {"user_id": "demo-shopper", "store_id": settings.VIZOCHOK_STORE_ID, "exp": int(time.time()) + 300}
    response = JsonResponse({"token": mint_token(claims, settings.VIZOCHOK_EMBED_SECRET)})
    response["Cache-Control"] = "no-store"
    return response


def query_without(request: HttpRequest, drop: Iterable[str], **extra: str) -> str:
    """This request's query string without ``drop`` (the token never stays in a URL), plus ``extra``."""
    dropped = set(drop) | set(extra)
    pairs = [(key, value) for key, values in request.GET.lists() if key not in dropped for value in values]
    pairs.extend(extra.items())
    return urlencode(pairs)
