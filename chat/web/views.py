"""The chat page, server-rendered complete from the database so a reload paints the whole conversation at once."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET, require_POST

from chat.persistence import store
from chat.persistence.claims import is_busy
from chat.presentation import rendering, texts
from chat.vizochok.backoff import Backoff
from chat.web import embed, identity, numbers
from chat.web.frames import MAX_TEXT_CHARS


def _language(request: HttpRequest) -> str:
    return identity.request_language(request, identity.bound_language(request))


@embed.embeddable
@gzip_page  # the page is most of a phone's first bytes (issue 22); static files come compressed from whitenoise
@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    if "token" in request.GET:  # a host's signed entry (chat/web/embed.py): bind, then come back without the token
        return embed.enter_with_token(request, request.GET["token"])
    language = _language(request)
    translation.activate(language)
    user_id = identity.user_id_for_request(request)
    store_id = identity.store_id_for_request(request)
    if request.GET.get(embed.EMBED_PARAM) == "1" and request.session.session_key:
        request.session[embed.SESSION_EMBED_KEY] = True  # an existing session; a new visitor's cookie says it
    widget = embed.widget_options(request)
    wanted = request.GET.get("c")
    if wanted is not None and identity.public_id(wanted) is None:
        raise Http404("no such conversation")  # a malformed id never reaches a query
    # Read only: a page view stores nothing (a crawler would fill the database). A first-time visitor gets a
    # conversation id that the socket stores when they first send (chat.web.consumer).
    fresh = request.GET.get("new") == "1"  # "New conversation": its id comes in the URL, so a reload keeps it
    conversation = store.find_conversation(user_id, store_id, wanted, latest=not fresh)
    if conversation is None:
        # Not stored yet: "New conversation" names its id in the URL; a shopper's first one has an id derived from
        # who they are, so every tab they open before sending shows (and later stores) the same conversation.
        candidate = wanted if fresh else identity.first_conversation_id(user_id, store_id)
        unused = candidate and store.conversation_by_public_id(candidate) is None
        conversation = store.provisional_conversation(user_id, store_id, candidate if unused else None)
    history = store.history(conversation.pk) if conversation.pk is not None else []
    context = {
        "conversation": conversation,
        "log_html": rendering.page_items(history),
        "last_seq": history[-1].seq if history else 0,
        "ws_url": f"/ws/chat/?c={conversation.public_id}&lang={language}",
        "recent": store.recent_conversations(user_id, store_id),
        "widget": widget,
        "parent_origins": " ".join(embed.parent_origins(request)),
        "cart_items": list(conversation.cart or []),
        "busy": is_busy(conversation),
        "language": language,
        "backoff": Backoff().as_js(),
        "heartbeat": {
            "intervalMs": round(settings.VIZOCHOK_PAGE_HEARTBEAT_INTERVAL * 1000),
            "timeoutMs": round(settings.VIZOCHOK_PAGE_HEARTBEAT_TIMEOUT * 1000),
        },
        "max_chars": MAX_TEXT_CHARS,
        "page_texts": texts.page_texts(),
        "starters": texts.starters(),
        "checkout_url": embed.checkout_url(),
        "embedded": embed.is_embedded(request),
    }
    response = render(request, "chat/page.html", context)
    if request.GET.get("lang"):
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 24 * 3600, samesite="Lax")
    identity.remember_visitor(request, response, embedded=embed.is_embedded(request))
    return response


@embed.embeddable
@require_POST
def new_conversation(request: HttpRequest) -> HttpResponse:
    """A fresh conversation: stored, like every other, when the shopper first sends in it."""
    return HttpResponseRedirect(f"{reverse('chat:page')}?new=1&c={uuid.uuid4()}")


@require_GET
def more_cards(request: HttpRequest) -> HttpResponse:
    """The next page of a stored card message, for its conversation's owner only ("Show more", htmx GET).

    Anything else (another shopper's conversation, no cookie, a malformed or unknown id, seq or offset) is a 404:
    the answer never says whether a conversation exists.
    """
    public_id = identity.public_id(request.GET.get("c"))
    seq, offset = numbers.natural(request.GET.get("seq")), numbers.natural(request.GET.get("offset"))
    if public_id is None or seq is None or offset is None:
        raise Http404("no such cards")
    user_id = identity.user_id_for_request(request)
    bound_store = identity.bound_store(request)
    conversation = store.owned_conversation(public_id, user_id, bound_store)  # the socket's rule
    message = store.card_message(conversation.pk, seq) if conversation is not None else None
    if message is None:
        raise Http404("no such cards")
    translation.activate(_language(request))
    page = rendering.card_page(message.data, message.seq, offset)
    response = render(request, "chat/parts/more_cards.html", {"page": page, "message": message})
    response["Cache-Control"] = "private, no-store"
    return response
