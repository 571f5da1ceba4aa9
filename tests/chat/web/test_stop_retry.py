"""Stop and Retry (issue 16) through the real ASGI application, against the real sandbox on loopback.

The sandbox's turn gate holds a reply right after a streamed token, so "mid-reply" is a state the test waits for.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from chat.models import Conversation, Message
from chat.turns.service import get_relay
from tests.chat.conftest import READY, connected, make_shopper, receive_until, reload, send, stored

pytestmark = pytest.mark.django_db(transaction=True)


async def test_stop_ends_the_reply_within_a_second_and_keeps_what_streamed(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()
        await send(tab, kind="message", text="borscht", key="k1")
        await receive_until(tab, "-tail")  # the reply has started streaming
        runner = get_relay().existing(conversation.pk)
        assert runner is not None
        stopped_socket = runner.session
        assert stopped_socket is not None
        started = time.monotonic()
        await send(tab, kind="stop")
        html = await receive_until(tab, READY, timeout=2)
        assert time.monotonic() - started < 1.0
        assert "data-stopped" in html and 'data-action="retry"' in html
        assert 'data-code="stopped"' not in html  # the kept text says it; no second marker
        sandbox.resume_turns()
        await send(tab, kind="message", text="milk", key="k2")
        assert "product-card" in await receive_until(tab, READY)
        # The stopped turn's socket was closed, not reused: the next turn resumed the conversation on another one.
        assert stopped_socket.closed
        runner = get_relay().existing(conversation.pk)
        assert runner is not None and runner.session is not stopped_socket

    messages = await stored(conversation)
    cut = [m for m in messages if m.role == "assistant" and m.kind == "text" and not m.complete]
    assert len(cut) == 1 and cut[0].text and cut[0].payload == {"stopped": True}
    conversation = await reload(conversation)
    assert conversation.status == Conversation.Status.IDLE
    assert [m.text for m in messages if m.role == "user"] == ["borscht", "milk"]


async def test_a_stopped_turn_is_sent_again_by_retry(sandbox: Any) -> None:
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, "-tail")
        await send(tab, kind="stop")
        await receive_until(tab, READY)
        sandbox.resume_turns()
        last = (await stored(conversation))[-1]
        assert last.data.get("stopped")

        await send(tab, kind="retry", seq=last.seq - 1, key="k2")  # not the turn's end: refused
        assert 'data-code="retry_unavailable"' in await receive_until(tab, READY)
        await send(tab, kind="retry", seq=last.seq, key="k3")
        html = await receive_until(tab, READY)
        assert "product-card" in html

        await send(tab, kind="retry", seq=(await stored(conversation))[-1].seq, key="k4")  # answered: nothing to retry
        assert 'data-code="retry_unavailable"' in await receive_until(tab, READY)
    users = [m for m in await stored(conversation) if m.role == "user"]
    assert [m.text for m in users] == ["milk", "milk"]
    assert users[1].client_key == "k3"


async def test_a_stop_before_any_text_leaves_a_marker_to_retry_from(sandbox: Any, settings: Any) -> None:
    await sandbox.close()  # the upstream cannot be reached: the turn is still opening its socket when stopped
    settings.VIZOCHOK_OPEN_RETRIES = 5
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, "Reconnecting")
        await send(tab, kind="stop")
        html = await receive_until(tab, READY, timeout=2)
    assert 'data-code="stopped"' in html and 'data-action="retry"' in html
    last = (await stored(conversation))[-1]
    assert (last.kind, last.data.get("code")) == (Message.Kind.ERROR, "stopped")
    assert (await reload(conversation)).last_error == "stopped"


async def test_a_failed_turn_is_sent_again_by_retry(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_OPEN_RETRIES = 1
    url = settings.VIZOCHOK_WS_URL
    settings.VIZOCHOK_WS_URL = url.replace(str(sandbox.port), "9")  # nothing listens there: the turn fails
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        html = await receive_until(tab, READY, timeout=10)
        assert 'data-code="upstream_unavailable"' in html and 'data-action="retry"' in html
        settings.VIZOCHOK_WS_URL = url  # the upstream is back
        failed = (await stored(conversation))[-1]
        await send(tab, kind="retry", seq=failed.seq, key="k2")
        assert "product-card" in await receive_until(tab, READY)
    assert [m.text for m in await stored(conversation) if m.role == "user"] == ["milk", "milk"]


async def test_the_turn_after_a_stop_waits_while_the_upstream_still_finishes_the_stopped_one(sandbox: Any) -> None:
    """The protocol has no cancel: a stopped turn may run on upstream, which answers the next message agent_busy.

    The relay says so ("finishing_previous") and sends again on the backoff schedule within the turn's deadline.
    """
    sandbox.config.turns_outlive_socket = True
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        sandbox.pause_turns()
        await send(tab, kind="message", text="borscht", key="k1")
        await receive_until(tab, "-tail")
        await send(tab, kind="stop")
        await receive_until(tab, READY)
        await send(tab, kind="message", text="milk", key="k2")
        waiting = await receive_until(tab, "Waiting for the stopped reply to end", timeout=3)
        assert "product-card" not in waiting
        sandbox.resume_turns()  # the stopped turn runs to its end upstream; then the conversation is free
        html = await receive_until(tab, READY, timeout=15)
        assert "product-card" in html
    messages = await stored(conversation)
    assert [m.text for m in messages if m.role == "user"] == ["borscht", "milk"]
    assert not [m for m in messages if m.kind == Message.Kind.ERROR and m.text == "agent_busy"]
