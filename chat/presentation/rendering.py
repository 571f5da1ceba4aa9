"""Upstream events and stored messages -> htmx out-of-band fragments.

One template per server message type lives in ``templates/chat/fragments/``; the log items they carry live in
``templates/chat/items/`` and are the same ones the page renders on first paint, so a reload and a live turn
look identical. New items are appended to ``#chat-log``; an item whose look changed (a used quick reply, a
submitted checklist) is swapped by its id. Items carry their sequence number, and the page's script keeps one
element per id, so a catch-up after a reconnect that overlaps a live fragment never shows an item twice.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from chat.models import Message
from chat.presentation import hooks, texts
from chat.presentation.markdown import render_markdown

logger = logging.getLogger("chat.presentation.rendering")

#: The template of each stored message kind (user messages and assistant text differ by role).
_ITEM_TEMPLATES: dict[str, str] = {
    Message.Kind.PRODUCT_CARDS: "chat/items/product_cards.html",
    Message.Kind.QUICK_REPLIES: "chat/items/quick_replies.html",
    Message.Kind.CHECKLIST: "chat/items/checklist.html",
    Message.Kind.CART: "chat/items/cart.html",
    Message.Kind.ERROR: "chat/items/error.html",
    Message.Kind.NOTICE: "chat/items/notice.html",
    Message.Kind.ACTION: "chat/items/user_action.html",
}

#: The fragment template of each server message type that is stored as a log item.
FRAGMENT_OF_KIND: dict[str, str] = {
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


@functools.cache
def _append() -> str:
    """A fragment that appends to the log (its id as static/chat/hooks.js declares it: chat.presentation.hooks), made
    at the first use rather than at import."""
    return '<div hx-swap-oob="beforeend:#' + hooks.value("ID.log") + '">{}</div>'


def render_item(message: Message, *, replace: bool = False) -> str:
    """A log item; ``replace`` makes it swap the tab's element with the same id (its look changed)."""
    return render_to_string(item_template(message), {"message": message, "data": message.data, "oob": replace})


def page_items(messages: Iterable[Message]) -> SafeString:
    """The log's items for the first paint (each is an autoescaped template, so the join is safe)."""
    return mark_safe("".join(render_item(message) for message in _latest_notes(list(messages))))


def _replaced(message: Message) -> int | None:
    """The seq of the earlier note of its turn a cart note takes the place of (``CartRun``), if any."""
    note = message.data.get("note") if message.kind == Message.Kind.CART else None
    seq = note.get("replaces") if isinstance(note, dict) else None
    return seq if isinstance(seq, int) else None


def _latest_notes(messages: list[Message]) -> list[Message]:
    """Each turn's cart notes as the page shows them live: the turn's last note, where its first one was."""
    present = {message.seq for message in messages}
    successor = {seq: message for message in messages if (seq := _replaced(message)) in present}
    if not successor:
        return messages
    shown: list[Message] = []
    for message in messages:
        if _replaced(message) in present:
            continue  # shown in the place of the note it replaces
        while message.seq in successor:
            message = successor[message.seq]
        shown.append(message)
    return shown


def appended(messages: Iterable[Message]) -> str:
    """Items to add at the end of every tab's log (new ones, or a catch-up)."""
    items = "".join(render_item(message) for message in messages)
    return _append().format(items) if items else ""


def rated(message: Message) -> str:
    """A reply whose rating changed, swapped in every tab; marked so the page does not read it out as a new reply
    but says the rating instead (feedback.js)."""
    context = {"message": message, "data": message.data, "oob": True, "rating_update": True}
    return render_to_string(item_template(message), context)


def replaced(messages: Iterable[Message]) -> str:
    return "".join(render_item(message, replace=True) for message in messages)


def fragment(name: str, **context: Any) -> str:
    return render_to_string(f"chat/fragments/{name}.html", context)


def stored(message: Message) -> str:
    """The fragment that shows a just-stored message in every tab."""
    name = FRAGMENT_OF_KIND.get(message.kind)
    if name is None:
        return appended([message])
    return fragment(name, message=message, data=message.data)


_BUBBLE, _TEXT, _OFFSET = "\x00bubble\x00", "\x00text\x00", "\x00offset\x00"


@functools.cache
def _chunk_parts() -> tuple[str, ...]:
    """The appended-chunk branch of text_delta, rendered once with markers and cut where the bubble id, the offset
    and the text go."""
    rendered = fragment("text_delta", bubble=_BUBBLE, text=_TEXT, offset=_OFFSET, first=False, whole=False)
    return tuple(re.split(f"({_BUBBLE}|{_TEXT}|{_OFFSET})", rendered))


def text_delta(bubble: str, text: str, *, offset: int, whole: str | None = None) -> str:
    """The streaming fragment: ``text`` starts at character ``offset`` of ``bubble``, whose text so far is ``whole``.

    Positions (``chat.feed.feed``): a chunk carries its offset, and a tab appends only what lies beyond the length it
    has; a fragment that carries the whole bubble says its length, and a tab that has more keeps what it has.

    What is finished is shown formatted while the rest streams in (no raw "**" until the end). The first piece, and
    a chunk that finishes a line when the feed says so (``whole``: ``chat.feed.feed`` bounds how often), carry the
    whole bubble: the text up to its last line break rendered as markdown
    by the same sanitiser as a stored reply, the line being written as plain text. A chunk without a line break is
    appended as text: the hottest path of the relay, so its template is not re-rendered each time (the output is
    byte-identical to rendering ``fragments/text_delta.html``, autoescaped).
    """
    if offset == 0 or (whole is not None and "\n" in text):
        return live_bubble(bubble, whole if whole is not None else text, first=offset == 0)
    values = {_BUBBLE: escape(bubble), _TEXT: escape(text), _OFFSET: str(offset)}
    return "".join(values.get(part, part) for part in _chunk_parts())


def live_bubble(bubble: str, so_far: str, *, first: bool, started: datetime | None = None) -> str:
    """The whole streaming bubble (``first``: the bubble itself, else its two parts replaced), with its length.

    ``started``: the time the bubble shows until the stored reply brings its own (now, for the tabs that see its
    first piece; the turn's start, for a tab that catches up mid-reply)."""
    cut = so_far.rfind("\n") + 1
    done = render_markdown(so_far[:cut]) if cut else ""
    if first and started is None:
        started = timezone.now()
    return fragment(
        "text_delta",
        bubble=bubble,
        done=done,
        tail=so_far[cut:],
        first=first,
        whole=True,
        length=len(so_far),
        started=started,
    )


def text_end(bubble: str, message: Message) -> str:
    return fragment("text_end", bubble=bubble, message=message, data=message.data)


def status(code: str | None) -> str:
    return _status(code or "", translation.get_language())


def state(value: str) -> str:
    """The turn state every tab's ``#chat[data-state]`` follows (``ready`` or ``busy``)."""
    return _state(value, translation.get_language())


# Status and state fragments go out several times per turn and depend only on their value and the active
# language (an argument here only to key the cache), so each is rendered once. Bounded: status codes come from the
# upstream.
@functools.lru_cache(maxsize=256)
def _status(code: str, language: str | None) -> str:
    return fragment("status", code=code)


@functools.lru_cache(maxsize=16)
def _state(value: str, language: str | None) -> str:
    return fragment("response_complete" if value == "ready" else "turn_state", state=value)


def queue_place(place: int, seconds: float) -> str:
    """A waiting turn's place in the deployment's line (``#chat[data-queue-position]`` and the status in words);
    place 0: out of the line (served: "thinking" again)."""
    shown = 5 * math.ceil(seconds / 5)  # what the shopper reads changes in 5 s steps: so does the cache key
    return _queue(place, shown, translation.get_language())


@functools.lru_cache(maxsize=256)
def _queue(place: int, seconds: float, language: str | None) -> str:
    text = texts.queue_text(place, seconds) if place else texts.status_text("thinking")
    return fragment("queue", place=place, text=text)


def session_restored(items: list[dict[str, Any]], total: Decimal, count: int) -> str:
    return fragment("session_restored", items=items, total=total, count=count)


def transient_error(code: str, **details: Any) -> str:
    """An error shown to the tab that caused it but not stored (a refused send: nothing reached upstream)."""
    return fragment("error", code=code, details=details, transient=True)


@dataclass(frozen=True, slots=True)
class CardPage:
    """One page of a stored card list: the cards to render, and where the next page starts."""

    items: list[Any]
    seq: int
    next: int
    remaining: int


def card_page(data: dict[str, Any], seq: int, offset: int = 0) -> CardPage:
    """``VIZOCHOK_CARDS_PER_MESSAGE`` cards from ``offset``: a message, however many cards it carries, renders small.

    One upstream frame (64 KB) can carry 1,400 minimal cards, megabytes of HTML; the rest is fetched a page at a
    time by the shopper ("Show more", ``chat.web.views.more_cards``) from the stored message.
    """
    items = data.get("items")
    items = items if isinstance(items, list) else []
    size = max(1, int(settings.VIZOCHOK_CARDS_PER_MESSAGE))
    page = items[offset : offset + size]
    following = offset + len(page)
    return CardPage(page, seq, following, max(0, len(items) - following))


def fit_for_browser(html: str) -> str:
    """The one check every fragment passes on its way to a browser: at most ``VIZOCHOK_MAX_FRAGMENT_BYTES``.

    Daphne (autobahn) and browsers refuse frames over 1 MiB, and the tab would never learn what it missed; what
    renders larger than the cap (nothing the relay renders should, with cards paged) is replaced by a short notice
    asking for a reload, whose page is rendered from the database. Called by the consumer's ``send``.
    """
    limit = int(settings.VIZOCHOK_MAX_FRAGMENT_BYTES)
    if len(html) * 4 <= limit or len(html.encode("utf-8")) <= limit:  # UTF-8 is at most 4 bytes a character
        return html
    logger.warning("a fragment of %d bytes was not sent to a browser (limit %d)", len(html.encode("utf-8")), limit)
    return transient_error("too_large_to_show")


def batches_for_browser(fragments: list[str]) -> list[str]:
    """Consecutive fragments joined into as few frames as fit under the cap (a single oversize one stays alone)."""
    limit = int(settings.VIZOCHOK_MAX_FRAGMENT_BYTES)
    batches: list[str] = []
    size = 0
    for html in fragments:
        length = len(html.encode("utf-8"))
        if batches and size + length <= limit:
            batches[-1] += html
            size += length
        else:
            batches.append(html)
            size = length
    return batches
