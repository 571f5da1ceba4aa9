from __future__ import annotations

from django.urls import path

from . import views

app_name = "chat"
urlpatterns = [
    path("", views.chat_page, name="page"),
    path("conversations/new/", views.new_conversation, name="new"),
]
