"""Data migrations run on a real database: the shoppers of hosts' tokens move into their own namespace."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("chat", "0004_admin_labels")]
AFTER = [("chat", "0005_hardening")]


@pytest.mark.django_db(transaction=True)
def test_token_shoppers_get_the_ext_prefix_and_the_sites_own_keep_theirs() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    Conversation = executor.loader.project_state(BEFORE).apps.get_model("chat", "Conversation")
    for user_id in ("user-7", "anon-0123abcd", "shopper-42", "demo-shopper", "user@example.com"):
        Conversation.objects.create(user_id=user_id, store_id="s")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    Conversation = executor.loader.project_state(AFTER).apps.get_model("chat", "Conversation")
    assert sorted(Conversation.objects.values_list("user_id", flat=True)) == [
        "anon-0123abcd",
        "ext-demo-shopper",
        "ext-shopper-42",
        "ext-user@example.com",
        "user-7",
    ]

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)  # and back
    Conversation = executor.loader.project_state(BEFORE).apps.get_model("chat", "Conversation")
    assert "shopper-42" in set(Conversation.objects.values_list("user_id", flat=True))
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes("chat"))


@pytest.mark.django_db(transaction=True)
def test_older_turns_learn_whether_they_showed_a_checklist_or_changed_the_cart() -> None:
    """0007_turn_misses (issue 25): a turn recorded before its checklist and cart columns is filled from the
    messages between it and the shopper's next one, so a recipe asked last week is no "query without products"."""
    before, after = [("chat", "0006_cart_lines")], [("chat", "0007_turn_misses")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Conversation, Message, Turn = (apps.get_model("chat", name) for name in ("Conversation", "Message", "Turn"))
    chat = Conversation.objects.create(user_id="u", store_id="s")
    rows = [
        (1, "user", "text", "борщ"),
        (2, "assistant", "checklist", ""),
        (3, "user", "text", "додай два молока"),
        (4, "assistant", "cart", ""),
        (5, "user", "text", "хлеб"),
        (6, "assistant", "text", "Нічого не знайшлося"),
        (7, "user", "text", "ще"),
        (8, "assistant", "checklist", ""),  # after the shopper's next message: not the turn of "хлеб"
    ]
    for seq, role, kind, text in rows:
        Message.objects.create(conversation=chat, seq=seq, role=role, kind=kind, text=text)
    for seq, query in ((1, "борщ"), (3, "додай два молока"), (5, "хлеб")):
        Turn.objects.create(conversation=chat, seq=seq, store_id="s", started_at="2026-12-01T10:00Z", query=query)

    executor = MigrationExecutor(connection)
    executor.migrate(after)
    Turn = executor.loader.project_state(after).apps.get_model("chat", "Turn")
    assert list(Turn.objects.order_by("seq").values_list("query", "had_checklist", "cart_changed")) == [
        ("борщ", True, False),
        ("додай два молока", False, True),
        ("хлеб", False, False),
    ]
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes("chat"))
