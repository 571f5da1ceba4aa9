"""The Django admin of the relay, for store staff (Ukrainian first).

- :mod:`chat.admin.conversations`: the conversation list (search, filters, exports) and the conversation page.
- :mod:`chat.admin.transcript`: each stored message as the conversation page shows it.
- :mod:`chat.admin.insights`: ``/admin/insights/``, what the assistant does for the store, drawn as SVG charts.

Importing this package registers the model admins (Django's autodiscovery imports ``chat.admin``).
"""

from __future__ import annotations

from chat.admin.conversations import (
    POLL_SECONDS,
    ConversationAdmin,
    ConversationAdminQuerySet,
    MessageAdmin,
)
from chat.admin.transcript import Entry, build_entries, build_entry

__all__ = [
    "POLL_SECONDS",
    "ConversationAdmin",
    "ConversationAdminQuerySet",
    "Entry",
    "MessageAdmin",
    "build_entries",
    "build_entry",
]
