"""The chat page, server-rendered complete from the database so a reload paints the whole conversation at once."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.views.decorators.http import require_GET, require_POST

from chat import store
from chat.presentation import rendering, texts
from chat.vizochok.backoff import Backoff
from chat.web import embed, identity
from chat.web.consumer import MAX_TEXT_CHARS


def _language(request: HttpRequest) -> str:
    return identity.request_language(request, identity.bound_language(request))


@embed.embeddable
@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    if "token" in request.GET:  # a host's signed entry (chat/web/embed.py): bind, then come back without the token
        return embed.enter_with_token(request, request.GET["token"])
    language = _language(request)
    translation.activate(language)
    user_id = identity.user_id_for_request(request)
    store_id = identity.store_id_for_request(request)
    if request.GET.get(embed.EMBED_PARAM) == "1":
        request.session[embed.SESSION_EMBED_KEY] = True
    widget = embed.widget_options(request)
    if not request.session.session_key:
        request.session.save()
    conversation = store.conversation_for(request.session.session_key or "", user_id, store_id, request.GET.get("c"))
    history = store.history(conversation.pk)
    context = {
        "conversation": conversation,
        "log_html": rendering.page_items(history),
        "last_seq": history[-1].seq if history else 0,
        "ws_url": f"/ws/chat/?c={conversation.public_id}&lang={language}",
        "recent": store.recent_conversations(user_id, store_id),
        "widget": widget,
        "parent_origins": " ".join(embed.parent_origins(request)),
        "cart_items": list(conversation.cart or []),
        "busy": conversation.is_busy(settings.VIZOCHOK_TURN_TIMEOUT + settings.VIZOCHOK_QUEUE_TIMEOUT),
        "language": language,
        "backoff": Backoff().as_js(),
        "max_chars": MAX_TEXT_CHARS,
        "page_texts": texts.page_texts(),
        "starters": texts.starters(),
        "checkout_url": settings.VIZOCHOK_CHECKOUT_URL,
        "embedded": embed.is_embedded(request),
    }
    response = render(request, "chat/page.html", context)
    if request.GET.get("lang"):
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 24 * 3600, samesite="Lax")
    return response


@embed.embeddable
@require_POST
def new_conversation(request: HttpRequest) -> HttpResponse:
    user_id = identity.user_id_for_request(request)
    if not request.session.session_key:
        request.session.save()
    conversation = store.new_conversation(
        request.session.session_key or "", user_id, identity.store_id_for_request(request)
    )
    return HttpResponseRedirect(f"{reverse('chat:page')}?c={conversation.public_id}")
