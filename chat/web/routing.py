from __future__ import annotations

from django.urls import path

from chat.web import consumer

websocket_urlpatterns = [path("ws/chat/", consumer.ChatConsumer.as_asgi())]
