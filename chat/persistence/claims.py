"""The turn state in the database: claiming a conversation for a turn, its heartbeat, its end, reaping it.

Only the turn engine calls these (``chat.turns.engine``, ``chat.turns.runner``, ``chat.turns.liveness``): nothing
else writes ``Conversation.status``, ``busy_owner`` or ``heartbeat_at``. Each is a small synchronous function run on
Channels' database thread; the hot ones are plain SQL because the ORM's query building cost more than the
statements (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from chat.models import Conversation, Message, Turn
from chat.ops.limits import limits
from chat.ops.process import owner_token
from chat.persistence.store import (
    UI_KINDS,
    index_text,
    insert_message,
    record_turn,
    save_assistant_text,
    save_frame,
    search_append,
    sql_time,
    table_name,
)

Kind = Message.Kind
Role = Message.Role

T = TypeVar("T")
logger = logging.getLogger("chat.persistence.claims")

#: Stored when a turn's process died mid-turn (killed, crashed, lost its database for longer than the lapse).
INTERRUPTED = "turn_interrupted"


def is_busy(conversation: Conversation) -> bool:
    """Whether a live turn holds the conversation: flagged, younger than the limit and its owner still beating.

    The heartbeat makes a crashed process's turn stale within seconds instead of after the whole turn limit.
    """
    if conversation.status != Conversation.Status.BUSY or conversation.busy_since is None:
        return False
    now, limit = timezone.now(), limits()
    if conversation.heartbeat_at is not None and now - conversation.heartbeat_at > timedelta(seconds=limit.lapse):
        return False
    return now - conversation.busy_since < timedelta(seconds=limit.busy)


@dataclass
class TurnStart:
    message: Message | None = None
    duplicate: bool = False
    busy: bool = False
    #: Messages whose look changed (retired quick replies, a used checklist) and must be re-rendered.
    changed: list[Message] = field(default_factory=list)
    #: The conversation was claimed but the shopper's message is not stored yet: :func:`store_sent` does that
    #: while the turn already goes upstream.
    unsaved: bool = False


def begin_turn(
    conversation_id: int,
    *,
    kind: str,
    text: str,
    payload: dict[str, Any],
    client_key: str,
    source_seq: int | None = None,
) -> TurnStart:
    """Claim the conversation for one turn: busy if a turn runs (in any process), a duplicate for a repeated key.

    This runs on Channels' single database thread before anything goes upstream, so the usual case (an idle
    conversation, a new key) is one ``UPDATE … RETURNING``: it flags the conversation busy, takes the message's
    sequence number and checks the key, all at once. Storing the message and retiring the choices it answers
    (:func:`store_sent`) can wait until the send is on its way. Only a busy flag or a known key takes the locking
    path, which also tells a live turn from one whose process died and a duplicate from a busy conversation.
    """
    now = timezone.now()
    seq = _claim_idle(conversation_id, now, text, client_key)
    if seq is not None:
        message = _user_message(conversation_id, seq, kind, text, payload, client_key, now)
        return TurnStart(message=message, unsaved=True)
    try:
        with transaction.atomic():
            return _begin_contended(conversation_id, kind, text, payload, client_key, source_seq)
    except IntegrityError:
        # Two tabs raced with the same key: the other one won.
        return TurnStart(duplicate=True)


def store_sent(message: Message, source_seq: int | None) -> list[Message]:
    """Store the shopper's message of a claimed turn and retire the choices it makes stale; the changed ones.

    Submitted to the database thread before the turn's own writes, so it is stored before anything of its reply.
    """
    with transaction.atomic():
        changed = _retire_choices(message.conversation_id, message.kind, message.data, source_seq)
        insert_message(message)
    return changed


def _claim_idle(conversation_id: int, now: datetime, text: str, client_key: str) -> int | None:
    """Flag an idle conversation busy and take the user message's sequence number; None if it was flagged busy
    or ``client_key`` was sent before (the unique index on the key makes that check a lookup).

    The owner token (``owner_token`` of the new number) is built in SQL from the number it names, and the
    shopper's words join the admin's search column in the same statement.
    """
    table = table_name(Conversation)
    at = sql_time(now)
    owner_prefix = owner_token(0)[:-1]  # "<process>#"; the number is appended below
    search_sql, search_params = search_append(text)
    key_sql = ""
    key_params: list[int | str] = []
    if client_key:
        key_sql = (
            f" AND NOT EXISTS (SELECT 1 FROM {table_name(Message)} WHERE conversation_id = %s AND client_key = %s)"
        )
        key_params = [conversation_id, client_key]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_seq = last_seq + 1, status = %s, busy_since = %s, "
            "busy_owner = %s || CAST(last_seq + 1 AS TEXT), heartbeat_at = %s, updated_at = %s, "
            "turn_count = turn_count + 1, last_error = '', title = CASE WHEN title = '' THEN %s ELSE title END"
            f"{search_sql} WHERE id = %s AND status <> %s{key_sql} RETURNING last_seq",
            [
                Conversation.Status.BUSY,
                at,
                owner_prefix,
                at,
                at,
                text[:200],
                *search_params,
                conversation_id,
                Conversation.Status.BUSY,
                *key_params,
            ],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _begin_contended(
    conversation_id: int,
    kind: str,
    text: str,
    payload: dict[str, Any],
    client_key: str,
    source_seq: int | None,
) -> TurnStart:
    """``begin_turn`` on a conversation flagged busy, inside its transaction: a duplicate, busy, or a stale flag.

    A stale flag (its process died without closing the turn) is taken over with a stored notice first.
    """
    if client_key and Message.objects.filter(conversation_id=conversation_id, client_key=client_key).exists():
        return TurnStart(duplicate=True)
    now = timezone.now()
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    if is_busy(conversation):
        return TurnStart(busy=True)
    _note_interrupted(conversation, now)
    changed = _retire_choices(conversation_id, kind, payload, source_seq)
    conversation.last_seq += 1
    conversation.status = Conversation.Status.BUSY
    conversation.busy_since = conversation.heartbeat_at = conversation.updated_at = now
    conversation.busy_owner = owner_token(conversation.last_seq)
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
    message.save(force_insert=True)
    index_text(conversation_id, text)  # the admin's search column (a rare path: one more statement is fine)
    return TurnStart(message=message, changed=changed)


def _user_message(
    conversation_id: int, seq: int, kind: str, text: str, payload: dict[str, Any], client_key: str, now: datetime
) -> Message:
    """The shopper's message of a turn, not saved yet."""
    return Message(
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
    table = table_name(Message)
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
    table = table_name(Conversation)
    sql = (
        f"UPDATE {table} SET status = %s, busy_since = NULL, busy_owner = '', heartbeat_at = NULL, "
        "last_error = %s, updated_at = %s WHERE id = %s"
    )
    params: list[Any] = [Conversation.Status.IDLE, error_code[:64], sql_time(timezone.now()), conversation_id]
    if owner:
        sql += " AND busy_owner = %s"
        params.append(owner)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def finish_turn(
    conversation_id: int,
    error_code: str,
    owner: str,
    *,
    record: dict[str, Any] | None = None,
    reply: dict[str, Any] | None = None,
    notice: dict[str, Any] | None = None,
) -> tuple[Message | None, Message | None]:
    """End a turn in one transaction: its last reply and error notice if any, the end (:func:`end_turn`) and its
    ``Turn`` record; returns the stored reply and notice.

    Every turn ends here, so this is the one trip to the database thread a turn's end costs: the reply of the usual
    turn (``text_end`` then ``response_complete``) waits for it instead of taking a trip of its own. The reply, the
    notice and the record each go in a savepoint of their own: one that cannot be stored (content no database
    takes) is logged and left out, and the end still commits, so no content keeps a conversation busy (issue 24).
    Only an unreachable database fails the whole call (the caller retries it).
    """
    with transaction.atomic():
        saved = None
        if reply is not None:
            saved = _apart("the reply", conversation_id, save_assistant_text, conversation_id, **reply)
        noted = None
        if notice is not None:
            code = str(notice.get("code", ""))
            noted = _apart("the notice", conversation_id, save_frame, conversation_id, Kind.ERROR, notice, code)
        end_turn(conversation_id, error_code, owner)
        if record is not None:
            _apart("the turn record", conversation_id, record_turn, conversation_id, **record)
    return saved, noted


def _apart(what: str, conversation_id: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``fn`` in a savepoint of the caller's transaction; None (logged) if it failed for anything but an outage."""
    try:
        with transaction.atomic():
            return fn(*args, **kwargs)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        logger.exception("could not store %s of conversation %s; the turn ends without it", what, conversation_id)
        return None


def heartbeat(conversation_id: int, owner: str) -> bool:
    """Refresh the running turn's heartbeat; False once the turn is not ``owner``'s any more."""
    return bool(
        Conversation.objects.filter(pk=conversation_id, status=Conversation.Status.BUSY, busy_owner=owner).update(
            heartbeat_at=timezone.now()
        )
    )


def turn_state(conversation_id: int) -> str:
    """``idle``, ``live`` (a turn runs and its owner beats) or ``stale`` (flagged busy, owner gone)."""
    conversation = Conversation.objects.only("status", "busy_since", "heartbeat_at").get(pk=conversation_id)
    if conversation.status != Conversation.Status.BUSY:
        return "idle"
    return "live" if is_busy(conversation) else "stale"


def _note_interrupted(conversation: Conversation, now: Any) -> Message:
    """Store the notice and the ``Turn`` record for an orphaned turn on a conversation locked by the caller
    (``last_seq`` advanced): its process died, so nobody else records it."""
    _record_orphan(conversation)
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


def _orphan_seq(conversation: Conversation) -> int | None:
    """The seq of the orphaned turn's message: named by its owner token, else the shopper's latest message."""
    _, _, number = conversation.busy_owner.rpartition("#")
    if number.isdigit():
        return int(number)
    latest = (
        Message.objects.filter(conversation_id=conversation.pk, role=Role.USER, seq__lte=conversation.last_seq)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    return latest


def _record_orphan(conversation: Conversation) -> None:
    """The ``Turn`` record of a turn whose process died: what it stored before dying tells what it showed.

    Its times are unknown (the process took its clock with it): first token and duration stay empty rather than
    stretch the latency charts to the moment somebody noticed.
    """
    seq = _orphan_seq(conversation)
    if seq is None or conversation.busy_since is None:
        return
    later = list(
        Message.objects.filter(conversation_id=conversation.pk, seq__gte=seq).values_list("seq", "role", "kind", "text")
    )
    query = next((text for at, role, kind, text in later if at == seq and role == Role.USER and kind == Kind.TEXT), "")
    shown = {kind for at, role, kind, _ in later if at > seq and role == Role.ASSISTANT}
    record_turn(
        conversation.pk,
        seq=seq,
        started_at=conversation.busy_since,
        first_token_ms=None,
        duration_ms=None,
        outcome=Turn.Outcome.INTERRUPTED,
        error_code=INTERRUPTED,
        query=query,
        had_cards=Kind.PRODUCT_CARDS in shown,
        had_checklist=Kind.CHECKLIST in shown,
        cart_changed=Kind.CART in shown,
    )


def reap_stale(conversation_id: int) -> Message | None:
    """Close a turn whose owner died; the stored notice, or None if the turn was live or already closed."""
    now = timezone.now()
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        if conversation.status != Conversation.Status.BUSY or is_busy(conversation):
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
