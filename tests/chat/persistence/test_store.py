"""``chat.persistence.store.owned_conversation``: the one ownership rule of the page, the socket, the card pages, a
host's entry token and a first send, on the real database."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation
from chat.persistence import store

pytestmark = pytest.mark.django_db


@pytest.fixture
def mine() -> Conversation:
    return Conversation.objects.create(session_key="s", user_id="anon-mine", store_id="store-a")


def test_the_owner_gets_it_by_any_spelling_of_its_id(mine: Conversation) -> None:
    assert store.owned_conversation(str(mine.public_id), "anon-mine") == mine
    assert store.owned_conversation(str(mine.public_id).upper(), "anon-mine", "store-a") == mine
    assert store.owned_conversation(mine.public_id.hex, "anon-mine", new_in="store-a") == mine


def test_another_shoppers_id_gives_nothing(mine: Conversation) -> None:
    assert store.owned_conversation(str(mine.public_id), "anon-other") is None
    assert store.owned_conversation(str(mine.public_id), "") is None
    # Not a provisional conversation of the same id either: a first send would then claim somebody else's row.
    assert store.owned_conversation(str(mine.public_id), "anon-other", new_in="store-a") is None


def test_a_session_bound_to_another_store_gets_nothing(mine: Conversation) -> None:
    assert store.owned_conversation(str(mine.public_id), "anon-mine", "store-b") is None


@pytest.mark.parametrize("malformed", ["", "not-a-uuid", "1' OR '1'='1", "0" * 33, "{}"])
def test_a_malformed_id_gives_nothing_without_a_query(mine: Conversation, malformed: str) -> None:
    with CaptureQueriesContext(connection) as queries:
        assert store.owned_conversation(malformed, "anon-mine") is None
        assert store.owned_conversation(malformed, "anon-mine", new_in="store-a") is None
    assert len(queries) == 0


def test_a_missing_id_gives_nothing_or_a_provisional_conversation(mine: Conversation) -> None:
    unknown = str(uuid.uuid4())
    assert store.owned_conversation(unknown, "anon-mine") is None
    provisional = store.owned_conversation(unknown, "anon-mine", new_in="store-b")
    assert provisional is not None and provisional.pk is None
    assert (str(provisional.public_id), provisional.user_id, provisional.store_id) == (unknown, "anon-mine", "store-b")
    assert not Conversation.objects.filter(public_id=unknown).exists()  # stored at the first send, not here


def test_a_first_send_on_an_id_taken_meanwhile_keeps_only_the_owners(mine: Conversation) -> None:
    """Two tabs of one shopper may both send first: the second uses the first one's row; anybody else gets none."""
    same = store.provisional_conversation("anon-mine", "store-a", str(mine.public_id))
    assert store.store_provisional(same) == mine
    other = store.provisional_conversation("anon-other", "store-a", str(mine.public_id))
    assert store.store_provisional(other) is None
