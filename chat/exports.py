"""Conversations as JSON or CSV, streamed: shared by the admin actions and ``manage.py export_conversations``.

Both outputs are iterators of text chunks, so an export of the whole table runs in bounded memory whether it
goes to an HTTP response or a file. Conversations are read in chunks and the messages of each chunk come in one
query (one extra query per chunk, never per conversation).

Under an ASGI server (Daphne) an HTTP export must be an *asynchronous* iterator: Django would otherwise read a
synchronous one to its end in a thread before sending the first byte (and warn "StreamingHttpResponse must consume
synchronous iterators"), holding the whole file in memory. :func:`astream_export` reads one page of conversations
at a time through the project's async database path (``chat.persistence.db``), keyset-paged on ``(created_at, pk)``, and
yields it rendered; :func:`stream_export` is the synchronous twin for a file (``manage.py export_conversations``)
or a WSGI server.

* JSON: an array with one object per conversation, each holding its ``messages`` in order.
* CSV: one row per message, prefixed with the fields of its conversation (a conversation with no messages
  still gets one row, with the message columns empty, so it is not silently missing from the export).
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from chat.models import Conversation, Message

ExportFormat = Literal["json", "csv"]
FORMATS: tuple[ExportFormat, ...] = ("json", "csv")

#: Conversations per database round trip; each chunk's messages come in one query. A page of 500 demo conversations
#: (~5,000 messages with their card payloads) held ~40 MiB while it was rendered; 200 hold ~16 MiB (bench_insights).
CHUNK_SIZE = 200

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
#: What an export reads of a conversation (a caller's queryset may defer some of it: the admin's list defers the
#: cart, and a deferred field read while rendering would be one query per conversation, or fail in async code).
EXPORTED: tuple[str, ...] = ("pk", *CONVERSATION_FIELDS, "cart")
MESSAGE_FIELDS: tuple[str, ...] = ("seq", "role", "kind", "text", "complete", "created_at", "payload")
#: A reply's rating by its shopper (issue 25; ``chat.feedback`` keeps it in the reply's payload): up or down, the
#: reason of a down rating and the shopper's comment; empty for a message nobody rated.
RATING_FIELDS: tuple[str, ...] = ("value", "reason", "text")
CSV_HEADER: tuple[str, ...] = (
    *(f"conversation_{name}" for name in CONVERSATION_FIELDS),
    *(f"message_{name}" for name in MESSAGE_FIELDS),
    *(f"message_rating_{name}" if name != "value" else "message_rating" for name in RATING_FIELDS),
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


Page = list[tuple[Conversation, list[Message]]]


def read_page(conversations: QuerySet[Conversation], after: tuple[datetime, int] | None, size: int) -> Page:
    """The next ``size`` conversations after ``after`` (``(created_at, pk)``, oldest first) with their messages:
    two queries, on the database thread."""
    page = conversations.defer(None).only(*EXPORTED).order_by("created_at", "pk")  # the admin's list defers the cart
    if after is not None:
        page = page.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], pk__gt=after[1]))
    found = list(page[:size])
    messages: dict[int, list[Message]] = {conversation.pk: [] for conversation in found}
    for message in Message.objects.filter(conversation_id__in=list(messages)).order_by("conversation_id", "seq"):
        messages[message.conversation_id].append(message)
    return [(conversation, messages[conversation.pk]) for conversation in found]


async def astream_export(
    conversations: QuerySet[Conversation], fmt: ExportFormat, *, chunk_size: int = CHUNK_SIZE
) -> AsyncIterator[str]:
    """The export as an asynchronous iterator: one rendered page of ``chunk_size`` conversations per chunk, read
    through ``chat.persistence.db`` so the event loop serves other sockets while the database works."""
    from chat.persistence import db  # the async path: not needed by the synchronous export or the management command

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    writer = csv.writer(_Echo())
    yield "[" if fmt == "json" else writer.writerow(CSV_HEADER)
    after: tuple[datetime, int] | None = None
    first = True
    while True:
        page = await db.call(read_page, conversations, after, chunk_size, retries=db.SEND_RETRIES)
        if not page:
            break
        if fmt == "json":
            parts = []
            for conversation, messages in page:
                parts.append(("\n" if first else ",\n") + _json_record(conversation, messages))
                first = False
            yield "".join(parts)
        else:
            yield "".join(
                writer.writerow(row) for conversation, messages in page for row in _rows(conversation, messages)
            )
        last = page[-1][0]
        after = (last.created_at, last.pk)
        if len(page) < chunk_size:
            break
    if fmt == "json":
        yield "\n]\n"


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


def _rating(message: Message) -> dict[str, str] | None:
    rating = message.data.get("rating")
    if not isinstance(rating, dict):
        return None
    return {name: str(rating.get(name) or "") for name in RATING_FIELDS}


def message_record(message: Message) -> dict[str, Any]:
    record = {name: _plain(getattr(message, name)) for name in MESSAGE_FIELDS}
    record["rating"] = _rating(message)
    return record


# --- JSON -----------------------------------------------------------------------------------------------------


def _with_messages(conversations: QuerySet[Conversation]) -> Iterator[Conversation]:
    ordered = Message.objects.order_by("seq")
    exported = conversations.defer(None).only(*EXPORTED).prefetch_related(Prefetch("messages", queryset=ordered))
    return exported.iterator(chunk_size=CHUNK_SIZE)


def stream_json(conversations: QuerySet[Conversation]) -> Iterator[str]:
    """A JSON array, one conversation (with its messages and cart) per line, emitted one conversation at a time."""
    yield "["
    separator = "\n"
    for conversation in _with_messages(conversations):
        yield separator + _json_record(conversation, list(conversation.messages.all()))
        separator = ",\n"
    yield "\n]\n"


def _json_record(conversation: Conversation, messages: list[Message]) -> str:
    record = conversation_record(conversation)
    record["cart"] = conversation.cart
    record["messages"] = [message_record(message) for message in messages]
    return json.dumps(record, ensure_ascii=False, default=str)


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
    for conversation in _with_messages(conversations):
        yield from _rows(conversation, list(conversation.messages.all()))


def _rows(conversation: Conversation, messages: list[Message]) -> Iterator[list[Any]]:
    fields = [_cell(getattr(conversation, name)) for name in CONVERSATION_FIELDS]
    if not messages:
        # A conversation nobody wrote in still appears, so the export's conversation set is complete.
        yield [*fields, *([""] * (len(MESSAGE_FIELDS) + len(RATING_FIELDS)))]
    for message in messages:
        rating = _rating(message) or {}
        yield [
            *fields,
            *(_cell(getattr(message, name)) for name in MESSAGE_FIELDS),
            *(_cell(rating.get(name, "")) for name in RATING_FIELDS),
        ]


def stream_csv(conversations: QuerySet[Conversation]) -> Iterator[str]:
    """CSV text, header first, one row per message."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for row in _csv_rows(conversations):
        yield writer.writerow(row)
