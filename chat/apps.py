from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = pgettext_lazy("admin", "Chat")  # the admin's section title, in Ukrainian first
    default_auto_field = "django.db.models.BigAutoField"
