"""Upstream events and stored messages -> htmx out-of-band fragments.

One template per server message type lives in ``templates/chat/fragments/``; the log items they carry live in
``templates/chat/items/`` and are the same ones the page renders on first paint, so a reload and a live turn
look identical. Every log item is swapped by its id with ``hx-swap-oob="true"`` and carries
``data-fallback="append"``: a tab that lacks the item (it joined late, or is catching up) appends it instead, and a
tab that has it just replaces it, which makes catch-up idempotent.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.template.loader import render_to_string

from chat.models import Message

#: The template of each stored message kind (user messages and assistant text differ by role).
_ITEM_TEMPLATES = {
    Message.Kind.PRODUCT_CARDS: "chat/items/product_cards.html",
    Message.Kind.QUICK_REPLIES: "chat/items/quick_replies.html",
    Message.Kind.CHECKLIST: "chat/items/checklist.html",
    Message.Kind.CART: "chat/items/cart.html",
    Message.Kind.ERROR: "chat/items/error.html",
    Message.Kind.NOTICE: "chat/items/notice.html",
    Message.Kind.ACTION: "chat/items/user_action.html",
}

#: The fragment template of each server message type that is stored as a log item.
FRAGMENT_OF_KIND = {
    Message.Kind.PRODUCT_CARDS: "product_cards",
    Message.Kind.QUICK_REPLIES: "quick_replies",
    Message.Kind.CHECKLIST: "ingredient_checklist",
    Message.Kind.CART: "cart_changed",
    Message.Kind.ERROR: "error",
    Message.Kind.NOTICE: "unknown",
}


def item_template(message: Message) -> str:
    if message.kind == Message.Kind.TEXT:
        return "chat/items/user_text.html" if message.role == Message.Role.USER else "chat/items/assistant_text.html"
    return _ITEM_TEMPLATES.get(message.kind, "chat/items/notice.html")


def render_item(message: Message, *, oob: bool = False) -> str:
    return render_to_string(item_template(message), {"message": message, "data": message.data, "oob": oob})


def render_items(messages: Iterable[Message], *, oob: bool = True) -> str:
    return "".join(render_item(message, oob=oob) for message in messages)


def fragment(name: str, **context: Any) -> str:
    return render_to_string(f"chat/fragments/{name}.html", context)


def stored(message: Message) -> str:
    """The fragment that shows a just-stored message in every tab."""
    name = FRAGMENT_OF_KIND.get(message.kind)
    if name is None:
        return render_item(message, oob=True)
    return fragment(name, message=message, data=message.data)


def text_delta(bubble: str, text: str, *, first: bool) -> str:
    return fragment("text_delta", bubble=bubble, text=text, first=first)


def text_end(bubble: str, message: Message) -> str:
    return fragment("text_end", bubble=bubble, message=message, data=message.data)


def status(code: str | None) -> str:
    return fragment("status", code=code or "")


def state(value: str) -> str:
    """The turn state every tab's ``#chat[data-state]`` follows (``ready`` or ``busy``)."""
    return fragment("response_complete" if value == "ready" else "turn_state", state=value)


def session_restored(items: list[dict[str, Any]], total: Decimal, count: Decimal) -> str:
    return fragment("session_restored", items=items, total=total, count=count)


def transient_error(code: str, **details: Any) -> str:
    """An error shown to the tab that caused it but not stored (a refused send: nothing reached upstream)."""
    return fragment("error", code=code, details=details, transient=True)
