"""What a browser may send over the chat socket: every frame declared once, read by one function.

The page (``static/chat/*.js``, and the ``ws-send`` forms of the templates) sends JSON objects; :func:`parse` turns one
into a typed, frozen frame, or into a :class:`Refused` that names the code the tab is shown (a code of
``chat.presentation.texts.ERROR_TEXTS``), the field and the problem. It never raises: whatever a browser writes, the
answer is a frame or a refusal, so a bad frame can neither close the socket (1011) nor skip the code that gives back
what a socket holds. What needs the database (is this product shown, this line in the cart, this choice still open)
is the consumer's to check; what the text alone says is checked here.

The rules, the same for every frame: unknown fields are ignored (a form may carry more); a field that is absent takes
its default; a field that is present must have its declared type (a string is a JSON string, never a list or an
object; a number is ASCII digits, never ``"²"``, ``"١"``, a bool or a float); strings have a bounded length; JSON
with ``NaN``/``Infinity`` or a key written twice is no frame. Numbers are read as :mod:`chat.web.numbers` reads
every number a client sends.

``docs/relay.md`` ("Browser frames") is written from these declarations (:func:`markdown`); a test keeps it so.
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, ClassVar, TypeAlias

from chat.vizochok.messages import clean_strings
from chat.web import numbers

#: Browser frames are small forms; anything near the upstream's 64 KB frame limit is refused here.
MAX_BROWSER_FRAME = 16 * 1024
#: The longest message a shopper may send (the composer's counter says so: ``data-limit``).
MAX_TEXT_CHARS = 2000
#: An idempotency key (the page sends a UUID).
MAX_KEY_CHARS = 64
#: A product's sku, a checklist item's id, a streamed bubble's id, a rating's reason.
MAX_ID_CHARS = 256
#: A quick reply's value (the upstream's own words for the choice).
MAX_VALUE_CHARS = 2000
#: The comment of a down rating (``chat.feedback.TEXT_LIMIT``; a test keeps both equal).
MAX_RATING_TEXT_CHARS = 500
#: Items of one checklist submit.
MAX_CHECKLIST_ITEMS = 200
#: A quantity as the page lets it through (cards.parseQuantity): ASCII digits with one decimal mark (either), the mark
#: may lead (".5") or end ("1."), spaces around it are the field's, not the number's.
_QUANTITY = re.compile(r"\s*(?:[0-9]{1,9}(?:[.,][0-9]{0,9})?|[.,][0-9]{1,9})\s*", re.ASCII)
_MAX_QUANTITY = 999_999_999


@dataclass(frozen=True, slots=True)
class Refused:
    """A frame that is not handled: ``code`` is what the tab is shown, ``details`` fill in its words.

    ``field`` and ``problem`` say what was wrong (for the log and the tests, not the shopper). ``kind`` is the frame's
    kind when it was readable: the consumer answers a refused turn send with the turn state (the tab turned busy
    when it sent), and a refused ping, sync or rating without it.
    """

    code: str
    problem: str
    field: str = ""
    kind: str = ""
    details: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))


class _Refusal(Exception):
    """Raised inside the parser only; :func:`parse` returns it as a :class:`Refused`."""

    def __init__(self, code: str, problem: str, field: str = "", **details: Any) -> None:
        super().__init__(code)
        self.refused = Refused(code, problem, field, details=MappingProxyType(details))


def _doc(text: str) -> dict[str, str]:
    """A frame field's description: ``docs/relay.md`` is written from it."""
    return {"doc": text}


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame:
    """A browser frame. ``KIND`` is its ``kind`` (``type`` for a ping); ``REFUSALS`` the codes :func:`parse` may give
    it, besides those of every frame (``invalid_frame``, ``frame_too_large``)."""

    KIND: ClassVar[str]
    REFUSALS: ClassVar[tuple[str, ...]] = ()
    #: Who sends it, for the documentation.
    SENT_BY: ClassVar[str] = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Frame):
    """The page's heartbeat: answered at once with ``{"type": "pong", "id": id}``, not held behind fragments."""

    KIND: ClassVar[str] = "ping"
    SENT_BY: ClassVar[str] = "connection.js, while the page is visible"
    id: int | None = field(default=None, metadata=_doc("echoed in the pong; anything but a number is echoed as null"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Sync(Frame):
    """Catch this tab up: stored messages after ``after``, the streamed reply beyond ``offset`` of ``bubble``."""

    KIND: ClassVar[str] = "sync"
    SENT_BY: ClassVar[str] = "connection.js and positions.js, on every (re)connect and on a gap in a streamed reply"
    after: int = field(default=0, metadata=_doc("the last stored message the tab has (its `seq`)"))
    bubble: str = field(default="", metadata=_doc("the id of the reply being streamed the tab shows"))
    offset: int = field(default=0, metadata=_doc("how many characters of that reply the tab shows"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop(Frame):
    """Stop the running turn; answered by the turn's end, or at once with the state when none runs."""

    KIND: ClassVar[str] = "stop"
    SENT_BY: ClassVar[str] = "sending.js, the composer's stop button"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate(Frame):
    """Rate a finished reply (``chat.feedback`` checks the values); not a turn, so a refusal leaves the state."""

    KIND: ClassVar[str] = "rate"
    REFUSALS: ClassVar[tuple[str, ...]] = ("invalid_feedback",)
    SENT_BY: ClassVar[str] = "feedback.js, a reply's rating buttons"
    seq: int = field(metadata=_doc("the reply's `seq`"))
    value: str = field(metadata=_doc('"up", "down" or "none" (clears the rating)'))
    reason: str = field(default="", metadata=_doc("a down rating's reason"))
    text: str = field(default="", metadata=_doc(f"a down rating's comment, at most {MAX_RATING_TEXT_CHARS} characters"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Send(Frame):
    """A frame that starts a turn: the tab turned busy when it sent it, and its ``key`` makes a resend harmless."""

    KIND: ClassVar[str] = ""
    key: str = field(default="", metadata=_doc(f"the send's idempotency key, at most {MAX_KEY_CHARS} characters"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry(Send):
    """Send the last turn's message again, when that turn failed or was stopped."""

    KIND: ClassVar[str] = "retry"
    REFUSALS: ClassVar[tuple[str, ...]] = ("retry_unavailable",)
    SENT_BY: ClassVar[str] = "items/_retry.html"
    seq: int = field(metadata=_doc("the message to send again"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Message(Send):
    """The shopper's text (the default kind: a frame without ``kind`` is a message)."""

    KIND: ClassVar[str] = "message"
    REFUSALS: ClassVar[tuple[str, ...]] = ("empty_message", "message_too_long")
    SENT_BY: ClassVar[str] = "page.html's composer"
    text: str = field(metadata=_doc(f"the message, stripped; 1 to {MAX_TEXT_CHARS} characters"))


@dataclass(frozen=True, slots=True, kw_only=True)
class AddToCart(Send):
    """Add a product shown in this conversation."""

    KIND: ClassVar[str] = "add_to_cart"
    REFUSALS: ClassVar[tuple[str, ...]] = ("unknown_product",)
    SENT_BY: ClassVar[str] = "items/_product_card.html"
    sku: str = field(metadata=_doc("the product"))
    quantity: Decimal | None = field(
        default=Decimal(1),
        metadata=_doc(
            'ASCII digits with one "." or "," (".5" and "1." too; spaces around it ignored), or a JSON number; 1 when'
            " absent; an unreadable one is refused as `invalid_quantity` once the product says what it allows"
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateQuantity(Send):
    """Change a cart line's quantity."""

    KIND: ClassVar[str] = "update_quantity"
    REFUSALS: ClassVar[tuple[str, ...]] = ("not_in_cart",)
    SENT_BY: ClassVar[str] = "parts/cart_panel.html, a line's stepper"
    sku: str = field(metadata=_doc("the cart line"))
    quantity: Decimal | None = field(default=Decimal(1), metadata=_doc("as for `add_to_cart`"))


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveFromCart(Send):
    """Remove a cart line."""

    KIND: ClassVar[str] = "remove_from_cart"
    REFUSALS: ClassVar[tuple[str, ...]] = ("not_in_cart",)
    SENT_BY: ClassVar[str] = "parts/cart_panel.html, a line's remove button"
    sku: str = field(metadata=_doc("the cart line"))


@dataclass(frozen=True, slots=True, kw_only=True)
class UndoRemove(Send):
    """Put back the line the last cart change removed, as it was."""

    KIND: ClassVar[str] = "undo_remove"
    REFUSALS: ClassVar[tuple[str, ...]] = ("choice_expired",)
    SENT_BY: ClassVar[str] = "parts/cart_panel.html, the undo after a remove"
    sku: str = field(metadata=_doc("the removed line"))


@dataclass(frozen=True, slots=True, kw_only=True)
class QuickReply(Send):
    """Choose one of a reply's quick replies."""

    KIND: ClassVar[str] = "quick_reply"
    REFUSALS: ClassVar[tuple[str, ...]] = ("choice_expired",)
    SENT_BY: ClassVar[str] = "items/quick_replies.html"
    seq: int = field(metadata=_doc("the quick replies' message"))
    value: str = field(metadata=_doc(f"the chosen reply's value, at most {MAX_VALUE_CHARS} characters"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChecklistSubmit(Send):
    """Add a checklist's chosen ingredients to the cart."""

    KIND: ClassVar[str] = "checklist_submit"
    REFUSALS: ClassVar[tuple[str, ...]] = ("choice_expired",)
    SENT_BY: ClassVar[str] = "items/checklist.html"
    seq: int = field(metadata=_doc("the checklist's message"))
    item: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            f"the chosen items' ids: a string or a list of strings (a form's repeated field), at most"
            f" {MAX_CHECKLIST_ITEMS}"
        ),
    )


#: Every frame a browser may send, by its kind.
FRAMES: Mapping[str, type[Frame]] = MappingProxyType(
    {
        frame.KIND: frame
        for frame in (
            Ping,
            Sync,
            Stop,
            Rate,
            Retry,
            Message,
            AddToCart,
            UpdateQuantity,
            RemoveFromCart,
            UndoRemove,
            QuickReply,
            ChecklistSubmit,
        )
    }
)

#: Refusals any frame may get, before its kind is known.
COMMON_REFUSALS = ("invalid_frame", "frame_too_large", "unknown_kind")

#: Frames sent from a line of the cart panel: their refusals carry the line's sku, shown at that line (issue 22).
CART_LINE_KINDS = frozenset({UpdateQuantity.KIND, RemoveFromCart.KIND, UndoRemove.KIND})

AnyFrame: TypeAlias = (
    Ping
    | Sync
    | Stop
    | Rate
    | Retry
    | Message
    | AddToCart
    | UpdateQuantity
    | RemoveFromCart
    | UndoRemove
    | QuickReply
    | ChecklistSubmit
)


def parse(raw: str | bytes | None) -> AnyFrame | Refused:
    """One browser frame as sent (a text frame's text; a binary frame is no frame): a typed frame, or why not."""
    try:
        data = _decode(raw)
    except _Refusal as refusal:
        return refusal.refused
    kind = data.get("kind", Message.KIND) if data.get("type") != Ping.KIND else Ping.KIND
    if not isinstance(kind, str):
        return Refused("invalid_frame", "not_a_string", "kind")
    reader = _READERS.get(kind)
    if reader is None:
        return Refused("unknown_kind", "unknown_kind", "kind", kind="")
    try:
        return reader(_Fields(data, kind))
    except _Refusal as refusal:
        refused = dataclasses.replace(refusal.refused, kind=kind)
        sku = data.get("sku")
        if kind in CART_LINE_KINDS and isinstance(sku, str) and sku and len(sku) <= MAX_ID_CHARS:
            refused = dataclasses.replace(refused, details=MappingProxyType({**refused.details, "line": sku}))
        return refused


def _decode(raw: str | bytes | None) -> dict[str, Any]:
    if not isinstance(raw, str):
        raise _Refusal("invalid_frame", "binary")
    if len(raw) > MAX_BROWSER_FRAME or len(raw.encode("utf-8", "surrogatepass")) > MAX_BROWSER_FRAME:
        raise _Refusal("frame_too_large", "too_large", max_size=MAX_BROWSER_FRAME)
    try:
        data = json.loads(raw, object_pairs_hook=_object, parse_constant=_not_finite)
    except (ValueError, RecursionError):  # RecursionError: brackets nested deeper than the parser recurses
        raise _Refusal("invalid_frame", "not_json") from None
    if not isinstance(data, dict):
        raise _Refusal("invalid_frame", "not_an_object")
    if "\\u" in raw:  # only an escape writes a lone surrogate or a NUL, which no database stores
        try:
            cleaned: dict[str, Any] = clean_strings(data)
        except RecursionError:  # nested deeper than the walk goes (the parser itself went deeper, in C)
            raise _Refusal("invalid_frame", "not_json") from None
        return cleaned
    return data


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each written once (with two, which one counts is the parser's guess), counted
    as they will be stored: two keys that differ only by a NUL or a lone surrogate would become one."""
    data = dict(pairs)
    if len(data) != len(pairs) or len({clean_strings(key) for key in data}) != len(data):
        raise _Refusal("invalid_frame", "duplicate_key")
    return data


def _not_finite(constant: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``: Python's parser takes them, JSON (and the page) does not write them."""
    raise _Refusal("invalid_frame", "not_finite")


class _Fields:
    """The fields of one frame, read by their declared type; a bad one is refused with ``invalid_frame``."""

    def __init__(self, data: dict[str, Any], kind: str) -> None:
        self.data = data
        self.kind = kind

    def text(self, name: str, limit: int, *, default: str = "", code: str = "invalid_frame") -> str:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise _Refusal("invalid_frame", "not_a_string", name)
        if len(value) > limit:
            raise _Refusal(code, "too_long", name)
        return value

    def natural(self, name: str, *, code: str = "invalid_frame", required: bool = False) -> int | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise _Refusal(code, "missing", name)
            return None
        number = numbers.natural(value) if not isinstance(value, list) else None  # a list is no number here
        if number is None:
            raise _Refusal(code, "not_a_number", name)
        return number

    def key(self) -> str:
        return self.text("key", MAX_KEY_CHARS)

    def sku(self, code: str) -> str:
        sku = self.text("sku", MAX_ID_CHARS)
        if not sku:
            raise _Refusal(code, "missing", "sku")  # what the consumer would say of a sku nobody has
        return sku

    def quantity(self) -> Decimal | None:
        return quantity(self.data.get("quantity"))


def quantity(value: Any) -> Decimal | None:
    """A quantity as a browser sends it: 1 when absent; None when it is no quantity (refused with the product's
    bounds by the consumer: ``invalid_quantity``)."""
    if value is None:
        return Decimal(1)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value) if 0 <= value <= _MAX_QUANTITY else None
    if isinstance(value, float):  # json gives only finite ones (NaN and Infinity are refused as they are read)
        return Decimal(repr(value)) if 0 <= value <= _MAX_QUANTITY else None
    if isinstance(value, str) and _QUANTITY.fullmatch(value):
        try:
            return Decimal(value.strip().replace(",", "."))
        except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
            return None
    return None


def _ping(fields: _Fields) -> Ping:
    # A heartbeat is answered whatever it carries: an id that is no number is echoed as null, never refused (a
    # refusal would be an error in the log the shopper reads, for a frame that asks nothing of the server).
    return Ping(id=numbers.natural(fields.data.get("id")) if not isinstance(fields.data.get("id"), list) else None)


def _sync(fields: _Fields) -> Sync:
    return Sync(
        after=fields.natural("after") or 0,
        bubble=fields.text("bubble", MAX_ID_CHARS),
        offset=fields.natural("offset") or 0,
    )


def _stop(fields: _Fields) -> Stop:
    return Stop()


def _rate(fields: _Fields) -> Rate:
    def text(name: str, limit: int, *, required: bool = False) -> str:
        value = fields.data.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str):
            raise _Refusal("invalid_feedback", "not_a_string" if value is not None else "missing", name)
        if len(value) > limit:
            raise _Refusal("invalid_feedback", "too_long", name)
        return value

    seq = fields.natural("seq", code="invalid_feedback", required=True)
    assert seq is not None
    return Rate(
        seq=seq,
        value=text("value", MAX_ID_CHARS, required=True),
        reason=text("reason", MAX_ID_CHARS),
        text=text("text", MAX_RATING_TEXT_CHARS),
    )


def _retry(fields: _Fields) -> Retry:
    key = fields.key()
    seq = fields.natural("seq", code="retry_unavailable", required=True)
    assert seq is not None
    return Retry(key=key, seq=seq)


#: Characters that show nothing: spaces, format characters (zero-width ones, the soft hyphen, a BOM), controls. A
#: message of only these was sent upstream as a question of nothing.
_NOTHING_TO_READ = frozenset({"Zs", "Zl", "Zp", "Cf", "Cc"})


def _message(fields: _Fields) -> Message:
    key = fields.key()
    text = fields.text("text", MAX_BROWSER_FRAME).strip()
    if not text or all(unicodedata.category(char) in _NOTHING_TO_READ for char in text):
        raise _Refusal("empty_message", "empty", "text")
    if len(text) > MAX_TEXT_CHARS:
        raise _Refusal("message_too_long", "too_long", "text", limit=MAX_TEXT_CHARS)
    return Message(key=key, text=text)


def _add_to_cart(fields: _Fields) -> AddToCart:
    return AddToCart(key=fields.key(), sku=fields.sku("unknown_product"), quantity=fields.quantity())


def _update_quantity(fields: _Fields) -> UpdateQuantity:
    return UpdateQuantity(key=fields.key(), sku=fields.sku("not_in_cart"), quantity=fields.quantity())


def _remove_from_cart(fields: _Fields) -> RemoveFromCart:
    return RemoveFromCart(key=fields.key(), sku=fields.sku("not_in_cart"))


def _undo_remove(fields: _Fields) -> UndoRemove:
    return UndoRemove(key=fields.key(), sku=fields.sku("choice_expired"))


def _quick_reply(fields: _Fields) -> QuickReply:
    key = fields.key()
    seq = fields.natural("seq", code="choice_expired", required=True)
    assert seq is not None
    return QuickReply(key=key, seq=seq, value=fields.text("value", MAX_VALUE_CHARS, code="choice_expired"))


def _checklist_submit(fields: _Fields) -> ChecklistSubmit:
    key = fields.key()
    seq = fields.natural("seq", code="choice_expired", required=True)
    assert seq is not None
    chosen = fields.data.get("item")
    items = [] if chosen is None else [chosen] if isinstance(chosen, str) else chosen
    if not isinstance(items, list):
        raise _Refusal("invalid_frame", "not_a_list", "item")
    if len(items) > MAX_CHECKLIST_ITEMS:
        raise _Refusal("invalid_frame", "too_long", "item")
    if not all(isinstance(item, str) and len(item) <= MAX_ID_CHARS for item in items):
        raise _Refusal("invalid_frame", "not_a_string", "item")
    return ChecklistSubmit(key=key, seq=seq, item=tuple(items))


_READERS: Mapping[str, Callable[[_Fields], AnyFrame]] = MappingProxyType(
    {
        Ping.KIND: _ping,
        Sync.KIND: _sync,
        Stop.KIND: _stop,
        Rate.KIND: _rate,
        Retry.KIND: _retry,
        Message.KIND: _message,
        AddToCart.KIND: _add_to_cart,
        UpdateQuantity.KIND: _update_quantity,
        RemoveFromCart.KIND: _remove_from_cart,
        UndoRemove.KIND: _undo_remove,
        QuickReply.KIND: _quick_reply,
        ChecklistSubmit.KIND: _checklist_submit,
    }
)


#: Where the written list starts and ends in ``docs/relay.md``.
DOC_BEGIN = "<!-- browser frames: written by chat.web.frames.markdown(); tests/chat/web/test_frames.py checks it -->"
DOC_END = "<!-- end of browser frames -->"


def markdown() -> str:
    """The "Browser frames" section of ``docs/relay.md``, written from the declarations (a test keeps them equal)."""
    lines = [
        "Every frame is a JSON object of at most "
        f"{MAX_BROWSER_FRAME // 1024} KB in a text frame (`chat/web/frames.py` declares them; this list is written"
        " from it). Any frame may be refused with "
        + ", ".join(f"`{code}`" for code in COMMON_REFUSALS)
        + ": a binary frame, text that is not one JSON object, `NaN`/`Infinity`, a key written twice, a field of the"
        " wrong type (a list or an object where a string or a number belongs), a number that is not ASCII digits"
        ' (`"²"`, `"١"`, a bool, a float, a negative one, more than 9 digits), a string over its length. Unknown'
        " fields are ignored; an absent field takes its default. A refused send ends with the turn state (`ready`,"
        " or `busy` for `agent_busy`); a refused ping, sync or rating leaves the state as it is. A refusal of a cart"
        " line's frame ("
        + ", ".join(f"`{kind}`" for kind in sorted(CART_LINE_KINDS))
        + ") names the line (`data-sku` on the error), and the cart panel shows it there. What needs the"
        " conversation (a product shown, a line in the cart, a choice still open, a quantity the product allows) is"
        ' checked after, by the consumer (see "Checks before anything is sent").',
        "",
    ]
    for frame in FRAMES.values():
        written = '"type": "ping"' if frame is Ping else f'"kind": "{frame.KIND}"'
        lines.append(f"- `{{{written}}}`: {_first_line(frame.__doc__)} Sent by {frame.SENT_BY}.")
        for item in dataclasses.fields(frame):
            if item.default is dataclasses.MISSING:
                default = "required"
            elif isinstance(item.default, Decimal):
                default = f"default `{item.default}`"
            else:
                default = (
                    f"default `{json.dumps(list(item.default) if isinstance(item.default, tuple) else item.default)}`"
                )
            lines.append(f"  - `{item.name}` ({_WIRE_TYPES[str(item.type)]}, {default}): {item.metadata['doc']}.")
        if frame.REFUSALS:
            lines.append("  - Refused with " + ", ".join(f"`{code}`" for code in frame.REFUSALS) + ".")
    return "\n".join(_wrap(line) for line in lines) + "\n"


def _wrap(line: str) -> str:
    """A Markdown line at the width of the docs (120), a list item's lines under its text."""
    indent = len(line) - len(line.lstrip(" ")) + (2 if line.lstrip(" ").startswith("- ") else 0)
    return textwrap.fill(line, 120, subsequent_indent=" " * indent, break_on_hyphens=False) if line else ""


#: A field's type as the browser writes it.
_WIRE_TYPES = {
    "int": "number",
    "int | None": "number or null",
    "str": "string",
    "Decimal | None": "decimal, as a string or a number",
    "tuple[str, ...]": "list of strings",
}


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").split("\n\n")[0].split()).replace("``", "`")
