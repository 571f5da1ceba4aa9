"""Who the shopper is and which language they read.

VIZOCHOK turns ``user_id`` into per-user limits and the merchant's cart session (reference §4.1), so the id must
be stable: the signed-in user's, else an anonymous id kept in the Django session (which lasts 30 days).

A session opened with a host's signed entry token (chat/web/embed.py) is *bound*: its user and store are the host's,
and they win over both everywhere, the page, the conversation lookup, the socket and the upstream auth.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import translation

SESSION_USER_KEY = "vizochok_uid"
SESSION_BOUND_USER_KEY = "vizochok_bound_uid"
SESSION_BOUND_STORE_KEY = "vizochok_bound_store"
SESSION_BOUND_LANG_KEY = "vizochok_bound_lang"


def _bound(session: Any) -> tuple[str, str] | None:
    """The host-bound (user_id, store_id) of a session, if an entry token bound it."""
    if session is None:
        return None
    user_id, store_id = session.get(SESSION_BOUND_USER_KEY), session.get(SESSION_BOUND_STORE_KEY)
    if isinstance(user_id, str) and user_id and isinstance(store_id, str) and store_id:
        return user_id, store_id
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


def bound_store_from_scope(scope: Mapping[str, Any]) -> str | None:
    """The socket's bound store, or None for an ordinary (unbound) session."""
    bound = _bound(scope.get("session"))
    return bound[1] if bound else None


def _user_key(user: Any) -> str | None:
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user-{user.pk}"
    return None


def user_id_for_request(request: HttpRequest) -> str:
    """The request's shopper id, creating the anonymous one on first visit."""
    bound = _bound(getattr(request, "session", None))
    if bound:
        return bound[0]
    signed_in = _user_key(getattr(request, "user", None))
    if signed_in:
        return signed_in
    anonymous = request.session.get(SESSION_USER_KEY)
    if not isinstance(anonymous, str) or not anonymous:
        anonymous = f"anon-{uuid.uuid4().hex}"
        request.session[SESSION_USER_KEY] = anonymous
    return anonymous


def user_id_from_scope(scope: Mapping[str, Any]) -> str | None:
    """The socket's shopper id; None without a session (the page sets it, so a socket without one is foreign)."""
    bound = _bound(scope.get("session"))
    if bound:
        return bound[0]
    signed_in = _user_key(scope.get("user"))
    if signed_in:
        return signed_in
    session = scope.get("session")
    anonymous = session.get(SESSION_USER_KEY) if session is not None else None
    return anonymous if isinstance(anonymous, str) and anonymous else None


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
