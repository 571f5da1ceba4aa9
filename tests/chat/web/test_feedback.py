"""Reply feedback (issue 25) through the real ASGI application and the sandbox on loopback: a shopper rates a
finished reply, every tab shows it, it survives a reload, there is one per reply and shopper, and bad input is a
clear refusal on a socket that stays open."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError, transaction
from django.test import Client

from chat.models import Conversation, Feedback, Message
from tests.chat.conftest import READY, connected, make_shopper, receive_until, send, stored

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def ratings(conversation: Conversation) -> list[tuple[int, str, str, str, str]]:
    return list(
        Feedback.objects.filter(conversation=conversation).values_list("seq", "user_id", "value", "reason", "text")
    )


async def answered(tab: Any, conversation: Conversation) -> int:
    """Ask for milk; the seq of the finished text reply."""
    await send(tab, kind="message", text="milk", key="k1")
    await receive_until(tab, READY)
    replies = [m for m in await stored(conversation) if m.role == "assistant" and m.kind == "text" and m.complete]
    assert replies
    return replies[0].seq


def pressed(html: str, seq: int) -> dict[str, str]:
    """The aria-pressed of each rating control of reply ``seq`` in a fragment."""
    article = re.search(rf'<article[^>]* id="msg-{seq}"[^>]*data-update="rating".*?</article>', html, re.S)
    assert article, html[:800]
    found = re.findall(
        r'data-action="(rate(?:-reason)?)" data-value="([a-z_]+)" aria-pressed="(true|false)"', article[0]
    )
    return {f"{action}:{value}": state for action, value, state in found}


async def test_a_rating_is_stored_shown_in_every_tab_changed_and_cleared(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab, connected(key, conversation) as other:
        seq = await answered(tab, conversation)
        await receive_until(other, READY)

        await send(tab, kind="rate", seq=seq, value="up")
        for each in (tab, other):
            shown = pressed(await receive_until(each, 'data-update="rating"'), seq)
            assert shown == {"rate:up": "true", "rate:down": "false"}
        assert await ratings(conversation) == [(seq, "anon-test", "up", "", "")]

        await send(tab, kind="rate", seq=seq, value="down", reason="wrong_price", text="  Ціна не та  ")
        shown = pressed(await receive_until(other, 'data-update="rating"'), seq)
        assert shown["rate:down"] == "true" and shown["rate:up"] == "false"
        assert shown["rate-reason:wrong_price"] == "true" and shown["rate-reason:other"] == "false"
        assert await ratings(conversation) == [(seq, "anon-test", "down", "wrong_price", "Ціна не та")]

        await send(tab, kind="rate", seq=seq, value="none")
        shown = pressed(await receive_until(other, 'data-update="rating"'), seq)
        assert shown == {"rate:up": "false", "rate:down": "false"}
        assert await ratings(conversation) == []


async def test_a_rating_survives_a_reload(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_STORE_ID = "s"  # the test shopper's store
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        seq = await answered(tab, conversation)
        await send(tab, kind="rate", seq=seq, value="down", reason="not_understood")
        await receive_until(tab, 'data-update="rating"')

    @database_sync_to_async
    def page() -> str:
        client = Client()
        client.cookies["sessionid"] = key
        return client.get(f"/?c={conversation.public_id}&lang=en").content.decode()

    html = await page()
    assert re.search(r'data-action="rate" data-value="down" aria-pressed="true"', html)
    assert re.search(r'data-action="rate-reason" data-value="not_understood" aria-pressed="true"', html)


BAD_FRAMES: list[dict[str, Any]] = [
    {"kind": "rate", "value": "up"},  # no seq
    {"kind": "rate", "seq": "x", "value": "up"},
    {"kind": "rate", "seq": True, "value": "up"},
    {"kind": "rate", "seq": 10**12, "value": "up"},
    {"kind": "rate", "seq": 999, "value": "up"},  # no such reply
    {"kind": "rate", "seq": 1, "value": "up"},  # the shopper's own message
    {"kind": "rate", "seq": "REPLY", "value": "meh"},
    {"kind": "rate", "seq": "REPLY", "value": ["up"]},
    {"kind": "rate", "seq": "REPLY", "value": "up", "reason": "wrong_products"},  # reasons are for "down"
    {"kind": "rate", "seq": "REPLY", "value": "down", "reason": "<script>"},
    {"kind": "rate", "seq": "REPLY", "value": "down", "reason": {"a": 1}},
    {"kind": "rate", "seq": "REPLY", "value": "down", "reason": "other", "text": "я" * 501},
    {"kind": "rate", "seq": "REPLY", "value": "down", "text": 5},
    {"kind": "rate", "seq": "\u00b2", "value": "up"},  # a superscript two: str.isdigit() says yes, int() fails
    {"kind": "rate", "seq": "\u0661", "value": "up"},  # an Arabic-Indic one: a number to int(), not to us
]


async def test_bad_ratings_are_refused_clearly_and_the_socket_stays(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        seq = await answered(tab, conversation)
        for frame in BAD_FRAMES:
            frame = {k: (seq if v == "REPLY" else v) for k, v in frame.items()}
            await tab.send_to(text_data=json.dumps(frame))
            html = await receive_until(tab, "invalid_feedback")
            assert 'data-code="invalid_feedback"' in html and READY not in html, frame
        assert await ratings(conversation) == []
        await send(tab, kind="rate", seq=seq, value="down", reason="other", text="я" * 500)
        await receive_until(tab, 'data-update="rating"')
        assert (await ratings(conversation))[0][4] == "я" * 500


@pytest.mark.django_db
def test_one_rating_per_reply_and_shopper() -> None:
    conversation = Conversation.objects.create(user_id="u", store_id="s")
    reply = Message.objects.create(conversation=conversation, seq=2, role="assistant", kind="text", text="Так")
    fields = {"conversation": conversation, "message": reply, "seq": 2, "store_id": "s", "day": "2026-12-07"}
    Feedback.objects.create(user_id="u", value="up", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Feedback.objects.create(user_id="u", value="down", **fields)
    Feedback.objects.create(user_id="someone-else", value="down", **fields)
