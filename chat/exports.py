"""Conversations as JSON or CSV, streamed: shared by the admin actions and ``manage.py export_conversations``.

Both outputs are generators of text chunks, so an export of the whole table runs in bounded memory whether it
goes to an HTTP response (``StreamingHttpResponse``) or a file. Conversations are read with ``iterator()`` in
chunks and the messages of each chunk come in one prefetch query (one extra query per chunk, never per
conversation).

* JSON: an array with one object per conversation, each holding its ``messages`` in order.
* CSV: one row per message, prefixed with the fields of its conversation (a conversation with no messages
  still gets one row, with the message columns empty, so it is not silently missing from the export).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from chat.models import Conversation, Message

ExportFormat = Literal["json", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("json", "csv")

#: Conversations per database round trip; each chunk's messages come in one prefetch query.
CHUNK_SIZE = 500

CONVERSATION_FIELDS: tuple[str, ...] = (
    "public_id",
    "upstream_id",
    "user_id",
    "store_id",
    "title",
    "status",
    "turn_count",
    "cart_count",
    "cart_total",
    "last_error",
    "created_at",
    "updated_at",
)
MESSAGE_FIELDS: tuple[str, ...] = ("seq", "role", "kind", "text", "complete", "created_at", "payload")
CSV_HEADER: tuple[str, ...] = (
    *(f"conversation_{name}" for name in CONVERSATION_FIELDS),
    *(f"message_{name}" for name in MESSAGE_FIELDS),
)

CONTENT_TYPES: dict[ExportFormat, str] = {
    "json": "application/json; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
}

#: Spreadsheet programs execute a cell that starts with one of these as a formula ("CSV injection"); shopper
#: text and upstream ids are untrusted, so such cells get a leading apostrophe, the usual neutraliser.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def conversations_for_export(*, since: date | None = None, store_id: str | None = None) -> QuerySet[Conversation]:
    """The conversations an export covers, oldest first so a re-run over a growing table appends at the end."""
    queryset = Conversation.objects.all()
    if since is not None:
        start = timezone.make_aware(datetime.combine(since, time.min))
        queryset = queryset.filter(created_at__gte=start)
    if store_id:
        queryset = queryset.filter(store_id=store_id)
    return queryset.order_by("created_at", "pk")


def export_filename(fmt: ExportFormat, *, now: datetime | None = None) -> str:
    stamp = (now or timezone.now()).strftime("%Y%m%d-%H%M%S")
    return f"conversations-{stamp}.{fmt}"


def stream_export(conversations: QuerySet[Conversation], fmt: ExportFormat) -> Iterator[str]:
    """The export of ``conversations`` in ``fmt`` as text chunks."""
    if fmt == "json":
        return stream_json(conversations)
    if fmt == "csv":
        return stream_csv(conversations)
    raise ValueError(f"unknown export format {fmt!r}")


# --- records --------------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A model value as plain JSON: aware datetimes as ISO 8601, decimals as numbers, UUIDs as text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    return str(value)


def conversation_record(conversation: Conversation) -> dict[str, Any]:
    return {name: _plain(getattr(conversation, name)) for name in CONVERSATION_FIELDS}


def message_record(message: Message) -> dict[str, Any]:
    return {name: _plain(getattr(message, name)) for name in MESSAGE_FIELDS}


# --- JSON -----------------------------------------------------------------------------------------------------


def _with_messages(conversations: QuerySet[Conversation]) -> Iterator[Conversation]:
    ordered = Message.objects.order_by("seq")
    return conversations.prefetch_related(Prefetch("messages", queryset=ordered)).iterator(chunk_size=CHUNK_SIZE)


def stream_json(conversations: QuerySet[Conversation]) -> Iterator[str]:
    """A JSON array, one conversation (with its messages and cart) per line, emitted one conversation at a time."""
    yield "["
    separator = "\n"
    for conversation in _with_messages(conversations):
        record = conversation_record(conversation)
        record["cart"] = conversation.cart
        record["messages"] = [message_record(message) for message in conversation.messages.all()]
        yield separator + json.dumps(record, ensure_ascii=False, default=str)
        separator = ",\n"
    yield "\n]\n"


# --- CSV ------------------------------------------------------------------------------------------------------


class _Echo:
    """A file-like object whose ``write`` hands back the line, so ``csv.writer`` can feed a generator."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    plain = _plain(value)
    if isinstance(plain, dict | list):
        return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))
    if isinstance(plain, str) and plain.startswith(_FORMULA_PREFIXES):
        return "'" + plain
    return plain


def _csv_rows(conversations: QuerySet[Conversation]) -> Iterator[list[Any]]:
    empty_message = [""] * len(MESSAGE_FIELDS)
    for conversation in _with_messages(conversations):
        fields = [_cell(getattr(conversation, name)) for name in CONVERSATION_FIELDS]
        messages = conversation.messages.all()
        if not messages:
            # A conversation nobody wrote in still appears, so the export's conversation set is complete.
            yield [*fields, *empty_message]
        for message in messages:
            yield [*fields, *(_cell(getattr(message, name)) for name in MESSAGE_FIELDS)]


def stream_csv(conversations: QuerySet[Conversation]) -> Iterator[str]:
    """CSV text, header first, one row per message."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for row in _csv_rows(conversations):
        yield writer.writerow(row)
