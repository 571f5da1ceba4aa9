"""Structured logs: every record carries the conversation it belongs to, and can be written as one JSON line.

The conversation id lives in a context variable set when a browser socket connects; the consumer's handlers run
in one task, the turn tasks it starts copy that context, and ``database_sync_to_async`` carries it into its
threads, so a log line from anywhere in a turn names its conversation without passing ids around.
``VIZOCHOK_LOG_FORMAT=json`` selects the JSON formatter (for log shippers); the default stays human-readable.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

conversation_var: contextvars.ContextVar[str] = contextvars.ContextVar("vizochok_conversation", default="")


def bind_conversation(conversation_id: int | str) -> None:
    """Name the conversation of everything logged from here on in this context (a socket, a turn)."""
    conversation_var.set(str(conversation_id))


class ConversationFilter(logging.Filter):
    """Adds ``record.conversation`` (empty outside a conversation) so formatters can always use it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation"):
            record.conversation = conversation_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, conversation, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "conversation": getattr(record, "conversation", "") or conversation_var.get(),
            "process": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
