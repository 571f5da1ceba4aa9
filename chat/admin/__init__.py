"""The Django admin of the relay, for store staff (Ukrainian first).

- :mod:`chat.admin.conversations`: the conversation list (search, filters, exports) and the conversation page.
- :mod:`chat.admin.transcript`: each stored message as the conversation page shows it.
- :mod:`chat.admin.insights`: ``/admin/insights/``, what the assistant does for the store, drawn as SVG charts.

Importing this package registers the model admins (Django's autodiscovery imports ``chat.admin``).
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import pgettext_lazy

from chat.admin.conversations import (
    POLL_SECONDS,
    ConversationAdmin,
    ConversationAdminQuerySet,
    MessageAdmin,
)
from chat.admin.transcript import Entry, build_entries, build_entry

# Django's defaults name Django ("Django сайт адміністрування"); staff should see the product.
admin.site.site_title = pgettext_lazy("admin", "VIZOCHOK admin")
admin.site.site_header = pgettext_lazy("admin", "VIZOCHOK: store administration")
admin.site.index_title = pgettext_lazy("admin", "Conversations and insights")
# No app list beside every page: staff have two models, listed on the index, and the 300 px it took are what the
# conversation list needs to fit a 1280 px screen without scrolling sideways.
admin.site.enable_nav_sidebar = False

__all__ = [
    "POLL_SECONDS",
    "ConversationAdmin",
    "ConversationAdminQuerySet",
    "Entry",
    "MessageAdmin",
    "build_entries",
    "build_entry",
]
