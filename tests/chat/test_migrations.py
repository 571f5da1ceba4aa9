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
