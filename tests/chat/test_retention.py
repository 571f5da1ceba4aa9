"""``manage.py prune_conversations``: a dry run deletes nothing, ``--apply`` deletes only stale conversations."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from chat.models import Conversation, Message

pytestmark = pytest.mark.django_db


def make_chat(*, idle_days: float, messages: int = 2) -> Conversation:
    """A conversation whose last activity was ``idle_days`` ago (created long before that)."""
    conversation = Conversation.objects.create(store_id="s", user_id="u")
    for seq in range(1, messages + 1):
        Message.objects.create(conversation=conversation, seq=seq, role="user", text=f"m{seq}")
    moment = timezone.now() - timedelta(days=idle_days)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=moment, created_at=moment - timedelta(days=365))
    return conversation


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_conversations", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def chats() -> dict[str, Conversation]:
    return {
        "stale": make_chat(idle_days=40),
        "staler": make_chat(idle_days=400, messages=5),
        "fresh": make_chat(idle_days=5),
        "new": make_chat(idle_days=0),
    }


def test_dry_run_counts_and_deletes_nothing(chats: dict[str, Conversation]) -> None:
    output = prune("--older-than", "30")
    assert "2 conversation(s)" in output
    assert "--apply" in output
    assert Conversation.objects.count() == 4
    assert Message.objects.count() == 11


def test_apply_deletes_only_the_stale_ones_with_their_messages(chats: dict[str, Conversation]) -> None:
    output = prune("--older-than", "30", "--apply", "--batch-size", "1")
    assert "Deleted 2 conversation(s)" in output
    assert set(Conversation.objects.values_list("pk", flat=True)) == {chats["fresh"].pk, chats["new"].pk}
    assert set(Message.objects.values_list("conversation_id", flat=True)) == {chats["fresh"].pk, chats["new"].pk}


def test_the_age_is_measured_from_last_activity_not_start() -> None:
    recently_active = make_chat(idle_days=1)  # started a year ago, active yesterday
    prune("--older-than", "30", "--apply")
    assert Conversation.objects.filter(pk=recently_active.pk).exists()


def test_nothing_to_prune() -> None:
    make_chat(idle_days=1)
    assert "Deleted 0 conversation(s)" in prune("--older-than", "30", "--apply")


@pytest.mark.parametrize("days", ["0", "-5"])
def test_a_zero_or_negative_age_is_refused(chats: dict[str, Conversation], days: str) -> None:
    with pytest.raises(CommandError, match="at least 1 day"):
        prune("--older-than", days, "--apply")
    assert Conversation.objects.count() == 4


def test_older_than_is_required() -> None:
    with pytest.raises(CommandError):
        prune("--apply")
