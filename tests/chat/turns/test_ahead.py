"""A turn next in line opens its upstream socket while it waits and authenticates on it once its slot is free
(``chat.turns.ahead``), against the sandbox on loopback with the key's limit at one socket: the sandbox counts a
socket from its ``auth`` as the reference reads (its own default), or from its connection (``count_before_auth``),
the reading under which the relay must stop opening ahead."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chat.turns import ahead, engine
from chat.turns.service import get_relay
from chat.turns.states import State
from tests.chat.conftest import TIMEOUT, make_shopper
from tests.chat.turns.test_runner import Tab, begin

pytestmark = pytest.mark.django_db(transaction=True)


async def one_holds(sandbox: Any, settings: Any) -> Any:
    """The only slot held mid-reply by one turn."""
    settings.VIZOCHOK_MAX_CONNECTIONS = 1  # before this loop's relay is made (on the first turn)
    sandbox.config.max_connections_per_key = 1
    _key, first = await make_shopper("anon-first")
    tab = Tab(first)
    sandbox.pause_turns()
    holder = await begin(first, "milk", "k1")
    await tab.until("-text")
    return holder


async def one_holds_one_waits(sandbox: Any, settings: Any) -> tuple[Any, Any, Any, Tab]:
    """The only slot held mid-reply by one turn, and a second turn waiting in line for it (place 1), with the
    second conversation's tab."""
    holder = await one_holds(sandbox, settings)
    _key, second = await make_shopper("anon-second")
    waiting_tab = Tab(second)
    waiter = await begin(second, "bread", "k2")
    return holder, waiter, second, waiting_tab


async def connections(sandbox: Any, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        await sandbox.wait_for_connections(count)


async def test_the_turn_next_in_line_opens_its_socket_while_it_waits_and_authenticates_on_it(
    sandbox: Any, settings: Any
) -> None:
    holder, waiter, _second, _tab = await one_holds_one_waits(sandbox, settings)
    await connections(sandbox, 2)  # the waiter's socket, while the holder still streams on the only slot
    assert holder.running and sandbox.refused_too_many == 0
    sandbox.resume_turns()
    assert await waiter.settled() is State.PARKED
    assert sandbox.accepted == 2  # the holder's socket and the one opened ahead: no third
    assert sandbox.refused_too_many == 0 and get_relay().ahead.enabled


async def test_an_upstream_that_counts_sockets_before_auth_refuses_one_and_the_relay_stops_opening_ahead(
    sandbox: Any, settings: Any
) -> None:
    sandbox.config.count_before_auth = True
    _holder, waiter, _second, _tab = await one_holds_one_waits(sandbox, settings)
    sandbox.resume_turns()
    assert await waiter.settled() is State.PARKED  # opened afresh once its slot was free
    assert sandbox.refused_too_many == 1 and not get_relay().ahead.enabled
    # The next turn in line waits as before the relay opened ahead: nothing more is refused.
    _key, third = await make_shopper("anon-third")
    sandbox.pause_turns()
    tab = Tab(third)
    another = await begin(third, "eggs", "k3")
    await tab.until("-text")
    _key, fourth = await make_shopper("anon-fourth")
    last = await begin(fourth, "salt", "k4")
    sandbox.resume_turns()
    assert await another.settled() in (State.PARKED, State.IDLE)
    assert await last.settled() is State.PARKED
    assert sandbox.refused_too_many == 1


async def test_a_turn_stopped_in_line_closes_the_socket_it_opened_ahead(sandbox: Any, settings: Any) -> None:
    holder, waiter, second, _tab = await one_holds_one_waits(sandbox, settings)
    await connections(sandbox, 2)
    assert engine.stop(second.pk)
    assert await waiter.settled() is State.IDLE
    await connections(sandbox, 1)  # only the holder's
    sandbox.resume_turns()
    assert await holder.settled() is State.PARKED


async def test_a_long_wait_at_the_head_of_the_line_replaces_its_socket_before_the_auth_deadline(
    sandbox: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ahead, "AHEAD_FOR", 0.3)  # the API's 10 s, scaled down with the sandbox's below
    sandbox.config.auth_timeout = 1.0
    _holder, waiter, _second, _tab = await one_holds_one_waits(sandbox, settings)
    async with asyncio.timeout(TIMEOUT):
        await sandbox.wait_until(lambda: sandbox.accepted >= 5)  # the holder's, then three replaced in turn
    assert sandbox.connections <= 3  # the holder's, the one opened ahead, and one closing
    sandbox.resume_turns()
    assert await waiter.settled() is State.PARKED
    assert sandbox.refused_too_many == 0 and get_relay().ahead.enabled


async def test_an_auth_rejected_on_the_socket_opened_ahead_is_not_retried(sandbox: Any, settings: Any) -> None:
    holder = await one_holds(sandbox, settings)
    _key, second = await make_shopper("anon-second")
    settings.VIZOCHOK_API_KEY = "not-a-key"  # read by the waiting turn's config: 4003 in answer to its auth
    refused = await begin(second, "salt", "k2")
    await connections(sandbox, 2)  # the holder's and the one opened ahead
    sandbox.resume_turns()
    assert await refused.settled() is State.IDLE
    assert await holder.settled() in (State.PARKED, State.IDLE)
    assert sandbox.accepted == 2  # no second socket for the rejected key (reference §12: never after 4001-4004)


@pytest.mark.parametrize("switch", [True, False])
async def test_the_switch(sandbox: Any, settings: Any, switch: bool) -> None:
    settings.VIZOCHOK_OPEN_AHEAD = switch
    _holder, waiter, _second, tab = await one_holds_one_waits(sandbox, settings)
    await tab.until('data-position="1"')  # told its place: the socket is opened ahead from here
    if switch:
        await connections(sandbox, 2)
    sandbox.resume_turns()
    assert await waiter.settled() is State.PARKED
    assert sandbox.accepted == 2 and get_relay().ahead.enabled is switch
    assert sandbox.peak_connections == (2 if switch else 1)
