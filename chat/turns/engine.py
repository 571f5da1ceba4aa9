"""The turn engine's front door: the consumer checks a browser frame, then starts, stops or reads turns here.

A turn's whole life is owned by ``chat.turns``: the claim in the database (``claims``, idempotent by the send's
key), the per-shopper limits, the run upstream and its heartbeat (``runner``, ``liveness``), its end and record,
and reaping a dead owner's turn. Nothing outside this package writes turn state, and the tabs hear of it (busy,
ready) only through a conversation's feed: a tab's own answers (its catch-up, a refusal) ask here for theirs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from dataclasses import dataclass, replace
from typing import Any

from chat.feed.feed import ConversationFeed, Piece, turn_state
from chat.models import Conversation, Message
from chat.ops import ratelimit
from chat.persistence import claims, db, store
from chat.presentation import rendering
from chat.turns import liveness
from chat.turns.record import TurnRecord
from chat.turns.runner import ConversationRef as ConversationRef  # the consumer names its conversation with it
from chat.turns.runner import ConversationRunner
from chat.turns.service import close_relay, get_relay
from chat.turns.slots import LineRefused
from chat.vizochok import messages as wire

logger = logging.getLogger("chat.turns.engine")


class Refused(Exception):
    """A browser frame that is not sent upstream; ``code`` is shown to the tab that sent it."""

    def __init__(self, code: str, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


@dataclass(frozen=True, slots=True)
class Send:
    """What a shopper sent, checked: the upstream frame, and how the shopper's side of it is stored and shown."""

    frame: wire.UserMessage | wire.Action
    kind: str
    text: str
    key: str
    #: The choice (quick replies, checklist) this send answers, retired with the turn's start.
    source_seq: int | None = None


async def admit(client: str) -> str:
    """Let a turn from the client address ``client`` in, or raise :class:`Refused`: the address's turn rate, its
    turns already in line, and whether the line is short enough to serve it in time. Returns the place it reserved
    in line (give it to :func:`begin`).

    Called before anything of the turn is stored (a new conversation's row included): a refused flood stores nothing.
    """
    retry_after = await ratelimit.address_bucket().take(f"address:{client}")
    if retry_after:
        raise Refused("rate_limited", retry_after=math.ceil(retry_after))
    try:
        return await get_relay().slots.check(client, reserve=True)
    except LineRefused as refused:
        code = "line_full" if refused.reason == "line" else "too_many_queued"
        raise Refused(code, retry_after=max(1, math.ceil(refused.retry_after))) from None


async def withdraw(reservation: str) -> None:
    """Give back the place :func:`admit` reserved, for a turn that will not :func:`begin` after all."""
    await get_relay().slots.unreserve(reservation)


async def begin(
    ref: ConversationRef, send: Send, *, shopper: str, client: str = "", admitted: str | None = None
) -> bool:
    """Start a turn; False for a repeated key (a queue replayed after a reconnect). Raises :class:`Refused`.

    ``client``: the address the line serves in turn with others; ``admitted``: what :func:`admit` returned when it
    already let this turn in.
    """
    reservation = await admit(client) if admitted is None else admitted
    try:
        started = await _begin(ref, send, shopper, client, reservation)
    except BaseException:
        await withdraw(reservation)
        raise
    if not started:
        await withdraw(reservation)
    return started


async def _begin(ref: ConversationRef, send: Send, shopper: str, client: str, reservation: str) -> bool:
    runner = get_relay().runner(ref)
    if runner.running:
        raise Refused("agent_busy")
    retry_after = await ratelimit.turn_bucket().take(shopper) or runner.window.retry_after()
    if retry_after:
        raise Refused("rate_limited", retry_after=retry_after)
    payload = store.plain(send.frame) if isinstance(send.frame, wire.Action) else {}
    started = await db.call(
        claims.begin_turn,
        ref.pk,
        kind=send.kind,
        text=send.text,
        payload=payload,
        client_key=send.key,
        source_seq=send.source_seq,
        retries=db.SEND_RETRIES,
    )
    if started.duplicate:
        logger.info("duplicate send %r ignored in conversation %s", send.key, ref.pk)  # the browser's key, quoted
        return False
    if started.busy or started.message is None:
        raise Refused("agent_busy")
    message = started.message
    # The runner taken above may have been forgotten while the claim was awaited (its last socket closed), and a tab
    # may have made the conversation a new one since: the turn runs on the one registered now, which a Stop and a
    # catch-up find (and which may hold a warm socket). Only the claim's holder starts a turn, so none runs on it.
    runner = get_relay().runner(ref)
    saving = None
    if started.unsaved:
        # The send upstream does not wait for this; the turn's own writes do (ConversationRunner.start).
        saving = asyncio.get_running_loop().create_task(_store_sent(runner, message, send.source_seq))
    frame = send.frame
    if isinstance(frame, wire.Action) and not frame.text:
        frame = replace(frame, text=send.text)  # its words, for an upstream that refuses actions
    record = TurnRecord.begin(frame)
    shown = functools.partial(_shown, started.changed, message)
    runner.start(frame, message.seq, record, saving, shown=shown, client=client, reservation=reservation)
    return True


async def _store_sent(runner: ConversationRunner, message: Message, source_seq: int | None) -> None:
    try:
        # The relay's own write now (nobody waits on it): retried through a database outage like the reply's.
        changed = await db.call(claims.store_sent, message, source_seq)
    except Exception:
        logger.exception("could not store the shopper's message %s of conversation %s", message.seq, runner.pk)
        return
    if changed:
        runner.publish(functools.partial(rendering.replaced, changed))


async def close() -> None:
    """The process is going (SIGTERM): every running turn is cut and recorded, every upstream socket closed."""
    await close_relay()


def join(group: str, channel: str, deliver: Any, language: str) -> None:
    """A tab of this process joins its conversation's feed: this process's runners hand it fragments directly,
    in the tab's language (other processes reach it through the channel layer's group)."""
    get_relay().tabs.attach(group, channel, deliver, language)


def leave(group: str, channel: str) -> None:
    get_relay().tabs.detach(group, channel)


def stop(pk: int | None) -> bool:
    """Stop the turn running in this process for ``pk``; False when there is none here."""
    runner = get_relay().existing(pk) if pk is not None else None
    return runner is not None and runner.stop()


async def stop_anywhere(pk: int | None, group: str) -> bool:
    """Stop ``pk``'s running turn, here or in the process that runs it (every process hears ``chat.stop`` through
    the group, and the one running the turn stops it): its end ("ready") answers. False when no turn runs anywhere:
    the tab that asked is told its state at once (:func:`state_fragment`; a late tap, a second tab)."""
    if pk is None:
        return False
    if stop(pk):
        return True
    fields = ("status", "busy_since", "heartbeat_at")
    conversation = await db.call(Conversation.objects.only(*fields).get, pk=pk, retries=db.SEND_RETRIES)
    if not is_busy(conversation):
        return False
    layer = get_relay().layer
    if layer is not None:  # always configured (settings.CHANNEL_LAYERS); without one no other process exists
        await layer.group_send(group, {"type": "chat.stop"})
    return True


def _shown(changed: list[Message], message: Message) -> str:
    return rendering.replaced(changed) + rendering.appended([message])


async def live_text(pk: int, group: str) -> tuple[str, str] | None:
    """The reply being streamed in ``pk`` (bubble id and text so far), in this process or another."""
    return await get_relay().live_text(pk, group)


async def publish(pk: int, group: str, piece: Piece) -> None:
    """A fragment for every tab of a conversation that no turn sends (a reply's rating): through the turn's feed
    when this process runs one (in order with the turn's own pieces), else through a feed of its own."""
    relay = get_relay()
    runner = relay.existing(pk)
    if runner is not None and runner.running:
        runner.publish(piece)
        return
    feed = _feed_of_its_own(group)
    feed.put(piece)
    await feed.drain()


def _feed_of_its_own(group: str) -> ConversationFeed:
    """A feed for a conversation no turn of this process publishes in (nothing to keep in order with)."""
    relay = get_relay()
    return ConversationFeed(group, relay.tabs, relay.layer, interval=0.0)


async def watch_orphan(pk: int, group: str) -> None:
    """While another process's turn holds ``pk``: if that process dies, close its turn and make every tab ready
    (with the stored notice saying why the reply stopped). Returns when the turn is over either way."""

    async def publish(notice: Message | None) -> None:
        feed = _feed_of_its_own(group)
        if notice is not None:
            feed.put(functools.partial(rendering.stored, notice))
        feed.tell("ready")
        await feed.drain()

    await liveness.watch_orphan(pk, publish)


def state_fragment(busy: bool) -> str:
    """The turn state for one tab's own answer (a catch-up, a stop with no turn to stop), rendered by the feed."""
    return turn_state(busy)


def refusal(code: str, **details: Any) -> str:
    """What a tab is told when what it sent is refused: why, and its turn state after it (busy only when a turn of
    the conversation is the reason; nothing started, so otherwise it may send again)."""
    return rendering.transient_error(code, **details) + turn_state(code == "agent_busy")


async def place_in_line(pk: int, group: str) -> tuple[int, float] | None:
    """The place and estimate of ``pk``'s turn while it waits in line, in this process or another (else None)."""
    return await get_relay().place_in_line(pk, group)


def runs_here(pk: int) -> bool:
    runner = get_relay().existing(pk)
    return runner is not None and runner.running


is_busy = claims.is_busy


@dataclass(frozen=True, slots=True)
class TurnNow:
    """The turn as a (re)connecting tab lacks it, for its catch-up frame."""

    #: The reply being streamed beyond what the tab has, the turn's place in line while it waits, the turn state.
    html: str
    #: A turn runs in another process: the tab watches for that process's death (:func:`watch_orphan`).
    elsewhere: bool


async def turn_now(conversation: Conversation, bubble: str, offset: int) -> TurnNow:
    """Where ``conversation``'s turn is for a tab that has ``offset`` characters of the streaming ``bubble``."""
    pk, busy, parts = conversation.pk, is_busy(conversation), []
    live = await live_text(pk, conversation.group_name) if busy else None
    if live is not None:
        live_bubble, text = live
        if live_bubble != bubble:
            # The tab lacks it: shown with the turn's start, not the moment this tab caught up.
            parts.append(rendering.live_bubble(live_bubble, text, first=True, started=conversation.busy_since))
        elif len(text) > offset:
            # The whole bubble again (formatted as far as it is finished): the tab keeps it only if it is longer.
            parts.append(rendering.live_bubble(live_bubble, text, first=False))
    place = await place_in_line(pk, conversation.group_name) if busy else None
    if place is not None:
        parts.append(rendering.queue_place(*place))  # a tab that joins while the turn waits sees its place
    parts.append(turn_state(busy))
    return TurnNow("".join(parts), elsewhere=busy and not runs_here(pk))
