"""Database writes and reads of the relay, one small synchronous function each.

Callers in async code run them through :func:`chat.persistence.db.call`. Every upstream event that matters is written
once, when it is complete (a reply at ``text_end``, a card list, a cart); nothing is written per token, so the
number of writes per turn does not grow with the length of the reply.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from chat.models import SEARCH_TEXT_LIMIT, Conversation, Message, Turn
from chat.vizochok import messages as wire

Kind = Message.Kind
Role = Message.Role

#: Kinds that offer the shopper a choice; a new turn retires unanswered quick replies.
UI_KINDS = (Kind.QUICK_REPLIES, Kind.CHECKLIST)


def plain(frame: Any) -> dict[str, Any]:
    """A frame as JSON-ready data (Decimals become numbers), as stored in ``Message.payload``."""
    data: dict[str, Any] = json.loads(wire.to_json(frame))
    return data


def key_stored(conversation_id: int, client_key: str) -> bool:
    """Whether a send with this key is stored in the conversation already (a lookup on its unique index)."""
    return Message.objects.filter(conversation_id=conversation_id, client_key=client_key).exists()


def owned_conversation(
    public_id: str, user_id: str, store_id: str | None = None, *, new_in: str | None = None
) -> Conversation | None:
    """The conversation ``public_id`` if it is ``user_id``'s, else None: the one ownership rule of every door (the
    page, the socket, a card page, a host's entry token, a first send).

    ``store_id`` also requires that store (a page of one store; a session a host's token bound to one store). The
    answer never says why it is None (a guessed id gives nothing): a malformed id (no query), an unknown one,
    somebody else's, no shopper. With ``new_in``, an id no row has yet gives a provisional conversation of the
    shopper in that store instead: a first-time shopper's socket names the id its page was given, and it is stored
    at the first send (:func:`store_provisional`).
    """
    try:
        canonical = uuid.UUID(public_id)
    except (ValueError, TypeError, AttributeError):
        return None
    if not user_id:
        return None
    found = Conversation.objects.filter(public_id=canonical).first()
    if found is None:
        return None if new_in is None else provisional_conversation(user_id, new_in, str(canonical))
    if found.user_id != user_id or (store_id is not None and found.store_id != store_id):
        return None
    return found


def _latest(user_id: str, store_id: str) -> Conversation | None:
    """The shopper's most recently updated open conversation in the store."""
    mine = Conversation.objects.filter(user_id=user_id, store_id=store_id)
    return mine.exclude(status=Conversation.Status.CLOSED).order_by("-updated_at").first()


def conversation_for(session_key: str, user_id: str, store_id: str) -> Conversation:
    """The conversation a host's entry token opens without naming one: the shopper's latest, else a new one."""
    latest = _latest(user_id, store_id)
    if latest is not None:
        return latest
    return Conversation.objects.create(session_key=session_key, user_id=user_id, store_id=store_id)


def find_conversation(
    user_id: str, store_id: str, public_id: str | None = None, *, latest: bool = True
) -> Conversation | None:
    """What a page shows, read only: the one asked for if it is the visitor's own, else their latest, else None."""
    found = owned_conversation(public_id, user_id, store_id) if public_id else None
    if found is not None or not latest:
        return found
    return _latest(user_id, store_id)


def provisional_conversation(user_id: str, store_id: str, public_id: str | None = None) -> Conversation:
    """A conversation not stored yet: the socket stores it when the shopper first sends (a fresh id by default)."""
    conversation = Conversation(user_id=user_id, store_id=store_id)
    if public_id:
        conversation.public_id = uuid.UUID(public_id)
    return conversation


def conversation_by_public_id(public_id: str) -> Conversation | None:
    return Conversation.objects.filter(public_id=public_id).first()


def store_provisional(conversation: Conversation) -> Conversation | None:
    """Store a provisional conversation at its first send; the stored one, or None if its id is somebody else's.

    Two tabs of the same page may both send first: the second finds the first one's row and uses it.
    """
    try:
        with transaction.atomic():
            conversation.save(force_insert=True)
        return conversation
    except IntegrityError:
        return owned_conversation(str(conversation.public_id), conversation.user_id, conversation.store_id)


def new_conversation(session_key: str, user_id: str, store_id: str) -> Conversation:
    return Conversation.objects.create(session_key=session_key, user_id=user_id, store_id=store_id)


def recent_conversations(user_id: str, store_id: str, limit: int = 10) -> list[Conversation]:
    return list(
        Conversation.objects.filter(user_id=user_id, store_id=store_id, turn_count__gt=0).order_by("-updated_at")[
            :limit
        ]
    )


def _append(conversation_id: int, **fields: Any) -> Message:
    """Insert a message with the conversation's next sequence number (locked, so tabs never share a number)."""
    now = timezone.now()
    searchable = fields.get("text", "") if fields.get("kind") == Kind.TEXT else ""
    # No savepoint inside a caller's transaction (claims.finish_turn): a failure here fails the whole of it anyway.
    with transaction.atomic(savepoint=False):
        seq = _next_seq(conversation_id, now, searchable)
        return insert_message(Message(conversation_id=conversation_id, seq=seq, created_at=now, **fields))


#: The fields a new message's ``INSERT`` writes: all but the primary key, in the model's order.
_MESSAGE_FIELDS = [field for field in Message._meta.concrete_fields if not field.primary_key]


@functools.cache
def _insert_message_sql(vendor: str) -> str:
    """The ``INSERT`` of :func:`insert_message` for one database backend (built once, not on every insert)."""
    columns = ", ".join(connection.ops.quote_name(field.column) for field in _MESSAGE_FIELDS)
    placeholders = ", ".join(["%s"] * len(_MESSAGE_FIELDS))
    return f"INSERT INTO {table_name(Message)} ({columns}) VALUES ({placeholders}) RETURNING id"


def insert_message(message: Message) -> Message:
    """Insert a new message with one plain ``INSERT … RETURNING id`` and return it, saved.

    Every turn inserts two messages on the single database thread, which shares the GIL with the event loop; the
    ORM's ``save()`` spent several times the statement's own cost building it (docs/benchmarks.md). The values
    are prepared by the model's own fields, so they are stored exactly as ``save()`` would store them.
    """
    params = [field.get_db_prep_save(getattr(message, field.attname), connection) for field in _MESSAGE_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_insert_message_sql(connection.vendor), params)
        row = cursor.fetchone()
    message.pk = int(row[0])
    message._state.adding = False
    message._state.db = connection.alias
    return message


def table_name(model: type[Model]) -> str:
    """A model's table name, quoted for the plain SQL below (where the ORM's query building costs too much)."""
    return connection.ops.quote_name(model._meta.db_table)


def sql_time(moment: datetime) -> Any:
    """A datetime as a plain-SQL parameter, stored the way the ORM stores it (time zone, SQLite's text form)."""
    return connection.ops.adapt_datetimefield_value(moment)


# --- admin search column (issue 17) ---------------------------------------------------------------------------


def folded(text: str) -> str:
    """Text as the admin's search compares it: ``str.casefold`` handles Cyrillic, SQLite's LIKE folds ASCII only."""
    return text.casefold()


def search_append(text: str) -> tuple[str, list[Any]]:
    """The ``SET`` fragment (with a leading comma) and parameters that append ``text`` to the search column.

    Capped at ``SEARCH_TEXT_LIMIT`` characters so a very long chat cannot make every append rewrite megabytes.
    Nothing to append gives an empty fragment: the statement stays as it was.
    """
    if not text.strip():
        return "", []
    return ", search_text = substr(search_text || %s, 1, %s)", ["\n" + folded(text), SEARCH_TEXT_LIMIT]


def index_text(conversation_id: int, text: str) -> None:
    """Add a message text to the conversation's search column, for a writer that has no statement to fold it into.

    ``_append`` (assistant texts) and ``_claim_idle`` (the shopper's message) fold it into the ``UPDATE`` they run
    anyway; this is the one-statement form for the other paths.
    """
    search_sql, params = search_append(text)
    if not search_sql:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table_name(Conversation)} SET {search_sql[2:]} WHERE id = %s", [*params, conversation_id]
        )


def _next_seq(conversation_id: int, now: datetime, searchable: str = "") -> int:
    """Take the next sequence number in one statement (``UPDATE … RETURNING``: SQLite ≥ 3.35, PostgreSQL).

    The ORM's ``update()`` cannot return the new value, and a second query for it would be one more round trip on
    the single database thread for every stored event. A text message's words join the search column in the
    same statement (see ``index_text``).
    """
    table = table_name(Conversation)
    search_sql, search_params = search_append(searchable)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + 1, updated_at = %s{search_sql} WHERE id = %s RETURNING last_seq",
            [sql_time(now), *search_params, conversation_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Conversation.DoesNotExist(conversation_id)
    return int(row[0])


def upstream_id_of(conversation_id: int) -> str:
    """The upstream conversation ``conversation_id`` resumes ("" before its first turn has started one)."""
    found = Conversation.objects.filter(pk=conversation_id).values_list("upstream_id", flat=True).first()
    return found or ""


def last_reply_at(conversation_id: int) -> datetime | None:
    """When the conversation's newest reply text was stored: the upstream's last sign of it (an error, a notice or
    a cart change may be the relay's own)."""
    return (
        Message.objects.filter(conversation_id=conversation_id, role=Role.ASSISTANT, kind=Kind.TEXT)
        .order_by("-seq")
        .values_list("created_at", flat=True)
        .first()
    )


def set_upstream_id(conversation_id: int, upstream_id: str) -> None:
    Conversation.objects.filter(pk=conversation_id).update(upstream_id=upstream_id)


def save_assistant_text(conversation_id: int, text: str, *, complete: bool = True, stopped: bool = False) -> Message:
    """An assistant reply; ``stopped`` marks one the shopper cut short (kept as far as it streamed)."""
    payload = {"stopped": True} if stopped else {}
    return _append(conversation_id, role=Role.ASSISTANT, kind=Kind.TEXT, text=text, complete=complete, payload=payload)


def save_frame(conversation_id: int, kind: str, payload: dict[str, Any], text: str = "") -> Message:
    return _append(conversation_id, role=Role.ASSISTANT, kind=kind, text=text, payload=payload)


#: The largest total a cart column holds (``max_digits=12, decimal_places=2``).
_LARGEST_TOTAL = Decimal("9999999999.99")


def storable_total(total: Any) -> Decimal | None:
    """``total`` as the cart columns hold it, or None where they cannot: an upstream's number is untrusted, and
    1e30 failed the write on PostgreSQL and, stored by SQLite, every later read of the conversation."""
    try:
        value = Decimal(str(total)).quantize(Decimal("0.01"))
    except (ArithmeticError, ValueError):
        return None
    return value if value.is_finite() and abs(value) <= _LARGEST_TOTAL else None


def save_cart(
    conversation_id: int, payload: dict[str, Any], items: list[dict[str, Any]], total: Decimal, count: int
) -> Message:
    """Store a cart change and the snapshot the badge and the admin read; both in one transaction. A total the
    column cannot hold is stored as 0 (the panel's lines still say what each costs)."""
    stored_total = storable_total(total) or Decimal(0)
    with transaction.atomic():
        message = _append(conversation_id, role=Role.ASSISTANT, kind=Kind.CART, payload=payload)
        Conversation.objects.filter(pk=conversation_id).update(cart=items, cart_total=stored_total, cart_count=count)
    return message


def same_as_latest(conversation_id: int, kind: str, payload: dict[str, Any]) -> bool:
    """Whether the newest message of ``kind`` carries this payload (a pending choice re-sent on resume)."""
    latest = Message.objects.filter(conversation_id=conversation_id, kind=kind).order_by("-seq").first()
    if latest is None:
        return False
    stored = {k: v for k, v in latest.data.items() if k not in ("used", "submitted", "retired")}
    return stored == payload


def cart_of(conversation_id: int) -> tuple[list[dict[str, Any]], Decimal, int]:
    conversation = Conversation.objects.only("cart", "cart_total", "cart_count").get(pk=conversation_id)
    return list(conversation.cart or []), conversation.cart_total, conversation.cart_count


def removed_line(conversation_id: int, sku: str) -> dict[str, Any] | None:
    """The cart line the conversation's latest cart change removed, as it was before, if that line is ``sku``."""
    latest = list(Message.objects.filter(conversation_id=conversation_id, kind=Kind.CART).order_by("-seq")[:2])
    if len(latest) < 2 or not sku:
        return None
    last, before = latest
    if last.data.get("action") != "item_removed" or last.data.get("sku") != sku:
        return None
    for item in before.data.get("items", []):
        if isinstance(item, dict) and item.get("sku") == sku:
            return item
    return None


def retry_source(conversation_id: int, seq: int) -> Message | None:
    """The shopper's message to send again when ``seq`` is the end of the conversation's last turn and that turn
    failed (an error) or was stopped (issue 16); None otherwise: only the last turn may be retried."""
    last = Message.objects.filter(conversation_id=conversation_id).order_by("-seq").first()
    if last is None or last.seq != seq or last.role != Role.ASSISTANT:
        return None
    if not (last.kind == Kind.ERROR or (last.kind == Kind.TEXT and last.data.get("stopped"))):
        return None
    return Message.objects.filter(conversation_id=conversation_id, role=Role.USER, seq__lt=seq).order_by("-seq").first()


def messages_after(conversation_id: int, after_seq: int, limit: int = 500) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq).order_by("seq")[:limit])


def history(conversation_id: int, limit: int = 200) -> list[Message]:
    """The newest ``limit`` messages in order, for the first paint."""
    newest = Message.objects.filter(conversation_id=conversation_id).order_by("-seq")[:limit]
    return sorted(newest, key=lambda message: message.seq)


def shown_product(conversation_id: int, sku: str) -> dict[str, Any] | None:
    """The product card the shopper is acting on, as last shown in this conversation; None if never shown."""
    lists = Message.objects.filter(conversation_id=conversation_id, kind=Kind.PRODUCT_CARDS).order_by("-seq")[:20]
    for message in lists:
        for item in message.data.get("items", []):
            if isinstance(item, dict) and item.get("sku") == sku:
                return item
    return None


def product_bounds(conversation_id: int) -> dict[str, dict[str, Any]]:
    """The stepper fields (``quantity_step``, ``min_quantity``) of every product shown lately, by sku, by the rule of
    :func:`shown_product` (the newest card wins): a cart line steps as its card did, and as the relay checks it."""
    bounds: dict[str, dict[str, Any]] = {}
    lists = Message.objects.filter(conversation_id=conversation_id, kind=Kind.PRODUCT_CARDS).order_by("-seq")[:20]
    for message in lists:
        for item in message.data.get("items", []):
            sku = item.get("sku") if isinstance(item, dict) else None
            if isinstance(sku, str) and sku not in bounds:
                bounds[sku] = {key: item[key] for key in ("quantity_step", "min_quantity") if key in item}
    return bounds


def cart_and_bounds(conversation_id: int) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The stored cart's lines and :func:`product_bounds`, in one trip (a resume compares the restored cart)."""
    return cart_of(conversation_id)[0], product_bounds(conversation_id)


def card_message(conversation_id: int, seq: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, seq=seq, kind=Kind.PRODUCT_CARDS).first()


def checklist(conversation_id: int, seq: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, seq=seq, kind=Kind.CHECKLIST).first()


def quick_replies(conversation_id: int, seq: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, seq=seq, kind=Kind.QUICK_REPLIES).first()


def cart_items(conversation_id: int) -> list[dict[str, Any]]:
    return cart_of(conversation_id)[0]


# --- turn records for the admin insights (issue 17) -------------------------------------------------------------

#: The columns ``record_turn`` writes besides the ones copied from the conversation row.
_TURN_FIELDS = (
    "seq",
    "started_at",
    "day",
    "first_token_ms",
    "duration_ms",
    "outcome",
    "error_code",
    "query",
    "had_cards",
    "had_checklist",
    "cart_changed",
    "cart_adds",
    "cart_total",
    "added",
)


def record_turn(
    conversation_id: int,
    *,
    seq: int,
    started_at: datetime,
    first_token_ms: int | None,
    duration_ms: int | None,
    outcome: str,
    error_code: str = "",
    query: str = "",
    had_cards: bool = False,
    had_checklist: bool = False,
    cart_changed: bool = False,
    cart_adds: int = 0,
    cart_total: Decimal | None = None,
    added: list[dict[str, Any]] | None = None,
) -> None:
    """Store how a finished turn went, for the admin insights: one ``INSERT``, once per turn.

    The store and the shopper are copied from the conversation row inside the statement (scalar subqueries on its
    primary key), so the caller passes only what it saw during the turn. ``day`` is the start's date in the site's
    time zone, so the insights group by day through an index. A turn recorded twice (same ``seq``) keeps the first.
    """
    values = {
        "seq": seq,
        "started_at": started_at,
        "day": timezone.localdate(started_at),
        "first_token_ms": first_token_ms,
        "duration_ms": duration_ms,
        "outcome": outcome,
        "error_code": error_code[:64],
        "query": query.strip()[:200],
        "had_cards": had_cards,
        "had_checklist": had_checklist,
        "cart_changed": cart_changed or cart_adds > 0,
        "cart_adds": cart_adds,
        "cart_total": None if cart_total is None else storable_total(cart_total),
        "added": added or [],
    }
    # The concrete fields by name, not get_field(): that may also return a relation, which has no get_db_prep_save.
    fields = {field.name: field for field in Turn._meta.concrete_fields}
    params = [fields[name].get_db_prep_save(values[name], connection) for name in _TURN_FIELDS]
    turns, conversations = table_name(Turn), table_name(Conversation)
    columns = ", ".join(connection.ops.quote_name(name) for name in _TURN_FIELDS)
    placeholders = ", ".join(["%s"] * len(_TURN_FIELDS))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {turns} (conversation_id, store_id, user_id, {columns}) VALUES (%s, "
            f"(SELECT store_id FROM {conversations} WHERE id = %s), "
            f"(SELECT user_id FROM {conversations} WHERE id = %s), "
            f"{placeholders}) ON CONFLICT (conversation_id, seq) DO NOTHING",
            [conversation_id, conversation_id, conversation_id, *params],
        )
