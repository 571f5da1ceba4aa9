"""The conversation page's transcript: each stored message as a validated, formatted view model.

Everything shown from a message payload is untrusted upstream data. The page never marks it safe: texts go
through template autoescaping, assistant markdown through :func:`chat.presentation.markdown.render_markdown` (nh3
allowlist), and an image URL only reaches ``src`` if it is an absolute http(s) URL or a same-origin path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypedDict

from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from chat.admin.codes import error_name
from chat.models import Message
from chat.presentation import formatting
from chat.presentation.images import safe_image_url
from chat.presentation.markdown import render_markdown

#: A notice's raw frame is shown for debugging, cut to this many characters.
MAX_NOTICE_CHARS = 2000

CART_ACTIONS = {
    "item_selected": _("added"),
    "item_removed": _("removed"),
    "quantity_updated": _("quantity changed"),
    "cart_cleared": _("cleared"),
    "restored": _("restored"),
}


# --- untrusted payload helpers --------------------------------------------------------------------------------


def money(value: Any) -> str:
    return formatting.money(value)


def quantity(value: Any) -> str:
    """A quantity without trailing zeros (``2``, ``0,5``)."""
    return formatting.number(value)


def _text(value: Any) -> str:
    """Scalar payload values as text; nested structures are not shown where a label is expected."""
    if isinstance(value, bool) or value is None:
        return ""
    return str(value) if isinstance(value, str | int | float | Decimal) else ""


def _unit(value: Any) -> str:
    """A unit code ("kg", "pcs") in the page's language ("кг", "шт."); an unknown unit as sent, none as nothing."""
    code = _text(value)
    return formatting.unit_label(code) if code else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# --- transcript view model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One message as the transcript template shows it: already validated, formatted and, for markdown, sanitised.

    Templates only branch on ``kind``/``role`` and print these values; none of them is marked safe except
    ``html``, which comes out of the nh3 sanitiser.
    """

    seq: int
    role: str
    kind: str
    created_at: datetime
    complete: bool = True
    text: str = ""
    html: SafeString | str = ""
    body: dict[str, Any] = field(default_factory=dict)


class _Common(TypedDict):
    """The :class:`Entry` fields every kind of message fills the same way."""

    seq: int
    role: str
    created_at: datetime
    complete: bool


def _product(item: dict[str, Any]) -> dict[str, Any]:
    price, promo = money(item.get("price")), money(item.get("promo_price"))
    return {
        "sku": _text(item.get("sku")),
        "name": _text(item.get("name")) or _text(item.get("sku")),
        "name_en": _text(item.get("name_en")),
        "brand": _text(item.get("brand")),
        "price": price,
        "promo_price": promo if promo and promo != price else "",
        "promo_label": _text(item.get("promo_label")),
        "image_src": safe_image_url(item.get("image_url")),
        "unit": _unit(item.get("unit")),
    }


def _quick_replies(data: dict[str, Any]) -> dict[str, Any]:
    used = data.get("used")
    replies = [
        {
            "label": _text(reply.get("label")) or _text(reply.get("value")),
            "used": used is not None and reply.get("value") == used,
        }
        for reply in _dicts(data.get("replies"))
    ]
    return {"prompt": _text(data.get("prompt")), "replies": replies, "answered": used is not None}


def _checklist(data: dict[str, Any]) -> dict[str, Any]:
    submitted_raw = data.get("submitted")
    submitted = {str(item) for item in submitted_raw} if isinstance(submitted_raw, list) else set()
    lines = [
        {
            "name": _text(item.get("name")),
            "amount": " ".join(part for part in (quantity(item.get("quantity")), _unit(item.get("unit"))) if part),
            "sku": _text(item.get("sku")),
            "checked": item.get("checked") is True,
            "submitted": str(item.get("id")) in submitted,
        }
        for item in _dicts(data.get("items"))
    ]
    return {
        "title": _text(data.get("title")),
        "servings": _text(data.get("servings")),
        "lines": lines,
        "was_submitted": isinstance(submitted_raw, list),
    }


def _cart_change(data: dict[str, Any]) -> dict[str, Any]:
    action = _text(data.get("action"))
    items = _dicts(data.get("items"))
    return {
        "action": action,
        "action_label": CART_ACTIONS.get(action, action),
        "sku": _text(data.get("sku")),
        "name": _text(data.get("name")),
        "quantity": quantity(data.get("quantity")),
        "price": money(data.get("price")),
        "item_count": len(items),
        "total": money(data.get("total")),
    }


def _error(message: Message, data: dict[str, Any]) -> dict[str, Any]:
    code = _text(data.get("code")) or message.text
    return {
        "code": code,
        "name": error_name(code) if code else "",
        "retry_after": _text(data.get("retry_after")),
        "detail": _text(data.get("message")),
    }


def _notice(data: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    if len(raw) > MAX_NOTICE_CHARS:
        raw = raw[:MAX_NOTICE_CHARS] + "\n…"
    return {"raw": raw}


def _action(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": _text(data.get("action")),
        "sku": _text(data.get("sku")),
        "quantity": quantity(data.get("quantity")),
    }


def build_entry(message: Message) -> Entry:
    """The view model of one stored message; unknown kinds fall back to a notice showing the raw frame."""
    data, kind = message.data, message.kind
    common: _Common = {
        "seq": message.seq,
        "role": message.role,
        "created_at": message.created_at,
        "complete": message.complete,
    }
    if kind == Message.Kind.TEXT:
        if message.role == Message.Role.ASSISTANT:
            return Entry(kind=kind, text=message.text, html=render_markdown(message.text), **common)
        return Entry(kind=kind, text=message.text, **common)
    builders: dict[str, Callable[[], dict[str, Any]]] = {
        Message.Kind.ACTION: lambda: _action(data),
        Message.Kind.PRODUCT_CARDS: lambda: {"products": [_product(item) for item in _dicts(data.get("items"))]},
        Message.Kind.QUICK_REPLIES: lambda: _quick_replies(data),
        Message.Kind.CHECKLIST: lambda: _checklist(data),
        Message.Kind.CART: lambda: _cart_change(data),
        Message.Kind.ERROR: lambda: _error(message, data),
    }
    builder = builders.get(kind)
    if builder is None:
        label = message.text or _text(data.get("type"))
        return Entry(kind=Message.Kind.NOTICE, text=label, body=_notice(data), **common)
    return Entry(kind=kind, text=message.text, body=builder(), **common)


def build_entries(messages: Iterable[Message]) -> list[Entry]:
    return [build_entry(message) for message in messages]


def cart_lines(cart: Any) -> list[dict[str, str]]:
    """The conversation's current cart (denormalised on the row) for the summary table."""
    return [
        {
            "sku": _text(item.get("sku")),
            "name": _text(item.get("name")),
            "quantity": quantity(item.get("quantity")),
            "unit": _unit(item.get("unit")),
            "price": money(item.get("price")),
            "promo_price": money(item.get("promo_price")),
        }
        for item in _dicts(cart)
    ]
