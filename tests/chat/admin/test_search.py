"""The conversation search ignores letter case in Cyrillic, on SQLite and on PostgreSQL alike.

SQLite's ``LIKE`` and ``lower()`` fold ASCII only, so "молоко" used to find 3 chats, "Молоко" 7 and "МОЛОКО" none.
The texts are written through the relay's own store functions, which keep the search column; this module also runs
on PostgreSQL (``test_postgres.py`` runs it there in a subprocess with ``DATABASE_URL`` set).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.urls import reverse

from chat.models import SEARCH_TEXT_LIMIT, Conversation, Message
from chat.persistence import claims, store

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:chat_conversation_changelist"


@pytest.fixture
def viewer() -> Client:
    user = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    client = Client()
    client.force_login(user)
    return client


def chat(user: str, shopper_says: str, assistant_says: str = "") -> Conversation:
    """A conversation whose texts went through the relay's store: the turn's claim, then the reply."""
    conversation = Conversation.objects.create(user_id=user, store_id="магазин-1")
    started = claims.begin_turn(conversation.pk, kind="text", text=shopper_says, payload={}, client_key=f"k-{user}")
    assert started.message is not None
    claims.store_sent(started.message, None)
    if assistant_says:
        store.save_assistant_text(conversation.pk, assistant_says)
    claims.end_turn(conversation.pk)
    return conversation


@pytest.fixture
def chats() -> dict[str, Conversation]:
    return {
        "lower": chat("u1", "потрібне молоко і хліб"),
        "title": chat("u2", "Молоко 2,5% є?"),
        "upper": chat("u3", "ЩО Є З МОЛОЧНОГО?", "Є МОЛОКО та кефір."),
        "reply": chat("u4", "щось на сніданок", "Спробуйте молоко з пластівцями."),
        "other": chat("u5", "гречка", "Гречка 1 кг — 52 ₴."),
        "latin": chat("u6", "Milk please", "Here is MILK."),
    }


def found(client: Client, term: str) -> set[int]:
    response = client.get(reverse(CHANGELIST), {"q": term})
    assert response.status_code == 200
    return {conversation.pk for conversation in response.context["cl"].result_list}


def test_runs_on_the_expected_database() -> None:
    """Under ``test_postgres.py`` this module must really run on PostgreSQL, not fall back to SQLite."""
    assert connection.vendor == os.environ.get("VIZOCHOK_EXPECT_DB_VENDOR", connection.vendor)


@pytest.mark.parametrize("term", ["молоко", "Молоко", "МОЛОКО", "мОлОкО", " молоко "])
def test_cyrillic_search_ignores_letter_case(chats: dict[str, Conversation], viewer: Client, term: str) -> None:
    expected = {chats[name].pk for name in ("lower", "title", "upper", "reply")}
    assert found(viewer, term) == expected


@pytest.mark.parametrize("term", ["milk", "MILK", "Milk"])
def test_latin_search_ignores_letter_case_too(chats: dict[str, Conversation], viewer: Client, term: str) -> None:
    assert found(viewer, term) == {chats["latin"].pk}


def test_a_word_across_messages_is_not_glued(chats: dict[str, Conversation], viewer: Client) -> None:
    """Texts are joined with a line break: the end of one message and the start of the next make no word."""
    assert found(viewer, "МОЛОЧНОГО?Є") == set()


def test_like_wildcards_in_the_term_are_literal(chats: dict[str, Conversation], viewer: Client) -> None:
    assert found(viewer, "2,5%") == {chats["title"].pk}
    assert found(viewer, "%_%") == set()


def test_the_search_column_is_capped() -> None:
    conversation = Conversation.objects.create(user_id="long", store_id="s")
    store.index_text(conversation.pk, "а" * (SEARCH_TEXT_LIMIT + 500))
    store.index_text(conversation.pk, "пізніше")
    text = Conversation.objects.values_list("search_text", flat=True).get(pk=conversation.pk)
    assert len(text) == SEARCH_TEXT_LIMIT


def test_existing_conversations_are_indexed_by_the_migration() -> None:
    """Migration 0004 fills the search column of conversations stored before it from their text messages."""
    import importlib

    migration = importlib.import_module("chat.migrations.0004_admin_labels")
    conversation = Conversation.objects.create(user_id="old", store_id="s")
    rows = [("user", "text", "Старе МОЛОКО"), ("assistant", "text", "Ось Кефір"), ("assistant", "error", "ЧУЖЕ")]
    for seq, (role, kind, text) in enumerate(rows, start=1):
        Message.objects.create(conversation=conversation, seq=seq, role=role, kind=kind, text=text)

    class Editor:
        connection: Any = connection

    migration.fill_search_text(apps, Editor())
    text = Conversation.objects.values_list("search_text", flat=True).get(pk=conversation.pk)
    assert text == "\nстаре молоко\nось кефір"
