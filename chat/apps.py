from __future__ import annotations

from pathlib import Path
from typing import Any

from axes.apps import AppConfig as AxesConfig
from django.apps import AppConfig
from django.utils.translation import pgettext_lazy


class ChatConfig(AppConfig):
    name = "chat"
    #: chat.apps also holds the axes config below: this is the one INSTALLED_APPS "chat" means.
    default = True
    verbose_name = pgettext_lazy("admin", "Chat")  # the admin's section title, in Ukrainian first
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.autoreload import autoreload_started

        from chat import checks  # noqa: F401 (registers the deploy checks)

        autoreload_started.connect(_watch_hooks)


def _watch_hooks(sender: Any, **kwargs: Any) -> None:
    """The development server restarts when static/chat/hooks.js changes, as it does for Python: the templates read
    the page's hooks from it once per process (chat.presentation.hooks)."""
    sender.watch_dir(Path(__file__).resolve().parent.parent / "static" / "chat", "hooks.js")


# django-axes ships no type information (no py.typed, no stubs), so its AppConfig is Any to mypy.
class LoginProtectionConfig(AxesConfig):  # type: ignore[misc]
    """django-axes (admin login throttling) under a title in the admin's language: axes ships no Ukrainian."""

    verbose_name = pgettext_lazy("admin", "Login protection")
