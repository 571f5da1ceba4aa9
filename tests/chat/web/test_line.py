"""The line as the consumer shows it: a tab that joins while its conversation's turn waits sees its place."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chat.conftest import READY, connected, make_shopper, receive_until, send, stored

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_tab_that_joins_while_the_turn_waits_sees_its_place(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_MAX_CONNECTIONS = 1
    first_key, first = await make_shopper("anon-first")
    second_key, second = await make_shopper("anon-second")
    sandbox.pause_turns()
    try:
        async with connected(first_key, first) as holder, connected(second_key, second) as waiting:
            await send(holder, kind="message", text="milk", key="a")
            await receive_until(holder, "-text")  # holds the only upstream socket, mid-reply
            await send(waiting, kind="message", text="bread", key="b")
            await receive_until(waiting, 'data-position="1"')
            async with connected(second_key, second) as joining:
                await send(joining, kind="sync", after=0)
                caught_up = await receive_until(joining, 'data-state="busy"')
                assert 'data-position="1"' in caught_up and "You are first in line" in caught_up
                sandbox.resume_turns()
                await receive_until(joining, READY)
    finally:
        sandbox.resume_turns()


async def test_a_line_too_long_to_be_served_in_time_is_refused_at_once_with_when_to_try_again(
    sandbox: Any, settings: Any
) -> None:
    settings.VIZOCHOK_MAX_CONNECTIONS = 1
    settings.VIZOCHOK_LINE_MAX_WAIT = 1.0  # any wait is too long: a turn is served in ~5 s at the first estimate
    first_key, first = await make_shopper("anon-first")
    second_key, second = await make_shopper("anon-second")
    sandbox.pause_turns()
    try:
        async with connected(first_key, first) as holder, connected(second_key, second) as refused:
            await send(holder, kind="message", text="milk", key="a")
            await receive_until(holder, "-text")  # holds the only upstream socket, mid-reply
            await send(refused, kind="message", text="bread", key="b")
            answer = await receive_until(refused, READY)
            assert 'data-code="line_full"' in answer
            assert "Too many shoppers are waiting" in answer and "Please try again in 5 s." in answer
            assert 'data-role="user"' not in answer  # nothing was stored or shown as sent
            sandbox.resume_turns()
            await receive_until(holder, READY)
    finally:
        sandbox.resume_turns()
    assert [m.text for m in await stored(second)] == []
