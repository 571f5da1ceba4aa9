"""One upstream frame, however crafted, cannot wedge a conversation or make its page unbounded.

A hostile upstream (or model output a shopper steers) on loopback answers every turn with a script of frames; each
case then checks what the shopper needs next: the turn ended in the tab, a catch-up (a reconnecting tab) gets the
turn state, and the page loads, small. Measured before the fixes: a price of 1e30 made every page load a 500 and
every catch-up relay_error for good; a checklist, quick replies or a cart of thousands of entries in one 64 KB
frame made pages of 1.8-3.6 MB and catch-ups the browser was never sent.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from chat.models import Conversation
from chat.vizochok.messages import MAX_FRAME_BYTES
from chat.web import identity
from tests.chat.conftest import READY, connected, receive_until, scripted_upstream, send

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def shopper_of_this_store(user_id: str) -> tuple[str, Conversation]:
    """A shopper whose conversation the chat page finds (the deployment's store)."""
    session = SessionStore()
    session[identity.SESSION_USER_KEY] = user_id
    session.create()
    key = session.session_key or ""
    store_id = django_settings.VIZOCHOK_STORE_ID
    return key, Conversation.objects.create(session_key=key, user_id=user_id, store_id=store_id)


@database_sync_to_async
def page_of(key: str, conversation: Conversation) -> tuple[int, bytes]:
    client = Client(raise_request_exception=False)
    client.cookies[django_settings.SESSION_COOKIE_NAME] = key
    response = client.get(f"/?c={conversation.public_id}&lang=en")
    return response.status_code, response.content


def filled(head: str, item: str, tail: str) -> str:
    """One frame of as many ``item % n`` entries as fit in the protocol's 64 KB."""
    count = (MAX_FRAME_BYTES - len(head) - len(tail) - 100) // (len(item % 99_999) + 1)
    return head + ",".join(item % n for n in range(count)) + tail


COMPLETE = '{"type":"response_complete"}'
HOSTILE = {
    "a price of 1e30": [
        '{"type":"text_delta","delta":"Added."}',
        '{"type":"text_end"}',
        '{"type":"cart_changed","action":"item_selected","sku":"gold",'
        '"items":[{"sku":"gold","name":"Gold","price":1e30,"quantity":1}],"total":1e30}',
    ],
    "a checklist of thousands": [filled('{"type":"ingredient_checklist","items":[', '"%d"', "]}")],
    "quick replies by the thousand": [filled('{"type":"quick_replies","replies":[', '"%d"', "]}")],
    "a cart of a thousand lines": [
        filled('{"type":"cart_changed","action":"item_selected","items":[', '{"sku":"%d","name":"n","price":1}', "]}")
    ],
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_one_frame_cannot_wedge_a_conversation_or_blow_up_its_page(settings: Any, case: str) -> None:
    key, conversation = await shopper_of_this_store(f"anon-hostile-{len(case)}")
    async with scripted_upstream(settings, [*HOSTILE[case], COMPLETE]), connected(key, conversation) as tab:
        await send(tab, kind="message", text="anything", key="k1")
        live = await receive_until(tab, READY)
        assert "relay_error" not in live and "too_large_to_show" not in live
        await send(tab, kind="sync", after=0)  # a reconnecting tab's catch-up
        caught_up = await receive_until(tab, READY)
        assert "relay_error" not in caught_up and "too_large_to_show" not in caught_up
    status, page = await page_of(key, conversation)
    assert status == 200
    assert len(page) < 400_000, len(page)


async def test_a_catch_up_too_large_for_one_frame_still_brings_the_turn_state(settings: Any) -> None:
    """Whatever part of a catch-up is too large to send is replaced by a notice asking for a reload, but the turn
    state still arrives: it went in the same frame, and a tab left without it kept its composer busy for good."""
    key, conversation = await shopper_of_this_store("anon-hostile-catch-up")
    script = ['{"type":"text_delta","delta":"' + "long words " * 600 + '"}', '{"type":"text_end"}', COMPLETE]
    async with scripted_upstream(settings, script), connected(key, conversation) as tab:
        await send(tab, kind="message", text="anything", key="k1")
        await receive_until(tab, READY)
        settings.VIZOCHOK_MAX_FRAGMENT_BYTES = 4_000  # the reply alone is larger than a frame may be now
        await send(tab, kind="sync", after=0)
        caught_up = await receive_until(tab, READY)
    assert "too_large_to_show" in caught_up


async def test_an_upstream_that_rate_limits_every_resend_ends_the_turn_soon(settings: Any) -> None:
    """A message refused with ``rate_limit_exceeded`` is sent again when the upstream says (reference §14), but not
    for ever: with ``retry_after`` 0 every time, it was resent as fast as the socket settled until the turn's
    deadline, holding one of the key's sockets the whole time."""
    key, conversation = await shopper_of_this_store("anon-hostile-rate")
    refusal = '{"type":"error","code":"rate_limit_exceeded","retry_after":0}'
    async with scripted_upstream(settings, [refusal]), connected(key, conversation) as tab:
        await send(tab, kind="message", text="anything", key="k1")
        html = await receive_until(tab, READY)
    assert 'data-code="rate_limit_exceeded"' in html


async def test_an_upstream_busy_for_ever_ends_the_turn_in_its_own_words_within_its_deadline(settings: Any) -> None:
    """``agent_busy`` is waited out on the backoff schedule, but each resend had a deadline of its own: an upstream
    busy for ever kept the turn until the task's own limit cut it (as a timeout) past the time its busy flag counts
    as stale, so another process could start a turn beside it."""
    settings.VIZOCHOK_TURN_TIMEOUT = 3.0
    key, conversation = await shopper_of_this_store("anon-hostile-busy")
    async with (
        scripted_upstream(settings, ['{"type":"error","code":"agent_busy"}']),
        connected(key, conversation) as tab,
    ):
        await send(tab, kind="message", text="anything", key="k1")
        html = await receive_until(tab, READY)
    assert 'data-code="agent_busy"' in html


@pytest.mark.parametrize("named", ["c" * 65_000, "conv <b>", "conv\\u00e9"])
async def test_a_conversation_id_no_conversation_can_have_is_not_taken(settings: Any, named: str) -> None:
    """A ``response_complete`` naming a 65 KB id was taken as the conversation's: stored, then sent in every message,
    each over the 64 KB frame limit, so every later turn failed, for good."""
    key, conversation = await shopper_of_this_store("anon-hostile-id")
    complete = '{"type":"response_complete","conversation_id":"' + named + '"}'
    script = ['{"type":"text_delta","delta":"Hello."}', '{"type":"text_end"}', complete]
    async with scripted_upstream(settings, script), connected(key, conversation) as tab:
        for n in range(2):
            await send(tab, kind="message", text="anything", key=f"k{n}")
            html = await receive_until(tab, READY)
            assert "chat-error" not in html, html
    assert (await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)).upstream_id == "conv_scripted"
