"""Every turn that starts ends with exactly one ``Turn`` record, whatever ends it (issue 25).

Through the real ASGI application against the sandbox on loopback, one test per way a turn can end; the two ends
that happen without the turn's process (a restart's SIGTERM path and a heartbeat found stale later) are driven
through the code that runs them (``chat.web.lifecycle.shutdown`` and ``chat.persistence.claims``).
"""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat.models import Conversation, Message, Turn
from chat.persistence import claims
from chat.presentation import formatting
from chat.web import lifecycle
from tests.chat.conftest import READY, connected, make_shopper, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def records(conversation: Conversation) -> list[tuple[int, str, str]]:
    return list(
        Turn.objects.filter(conversation=conversation).order_by("seq").values_list("seq", "outcome", "error_code")
    )


@database_sync_to_async
def user_seqs(conversation: Conversation) -> list[int]:
    return list(
        Message.objects.filter(conversation=conversation, role="user").order_by("seq").values_list("seq", flat=True)
    )


async def one_turn(conversation: Conversation) -> tuple[str, str]:
    """The one record of the conversation's one turn, as (outcome, error code); it belongs to the shopper's message."""
    found = await records(conversation)
    assert len(found) == 1, found
    assert [found[0][0]] == await user_seqs(conversation)
    return found[0][1], found[0][2]


async def test_an_answer(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
    assert await one_turn(conversation) == ("answered", "")


async def test_a_stop(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()
        await send(tab, kind="message", text="borscht", key="k1")
        await receive_until(tab, "-tail")
        await send(tab, kind="stop")
        await receive_until(tab, READY)
        sandbox.resume_turns()
    assert await one_turn(conversation) == ("stopped", "")


async def test_an_upstream_error(sandbox: Any) -> None:
    sandbox.fail_next_turn("internal_error")
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
    assert await one_turn(conversation) == ("failed", "internal_error")


async def test_a_queue_timeout(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_MAX_CONNECTIONS = 1
    settings.VIZOCHOK_QUEUE_TIMEOUT = 0.2
    first_key, first = await make_shopper("anon-first")
    second_key, second = await make_shopper("anon-second")
    sandbox.pause_turns()
    async with connected(first_key, first) as tab_one, connected(second_key, second) as tab_two:
        await send(tab_one, kind="message", text="milk", key="a")
        await receive_until(tab_one, "-text")
        await send(tab_two, kind="message", text="bread", key="b")
        await receive_until(tab_two, READY)
        sandbox.resume_turns()
        await receive_until(tab_one, READY)
    assert await one_turn(second) == ("failed", "queue_timeout")
    assert await one_turn(first) == ("answered", "")


async def test_an_unreachable_upstream(settings: Any) -> None:
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.VIZOCHOK_WS_URL = f"ws://127.0.0.1:{port}/api/v1/ws/chat"
    settings.VIZOCHOK_OPEN_RETRIES = 0
    key, conversation = await make_shopper()
    try:
        async with connected(key, conversation) as tab:
            await send(tab, kind="message", text="milk", key="k1")
            assert 'data-code="upstream_unavailable"' in await receive_until(tab, READY)
    finally:
        await lifecycle.shutdown()
    assert await one_turn(conversation) == ("failed", "upstream_unavailable")


async def test_a_relay_error(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of our own mid-turn (no upstream or network fault makes one, so one is injected where the turn reads
    a cart change): the turn still ends with one record, the tab is told and made ready, the next turn works."""

    def broken(items: Any) -> int:
        raise RuntimeError("a bug in the relay")

    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        html = await receive_until(tab, READY)
        sku = re.search(r'class="product-card" data-sku="([^"]+)"', html)
        assert sku, "no product card in the frames"
        monkeypatch.setattr(formatting, "cart_lines", broken)
        await send(tab, kind="add_to_cart", sku=sku.group(1), quantity="1", key="k2")
        assert 'data-code="relay_error"' in await receive_until(tab, READY)
        monkeypatch.undo()
        await send(tab, kind="message", text="bread", key="k3")
        await receive_until(tab, READY)
    found = await records(conversation)
    assert [(outcome, code) for _, outcome, code in found] == [
        ("answered", ""),
        ("failed", "relay_error"),
        ("answered", ""),
    ]
    assert [seq for seq, _, _ in found] == await user_seqs(conversation)


async def test_a_restart_mid_reply(sandbox: Any) -> None:
    """SIGTERM's path: the running turn is cut and recorded before the process goes."""
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()
        await send(tab, kind="message", text="borscht", key="k1")
        await receive_until(tab, "-tail")
        await lifecycle.shutdown()
        sandbox.resume_turns()
    assert await one_turn(conversation) == ("interrupted", "relay_shutdown")


def _stale_turn(text: str) -> Conversation:
    """A turn claimed by a process that then died: its message stored, its heartbeat long lapsed."""
    conversation = Conversation.objects.create(user_id="shopper-9", store_id="s")
    started = claims.begin_turn(conversation.pk, kind="text", text=text, payload={}, client_key="k1")
    assert started.message is not None
    claims.store_sent(started.message, None)
    past = timezone.now() - timedelta(minutes=5)
    Conversation.objects.filter(pk=conversation.pk).update(heartbeat_at=past, busy_since=past)
    return conversation


@pytest.mark.django_db
def test_a_stale_heartbeat_found_later() -> None:
    conversation = _stale_turn("молоко")
    assert claims.reap_stale(conversation.pk) is not None
    assert claims.reap_stale(conversation.pk) is None  # reaped once
    turn = Turn.objects.get(conversation=conversation)
    assert (turn.seq, turn.outcome, turn.error_code, turn.query) == (1, "interrupted", "turn_interrupted", "молоко")
    assert turn.store_id == "s" and turn.user_id == "shopper-9" and turn.day == timezone.localdate(turn.started_at)


@pytest.mark.django_db
def test_a_stale_turn_taken_over_by_the_next_send() -> None:
    conversation = _stale_turn("хліб")
    started = claims.begin_turn(conversation.pk, kind="text", text="молоко", payload={}, client_key="k2")
    assert started.message is not None
    turns = list(Turn.objects.filter(conversation=conversation).values_list("seq", "outcome", "error_code"))
    assert turns == [(1, "interrupted", "turn_interrupted")]  # the new turn is recorded when it ends
