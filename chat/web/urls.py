from __future__ import annotations

from django.urls import path

from chat.ops import metrics
from chat.web import embed, health, views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="page"),
    path("conversations/new/", views.new_conversation, name="new"),
    path("conversations/cards/", views.more_cards, name="more-cards"),
    path("demo/", embed.demo_storefront, name="demo"),  # 404 unless DEBUG
    path("demo/token/", embed.demo_token, name="demo-token"),  # 404 unless DEBUG
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
