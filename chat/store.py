"""Database writes and reads of the relay, one small synchronous function each.

Callers in async code wrap them with ``database_sync_to_async``. Every upstream event that matters is written
once, when it is complete (a reply at ``text_end``, a card list, a cart); nothing is written per token, so the
number of writes per turn does not grow with the length of the reply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from chat.models import Conversation, Message
from chat.turns import liveness
from chat.vizochok import messages as wire

Kind = Message.Kind
Role = Message.Role

#: Kinds that offer the shopper a choice; a new turn retires unanswered quick replies.
UI_KINDS = (Kind.QUICK_REPLIES, Kind.CHECKLIST)


def plain(frame: Any) -> dict[str, Any]:
    """A frame as JSON-ready data (Decimals become numbers), as stored in ``Message.payload``."""
    return json.loads(wire.to_json(frame))


@dataclass
class TurnStart:
    message: Message | None = None
    duplicate: bool = False
    busy: bool = False
    #: Messages whose look changed (retired quick replies, a used checklist) and must be re-rendered.
    changed: list[Message] = field(default_factory=list)


def conversation_for(session_key: str, user_id: str, store_id: str, public_id: str | None = None) -> Conversation:
    """The conversation a page shows: the one asked for if it is the visitor's own, else their latest."""
    mine = Conversation.objects.filter(user_id=user_id, store_id=store_id)
    if public_id:
        found = mine.filter(public_id=public_id).first()
        if found is not None:
            return found
    latest = mine.exclude(status=Conversation.Status.CLOSED).order_by("-updated_at").first()
    if latest is not None:
        return latest
    return Conversation.objects.create(session_key=session_key, user_id=user_id, store_id=store_id)


def new_conversation(session_key: str, user_id: str, store_id: str) -> Conversation:
    return Conversation.objects.create(session_key=session_key, user_id=user_id, store_id=store_id)


def recent_conversations(user_id: str, store_id: str, limit: int = 10) -> list[Conversation]:
    return list(
        Conversation.objects.filter(user_id=user_id, store_id=store_id, turn_count__gt=0).order_by("-updated_at")[
            :limit
        ]
    )


def owned_conversation(public_id: str, user_id: str) -> Conversation | None:
    """A conversation by its public id, only for its owner: a guessed id gives nothing."""
    try:
        return Conversation.objects.filter(public_id=public_id, user_id=user_id).first()
    except (ValueError, TypeError):
        return None


def _append(conversation_id: int, **fields: Any) -> Message:
    """Insert a message with the conversation's next sequence number (locked, so tabs never share a number)."""
    now = timezone.now()
    with transaction.atomic():
        seq = _next_seq(conversation_id, now)
        return Message.objects.create(conversation_id=conversation_id, seq=seq, created_at=now, **fields)


def _table(model: type[Model]) -> str:
    """A model's table name, quoted for the plain SQL below (where the ORM's query building costs too much)."""
    return connection.ops.quote_name(model._meta.db_table)


def _sql_time(moment: datetime) -> Any:
    """A datetime as a plain-SQL parameter, stored the way the ORM stores it (time zone, SQLite's text form)."""
    return connection.ops.adapt_datetimefield_value(moment)


def _next_seq(conversation_id: int, now: datetime) -> int:
    """Take the next sequence number in one statement (``UPDATE … RETURNING``: SQLite ≥ 3.35, PostgreSQL).

    The ORM's ``update()`` cannot return the new value, and a second query for it would be one more round trip on
    the single database thread for every stored event.
    """
    table = _table(Conversation)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + 1, updated_at = %s WHERE id = %s RETURNING last_seq",
            [_sql_time(now), conversation_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Conversation.DoesNotExist(conversation_id)
    return int(row[0])


def begin_turn(
    conversation_id: int,
    *,
    kind: str,
    text: str,
    payload: dict[str, Any],
    client_key: str,
    turn_limit: float,
    source_seq: int | None = None,
) -> TurnStart:
    """Claim the conversation for one turn and store what the shopper sent, atomically.

    A repeated ``client_key`` (a queue resent after a reconnect) is a duplicate, not a second turn; a running turn
    (in any process: the flag is in the database) makes this one busy.

    This runs on Channels' single database thread for every message a shopper sends, so the usual case (an idle
    conversation) is one ``UPDATE … RETURNING`` that claims it and one ``INSERT``; a repeated key then fails the
    insert's unique constraint and undoes the claim. Only a busy flag takes the locking path below, which also
    tells a live turn from one whose process died.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            seq = _claim_idle(conversation_id, now, text[:200])
            if seq is None:
                return _begin_contended(conversation_id, kind, text, payload, client_key, turn_limit, source_seq)
            changed = _retire_choices(conversation_id, kind, payload, source_seq)
            message = _user_message(conversation_id, seq, kind, text, payload, client_key, now)
    except IntegrityError:
        # The key was sent before (a replayed queue), or two tabs raced with the same key: the other one won.
        return TurnStart(duplicate=True)
    return TurnStart(message=message, changed=changed)


def _claim_idle(conversation_id: int, now: datetime, title: str) -> int | None:
    """Flag an idle conversation busy and take the user message's sequence number; None if it was flagged busy.

    The owner token (``liveness.owner_token`` of the new number) is built in SQL from the number it names.
    """
    table = _table(Conversation)
    at = _sql_time(now)
    owner_prefix = liveness.owner_token(0)[:-1]  # "<process>#"; the number is appended below
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + 1, status = %s, busy_since = %s, "
            "busy_owner = %s || CAST(last_seq + 1 AS TEXT), heartbeat_at = %s, updated_at = %s, "
            "turn_count = turn_count + 1, last_error = '', title = CASE WHEN title = '' THEN %s ELSE title END "
            "WHERE id = %s AND status <> %s RETURNING last_seq",
            [Conversation.Status.BUSY, at, owner_prefix, at, at, title, conversation_id, Conversation.Status.BUSY],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _begin_contended(
    conversation_id: int,
    kind: str,
    text: str,
    payload: dict[str, Any],
    client_key: str,
    turn_limit: float,
    source_seq: int | None,
) -> TurnStart:
    """``begin_turn`` on a conversation flagged busy, inside its transaction: a duplicate, busy, or a stale flag.

    A stale flag (its process died without closing the turn) is taken over with a stored notice first.
    """
    if client_key and Message.objects.filter(conversation_id=conversation_id, client_key=client_key).exists():
        return TurnStart(duplicate=True)
    now = timezone.now()
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if conversation.is_busy(turn_limit):
        return TurnStart(busy=True)
    _note_interrupted(conversation, now)
    changed = _retire_choices(conversation_id, kind, payload, source_seq)
    conversation.last_seq += 1
    conversation.status = Conversation.Status.BUSY
    conversation.busy_since = conversation.heartbeat_at = conversation.updated_at = now
    conversation.busy_owner = liveness.owner_token(conversation.last_seq)
    conversation.turn_count += 1
    conversation.last_error = ""
    conversation.title = conversation.title or text[:200]
    conversation.save(
        update_fields=[
            "last_seq",
            "status",
            "busy_since",
            "busy_owner",
            "heartbeat_at",
            "updated_at",
            "turn_count",
            "last_error",
            "title",
        ]
    )
    message = _user_message(conversation_id, conversation.last_seq, kind, text, payload, client_key, now)
    return TurnStart(message=message, changed=changed)


def _user_message(
    conversation_id: int, seq: int, kind: str, text: str, payload: dict[str, Any], client_key: str, now: datetime
) -> Message:
    return Message.objects.create(
        conversation_id=conversation_id,
        seq=seq,
        role=Role.USER,
        kind=kind,
        text=text,
        payload=payload,
        client_key=client_key,
        created_at=now,
    )


def _retire_choices(conversation_id: int, kind: str, payload: dict[str, Any], source_seq: int | None) -> list[Message]:
    """Mark the quick replies a new turn makes stale and the choice this turn answers.

    The newest choices are read with one plain query (the ORM's query building cost more than the rest of the
    turn start together) and only the ones that change are loaded as models, to be saved and re-rendered.
    """
    table = _table(Message)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, seq, kind, payload FROM {table} WHERE conversation_id = %s AND kind IN (%s, %s) "
            "ORDER BY seq DESC LIMIT 5",
            [conversation_id, *UI_KINDS],
        )
        rows = cursor.fetchall()
    updates: dict[int, dict[str, Any]] = {}
    for pk, seq, choice_kind, raw in rows:
        stored = json.loads(raw) if isinstance(raw, (str, bytes)) else raw  # text on SQLite, decoded on PostgreSQL
        stored = stored if isinstance(stored, dict) else {}
        data = dict(stored)
        if seq == source_seq and payload.get("action") == "quick_reply":
            data["used"] = payload.get("value")
        if seq == source_seq and payload.get("action") == "checklist_submit":
            data["submitted"] = list(payload.get("items", []))
        if choice_kind == Kind.QUICK_REPLIES:
            data["retired"] = True
        if data != stored:
            updates[pk] = data
    changed = list(Message.objects.filter(pk__in=updates)) if updates else []
    for message in changed:
        message.payload = updates[message.pk]
        message.save(update_fields=["payload"])
    return changed


def end_turn(conversation_id: int, error_code: str = "", owner: str = "") -> None:
    """Free the conversation; with ``owner``, only if that turn still holds it (a taken-over turn stays).

    One plain ``UPDATE``: it ends every turn, and the ORM's query building cost more than the statement.
    """
    table = _table(Conversation)
    sql = (
        f"UPDATE {table} SET status = %s, busy_since = NULL, busy_owner = '', heartbeat_at = NULL, "
        "last_error = %s, updated_at = %s WHERE id = %s"
    )
    params: list[Any] = [Conversation.Status.IDLE, error_code[:64], _sql_time(timezone.now()), conversation_id]
    if owner:
        sql += " AND busy_owner = %s"
        params.append(owner)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


#: Stored when a turn's process died mid-turn (killed, crashed, lost its database for longer than the lapse).
INTERRUPTED = "turn_interrupted"


def heartbeat(conversation_id: int, owner: str) -> bool:
    """Refresh the running turn's heartbeat; False once the turn is not ``owner``'s any more."""
    return bool(
        Conversation.objects.filter(pk=conversation_id, status=Conversation.Status.BUSY, busy_owner=owner).update(
            heartbeat_at=timezone.now()
        )
    )


def turn_state(conversation_id: int) -> str:
    """``idle``, ``live`` (a turn runs and its owner beats) or ``stale`` (flagged busy, owner gone)."""
    from django.conf import settings

    conversation = Conversation.objects.only("status", "busy_since", "heartbeat_at").get(pk=conversation_id)
    if conversation.status != Conversation.Status.BUSY:
        return "idle"
    limit = settings.VIZOCHOK_TURN_TIMEOUT + settings.VIZOCHOK_QUEUE_TIMEOUT
    return "live" if conversation.is_busy(limit) else "stale"


def _note_interrupted(conversation: Conversation, now: Any) -> Message:
    """Store the notice for an orphaned turn on a conversation locked by the caller (``last_seq`` advanced)."""
    conversation.last_seq += 1
    return Message.objects.create(
        conversation_id=conversation.pk,
        seq=conversation.last_seq,
        role=Role.ASSISTANT,
        kind=Kind.ERROR,
        text=INTERRUPTED,
        payload={"type": "error", "code": INTERRUPTED, "source": "relay"},
        created_at=now,
    )


def reap_stale(conversation_id: int) -> Message | None:
    """Close a turn whose owner died; the stored notice, or None if the turn was live or already closed."""
    from django.conf import settings

    limit = settings.VIZOCHOK_TURN_TIMEOUT + settings.VIZOCHOK_QUEUE_TIMEOUT
    now = timezone.now()
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        if conversation.status != Conversation.Status.BUSY or conversation.is_busy(limit):
            return None
        notice = _note_interrupted(conversation, now)
        conversation.status = Conversation.Status.IDLE
        conversation.busy_since = conversation.heartbeat_at = None
        conversation.busy_owner = ""
        conversation.last_error = INTERRUPTED
        conversation.updated_at = now
        conversation.save(
            update_fields=["last_seq", "status", "busy_since", "heartbeat_at", "busy_owner", "last_error", "updated_at"]
        )
    return notice


def set_upstream_id(conversation_id: int, upstream_id: str) -> None:
    Conversation.objects.filter(pk=conversation_id).update(upstream_id=upstream_id)


def save_assistant_text(
    conversation_id: int, text: str, *, complete: bool = True, payload: dict[str, Any] | None = None
) -> Message:
    fields = {"payload": payload} if payload else {}
    return _append(conversation_id, role=Role.ASSISTANT, kind=Kind.TEXT, text=text, complete=complete, **fields)


def save_frame(conversation_id: int, kind: str, payload: dict[str, Any], text: str = "") -> Message:
    return _append(conversation_id, role=Role.ASSISTANT, kind=kind, text=text, payload=payload)


def save_cart(
    conversation_id: int, payload: dict[str, Any], items: list[dict[str, Any]], total: Decimal, count: int
) -> Message:
    """Store a cart change and the snapshot the badge and the admin read; both in one transaction."""
    with transaction.atomic():
        message = _append(conversation_id, role=Role.ASSISTANT, kind=Kind.CART, payload=payload)
        Conversation.objects.filter(pk=conversation_id).update(cart=items, cart_total=total, cart_count=count)
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


def checklist(conversation_id: int, seq: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, seq=seq, kind=Kind.CHECKLIST).first()


def quick_replies(conversation_id: int, seq: int) -> Message | None:
    return Message.objects.filter(conversation_id=conversation_id, seq=seq, kind=Kind.QUICK_REPLIES).first()


def cart_items(conversation_id: int) -> list[dict[str, Any]]:
    return cart_of(conversation_id)[0]
