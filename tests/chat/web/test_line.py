"""The line as the consumer shows it: a tab that joins while its conversation's turn waits sees its place."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chat.conftest import READY, connected, make_shopper, receive_until, send

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
