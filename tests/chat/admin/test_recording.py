"""What the relay records for the admin: one Turn row per finished turn, and the search column of each text."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Turn
from chat.persistence import claims, store
from chat.turns.record import TurnRecord, outcome
from chat.vizochok import messages as wire

pytestmark = pytest.mark.django_db


def test_runs_on_the_expected_database() -> None:
    assert connection.vendor == os.environ.get("VIZOCHOK_EXPECT_DB_VENDOR", connection.vendor)


@pytest.fixture
def conversation() -> Conversation:
    return Conversation.objects.create(user_id="shopper-7", store_id="магазин-2")


def record(conversation: Conversation, **fields: Any) -> None:
    defaults: dict[str, Any] = {
        "seq": 1,
        "started_at": datetime(2026, 3, 1, 21, 30, tzinfo=UTC),  # 23:30 in Kyiv (UTC+2 in March)
        "first_token_ms": 640,
        "duration_ms": 2100,
        "outcome": "answered",
    }
    store.record_turn(conversation.pk, **(defaults | fields))


def test_record_turn_is_one_insert_with_the_conversations_store_and_shopper(conversation: Conversation) -> None:
    added = [{"sku": "milk-001", "name": "Молоко «Галичина» <2,5%>", "quantity": "2"}]
    with CaptureQueriesContext(connection) as queries:
        record(
            conversation,
            query="  Молоко без лактози  ",
            had_cards=True,
            cart_adds=1,
            cart_total=Decimal("77.00"),
            added=added,
        )
    assert len(queries) == 1 and queries[0]["sql"].lstrip().upper().startswith("INSERT")
    turn = Turn.objects.get()
    assert (turn.conversation_id, turn.seq, turn.store_id, turn.user_id) == (
        conversation.pk,
        1,
        "магазин-2",
        "shopper-7",
    )
    assert turn.query == "Молоко без лактози"
    assert (turn.first_token_ms, turn.duration_ms, turn.outcome, turn.error_code) == (640, 2100, "answered", "")
    assert turn.had_cards is True and turn.cart_adds == 1 and turn.cart_total == Decimal("77.00")
    assert turn.added == added


def test_the_day_is_the_local_date_of_the_start(conversation: Conversation, settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Kyiv"
    record(conversation)
    turn = Turn.objects.get()
    assert turn.started_at.astimezone(ZoneInfo("Europe/Kyiv")).date() == turn.day
    assert turn.day.isoformat() == "2026-03-01"
    record(conversation, seq=2, started_at=datetime(2026, 3, 1, 22, 30, tzinfo=UTC))  # 00:30 on the 2nd in Kyiv
    assert Turn.objects.get(seq=2).day == date(2026, 3, 2)


def test_a_turn_recorded_twice_keeps_the_first(conversation: Conversation) -> None:
    record(conversation, error_code="")
    record(conversation, outcome="failed", error_code="relay_error")
    assert list(Turn.objects.values_list("outcome", "error_code")) == [("answered", "")]


def test_nulls_and_long_values(conversation: Conversation) -> None:
    record(conversation, first_token_ms=None, duration_ms=None, query="я" * 300, error_code="x" * 80, cart_total=None)
    turn = Turn.objects.get()
    assert turn.first_token_ms is None and turn.duration_ms is None and turn.cart_total is None
    assert len(turn.query) == 200 and len(turn.error_code) == 64


def test_the_relays_text_writes_keep_the_search_column(conversation: Conversation) -> None:
    started = claims.begin_turn(conversation.pk, kind="text", text="Є МОЛОКО?", payload={}, client_key="k1")
    assert started.message is not None
    claims.store_sent(started.message, None)
    store.save_assistant_text(conversation.pk, "Так, Молоко є.")
    store.save_frame(conversation.pk, "error", {"type": "error", "code": "internal_error"}, text="internal_error")
    claims.end_turn(conversation.pk)
    text = Conversation.objects.values_list("search_text", flat=True).get(pk=conversation.pk)
    assert text == "\nє молоко?\nтак, молоко є."  # error codes are not message text


# --- the per-turn accumulator the runner keeps ------------------------------------------------------------------


def cart(action: str, sku: str = "milk-001", quantity: str = "2") -> wire.CartChanged:
    return wire.CartChanged(
        action=action, items=(), total=Decimal("77.00"), sku=sku, name="Молоко", quantity=Decimal(quantity)
    )


def test_turn_record_gathers_what_the_turn_did() -> None:
    turn = TurnRecord.begin(wire.UserMessage(text="молоко"))
    turn.started -= 1.0  # the turn began a second ago
    turn.see(wire.Status(code="searching"))
    turn.see(wire.TextDelta(delta="Ось"))
    first = turn.first_token
    turn.see(wire.TextDelta(delta=" що є"))
    turn.see(wire.ProductCards(items=()))
    turn.see(cart("item_selected"))
    turn.see(cart("item_removed", sku="bread-001"))
    fields = turn.fields(5, "")
    assert turn.first_token == first  # the first token's time, not the last
    assert fields["seq"] == 5 and fields["query"] == "молоко" and fields["outcome"] == "answered"
    assert fields["had_cards"] is True and fields["cart_adds"] == 1 and fields["cart_total"] == Decimal("77.00")
    assert fields["added"] == [{"sku": "milk-001", "name": "Молоко", "quantity": "2"}]
    assert 900 <= fields["first_token_ms"] <= fields["duration_ms"] < 60_000


def test_turn_record_of_an_action_that_failed() -> None:
    turn = TurnRecord.begin(wire.Action(action="add_to_cart", payload={"sku": "x"}))
    fields = turn.fields(2, "rate_limit_exceeded")
    assert fields["query"] == "" and fields["first_token_ms"] is None and fields["outcome"] == "failed"
    assert fields["error_code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("code", "expected"),
    [("", "answered"), ("turn_timeout", "failed"), ("upstream_lost", "interrupted"), ("relay_shutdown", "interrupted")],
)
def test_outcomes(code: str, expected: str) -> None:
    assert outcome(code) == expected


def test_started_at_is_aware_and_recent() -> None:
    turn = TurnRecord.begin(wire.UserMessage(text="x"))
    assert turn.started_at.tzinfo is not None
    assert abs(turn.started_at - datetime.now(UTC)) < timedelta(seconds=5)


def test_turn_record_notes_a_checklist_and_any_cart_change() -> None:
    turn = TurnRecord.begin(wire.UserMessage(text="борщ"))
    turn.see(wire.IngredientChecklist(title="Борщ", items=()))
    turn.see(cart("item_removed"))
    fields = turn.fields(1, "")
    assert fields["had_checklist"] is True and fields["cart_changed"] is True and fields["cart_adds"] == 0
