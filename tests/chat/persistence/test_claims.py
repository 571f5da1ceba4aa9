"""``chat.persistence.claims.begin_turn``: the claim every send makes, on the real database (the default SQLite;
they pass the same with ``DATABASE_URL`` set to PostgreSQL, whose SQL for the claim differs)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from chat.models import Conversation, Message
from chat.ops.limits import limits
from chat.ops.process import owner_token
from chat.persistence import claims, store

pytestmark = pytest.mark.django_db

Kind = Message.Kind


def begin(conversation: Conversation, text: str = "hi", key: str = "", **extra: Any) -> claims.TurnStart:
    """The claim, then (as the engine does once the send is on its way) the store of the shopper's message."""
    options: dict[str, Any] = {"kind": Kind.TEXT, "payload": {}, **extra}
    started = claims.begin_turn(conversation.pk, text=text, client_key=key, **options)
    if started.unsaved:
        assert started.message is not None
        started.changed = claims.store_sent(started.message, extra.get("source_seq"))
    return started


def test_the_usual_claim_is_one_statement(conversation: Conversation) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = claims.begin_turn(conversation.pk, kind=Kind.TEXT, text="hi", payload={}, client_key="k1")
    assert started.unsaved and len(queries) == 1
    assert started.message is not None
    claims.store_sent(started.message, None)
    with CaptureQueriesContext(connection) as queries:
        again = claims.begin_turn(conversation.pk, kind=Kind.TEXT, text="hi", payload={}, client_key="k1")
    assert again.duplicate


@pytest.fixture
def conversation() -> Conversation:
    return Conversation.objects.create(store_id="s", user_id="u")


def test_an_idle_conversation_is_claimed_and_the_message_stored(conversation: Conversation) -> None:
    started = begin(conversation, "Борщ на чотирьох", key="k1")

    assert started.message is not None and not started.busy and not started.duplicate
    assert started.message.seq == 1 and started.message.client_key == "k1"
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.BUSY
    assert conversation.busy_owner == owner_token(1)  # built in SQL: the heartbeat must match it
    assert claims.is_busy(conversation)
    assert (conversation.last_seq, conversation.turn_count, conversation.title) == (1, 1, "Борщ на чотирьох")


def test_a_second_send_while_a_turn_runs_is_busy_and_stores_nothing(conversation: Conversation) -> None:
    begin(conversation, key="k1")

    assert begin(conversation, "again", key="k2").busy
    assert list(Message.objects.values_list("client_key", flat=True)) == ["k1"]


def test_a_repeated_key_is_a_duplicate_and_undoes_its_claim(conversation: Conversation) -> None:
    first = begin(conversation, key="k1")
    assert first.message is not None
    claims.end_turn(conversation.pk, owner=owner_token(first.message.seq))

    again = begin(conversation, "hi, resent", key="k1")

    assert again.duplicate and again.message is None
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.IDLE  # the failed insert rolled the claim back
    assert (conversation.last_seq, conversation.turn_count) == (1, 1)
    assert Message.objects.count() == 1


def test_a_repeated_key_while_its_turn_runs_is_a_duplicate_not_busy(conversation: Conversation) -> None:
    begin(conversation, key="k1")

    assert begin(conversation, key="k1").duplicate


def test_later_turns_keep_the_first_title(conversation: Conversation) -> None:
    first = begin(conversation, "first question")
    assert first.message is not None
    claims.end_turn(conversation.pk)
    begin(conversation, "second question")

    conversation.refresh_from_db()
    assert conversation.title == "first question"
    assert conversation.turn_count == 2


def test_a_dead_owners_turn_is_taken_over_with_a_notice(conversation: Conversation) -> None:
    begin(conversation, key="k1")
    long_ago = timezone.now() - timedelta(seconds=limits().lapse + 5)
    Conversation.objects.filter(pk=conversation.pk).update(heartbeat_at=long_ago)

    started = begin(conversation, "are you there?", key="k2")

    assert started.message is not None and started.message.seq == 3
    notice = Message.objects.get(seq=2)
    assert (notice.kind, notice.text) == (Kind.ERROR, claims.INTERRUPTED)
    conversation.refresh_from_db()
    assert conversation.busy_owner == owner_token(3)


def test_a_new_turn_retires_open_quick_replies_and_marks_the_answered_choice(conversation: Conversation) -> None:
    old = store.save_frame(conversation.pk, Kind.QUICK_REPLIES, {"replies": [{"label": "A", "value": "a"}]})
    checklist = store.save_frame(conversation.pk, Kind.CHECKLIST, {"items": [{"id": "1", "name": "Milk"}]})
    shown = store.save_frame(conversation.pk, Kind.QUICK_REPLIES, {"replies": [{"label": "B", "value": "b"}]})
    payload = {"type": "action", "action": "quick_reply", "value": "b"}

    started = begin(conversation, "B", kind=Kind.ACTION, payload=payload, source_seq=shown.seq)

    assert sorted(message.seq for message in started.changed) == [old.seq, shown.seq]
    by_seq = {message.seq: message.data for message in Message.objects.all()}
    assert by_seq[old.seq]["retired"] is True and "used" not in by_seq[old.seq]
    assert by_seq[shown.seq] == {"replies": [{"label": "B", "value": "b"}], "used": "b", "retired": True}
    assert by_seq[checklist.seq] == {"items": [{"id": "1", "name": "Milk"}]}  # not answered: still open


def test_a_submitted_checklist_is_marked_and_retired_replies_are_not_rewritten(conversation: Conversation) -> None:
    store.save_frame(conversation.pk, Kind.QUICK_REPLIES, {"replies": [], "retired": True})
    checklist = store.save_frame(conversation.pk, Kind.CHECKLIST, {"items": [{"id": "1"}, {"id": "2"}]})
    payload = {"type": "action", "action": "checklist_submit", "items": ["2"]}

    started = begin(conversation, "Add", kind=Kind.ACTION, payload=payload, source_seq=checklist.seq)

    assert [message.seq for message in started.changed] == [checklist.seq]
    checklist.refresh_from_db()
    assert checklist.data["submitted"] == ["2"]
