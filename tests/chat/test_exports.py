"""chat.exports and ``manage.py export_conversations``: what the files hold and which conversations they cover."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import exports
from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def make_chat(store_id: str = "s1", *, days_ago: int = 0, texts: tuple[str, ...] = ("hi", "hello")) -> Conversation:
    conversation = Conversation.objects.create(
        store_id=store_id,
        user_id=f"user-{store_id}-{days_ago}",
        session_key="secret-session",
        cart=[{"sku": "milk-001", "quantity": 2}],
        cart_count=2,
        cart_total=Decimal("77.50"),
    )
    Conversation.objects.filter(pk=conversation.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    for seq, text in enumerate(texts, start=1):
        role = "user" if seq % 2 else "assistant"
        Message.objects.create(conversation=conversation, seq=seq, role=role, text=text, payload={"n": seq})
    conversation.refresh_from_db()
    return conversation


def export(fmt: str, **options: Any) -> str:
    out = io.StringIO()
    call_command("export_conversations", "--format", fmt, *_flags(options), stdout=out)
    return out.getvalue()


def _flags(options: dict[str, Any]) -> list[str]:
    return [part for name, value in options.items() for part in (f"--{name}", str(value))]


def test_json_holds_each_conversation_with_its_messages() -> None:
    first, second = make_chat(), make_chat("s2", texts=("один", "два", "три"))
    data = json.loads(export("json"))
    assert [item["public_id"] for item in data] == [str(first.public_id), str(second.public_id)]
    item = data[1]
    assert item["store_id"] == "s2"
    assert item["cart_total"] == 77.5
    assert item["cart_count"] == 2
    assert item["cart"] == [{"sku": "milk-001", "quantity": 2}]
    assert [m["text"] for m in item["messages"]] == ["один", "два", "три"]
    assert item["messages"][0] == {
        "seq": 1,
        "role": "user",
        "kind": "text",
        "text": "один",
        "complete": True,
        "created_at": item["messages"][0]["created_at"],
        "payload": {"n": 1},
        "rating": None,
    }
    assert "session_key" not in item  # the shopper's session cookie is a credential


def test_json_of_nothing_is_an_empty_array() -> None:
    assert json.loads(export("json")) == []


def test_csv_has_one_row_per_message_with_conversation_fields() -> None:
    chat = make_chat(texts=("a", "b", "c"))
    silent = make_chat("s9", texts=())
    rows = list(csv.DictReader(io.StringIO(export("csv"))))
    assert [row["message_text"] for row in rows if row["conversation_public_id"] == str(chat.public_id)] == [
        "a",
        "b",
        "c",
    ]
    assert rows[0]["conversation_store_id"] == "s1"
    assert rows[0]["conversation_cart_total"] == "77.5"
    assert json.loads(rows[0]["message_payload"]) == {"n": 1}
    silent_rows = [row for row in rows if row["conversation_public_id"] == str(silent.public_id)]
    assert len(silent_rows) == 1
    assert silent_rows[0]["message_seq"] == ""
    assert list(rows[0]) == list(exports.CSV_HEADER)


def test_csv_neutralises_spreadsheet_formulas() -> None:
    make_chat(texts=('=HYPERLINK("http://evil")', "+1", "plain"))
    texts = [row["message_text"] for row in csv.DictReader(io.StringIO(export("csv")))]
    assert texts == ['\'=HYPERLINK("http://evil")', "'+1", "plain"]


def test_since_and_store_select_conversations() -> None:
    old = make_chat("s1", days_ago=30)
    recent_s1 = make_chat("s1", days_ago=1)
    recent_s2 = make_chat("s2", days_ago=1)
    since = (timezone.localdate() - timedelta(days=7)).isoformat()
    ids = {item["public_id"] for item in json.loads(export("json", since=since))}
    assert ids == {str(recent_s1.public_id), str(recent_s2.public_id)}
    ids = {item["public_id"] for item in json.loads(export("json", store="s1"))}
    assert ids == {str(old.public_id), str(recent_s1.public_id)}
    rows = list(csv.DictReader(io.StringIO(export("csv", since=since, store="s2"))))
    assert {row["conversation_public_id"] for row in rows} == {str(recent_s2.public_id)}


def test_output_file(tmp_path: Path) -> None:
    make_chat()
    target = tmp_path / "out.csv"
    call_command("export_conversations", "--format", "csv", "--output", str(target), stdout=io.StringIO())
    rows = list(csv.reader(target.open(encoding="utf-8", newline="")))
    assert len(rows) == 3  # header + two messages


def test_bad_since_is_refused() -> None:
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        export("json", since="yesterday")


def test_queries_grow_per_chunk_not_per_conversation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exports, "CHUNK_SIZE", 10)
    for index in range(25):
        make_chat(f"s{index}")
    conversations = exports.conversations_for_export()
    for fmt in exports.FORMATS:
        with CaptureQueriesContext(connection) as queries:
            text = "".join(exports.stream_export(conversations, fmt))
        assert text
        assert len(queries) <= 2 * 3 + 2  # 3 chunks x (conversations + their messages), plus slack


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        exports.stream_export(Conversation.objects.all(), "xml")  # type: ignore[arg-type]


def test_exports_carry_the_shoppers_rating_of_each_reply() -> None:
    """Issue 25: a rated reply says so in both formats (value, reason, comment); others are empty."""
    from chat import feedback
    from chat.models import Message

    chat = make_chat(texts=("питання",))
    Message.objects.create(conversation=chat, seq=2, role="assistant", kind="text", text="відповідь")
    feedback.rate(chat.pk, chat.user_id, feedback.Rating(2, "down", "wrong_price", "=дорого"))
    [item] = json.loads(export("json"))
    assert [m["rating"] for m in item["messages"]] == [
        None,
        {"value": "down", "reason": "wrong_price", "text": "=дорого"},
    ]
    rows = list(csv.DictReader(io.StringIO(export("csv"))))
    assert [(r["message_rating"], r["message_rating_reason"], r["message_rating_text"]) for r in rows] == [
        ("", "", ""),
        ("down", "wrong_price", "'=дорого"),
    ]
