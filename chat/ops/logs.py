"""Structured logs: every record carries the conversation it belongs to, and can be written as one JSON line.

The conversation id lives in a context variable set when a browser socket connects; the consumer's handlers run
in one task, the turn tasks it starts copy that context, and ``database_sync_to_async`` carries it into its
threads, so a log line from anywhere in a turn names its conversation without passing ids around.
``VIZOCHOK_LOG_FORMAT=json`` selects the JSON formatter (for log shippers); the default stays human-readable.

Settings send every stdlib logger (Django's, Daphne's, captured warnings) to one handler. Two writers under Daphne
bypass stdlib logging, and :func:`install_daphne_logging` routes them through it: Twisted's own log (unhandled
errors in Deferreds, the warnings Twisted takes over) and Daphne's access log, which it prints to stdout.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
import sys
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from chat.compat import daphne_access

conversation_var: contextvars.ContextVar[str] = contextvars.ContextVar("vizochok_conversation", default="")

#: An entry token in a URL (``?token=…``, also percent-encoded inside a ``next=`` parameter): the whole token,
#: signature included, opens a session once; a log line keeps none of it.
_TOKEN_VALUE = re.compile(r"(?i)(token(?:=|%3D))[^&\s\"'<>\\]+")
#: Characters that would break a plain log line apart or hide part of it: a client's newline forged a line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def redact(text: str) -> str:
    """``text`` with the value of every ``token=`` parameter replaced (URLs in log lines, the access log)."""
    return _TOKEN_VALUE.sub(r"\1[redacted]", text) if "oken" in text or "OKEN" in text else text


def one_line(text: str) -> str:
    """``text`` with its control characters escaped as ``repr`` would (``\\n``, ``\\x1b``): one line, as written."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def configure(config: dict[str, Any]) -> None:
    """``LOGGING_CONFIG``: Django's dictConfig, and warnings through logging so they get the chosen format too."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)


def bind_conversation(conversation_id: int | str) -> None:
    """Name the conversation of everything logged from here on in this context (a socket, a turn)."""
    conversation_var.set(str(conversation_id))


class ConversationFilter(logging.Filter):
    """Adds ``record.conversation`` (empty outside a conversation) so formatters can always use it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "conversation"):
            record.conversation = conversation_var.get()
        return True


class PlainFormatter(logging.Formatter):
    """The human-readable format: one line per message (a traceback still follows it), no entry token in it."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(redact(record.message))
        return super().formatMessage(record)


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
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS:  # ``extra=`` fields, e.g. the access log's client and status
                entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        # Redacted as written: extras such as Django's ``request`` name the full URL, query string included.
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


#: Attributes every LogRecord has (and what formatters add); anything else came in through ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "conversation"}

_access_log = logging.getLogger("daphne.access")
_installed = False


def install_daphne_logging() -> bool:
    """Route Twisted's log into stdlib logging and, for JSON, Daphne's access log too; False outside Daphne.

    Called when the ASGI module is imported, i.e. as Daphne's process starts, before its server runs. The observer
    is added to Twisted's global publisher rather than through ``globalLogBeginner``, because Daphne's server then
    begins logging itself (to nowhere below ``-v2``), which replaces the beginner's observers but not this one.
    """
    global _installed
    if "daphne.server" not in sys.modules:
        return False
    if _installed:
        return True
    from twisted.logger import STDLibLogObserver, globalLogPublisher

    globalLogPublisher.addObserver(STDLibLogObserver(name="twisted"))  # type: ignore[arg-type]  # zope @implementer
    # Daphne's access log (a fenced patch, chat.compat.daphne_access): for JSON each entry becomes a log record; in
    # both formats the request line loses its entry tokens (``/?token=…`` is how a host's shopper arrives).
    json_log = settings.VIZOCHOK_LOG_FORMAT == "json"
    daphne_access.install(lambda own: _log_access_entry if json_log else _redacted(own))
    _installed = True
    return True


def _redacted(write_entry: Any) -> Any:
    """Daphne's own NCSA writer, given the request line without entry tokens."""

    def write(self: Any, host: str, date: datetime, request: str, *args: Any, **kwargs: Any) -> None:
        write_entry(self, host, date, redact(request), *args, **kwargs)

    return write


def _log_access_entry(
    self: Any,
    host: str,
    date: datetime,
    request: str,
    status: int | None = None,
    length: int | None = None,
    ident: str | None = None,
    user: str | None = None,
) -> None:
    """One access-log entry (``GET /path 200``, ``WSREJECT /ws/chat/``) with its fields, for the JSON formatter."""
    request = redact(request)
    _access_log.info(
        "%s %s",
        request,
        "-" if status is None else status,
        extra={"client": host, "request": request, "status": status, "size": length},
    )
