"""Typed VIZOCHOK frames and the one place where JSON becomes a frame and back.

Every frame is a JSON object routed by its ``type`` (reference §2). The reference documents only part of each
frame's fields, so parsing is strict about what it relies on (types of the fields it reads, required fields) and
lenient about everything else: unknown fields are ignored, an unknown ``type`` becomes :class:`UnknownMessage`
instead of an exception, because the upstream is known to send types outside the official list (``event``, a
possible meal plan; reference §5).

Numbers that carry money or quantities are parsed as :class:`~decimal.Decimal` so that ``0.1`` kg steps and
``42.90`` prices survive a round trip exactly.

This module must not import Django: the sandbox, the benchmark and the relay all share it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, TypeAlias, TypeVar

_T = TypeVar("_T")

#: Largest frame a client sends, and the sandbox accepts (reference §10.2, ``message_too_large``).
MAX_FRAME_BYTES = 64 * 1024
#: Largest card list read from the upstream (any other frame: ``MAX_FRAME_BYTES``). The reference states 64 KB for
#: what a client sends; whether the server keeps its own frames as small is open (§14), and a larger
#: ``product_cards`` refused would lose every card in it. At most ``MAX_CARDS`` cards of bounded fields are kept.
MAX_SERVER_FRAME_BYTES = 256 * 1024


class MalformedFrame(ValueError):
    """A frame that is not a JSON object of a known shape; the single error parsing raises."""


class FrameTooLarge(MalformedFrame):
    """A frame over :data:`MAX_FRAME_BYTES`; refused before parsing or before sending."""

    def __init__(self, size: int, limit: int = MAX_FRAME_BYTES) -> None:
        super().__init__(f"frame of {size} bytes exceeds the {limit} byte limit")
        self.size = size
        self.limit = limit


# --------------------------------------------------------------------------------------------------------------
# Field readers: each raises MalformedFrame naming the field, so a log line says what was wrong.


def _str(data: Mapping[str, Any], key: str, *, required: bool = True, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise MalformedFrame(f"missing field {key!r}")
        return default
    if not isinstance(value, str):
        raise MalformedFrame(f"field {key!r} must be a string")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedFrame(f"field {key!r} must be a string")
    return str(value)


def _decimal(value: Any, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise MalformedFrame(f"field {key!r} must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise MalformedFrame(f"field {key!r} must be a number") from None
    if not number.is_finite():
        raise MalformedFrame(f"field {key!r} must be finite")
    return _in_range(number)


#: Largest decimal exponent a number may have: a double's range. No real serializer writes more, and writing such
#: a number back out (``to_json`` turns integral decimals into ints) would build an int of millions of digits.
MAX_NUMBER_EXPONENT = 308


def _in_range(number: Decimal) -> Decimal:
    if number.is_finite() and number.adjusted() > MAX_NUMBER_EXPONENT:
        raise MalformedFrame("number out of range")
    return number


def _json_number(text: str) -> Decimal:
    """``parse_float`` hook: exact decimals, refusing magnitudes no JSON producer means (see above)."""
    return _in_range(Decimal(text))


def _required(data: Mapping[str, Any], key: str) -> Any:
    value = data.get(key)
    if value is None:
        raise MalformedFrame(f"missing field {key!r}")
    return value


def _opt_decimal(data: Mapping[str, Any], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value is None else _decimal(value, key)


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise MalformedFrame(f"field {key!r} must be an integer")
    if isinstance(value, (float, Decimal)) and value == int(value):
        return int(value)
    if not isinstance(value, int):
        raise MalformedFrame(f"field {key!r} must be an integer")
    return value


#: Largest count an ``error`` frame's detail may carry (seconds, bytes, a daily cap); beyond it the detail means
#: nothing and is dropped.
_MAX_DETAIL = 10**9


def _detail_count(data: Mapping[str, Any], key: str) -> int | None:
    """A count beside an ``error``'s code (``retry_after``, ``limit``, ``max_size``), read leniently: the code ends
    the turn, so a detail of an unexpected type is dropped instead of the frame (which left the turn waiting for its
    timeout). A fractional number of seconds is rounded up."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not number.is_finite() or not 0 <= number <= _MAX_DETAIL:  # is_finite first: a NaN does not compare
        return None
    return math.ceil(number)


#: The most entries one frame of each kind is read with; the rest are dropped. One 64 KB frame holds thousands of
#: tiny entries, and everything a frame carries is stored, shown in every tab and in every page load after: 10,000
#: quick replies or checklist items, or 1,400 cart lines, made pages of 2-4 MB. No real reply comes near these.
MAX_QUICK_REPLIES = 12
MAX_CHECKLIST_ITEMS = 100
MAX_CART_LINES = 100
#: Cards read from one ``product_cards`` (shown a page at a time; the rest stored for "Show more"), and the most of
#: each field a card keeps: a card list from the upstream may be up to 256 KB (``MAX_SERVER_FRAME_BYTES``).
MAX_CARDS = 1500
MAX_SKU_CHARS, MAX_NAME_CHARS, MAX_UNIT_CHARS, MAX_URL_CHARS, MAX_DESCRIPTION_CHARS = 200, 300, 20, 2048, 4000


def _clipped(value: str | None, limit: int) -> str | None:
    return None if value is None else value[:limit]


def _readable(entries: list[Any], parse: Callable[[Any], _T], what: str) -> tuple[_T, ...]:
    """Each entry ``parse`` can read; one it cannot costs only itself. None readable: the frame is malformed."""
    read: list[_T] = []
    for entry in entries:
        try:
            read.append(parse(entry))
        except MalformedFrame:
            continue
    if entries and not read:
        raise MalformedFrame(f"no readable {what}")
    return tuple(read)


#: What a conversation id of the upstream's may be (its ids read ``conv_abc123``): one a client stores (100
#: characters) and sends back in every message as it came, printable ASCII without spaces (a UUID, base64 of either
#: alphabet). Anything else is read as no id: a 65 KB id taken as the conversation's made every later message too
#: large to send.
_CONVERSATION_ID = re.compile(r"[!-~]{1,100}")


def _conversation_id(data: Mapping[str, Any]) -> str | None:
    value = data.get("conversation_id")
    return value if isinstance(value, str) and _CONVERSATION_ID.fullmatch(value) else None


def _list(data: Mapping[str, Any], *keys: str, limit: int | None = None) -> list[Any]:
    """The first of ``keys`` that is present, as a list (its first ``limit`` entries); the upstream's names for
    lists are partly guessed."""
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise MalformedFrame(f"field {key!r} must be a list")
        return value[:limit]
    return []


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedFrame(f"{what} must be an object")
    return value


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


# --------------------------------------------------------------------------------------------------------------
# Shared payload shapes


@dataclass(frozen=True, slots=True)
class ProductItem:
    """One product card (reference §9; only ``sku``, ``name`` and ``price`` are required)."""

    sku: str
    name: str
    price: Decimal
    brand: str | None = None
    promo_price: Decimal | None = None
    promo_label: str | None = None
    image_url: str | None = None
    unit: str = "pcs"
    quantity_step: Decimal | None = None
    min_quantity: Decimal | None = None
    name_en: str | None = None
    #: The catalog's description (reference §17), when the upstream sends it with the card (undocumented there).
    description: str | None = None

    @classmethod
    def parse(cls, value: Any) -> ProductItem:
        """A card, its words cut to what a card shows (a card list may be up to 256 KB: one card of it may not); a sku
        or an image address too long to be one costs the card or the image, never a guess."""
        data = _obj(value, "product item")
        sku = _str(data, "sku")
        if len(sku) > MAX_SKU_CHARS:
            raise MalformedFrame("sku too long")
        image_url = _opt_str(data, "image_url")
        return cls(
            sku=sku,
            name=_str(data, "name")[:MAX_NAME_CHARS],
            price=_decimal(_required(data, "price"), "price"),
            brand=_clipped(_opt_str(data, "brand"), MAX_NAME_CHARS),
            promo_price=_opt_decimal(data, "promo_price"),
            promo_label=_clipped(_opt_str(data, "promo_label"), MAX_NAME_CHARS),
            image_url=image_url if image_url is None or len(image_url) <= MAX_URL_CHARS else None,
            unit=(_str(data, "unit", required=False, default="pcs") or "pcs")[:MAX_UNIT_CHARS],
            quantity_step=_opt_decimal(data, "quantity_step"),
            min_quantity=_opt_decimal(data, "min_quantity"),
            name_en=_clipped(_opt_str(data, "name_en"), MAX_NAME_CHARS),
            description=_clipped(_opt_str(data, "description"), MAX_DESCRIPTION_CHARS),
        )

    @property
    def effective_price(self) -> Decimal:
        return self.promo_price if self.promo_price is not None else self.price

    @property
    def step(self) -> Decimal:
        """Stepper increment: the catalog's ``quantity_step``, else 1 (0.1 would be wrong for pieces)."""
        return self.quantity_step if self.quantity_step and self.quantity_step > 0 else Decimal(1)

    @property
    def minimum(self) -> Decimal:
        return self.min_quantity if self.min_quantity and self.min_quantity > 0 else self.step

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "sku": self.sku,
                "name": self.name,
                "name_en": self.name_en,
                "brand": self.brand,
                "price": self.price,
                "promo_price": self.promo_price,
                "promo_label": self.promo_label,
                "image_url": self.image_url,
                "unit": self.unit,
                "quantity_step": self.quantity_step,
                "min_quantity": self.min_quantity,
                "description": self.description,
            }
        )


@dataclass(frozen=True, slots=True)
class CartItem:
    """One line of the merchant's cart (reference §8.2)."""

    sku: str
    name: str
    price: Decimal
    quantity: Decimal
    promo_price: Decimal | None = None
    brand: str | None = None
    unit: str = "pcs"

    @classmethod
    def parse_line(cls, value: Any) -> CartItem:
        """A line that must say its price and quantity (a restored cart is stored as it comes: no guessed 0 or 1)."""
        data = _obj(value, "cart item")
        _required(data, "price")
        _required(data, "quantity")
        return cls.parse(data)

    @classmethod
    def parse(cls, value: Any) -> CartItem:
        data = _obj(value, "cart item")
        return cls(
            sku=_str(data, "sku"),
            name=_str(data, "name", required=False, default="") or _str(data, "sku"),
            price=_opt_decimal(data, "price") or Decimal(0),
            quantity=_opt_decimal(data, "quantity") or Decimal(1),
            promo_price=_opt_decimal(data, "promo_price"),
            brand=_opt_str(data, "brand"),
            unit=_str(data, "unit", required=False, default="pcs") or "pcs",
        )

    @property
    def effective_price(self) -> Decimal:
        return self.promo_price if self.promo_price is not None else self.price

    @property
    def line_total(self) -> Decimal:
        return self.effective_price * self.quantity

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "sku": self.sku,
                "name": self.name,
                "price": self.price,
                "promo_price": self.promo_price,
                "brand": self.brand,
                "quantity": self.quantity,
                "unit": self.unit,
            }
        )


@dataclass(frozen=True, slots=True)
class QuickReply:
    """A suggestion pill. ``value`` is what a tap sends back; ``label`` is what the pill shows."""

    label: str
    value: str

    @classmethod
    def parse(cls, value: Any) -> QuickReply:
        if isinstance(value, str):
            if not value:
                raise MalformedFrame("quick reply needs a label or a value")
            return cls(label=value, value=value)
        data = _obj(value, "quick reply")
        label = _opt_str(data, "label") or _opt_str(data, "text") or _opt_str(data, "title")
        payload = _opt_str(data, "value") or _opt_str(data, "payload") or _opt_str(data, "id")
        if not label and not payload:
            raise MalformedFrame("quick reply needs a label or a value")
        return cls(label=label or payload or "", value=payload or label or "")

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "value": self.value}


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One ingredient of a recipe checklist; ``id`` is what a submit sends back."""

    id: str
    name: str
    quantity: Decimal | None = None
    unit: str | None = None
    sku: str | None = None
    checked: bool = True

    @classmethod
    def parse(cls, value: Any, index: int = 0) -> ChecklistItem:
        if isinstance(value, str):
            return cls(id=str(index), name=value)
        data = _obj(value, "checklist item")
        name = _str(data, "name")
        checked = data.get("checked", True)
        if not isinstance(checked, bool):
            raise MalformedFrame("field 'checked' must be a boolean")
        return cls(
            id=_opt_str(data, "id") or _opt_str(data, "sku") or str(index),
            name=name,
            quantity=_opt_decimal(data, "quantity"),
            unit=_opt_str(data, "unit"),
            sku=_opt_str(data, "sku"),
            checked=checked,
        )

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "id": self.id,
                "name": self.name,
                "quantity": self.quantity,
                "unit": self.unit,
                "sku": self.sku,
                "checked": self.checked,
            }
        )


# --------------------------------------------------------------------------------------------------------------
# Frames. Each class knows its wire ``type``; ``parse`` reads the JSON object, ``to_dict`` writes it back.


@dataclass(frozen=True, slots=True)
class _Frame:
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Any:
        return cls()


# Client -> server -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Auth(_Frame):
    type: ClassVar[str] = "auth"
    token: str
    store_id: str | None = None
    user_id: str | None = None
    #: Resuming a live session: the mobile guide sends the saved id in ``auth`` (reference §4.1).
    conversation_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "type": self.type,
                "token": self.token,
                "store_id": self.store_id,
                "user_id": self.user_id,
                "conversation_id": self.conversation_id,
            }
        )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Auth:
        return cls(
            token=_str(data, "token"),
            store_id=_opt_str(data, "store_id"),
            user_id=_opt_str(data, "user_id"),
            conversation_id=_opt_str(data, "conversation_id"),
        )

    def __repr__(self) -> str:
        # The token is a credential: it must never reach a log line through a repr.
        return (
            f"Auth(token='***', store_id={self.store_id!r}, user_id={self.user_id!r}, "
            f"conversation_id={self.conversation_id!r})"
        )


@dataclass(frozen=True, slots=True)
class UserMessage(_Frame):
    type: ClassVar[str] = "message"
    text: str
    conversation_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"type": self.type, "text": self.text, "conversation_id": self.conversation_id})

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> UserMessage:
        return cls(text=_str(data, "text"), conversation_id=_opt_str(data, "conversation_id"))


@dataclass(frozen=True, slots=True)
class Action(_Frame):
    """A structured interaction. Build these only through :mod:`chat.vizochok.actions` (provisional schema)."""

    type: ClassVar[str] = "action"
    action: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    #: The same request in the shopper's words (the pill's text, "Add: Milk × 2"), never on the wire as part of the
    #: action: sent as a ``message`` instead where the upstream refuses actions (reference §7: "a quick reply can
    #: always be degraded to a plain message carrying the pill text"; the schema is a guess, §22 item 2).
    text: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        extra = {k: v for k, v in self.payload.items() if k not in ("type", "action") and v is not None}
        return {"type": self.type, "action": self.action, **extra}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Action:
        payload = {key: value for key, value in data.items() if key not in ("type", "action")}
        return cls(action=_str(data, "action"), payload=payload)


@dataclass(frozen=True, slots=True)
class Ping(_Frame):
    """Keepalive; both sides send it (reference §4.4, §11)."""

    type: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class Pong(_Frame):
    type: ClassVar[str] = "pong"


# Server -> client -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthOk(_Frame):
    type: ClassVar[str] = "auth_ok"


@dataclass(frozen=True, slots=True)
class ConversationStarted(_Frame):
    type: ClassVar[str] = "conversation_started"
    conversation_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "conversation_id": self.conversation_id}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ConversationStarted:
        return cls(conversation_id=_conversation_id(data) or "")


@dataclass(frozen=True, slots=True)
class SessionRestored(_Frame):
    """A resumed conversation (reference §2, §8.3, §13), read leniently: the frame is what completes a resume, and
    its shape is the reference's guess (§22 item 6). Skipping it as malformed failed the resume."""

    type: ClassVar[str] = "session_restored"
    #: Empty when the frame does not repeat it: the client named the conversation in ``auth``.
    conversation_id: str
    selected_items: tuple[CartItem, ...] = ()
    total: Decimal | None = None
    #: ``selected_items`` was a list of whole cart lines (sku, price, quantity): the cart as the upstream holds it.
    #: Otherwise (bare SKUs, lines without a price, another shape, or no such field) the items are left empty and
    #: the cart is unknown: a client keeps the one it has rather than store lines it cannot price.
    cart_known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "type": self.type,
                "conversation_id": self.conversation_id or None,
                "selected_items": [item.to_dict() for item in self.selected_items] if self.cart_known else None,
                "total": self.total,
            }
        )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> SessionRestored:
        conversation_id = _conversation_id(data) or ""
        raw_items = data.get("selected_items")
        try:
            if not isinstance(raw_items, list):
                raise MalformedFrame("selected_items is not a list")
            items = tuple(CartItem.parse_line(item) for item in raw_items[:MAX_CART_LINES])
            total = _opt_decimal(data, "total")
        except MalformedFrame:
            return cls(conversation_id=conversation_id, cart_known=False)
        return cls(
            conversation_id=conversation_id,
            selected_items=items,
            total=total,
        )

    @property
    def cart_total(self) -> Decimal:
        """The total as sent, else the sum the docs' example computes (promo price wins)."""
        if self.total is not None:
            return self.total
        return sum((item.line_total for item in self.selected_items), Decimal(0))


@dataclass(frozen=True, slots=True)
class Status(_Frame):
    type: ClassVar[str] = "status"
    code: str
    #: Free text some upstreams add; never shown as is (the client localizes codes, reference §5).
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"type": self.type, "code": self.code, "message": self.message})

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Status:
        return cls(code=_str(data, "code"), message=_opt_str(data, "message"))


@dataclass(frozen=True, slots=True)
class TextDelta(_Frame):
    type: ClassVar[str] = "text_delta"
    delta: str

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "delta": self.delta}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> TextDelta:
        return cls(delta=_str(data, "delta"))


@dataclass(frozen=True, slots=True)
class TextEnd(_Frame):
    type: ClassVar[str] = "text_end"


@dataclass(frozen=True, slots=True)
class ProductCards(_Frame):
    type: ClassVar[str] = "product_cards"
    items: tuple[ProductItem, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "items": [item.to_dict() for item in self.items]}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ProductCards:
        return cls(items=_readable(_list(data, "items", "products", limit=MAX_CARDS), ProductItem.parse, "product"))


@dataclass(frozen=True, slots=True)
class QuickReplies(_Frame):
    type: ClassVar[str] = "quick_replies"
    replies: tuple[QuickReply, ...]
    prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {"type": self.type, "prompt": self.prompt, "replies": [reply.to_dict() for reply in self.replies]}
        )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> QuickReplies:
        return cls(
            replies=_readable(
                _list(data, "replies", "options", "items", limit=MAX_QUICK_REPLIES), QuickReply.parse, "quick reply"
            ),
            prompt=_opt_str(data, "prompt") or _opt_str(data, "question"),
        )


@dataclass(frozen=True, slots=True)
class IngredientChecklist(_Frame):
    type: ClassVar[str] = "ingredient_checklist"
    items: tuple[ChecklistItem, ...]
    title: str | None = None
    servings: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "type": self.type,
                "title": self.title,
                "servings": self.servings,
                "items": [item.to_dict() for item in self.items],
            }
        )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> IngredientChecklist:
        raw = _list(data, "items", "ingredients", limit=MAX_CHECKLIST_ITEMS)
        return cls(
            items=_readable(list(enumerate(raw)), lambda pair: ChecklistItem.parse(pair[1], pair[0]), "ingredient"),
            title=_opt_str(data, "title") or _opt_str(data, "recipe"),
            servings=_opt_int(data, "servings"),
        )


@dataclass(frozen=True, slots=True)
class CartChanged(_Frame):
    """The whole cart after a change (reference §8.1); the only source of cart state a client may show."""

    type: ClassVar[str] = "cart_changed"
    action: str
    items: tuple[CartItem, ...]
    total: Decimal
    sku: str | None = None
    name: str | None = None
    quantity: Decimal | None = None
    price: Decimal | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "type": self.type,
                "action": self.action,
                "sku": self.sku,
                "name": self.name,
                "quantity": self.quantity,
                "price": self.price,
                "items": [item.to_dict() for item in self.items],
                "total": self.total,
            }
        )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CartChanged:
        items = tuple(CartItem.parse(item) for item in _list(data, "items", limit=MAX_CART_LINES))
        total = _opt_decimal(data, "total")
        return cls(
            action=_str(data, "action", required=False, default="updated") or "updated",
            items=items,
            total=total if total is not None else sum((item.line_total for item in items), Decimal(0)),
            sku=_opt_str(data, "sku"),
            name=_opt_str(data, "name"),
            quantity=_opt_decimal(data, "quantity"),
            price=_opt_decimal(data, "price"),
        )

    @property
    def count(self) -> Decimal:
        return sum((item.quantity for item in self.items), Decimal(0))


@dataclass(frozen=True, slots=True)
class ErrorMessage(_Frame):
    type: ClassVar[str] = "error"
    code: str
    retry_after: int | None = None
    limit: int | None = None
    max_size: int | None = None
    message: str | None = None

    #: Codes after which the same request may be tried again later (reference §10.2).
    RETRYABLE: ClassVar[frozenset[str]] = frozenset({"rate_limit_exceeded", "agent_busy", "internal_error"})

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(
            {
                "type": self.type,
                "code": self.code,
                "retry_after": self.retry_after,
                "limit": self.limit,
                "max_size": self.max_size,
                "message": self.message,
            }
        )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ErrorMessage:
        code, message = data.get("code"), data.get("message")
        return cls(
            code=code if isinstance(code, str) and code else "unknown_error",
            retry_after=_detail_count(data, "retry_after"),
            limit=_detail_count(data, "limit"),
            max_size=_detail_count(data, "max_size"),
            message=message if isinstance(message, str) else None,
        )


@dataclass(frozen=True, slots=True)
class ResponseComplete(_Frame):
    type: ClassVar[str] = "response_complete"
    conversation_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_none({"type": self.type, "conversation_id": self.conversation_id})

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ResponseComplete:
        return cls(conversation_id=_conversation_id(data))


@dataclass(frozen=True, slots=True)
class Event(_Frame):
    """A domain event such as ``item_selected`` (reference §6). Its envelope is undocumented: both
    ``{"type":"event","event":{"type":"item_selected",...}}`` and ``{"type":"event","event":"item_selected",...}``
    are read; the nested form is written."""

    type: ClassVar[str] = "event"
    name: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "event": {**dict(self.data), "type": self.name}}

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Event:
        inner = data.get("event")
        if isinstance(inner, Mapping):
            return cls(name=_str(inner, "type"), data={k: v for k, v in inner.items() if k != "type"})
        if isinstance(inner, str):
            return cls(name=inner, data={k: v for k, v in data.items() if k not in ("type", "event")})
        name = _opt_str(data, "name")
        if name is None:
            raise MalformedFrame("event frame names no event")
        return cls(name=name, data={k: v for k, v in data.items() if k not in ("type", "name")})


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A well-formed frame whose ``type`` we do not know (say, a meal plan): kept whole, never fatal."""

    type: str
    data: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {**dict(self.data), "type": self.type}


ClientMessage: TypeAlias = Auth | UserMessage | Action | Ping | Pong
ServerMessage: TypeAlias = (
    AuthOk
    | ConversationStarted
    | SessionRestored
    | Status
    | TextDelta
    | TextEnd
    | ProductCards
    | QuickReplies
    | CartChanged
    | IngredientChecklist
    | ErrorMessage
    | ResponseComplete
    | Event
    | Ping
    | Pong
    | UnknownMessage
)

CLIENT_TYPES: dict[str, type[_Frame]] = {cls.type: cls for cls in (Auth, UserMessage, Action, Ping, Pong)}
SERVER_TYPES: dict[str, type[_Frame]] = {
    cls.type: cls
    for cls in (
        AuthOk,
        ConversationStarted,
        SessionRestored,
        Status,
        TextDelta,
        TextEnd,
        ProductCards,
        QuickReplies,
        CartChanged,
        IngredientChecklist,
        ErrorMessage,
        ResponseComplete,
        Event,
        Ping,
        Pong,
    )
}

#: Server frames after which the upstream takes the next ``message`` (reference §6; an error ends a turn too).
TURN_ENDING = (ResponseComplete, ErrorMessage)


# --------------------------------------------------------------------------------------------------------------
# JSON


#: Characters no database stores: NUL (PostgreSQL refuses it in text and JSON) and lone UTF-16 surrogates (not
#: encodable as UTF-8: SQLite's driver refuses them). JSON escapes (``"\\u0000"``, ``"\\ud800"``) write them.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable_char(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def clean_strings(value: Any) -> Any:
    """``value`` with every string in it (keys too, at any depth) storable: lone surrogates become U+FFFD, NULs go.

    An upstream (or a browser) can write either in any string of a frame; one in a reply made storing it fail, and
    the turn's end with it (issue 24). Cleaning where frames are parsed keeps every later layer free of them.
    """
    if isinstance(value, str):
        return _UNSTORABLE.sub(_storable_char, value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {clean_strings(key): clean_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_strings(item) for item in value]
    return value


def _decode(raw: str | bytes, limit: int) -> Mapping[str, Any]:
    # A str takes at most 4 bytes a character in UTF-8: only a long one is encoded to be measured.
    if isinstance(raw, bytes) or len(raw) * 4 > limit:
        size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
        if size > limit:
            raise FrameTooLarge(size, limit)
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise MalformedFrame(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedFrame("a frame must be a JSON object")
    # Only an escape brings one in: the JSON decoder refuses a raw control character, and a frame's text is decoded
    # UTF-8 (the WebSocket library's or ours above), which has no lone surrogates. Most frames hold no escape at
    # all and pay one substring search (a regular expression over every frame cost a fifth of the parse).
    if "\\u" in text:
        cleaned: dict[str, Any] = clean_strings(data)
        return cleaned
    return data


def _reject_constant(name: str) -> Any:
    raise MalformedFrame(f"{name} is not valid JSON")


#: One decoder for every frame (``json.loads`` with options builds a new one per call: on the hot path).
_DECODER = json.JSONDecoder(parse_float=_json_number, parse_constant=_reject_constant)


def _parse(raw: str | bytes, known: Mapping[str, type[_Frame]], limit: int) -> Any:
    data = _decode(raw, limit)
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedFrame("a frame needs a string 'type'")
    cls = known.get(kind)
    if cls is None:
        return UnknownMessage(type=kind, data=data)
    try:
        return cls.parse(data)
    except MalformedFrame as exc:
        raise MalformedFrame(f"{kind}: {exc}") from None


def parse_server(raw: str | bytes) -> ServerMessage:
    """Parse a frame the upstream sent. Raises :class:`MalformedFrame`; unknown types are returned, not raised.

    Only a card list may be larger than a client's frame (``MAX_SERVER_FRAME_BYTES``): a longer reply comes in more
    deltas, and no other frame carries more than a card list does.
    """
    frame = _parse(raw, SERVER_TYPES, MAX_SERVER_FRAME_BYTES)
    if not isinstance(frame, ProductCards) and (isinstance(raw, bytes) or len(raw) * 4 > MAX_FRAME_BYTES):
        size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8"))
        if size > MAX_FRAME_BYTES:
            raise FrameTooLarge(size)
    return frame  # type: ignore[no-any-return]


def parse_client(raw: str | bytes) -> ClientMessage | UnknownMessage:
    """Parse a frame a client sent (the sandbox's side of the wire)."""
    return _parse(raw, CLIENT_TYPES, MAX_FRAME_BYTES)  # type: ignore[no-any-return]


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Integral amounts go out as ints ("quantity": 2), the rest as the shortest float that reads back equal.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (tuple, frozenset, set)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(message: _Frame | UnknownMessage | Mapping[str, Any]) -> str:
    """Serialise a frame compactly, keeping non-ASCII text readable (Ukrainian names stay short on the wire)."""
    data = message if isinstance(message, Mapping) else message.to_dict()
    return json.dumps(data, default=_default, ensure_ascii=False, separators=(",", ":"))


def encoded_size(text: str) -> int:
    return len(text.encode("utf-8"))


def check_size(text: str, limit: int = MAX_FRAME_BYTES) -> str:
    """Return ``text`` if it fits in a frame, else raise :class:`FrameTooLarge` (checked before sending)."""
    size = encoded_size(text)
    if size > limit:
        raise FrameTooLarge(size, limit)
    return text


__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_SERVER_FRAME_BYTES",
    "Action",
    "Auth",
    "AuthOk",
    "CartChanged",
    "CartItem",
    "ChecklistItem",
    "ClientMessage",
    "ConversationStarted",
    "ErrorMessage",
    "Event",
    "FrameTooLarge",
    "IngredientChecklist",
    "MalformedFrame",
    "Ping",
    "Pong",
    "ProductCards",
    "ProductItem",
    "QuickReplies",
    "QuickReply",
    "ResponseComplete",
    "ServerMessage",
    "SessionRestored",
    "Status",
    "TextDelta",
    "TextEnd",
    "UnknownMessage",
    "UserMessage",
    "check_size",
    "clean_strings",
    "parse_client",
    "parse_server",
    "to_json",
]
