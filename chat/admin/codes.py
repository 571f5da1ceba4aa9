"""Short Ukrainian-first names of the relay's and the upstream's error codes, for staff.

A shopper reads a sentence per code (``chat.presentation.texts``); a chart legend, a table header or the
transcript needs a name of a few words, with the code beside it for whoever looks it up in the logs.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import pgettext_lazy

from chat.presentation import texts

#: Short names of the error codes for a chart's legend and table; ``chat.presentation.texts`` has the sentence a
#: shopper reads for each, which the legend shows too.
ERROR_NAMES: dict[str, Promise] = {
    "rate_limit_exceeded": pgettext_lazy("admin error", "Too many messages"),
    "user_message_limit": pgettext_lazy("admin error", "Daily message limit"),
    "user_conversation_limit": pgettext_lazy("admin error", "Daily conversation limit"),
    "tenant_daily_token_limit": pgettext_lazy("admin error", "Store's daily token limit"),
    "tenant_monthly_token_limit": pgettext_lazy("admin error", "Store's monthly token limit"),
    "agent_busy": pgettext_lazy("admin error", "Assistant busy"),
    "session_token_limit": pgettext_lazy("admin error", "Conversation too long"),
    "max_rounds_exceeded": pgettext_lazy("admin error", "Request too complex"),
    "message_too_large": pgettext_lazy("admin error", "Message too large"),
    "invalid_json": pgettext_lazy("admin error", "Malformed request"),
    "internal_error": pgettext_lazy("admin error", "Assistant's internal error"),
    "no_catalog_data": pgettext_lazy("admin error", "Catalog unavailable"),
    "queue_timeout": pgettext_lazy("admin error", "Waited too long in line"),
    "auth_failed": pgettext_lazy("admin error", "Access refused"),
    "turn_timeout": pgettext_lazy("admin error", "Reply took too long"),
    "upstream_lost": pgettext_lazy("admin error", "Connection lost"),
    "upstream_unavailable": pgettext_lazy("admin error", "Assistant unreachable"),
    "relay_error": pgettext_lazy("admin error", "Relay error"),
    "relay_shutdown": pgettext_lazy("admin error", "Server restarted"),
    "turn_interrupted": pgettext_lazy("admin error", "Interrupted by a restart"),
    "service_unavailable": pgettext_lazy("admin error", "Service unavailable"),
}


def error_name(code: str) -> str:
    """A short localized name of an error code (the code itself for one this page does not know)."""
    name = ERROR_NAMES.get(code)
    return str(name) if name is not None else code


def error_detail(code: str) -> str:
    """What the shopper read for the code (``chat.presentation.texts``), which says what went wrong."""
    return texts.error_text(code) if code in texts.ERROR_TEXTS else ""
