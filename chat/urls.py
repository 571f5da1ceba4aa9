from __future__ import annotations

from django.urls import path

from . import health, metrics, views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="page"),
    path("conversations/new/", views.new_conversation, name="new"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
