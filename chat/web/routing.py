from __future__ import annotations

from typing import Any

from django.urls import path

from chat.web import consumer

# Channels routes ASGI apps with Django's path(); django-stubs types path() for views only.
websocket_urlpatterns: list[Any] = [path("ws/chat/", consumer.ChatConsumer.as_asgi())]  # type: ignore[arg-type]
