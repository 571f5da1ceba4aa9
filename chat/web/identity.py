"""Who the shopper is and which language they read.

VIZOCHOK turns ``user_id`` into per-user limits and the merchant's cart session (reference §4.1), so the id must
be stable: the signed-in user's, else an anonymous id kept in the Django session (which lasts 30 days). Each source
has its own prefix (``user-``, ``anon-``, ``ext-``), and a host's token may not name the first two.

A session opened with a host's signed entry token (chat/web/embed.py) is *bound*: its user and store are the host's,
and they win over both everywhere, the page, the conversation lookup, the socket and the upstream auth.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.crypto import salted_hmac

#: One namespace per source of identity, so no source can name a shopper of another: Django's signed-in users,
#: anonymous shoppers (a random id) and the shoppers a host's entry token vouches for (the host's own id).
SIGNED_IN_PREFIX = "user-"
ANONYMOUS_PREFIX = "anon-"
HOST_PREFIX = "ext-"
#: A host may not name ids of this site's own sources (``user-1`` would be a Django user).
RESERVED_PREFIXES = (SIGNED_IN_PREFIX, ANONYMOUS_PREFIX)

#: An anonymous shopper's id lives in this signed cookie, not in a session row: a page view writes nothing to the
#: database (a crawler would fill it), and the socket (which cannot set cookies) still knows the shopper.
VISITOR_COOKIE = "vizochok_visitor"
_VISITOR_SALT = "chat.web.identity.visitor"
#: Marks a visitor whose first page was framed (``?embed=1``): their cookies must stay cross-site capable.
_EMBEDDED_MARK = "|embed"

SESSION_USER_KEY = "vizochok_uid"
SESSION_BOUND_USER_KEY = "vizochok_bound_uid"
SESSION_BOUND_STORE_KEY = "vizochok_bound_store"
SESSION_BOUND_LANG_KEY = "vizochok_bound_lang"


def host_user_id(host_id: str) -> str:
    """This site's id of a host's shopper (the session keeps the host's own id; the namespace is added here)."""
    return f"{HOST_PREFIX}{host_id}"


def upstream_user_id(user_id: str) -> str:
    """What VIZOCHOK gets as ``auth.user_id``: a host's shopper under the host's own id (its cart webhooks and
    personalisation know that one); this site's own shoppers under their prefixed ids."""
    return user_id.removeprefix(HOST_PREFIX)


def claims_reserved_id(host_id: str) -> bool:
    return host_id.lower().startswith(RESERVED_PREFIXES)


def _bound(session: Any) -> tuple[str, str] | None:
    """The host-bound (user_id, store_id) of a session, if an entry token bound it."""
    if session is None:
        return None
    user_id, store_id = session.get(SESSION_BOUND_USER_KEY), session.get(SESSION_BOUND_STORE_KEY)
    if isinstance(user_id, str) and user_id and isinstance(store_id, str) and store_id:
        return host_user_id(user_id), store_id
    return None


def bind_session(request: HttpRequest, user_id: str, store_id: str, language: str | None, **extra: Any) -> None:
    """Start a fresh session (new key: no fixation, nothing of the previous shopper) bound to the host's shopper."""
    request.session.flush()
    request.session[SESSION_BOUND_USER_KEY] = user_id
    request.session[SESSION_BOUND_STORE_KEY] = store_id
    if language:
        request.session[SESSION_BOUND_LANG_KEY] = language
    for key, value in extra.items():
        request.session[key] = value
    request.session.save()


def bound_language(request: HttpRequest) -> str | None:
    session = getattr(request, "session", None)
    value = session.get(SESSION_BOUND_LANG_KEY) if session is not None else None
    return value if isinstance(value, str) else None


def store_id_for_request(request: HttpRequest) -> str:
    """The bound session's store, else this deployment's ``VIZOCHOK_STORE_ID``."""
    bound = _bound(getattr(request, "session", None))
    return bound[1] if bound else settings.VIZOCHOK_STORE_ID


def bound_store(request: HttpRequest) -> str | None:
    """The request's bound store, or None for an ordinary (unbound) session."""
    bound = _bound(getattr(request, "session", None))
    return bound[1] if bound else None


def bound_store_from_scope(scope: Mapping[str, Any]) -> str | None:
    """The socket's bound store, or None for an ordinary (unbound) session."""
    bound = _bound(scope.get("session"))
    return bound[1] if bound else None


def _user_key(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return f"{SIGNED_IN_PREFIX}{user.pk}"
    return None


def _visitor_signer() -> signing.TimestampSigner:
    """Signs with SECRET_KEY (and its fallbacks); the timestamp lets an old cookie expire with the session age."""
    return signing.TimestampSigner(salt=_VISITOR_SALT)


def _read_visitor(value: str | None) -> tuple[str, bool] | None:
    """(anonymous id, first page framed) from a visitor cookie whose signature is ours, else None."""
    if not value:
        return None
    try:
        raw = _visitor_signer().unsign(value, max_age=settings.SESSION_COOKIE_AGE)
    except signing.BadSignature:
        return None
    embedded = raw.endswith(_EMBEDDED_MARK)
    visitor = raw.removesuffix(_EMBEDDED_MARK)
    return (visitor, embedded) if visitor.startswith(ANONYMOUS_PREFIX) else None


def user_id_for_request(request: HttpRequest) -> str:
    """The request's shopper id; a first visit gets a new anonymous id (sent back by :func:`remember_visitor`)."""
    bound = _bound(getattr(request, "session", None))
    if bound:
        return bound[0]
    signed_in = _user_key(getattr(request, "user", None))
    if signed_in:
        return signed_in
    session = getattr(request, "session", None)
    anonymous = session.get(SESSION_USER_KEY) if session is not None else None  # kept by sessions of before
    if isinstance(anonymous, str) and anonymous:
        return anonymous
    known = _read_visitor(request.COOKIES.get(VISITOR_COOKIE))
    visitor = known[0] if known else f"{ANONYMOUS_PREFIX}{uuid.uuid4().hex}"
    request.vizochok_visitor = visitor  # type: ignore[attr-defined]
    return visitor


def visitor_was_embedded(request: HttpRequest) -> bool:
    known = _read_visitor(request.COOKIES.get(VISITOR_COOKIE))
    return bool(known and known[1])


def remember_visitor(request: HttpRequest, response: HttpResponse, *, embedded: bool) -> None:
    """Send (or refresh) the anonymous shopper's signed cookie; nothing is written anywhere on this server."""
    visitor = getattr(request, "vizochok_visitor", None)
    if not visitor:
        return
    response.set_cookie(
        VISITOR_COOKIE,
        _visitor_signer().sign(visitor + (_EMBEDDED_MARK if embedded else "")),
        max_age=settings.SESSION_COOKIE_AGE,
        httponly=True,
        secure=settings.SESSION_COOKIE_SECURE,
        samesite="Lax",  # a framed visit's response rewrites it cross-site (chat.web.embed.EmbedCookieMiddleware)
    )


def user_id_from_scope(scope: Mapping[str, Any]) -> str | None:
    """The socket's shopper id; None without one (the page sets it, so a socket without one is foreign)."""
    bound = _bound(scope.get("session"))
    if bound:
        return bound[0]
    signed_in = _user_key(scope.get("user"))
    if signed_in:
        return signed_in
    session = scope.get("session")
    anonymous = session.get(SESSION_USER_KEY) if session is not None else None
    if isinstance(anonymous, str) and anonymous:
        return anonymous
    known = _read_visitor((scope.get("cookies") or {}).get(VISITOR_COOKIE))
    return known[0] if known else None


def public_id(value: str | None) -> str | None:
    """A conversation id from a URL in its canonical form; None if it is not a UUID (a 404, never a query)."""
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


def first_conversation_id(user_id: str, store_id: str) -> str:
    """The id of a shopper's first conversation before it is stored: the same in every tab, unguessable to others.

    A keyed hash of the shopper (SECRET_KEY): nobody else can name it, and the socket refuses it to anybody but
    its owner anyway.
    """
    digest = salted_hmac("chat.web.identity.first-conversation", f"{user_id}\n{store_id}").digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def pick_language(*candidates: str | None) -> str:
    """The first candidate that names a configured language (``en-GB`` counts as ``en``), else the default."""
    codes = [code for code, _name in settings.LANGUAGES]
    for candidate in candidates:
        if candidate:
            short = candidate.split("-")[0].lower()
            if short in codes:
                return short
    return settings.LANGUAGE_CODE


def request_language(request: HttpRequest, token_language: str | None = None) -> str:
    """The page's language: ``?lang=`` beats the signed entry token's language, which beats Django's choice.

    Django's choice is LocaleMiddleware's: the language cookie (set when ``?lang=`` or the switcher was used),
    then Accept-Language, then ``LANGUAGE_CODE`` (uk). A host that embeds the chat signs the shopper's language
    into the entry token; an explicit ``?lang=`` (the switcher's links) still wins so the shopper can change it.
    """
    middleware_choice = getattr(request, "LANGUAGE_CODE", None) or translation.get_language()
    return pick_language(request.GET.get("lang"), token_language, middleware_choice)
