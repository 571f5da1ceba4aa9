"""Embedding the chat: signed entry tokens, widget options, framed cookies, WebSocket origins and the demo storefront.

Native apps open the chat in a WebView and storefronts in an iframe; both replace the official JS widget, whose
``pk_`` key would sit in the host page. Here the host's *backend* signs who the shopper is instead, with a secret it
shares with this deployment (``VIZOCHOK_EMBED_SECRET``), and the VIZOCHOK key never leaves our server.

Token format (docs/embedding.md shows how to mint it in Python, Node, Swift and Kotlin)::

    base64url(JSON claims) "." base64url(HMAC-SHA256(secret, the first part as ASCII))

without ``=`` padding. Claims: ``user_id`` (required, ``[A-Za-z0-9_.:@-]``, at most 100 characters),
``store_id`` (required, letters, digits and ``_.:-``, starting with a letter or digit, at most 100), ``exp``
(required, Unix seconds, at most ``VIZOCHOK_TOKEN_MAX_LIFETIME`` ahead), ``jti`` (required, a unique id of this
token: each token opens one session), ``conversation_id`` (optional, one of this shopper's conversations)
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
import math
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import Morsel
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.http.request import split_domain_port, validate_host
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from django.views.decorators.http import require_GET

if TYPE_CHECKING:
    from channels.consumer import _ChannelScope

logger = logging.getLogger("chat.web.embed")

#: Seconds of clock skew tolerated between the host's backend and this server.
EXP_LEEWAY = 30
MAX_TOKEN_CHARS = 4096
ID_PATTERN = re.compile(r"[A-Za-z0-9_.:@-]{1,100}")
#: VIZOCHOK's own rule for ``auth.store_id`` (an identifier), so a bound store is never refused upstream.
STORE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
CONVERSATION_PATTERN = re.compile(r"[0-9a-fA-F-]{32,36}")
#: A token's unique id: long enough that a host's random ids (a UUID) never collide by chance.
JTI_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{16,128}")
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
        self.reason = reason  # "disabled", "expired", "used" or "invalid"


@dataclass(frozen=True, slots=True)
class EntryClaims:
    user_id: str
    store_id: str
    exp: int
    jti: str = ""
    conversation_id: str | None = None
    lang: str | None = None
    #: Widget options the host signed (cleaned like every option); kept in the bound session.
    widget: dict[str, str] = field(default_factory=dict)


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


def entry_token(user_id: str, store_id: str, secret: str, *, ttl: int = 300, **extra: Any) -> str:
    """A fresh entry token for one visit: what docs/embedding.md tells a host's backend to mint."""
    claims = {"user_id": user_id, "store_id": store_id, "exp": int(time.time()) + ttl, "jti": uuid.uuid4().hex}
    return mint_token({**claims, **extra}, secret)


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
        claims = json.loads(_b64decode(payload_b64), parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidToken("invalid", "payload is not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidToken("invalid", "payload is not an object")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise InvalidToken("invalid", "exp missing or not a number")
    now = time.time() if now is None else now
    if now > exp + EXP_LEEWAY:
        raise InvalidToken("expired")
    if exp > now + settings.VIZOCHOK_TOKEN_MAX_LIFETIME + EXP_LEEWAY:
        raise InvalidToken("invalid", "exp further ahead than VIZOCHOK_TOKEN_MAX_LIFETIME")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not JTI_PATTERN.fullmatch(jti):
        raise InvalidToken("invalid", "jti missing or malformed")
    user_id, store_id = claims.get("user_id"), claims.get("store_id")
    for name, value, pattern in (("user_id", user_id, ID_PATTERN), ("store_id", store_id, STORE_PATTERN)):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidToken("invalid", f"{name} missing or malformed")
    from chat.web import identity

    if identity.claims_reserved_id(str(user_id)):
        raise InvalidToken("invalid", "user_id in a namespace of this site's own shoppers")
    conversation_id = claims.get("conversation_id")
    if conversation_id is not None and (
        not isinstance(conversation_id, str) or not CONVERSATION_PATTERN.fullmatch(conversation_id)
    ):
        conversation_id = None  # an unknown conversation gives a fresh one, as a foreign one does
    lang = claims.get("lang")
    if not isinstance(lang, str) or not LANG_PATTERN.fullmatch(lang):
        lang = None
    widget = claims.get("widget")
    widget = clean_options(widget) if isinstance(widget, dict) else {}
    return EntryClaims(str(user_id), str(store_id), int(exp), jti, conversation_id, lang, widget)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a token may carry")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A claim given twice is refused: parsers disagree on which one wins, so neither can be trusted."""
    claims = dict(pairs)
    if len(claims) != len(pairs):
        raise ValueError("a claim appears twice")
    return claims


def spend(claims: EntryClaims) -> None:
    """Mark the token used; InvalidToken("used") if it was. Its row is kept until the token could expire anyway."""
    from django.db import IntegrityError, transaction
    from django.utils import timezone

    from chat.models import SpentEntryToken

    now = timezone.now()
    SpentEntryToken.objects.filter(expires_at__lt=now).delete()
    expires_at = datetime.fromtimestamp(claims.exp + EXP_LEEWAY, tz=UTC)
    try:
        with transaction.atomic():
            SpentEntryToken.objects.create(jti=claims.jti, expires_at=expires_at)
    except IntegrityError:
        raise InvalidToken("used", claims.jti[:16]) from None


def enter_with_token(request: HttpRequest, token: str) -> HttpResponse:
    """``/?token=…``: bind a fresh session to the host's shopper and store, then drop the token from the URL.

    A refused token gets a page saying so (403) and no session: nothing about the visitor is stored, and any
    earlier session is left as it was rather than being bound to an identity nobody vouched for.
    """
    from chat.persistence import store
    from chat.web import identity

    try:
        claims = verify_token(token, settings.VIZOCHOK_EMBED_SECRET)
        spend(claims)
    except InvalidToken as refused:
        logger.info("entry token refused: %s", refused)
        language = identity.request_language(request)
        with translation.override(language):
            return render(
                request, "chat/token_error.html", {"reason": refused.reason, "language": language}, status=403
            )
    extra: dict[str, Any] = {SESSION_EMBED_KEY: True}
    if claims.widget:
        extra[SESSION_WIDGET_KEY] = claims.widget  # signed by the host: kept for the navigations inside the frame
    identity.bind_session(request, claims.user_id, claims.store_id, claims.lang, **extra)
    session_key = request.session.session_key or ""
    user_id = identity.host_user_id(claims.user_id)
    conversation = None
    if claims.conversation_id:
        conversation = store.owned_conversation(claims.conversation_id, user_id, claims.store_id)
        if conversation is None:  # not this shopper's (or unknown): a fresh one, never somebody else's
            conversation = store.new_conversation(session_key, user_id, claims.store_id)
    else:
        conversation = store.conversation_for(session_key, user_id, claims.store_id)
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
_tls_url = URLValidator(schemes=["https"])


def checkout_url_refusal(url: str, debug: bool) -> str | None:
    """Why ``VIZOCHOK_CHECKOUT_URL`` may not be used, or None if it may (an empty one is no checkout button).

    The page opens it in the top window when the shopper taps "checkout": a ``javascript:`` URL would run in our
    origin, and a plain ``http:`` one would hand the cart to anybody on the shopper's network; plain HTTP is for
    development only (``DJANGO_DEBUG=1``).
    """
    if not url:
        return None
    try:
        (_https_url if debug else _tls_url)(url)
    except ValidationError:
        wanted = "an http(s):// URL" if debug else "an https:// URL"
        return f"VIZOCHOK_CHECKOUT_URL must be {wanted}, got {url[:80]!r}"
    return None


def checkout_url() -> str:
    """The checkout URL the page may offer; never one :func:`checkout_url_refusal` refuses."""
    url: str = settings.VIZOCHOK_CHECKOUT_URL
    return "" if checkout_url_refusal(url, settings.DEBUG) else url


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


#: Option name (token claim key, postMessage key, settings suffix) → cleaner returning the safe value or None.
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
        """The first letter of the name the header shows: the host's bot name, else "Assistant" in the page's
        language (issue 22: a fixed "В" stayed in English)."""
        return (self.bot_name or gettext("Assistant"))[:1].upper()


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
    """``VIZOCHOK_WIDGET_*`` settings, validated like every option (a bad value is logged and ignored)."""
    raw = {name: getattr(settings, f"VIZOCHOK_WIDGET_{name.upper()}") or "" for name in WIDGET_OPTIONS}
    cleaned = clean_options(raw)
    for name, value in raw.items():
        if value and name not in cleaned:
            logger.warning("VIZOCHOK_WIDGET_%s=%r is not a valid value and is ignored", name.upper(), value)
    return cleaned


def widget_options(request: HttpRequest) -> WidgetOptions:
    """Options of this visit: those a host signed into its entry token (kept in the session), else the deployment's.

    Never from the query string, and nothing is kept from one: a link anybody can write must not reword the chat on
    our domain (a "bank security" name, a welcome text asking for a card number). A host that wants its own look
    signs it into the token (the ``widget`` claim) or posts it from a configured parent origin (embed.js does;
    chat.js applies it in that frame only).
    """
    session = getattr(request, "session", None)
    kept = session.get(SESSION_WIDGET_KEY) if session is not None else None
    chosen = {**deployment_defaults(), **clean_options(kept if isinstance(kept, dict) else {})}
    return WidgetOptions(**chosen)


def is_embedded(request: HttpRequest) -> bool:
    """Whether this request belongs to a framed or WebView visit (its cookies must then be cross-site)."""
    if request.GET.get(EMBED_PARAM) == "1" or "token" in request.GET:
        return True
    from chat.web import identity

    if identity.visitor_was_embedded(request):
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
    block third-party cookies still keep a *partitioned* one (per top-level site). Ordinary visits keep ``Lax``,
    and so does every view that is not the chat's (the admin above all).
    Must sit above SessionMiddleware and CsrfViewMiddleware so it sees the cookies they set.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Only the chat's own views (``@embeddable``): the admin, even in a browser that once framed the chat, keeps
        # Lax cookies, which no other site's page can make the browser send.
        if not getattr(request, "vizochok_embeddable", False) or not is_embedded(request) or not _trustworthy(request):
            return response
        from chat.web.identity import VISITOR_COOKIE

        names = {settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME, settings.LANGUAGE_COOKIE_NAME, VISITOR_COOKIE}
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


def _secure_socket(scope: Mapping[str, Any], headers: dict[bytes, bytes]) -> bool:
    """Whether the browser reached us over TLS: a ``wss`` scope, or the proxy's header Django trusts for HTTP."""
    if scope.get("scheme") == "wss":
        return True
    proxy_header: tuple[str, str] | None = settings.SECURE_PROXY_SSL_HEADER
    if not proxy_header:
        return False
    name, secure_value = proxy_header
    value = headers.get(name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1"), b"")
    return value.decode("latin-1").split(",", 1)[0].strip() == secure_value


def _origin(value: str) -> str | None:
    """An origin in canonical form (lower case, no default port), or None if it is not ``scheme://host[:port]``."""
    if value == "null":
        return value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname or parts.path or parts.query or parts.fragment or parts.username:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or (scheme, port) in {("http", 80), ("https", 443)}:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def socket_origin_allowed(scope: Mapping[str, Any]) -> bool:
    """The page that opens the socket must be this site itself, compared whole: scheme, host and port.

    This site is what the browser asked for (the Host header, which must be one of ALLOWED_HOSTS) over the scheme
    it used (TLS when the socket came over TLS); a page served elsewhere, by plain HTTP under our name or from
    another port of the same host does not match. ``VIZOCHOK_WS_ALLOWED_ORIGINS`` adds exact origins (WebViews'
    ``null``, ``capacitor://localhost``).
    """
    headers = {name: value for name, value in scope.get("headers", [])}
    raw_origin = headers.get(b"origin")
    origin = _origin(raw_origin.decode("latin-1")) if raw_origin else None
    if origin is None:
        return False
    extra = {_origin(entry) for entry in settings.VIZOCHOK_WS_ALLOWED_ORIGINS}
    if origin in extra:
        return True
    host = headers.get(b"host", b"").decode("latin-1")
    allowed_hosts = list(settings.ALLOWED_HOSTS) or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, allowed_hosts):
        return False
    own = _origin(f"{'https' if _secure_socket(scope, headers) else 'http'}://{host}")
    return own is not None and origin == own


class SameOriginValidator:
    """ASGI middleware: sockets whose page is not this site (see :func:`socket_origin_allowed`) are refused."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: _ChannelScope, receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket" and not socket_origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def websocket_origin_validator(application: Any) -> SameOriginValidator:
    return SameOriginValidator(application)


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
    token = entry_token("demo-shopper", settings.VIZOCHOK_STORE_ID, settings.VIZOCHOK_EMBED_SECRET, ttl=300)
    response = JsonResponse({"token": token})
    response["Cache-Control"] = "no-store"
    return response


def query_without(request: HttpRequest, drop: Iterable[str], **extra: str) -> str:
    """This request's query string without ``drop`` (the token never stays in a URL), plus ``extra``."""
    dropped = set(drop) | set(extra)
    pairs = [(key, value) for key, values in request.GET.lists() if key not in dropped for value in values]
    pairs.extend(extra.items())
    return urlencode(pairs)
