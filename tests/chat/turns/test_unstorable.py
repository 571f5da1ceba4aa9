"""Content no database stores (a lone surrogate, a NUL) never keeps a conversation busy (issue 24, item 1).

A lone surrogate in an upstream ``text_delta`` (SQLite) or a NUL (PostgreSQL) made ``claims.finish_turn`` fail: the
reply showed live but was never stored, the ``Turn`` record was lost, the conversation stayed busy, and every next
turn found it so. Now the protocol layer cleans every string of a frame, and the end of a turn commits even when
what it stores with it cannot be. Real sockets to a hostile upstream on loopback; the real database (SQLite here,
PostgreSQL through a Daphne process in ``tests/production/test_unstorable_postgres.py``).
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message, Turn
from chat.persistence import claims
from tests.chat.conftest import READY, connected, make_shopper, receive_until, reload, scripted_upstream, send, stored

pytestmark = pytest.mark.django_db(transaction=True)

#: Frames as a hostile (or broken) upstream writes them: JSON escapes for a lone surrogate and a NUL, in the text,
#: in a product's name and deep inside its data, even in a key.
HOSTILE_TURN = [
    r'{"type":"text_delta","delta":"bad \ud800 half"}',
    r'{"type":"text_delta","delta":" and a nul \u0000 here"}',
    r'{"type":"text_end"}',
    r'{"type":"product_cards","items":[{"sku":"milk\u0000","name":"Milk \udc00 2.5%","price":42.9,'
    r'"description":"fresh\u0000","image_url":"https://img.example/m\u0000.png"}]}',
    r'{"type":"quick_replies","replies":[{"label":"Yes \ud800","value":"yes\u0000"}]}',
    r'{"type":"response_complete"}',
]


@database_sync_to_async
def turns_of(conversation: Conversation) -> list[Turn]:
    return list(Turn.objects.filter(conversation=conversation).order_by("seq"))


async def test_unstorable_characters_from_the_upstream_are_cleaned_and_every_turn_ends(settings: Any) -> None:
    key, conversation = await make_shopper("anon-unstorable")
    async with scripted_upstream(settings, HOSTILE_TURN), connected(key, conversation) as tab:
        for n in range(3):  # one wedged turn made every next one busy: three in a row all answer
            await send(tab, kind="message", text=f"milk {n}", key=f"k{n}")
            html = await receive_until(tab, READY)
            assert "agent_busy" not in html and "relay_error" not in html
            assert "bad \ufffd half" in html
            assert (await reload(conversation)).status == Conversation.Status.IDLE
    messages = await stored(conversation)
    replies = [m.text for m in messages if m.role == Message.Role.ASSISTANT and m.kind == Message.Kind.TEXT]
    assert replies == ["bad \ufffd half and a nul  here"] * 3
    cards = [m.data for m in messages if m.kind == Message.Kind.PRODUCT_CARDS]
    assert len(cards) == 3
    assert cards[0]["items"][0]["sku"] == "milk" and cards[0]["items"][0]["name"] == "Milk \ufffd 2.5%"
    assert claims.INTERRUPTED not in [m.text for m in messages]
    assert [turn.outcome for turn in await turns_of(conversation)] == [Turn.Outcome.ANSWERED] * 3


@database_sync_to_async
def claimed(conversation: Conversation) -> claims.TurnStart:
    started = claims.begin_turn(conversation.pk, kind="text", text="milk", payload={}, client_key="k-apart")
    assert started.message is not None
    claims.store_sent(started.message, None)
    return started


@pytest.mark.parametrize("bad", ["\ud800", "\udfff tail"])
async def test_a_reply_that_cannot_be_stored_still_ends_the_turn(bad: str) -> None:
    """The backstop: content the protocol layer did not clean (here handed in directly) is left out, the end commits."""
    _key, conversation = await make_shopper("anon-apart")
    started = await claimed(conversation)
    assert started.message is not None
    owner = (await reload(conversation)).busy_owner
    record = {
        "seq": started.message.seq,
        "started_at": started.message.created_at,
        "first_token_ms": 5,
        "duration_ms": 9,
        "outcome": Turn.Outcome.ANSWERED,
        "query": "milk",
    }
    saved, noted = await database_sync_to_async(claims.finish_turn)(
        conversation.pk, "", owner, record=record, reply={"text": f"half a reply {bad}"}, notice=None
    )
    assert saved is None and noted is None  # the reply could not be stored: left out, and logged
    after = await reload(conversation)
    assert after.status == Conversation.Status.IDLE and after.busy_owner == ""
    assert [turn.seq for turn in await turns_of(conversation)] == [started.message.seq]


async def test_a_shoppers_unstorable_characters_are_cleaned_too(sandbox: Any) -> None:
    key, conversation = await make_shopper("anon-unstorable-shopper")
    async with connected(key, conversation) as tab:
        await tab.send_to(text_data=r'{"kind":"message","text":"milk \ud800\u0000","key":"k\u0000"}')
        html = await receive_until(tab, READY)
        assert "relay_error" not in html and "product-card" in html
    [question] = [m for m in await stored(conversation) if m.role == Message.Role.USER]
    assert (question.text, question.client_key) == ("milk \ufffd", "k")
