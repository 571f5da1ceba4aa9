"""A conversation runner's lifecycle without browser sockets: turns started through the engine's front door, the
sandbox on loopback as the upstream, the real database, and a tab that is only the feed's delivery callback.

Each test reads the transitions the runner took (``runner.trail``) and what its tabs were told: "busy" once when the
turn starts and "ready" once when it is over, whatever ended it (``chat.turns.states``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message
from chat.turns import engine
from chat.turns.runner import ConversationRef, ConversationRunner
from chat.turns.service import get_relay
from chat.turns.states import Event, IllegalTransition, State
from chat.vizochok import messages as wire
from chat.web import identity
from tests.chat.conftest import TIMEOUT, make_shopper, reload, stored

pytestmark = pytest.mark.django_db(transaction=True)

S, E = State, Event


class Tab:
    """What one tab of the conversation is handed by the feed, as it comes (``LocalTabs``)."""

    def __init__(self, conversation: Conversation) -> None:
        self.frames: list[str] = []
        self._changed = asyncio.Event()
        get_relay().tabs.attach(conversation.group_name, "tab", self._deliver, "en")

    async def _deliver(self, html: str) -> None:
        self.frames.append(html)
        self._changed.set()

    async def until(self, needle: str) -> None:
        async with asyncio.timeout(TIMEOUT):
            while needle not in "".join(self.frames):
                self._changed.clear()
                await self._changed.wait()

    def states(self) -> list[str]:
        """Every turn state the tab was told, in order."""
        return re.findall(r'data-item="turn-state" data-state="(\w+)"', "".join(self.frames))


def ref_of(c: Conversation) -> ConversationRef:
    """As the consumer makes it (``ChatConsumer._ref``)."""
    return ConversationRef(c.pk, c.group_name, identity.upstream_user_id(c.user_id), c.upstream_id, c.store_id)


async def begin(conversation: Conversation, text: str, key: str) -> ConversationRunner:
    send = engine.Send(wire.UserMessage(text=text), Message.Kind.TEXT, text, key)
    assert await engine.begin(ref_of(conversation), send, shopper=conversation.user_id, client="127.0.0.1")
    runner = get_relay().existing(conversation.pk)
    assert runner is not None and runner.running
    return runner


def trail(runner: ConversationRunner) -> list[tuple[Event, State]]:
    return list(runner.trail)


async def mid_reply(sandbox: Any) -> tuple[Conversation, Tab, ConversationRunner]:
    """A turn held by the sandbox after its first streamed piece (``sandbox.resume_turns`` lets it on)."""
    _key, conversation = await make_shopper()
    tab = Tab(conversation)
    sandbox.pause_turns()
    runner = await begin(conversation, "borscht", "k1")
    await tab.until("-text")
    return conversation, tab, runner


async def test_a_reply_runs_start_to_parked_and_tells_busy_then_ready_once(sandbox: Any) -> None:
    _key, conversation = await make_shopper()
    tab = Tab(conversation)
    runner = await begin(conversation, "milk", "k1")
    assert runner.state is S.STARTING
    assert tab.frames == []  # told on the feed's next turn of the loop, in one frame: busy, the question, thinking
    assert await runner.settled() is S.PARKED
    assert trail(runner) == [
        (E.START, S.STARTING),
        (E.OPENED, S.STREAMING),
        (E.END, S.FINISHING),
        (E.PARK, S.FINISHING_PARKED),  # the slot is offered to the line while the end is stored
        (E.DONE, S.PARKED),
    ]
    assert not runner.running and runner.session is not None and not runner.session.closed
    assert tab.states() == ["busy", "ready"]
    first, html = tab.frames[0], "".join(tab.frames)
    assert first.index('data-state="busy"') < first.index("milk") < first.index('id="chat-status"')
    assert html.rindex('data-state="ready"') > html.rindex("product-card")  # ready is the last word of the turn
    assert (await reload(conversation)).status == Conversation.Status.IDLE


async def test_the_next_turn_reuses_the_parked_socket(sandbox: Any) -> None:
    _key, conversation = await make_shopper()
    tab = Tab(conversation)
    runner = await begin(conversation, "milk", "k1")
    await runner.settled()
    socket = runner.session
    assert await begin(conversation, "bread", "k2") is runner
    assert await runner.settled() is S.PARKED
    assert runner.session is socket
    assert [event for event, _state in trail(runner)].count(E.START) == 2
    assert trail(runner)[5] == (E.START, S.STARTING)  # from parked
    assert tab.states() == ["busy", "ready", "busy", "ready"]


async def test_a_stop_mid_reply_keeps_what_streamed_closes_the_socket_and_forgets_the_runner(sandbox: Any) -> None:
    conversation, tab, runner = await mid_reply(sandbox)
    assert runner.state is S.STREAMING
    assert engine.stop(conversation.pk)
    assert trail(runner)[-1] == (E.STOP, S.STOPPING)
    assert not engine.stop(conversation.pk)  # a second tab's stop: already stopping
    try:
        assert await runner.settled() is S.IDLE
    finally:
        sandbox.resume_turns()
    assert trail(runner) == [
        (E.START, S.STARTING),
        (E.OPENED, S.STREAMING),
        (E.STOP, S.STOPPING),
        (E.END, S.FINISHING),
        (E.DONE, S.CLOSING),  # a stopped turn's socket is not reused: the upstream may still be working on it
        (E.CLOSED, S.IDLE),
    ]
    assert get_relay().existing(conversation.pk) is None
    assert tab.states() == ["busy", "ready"]
    replies = [m for m in await stored(conversation) if m.role == "assistant" and m.kind == "text"]
    assert [(m.complete, m.data.get("stopped")) for m in replies] == [(False, True)]


async def test_a_turn_waiting_for_the_only_slot_takes_it_from_a_parked_socket(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_MAX_CONNECTIONS = 1  # before this loop's relay is made (on the first turn)
    _key, first = await make_shopper("anon-first")
    _key, second = await make_shopper("anon-second")
    parked = await begin(first, "milk", "k1")
    assert await parked.settled() is S.PARKED
    waiting = await begin(second, "bread", "k2")
    assert await waiting.settled() is S.PARKED
    assert await parked.settled() is S.IDLE
    assert trail(parked)[-2:] == [(E.RECLAIM, S.CLOSING), (E.CLOSED, S.IDLE)]
    assert get_relay().existing(first.pk) is None
    assert get_relay().existing(second.pk) is waiting


async def test_a_parked_socket_is_closed_when_its_grace_runs_out(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_IDLE_GRACE = 0.05
    _key, conversation = await make_shopper()
    runner = await begin(conversation, "milk", "k1")
    assert await runner.settled() is S.PARKED
    async with asyncio.timeout(TIMEOUT):
        await sandbox.wait_for_connections(0)
    assert await runner.settled() is S.IDLE
    assert trail(runner)[-2:] == [(E.RECLAIM, S.CLOSING), (E.CLOSED, S.IDLE)]
    assert get_relay().existing(conversation.pk) is None


async def test_a_dropped_upstream_ends_the_turn_and_keeps_the_resumed_socket_warm(sandbox: Any) -> None:
    _conversation, tab, runner = await mid_reply(sandbox)
    await sandbox.drop_all(code=1011)
    try:
        assert await runner.settled() is S.PARKED
    finally:
        sandbox.resume_turns()
    assert [event for event, _state in trail(runner)] == [E.START, E.OPENED, E.END, E.PARK, E.DONE]
    assert tab.states() == ["busy", "ready"]
    assert 'data-code="upstream_lost"' in "".join(tab.frames)


async def test_the_relay_shutting_down_mid_reply_ends_the_turn_and_tells_ready(sandbox: Any) -> None:
    conversation, tab, runner = await mid_reply(sandbox)
    try:
        await get_relay().close()
    finally:
        sandbox.resume_turns()
    assert runner.state is S.CLOSED
    assert [event for event, _state in trail(runner)][:4] == [E.START, E.OPENED, E.END, E.DONE]
    assert trail(runner)[-1] == (E.SHUTDOWN, S.CLOSED)
    assert tab.states() == ["busy", "ready"]
    assert 'data-code="relay_shutdown"' in "".join(tab.frames)
    assert (await reload(conversation)).status == Conversation.Status.IDLE


async def test_an_illegal_transition_is_loud_in_tests_and_logged_and_recovered_from_otherwise(
    sandbox: Any, settings: Any, caplog: pytest.LogCaptureFixture, illegal_transitions: list[str]
) -> None:
    _key, conversation = await make_shopper()
    runner = await begin(conversation, "milk", "k1")
    await runner.settled()
    with pytest.raises(IllegalTransition):
        runner._to(E.OPENED)  # no turn is starting: whatever sent this is a bug
    assert runner.state is S.PARKED
    settings.VIZOCHOK_STRICT_STATES = False
    logger = logging.getLogger("chat.turns.runner")
    logger.addHandler(caplog.handler)
    try:
        assert runner._to(E.OPENED) is S.STREAMING  # production: the state follows what the runner does
    finally:
        logger.removeHandler(caplog.handler)
    [logged] = {(r.levelno, r.getMessage()) for r in caplog.records if "went on to" in r.getMessage()}
    assert logged[0] == logging.ERROR
    assert "opened in parked (went on to streaming)" in logged[1]
    assert "done>parked" in logged[1]  # the trail that led there
    assert len(illegal_transitions) == 2  # each would fail any other test (tests/chat/conftest.py)
    illegal_transitions.clear()


async def claimed_elsewhere(conversation: Conversation) -> None:
    """The conversation claimed by a turn of another process (its owner beats: the claim is fresh)."""
    from chat.persistence import claims

    started = await database_sync_to_async(claims.begin_turn)(
        conversation.pk, kind=Message.Kind.TEXT, text="milk", payload={}, client_key="k1"
    )
    assert started.message is not None


async def test_a_stop_reaches_the_process_running_the_turn_or_says_none_runs(sandbox: Any) -> None:
    _key, conversation = await make_shopper()
    group = conversation.group_name
    assert not await engine.stop_anywhere(conversation.pk, group)  # nothing runs: the tab is told ready at once
    await claimed_elsewhere(conversation)
    layer: Any = get_relay().layer
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    assert await engine.stop_anywhere(conversation.pk, group)  # its end will answer, from that process
    async with asyncio.timeout(TIMEOUT):
        assert await layer.receive(channel) == {"type": "chat.stop"}


async def test_a_catch_up_sees_a_turn_of_another_process_busy_and_to_be_watched(sandbox: Any) -> None:
    _key, conversation = await make_shopper()
    idle = await engine.turn_now(await reload(conversation), "", 0)
    assert (re.findall(r'data-state="(\w+)"', idle.html), idle.elsewhere) == (["ready"], False)
    await claimed_elsewhere(conversation)
    busy = await engine.turn_now(await reload(conversation), "", 0)
    assert (re.findall(r'data-state="(\w+)"', busy.html), busy.elsewhere) == (["busy"], True)


async def test_a_catch_up_mid_reply_here_gets_the_bubble_so_far_and_busy(sandbox: Any) -> None:
    conversation, _tab, runner = await mid_reply(sandbox)
    try:
        live = runner.live_bubble()
        assert live is not None
        joining = await engine.turn_now(await reload(conversation), "", 0)
        again = await engine.turn_now(await reload(conversation), live[0], len(live[1]))
    finally:
        sandbox.resume_turns()
    await runner.settled()
    assert f'id="{live[0]}-tail"' in joining.html and not joining.elsewhere
    assert f'id="{live[0]}-tail"' not in again.html  # the tab has all of it
    assert re.findall(r'data-state="(\w+)"', joining.html + again.html) == ["busy", "busy"]


async def test_a_redis_fault_reading_the_place_in_line_leaves_the_catch_up_without_it(sandbox: Any) -> None:
    """The place is a courtesy in a catch-up: a Redis that fails (here: nobody listens on its port) must not fail
    the catch-up that carries it (the tab was told "ready" while a turn ran)."""
    from chat.feed.live import LiveText

    relay = get_relay()
    relay.live = LiveText("redis://127.0.0.1:1/0")
    try:
        assert await relay.place_in_line(123456, "conversation-elsewhere") is None
    finally:
        relay.live = None


async def test_a_turn_whose_runner_was_forgotten_while_its_claim_waited_runs_on_the_one_a_stop_finds(
    sandbox: Any,
) -> None:
    """engine.begin takes the conversation's runner, then awaits the claim on the database thread. If that runner's
    last socket closed meanwhile (the relay forgot it) and a tab asked for the conversation's runner (a new one was
    made), the turn ran on the forgotten one: a Stop from any tab found the idle newcomer and said no turn runs."""
    _key, conversation = await make_shopper()
    tab = Tab(conversation)
    relay = get_relay()
    inside, leave = threading.Event(), threading.Event()

    def hold_the_database_thread() -> None:
        inside.set()
        leave.wait(TIMEOUT)

    held = asyncio.ensure_future(database_sync_to_async(hold_the_database_thread)())
    await asyncio.to_thread(inside.wait, TIMEOUT)
    sandbox.pause_turns()
    try:
        send = engine.Send(wire.UserMessage(text="borscht"), Message.Kind.TEXT, "borscht", "k1")
        beginning = asyncio.ensure_future(
            engine.begin(ref_of(conversation), send, shopper=conversation.user_id, client="127.0.0.1")
        )
        # engine.begin takes its runner, then waits for the held thread; it has no event to say it has taken it, so
        # this yields to it until it has (a few passes of the loop, no time).
        while relay.existing(conversation.pk) is None:  # noqa: ASYNC110
            await asyncio.sleep(0)
        taken = relay.existing(conversation.pk)
        assert taken is not None
        relay.forget(taken)  # its socket's close, finishing in the background
        newcomer = relay.runner(ref_of(conversation))  # another tab, in the same moment
        leave.set()
        await held
        assert await beginning
        await tab.until("-text")
        assert relay.existing(conversation.pk) is newcomer and newcomer.running
        assert engine.stop(conversation.pk)
    finally:
        leave.set()
        sandbox.resume_turns()
    assert await newcomer.settled() is S.IDLE
    assert tab.states() == ["busy", "ready"]
