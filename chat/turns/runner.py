"""One conversation's upstream socket and turns, in this process.

A turn: take a deployment-wide slot (waiting in line with a visible status if none is free), reuse the
conversation's warm socket or open one that resumes the VIZOCHOK conversation, send, and relay every event:
stored once when complete, rendered once, delivered to every tab through the conversation's group. After
``response_complete`` the socket stays open for a short grace period, then closes and gives its slot back.

Where the runner is in that life is one value, :attr:`ConversationRunner.state`, moved only by :meth:`_to` along the
table of ``chat.turns.states`` (the diagram is there); the tabs are told "busy" and "ready" on its transitions,
through the feed. What the runner holds besides (the socket, the lease, the bubble being streamed, the reply not
stored yet) is data, not state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol, TypeGuard, TypeVar

from django.conf import settings
from django.utils import timezone

from chat.feed.feed import ConversationFeed, Piece, Place
from chat.feed.live import LiveText
from chat.feed.tabs import LocalTabs
from chat.models import Message
from chat.ops import metrics
from chat.ops.limits import limits
from chat.ops.process import owner_token
from chat.persistence import claims, db, store
from chat.presentation import formatting, rendering
from chat.turns import liveness
from chat.turns.ahead import AheadPolicy, OpenAhead
from chat.turns.record import STOPPED, TurnRecord
from chat.turns.slots import Lease, LineRefused, Slots, SlotTimeout
from chat.turns.states import RUNNING, TELLS, Event, IllegalTransition, State, allows, step
from chat.turns.upstream import EmbeddedSandbox, upstream_config
from chat.turns.window import SlidingWindow
from chat.vizochok import messages as wire
from chat.vizochok.backoff import Backoff
from chat.vizochok.client import Resume, UpstreamConfig, UpstreamSession, open_ahead, open_session
from chat.vizochok.errors import (
    AuthRejected,
    StartRefused,
    TurnTimeout,
    UpstreamClosed,
    UpstreamError,
)

logger = logging.getLogger("chat.turns.runner")

T = TypeVar("T")

Kind = Message.Kind

#: Frames that offer a choice and may be re-sent by the upstream after ``session_restored``.
_CHOICE_KINDS = {wire.QuickReplies: Kind.QUICK_REPLIES, wire.IngredientChecklist: Kind.CHECKLIST}
_RICH_KINDS = {**_CHOICE_KINDS, wire.ProductCards: Kind.PRODUCT_CARDS}


#: Background tasks kept referenced until they finish (the loop holds only weak references).
_background: set[asyncio.Task[None]] = set()


def _count_stray(frame: Any, where: str) -> None:
    """An upstream frame that belonged to no turn, or repeated one it had already sent: counted, never shown."""
    logger.info("upstream %s frame %s: not shown", getattr(frame, "type", "?"), where)
    metrics.STRAY_FRAMES.labels(where=where).inc()


#: Cart changes of one line, by the change's action, that a turn's note counts ("Added 10 items").
_COUNTED_CHANGES = ("item_selected", "item_removed", "quantity_updated")


@dataclass(slots=True)
class CartRun:
    """A turn's cart changes, told as one note: each change is stored (the transcript and undo read them), and its
    note takes the place of the turn's previous one (``replaces``), counting the distinct products per action.

    A whole-cart change (cleared, restored) is told alone and starts a new run.
    """

    seq: int | None = None
    skus: dict[str, set[str]] = field(default_factory=dict)
    #: The stepper fields of the products shown in the conversation (``store.product_bounds``), read once a turn.
    bounds: dict[str, dict[str, Any]] | None = None

    def with_bounds(self, items: Any) -> list[Any]:
        """The cart's lines, each with its product's stepper fields where the upstream left them out, so the cart
        panel steps a line as its card did (and as the relay will check it)."""
        lines = items if isinstance(items, list) else []
        known = self.bounds or {}
        return [{**known.get(str(line.get("sku")), {}), **line} if isinstance(line, dict) else line for line in lines]

    def add(self, change: dict[str, Any]) -> dict[str, Any]:
        action, sku = change.get("action"), change.get("sku")
        if action not in _COUNTED_CHANGES or not isinstance(sku, str) or not sku:
            self.seq, self.skus = None, {}
            return {}
        self.skus.setdefault(str(action), set()).add(sku)
        note: dict[str, Any] = {action: len(skus) for action, skus in self.skus.items()}
        if self.seq is not None:
            note["replaces"] = self.seq
        return note


@dataclass(frozen=True, slots=True)
class _Reply:
    """A finished bubble's text, to be stored (``store.save_assistant_text``) and then shown in place of it."""

    bubble: str
    text: str
    complete: bool
    stopped: bool

    def fields(self) -> dict[str, Any]:
        return {"text": self.text, "complete": self.complete, "stopped": self.stopped}


class TurnInterrupted(Exception):
    """The upstream dropped mid-reply and the session was resumed; the shopper is asked to send again."""


@dataclass(frozen=True, slots=True)
class ConversationRef:
    pk: int
    group: str
    #: The shopper as the upstream knows them (``auth.user_id``).
    user_id: str
    upstream_id: str
    #: The conversation's store (a token-bound session's own); "" = the deployment's VIZOCHOK_STORE_ID.
    store_id: str = ""


#: The longest ``retry_after`` a turn waits out to send its message again; a longer one ends the turn, saying so.
RESEND_WITHIN = 30
#: How many times one turn sends its message again after ``rate_limit_exceeded``.
MAX_RESENDS = 2


def _refused_for_now(event: Any) -> TypeGuard[wire.ErrorMessage]:
    """A ``rate_limit_exceeded`` that says to try again soon: the message was not taken, and may be sent again."""
    return (
        isinstance(event, wire.ErrorMessage)
        and event.code == "rate_limit_exceeded"
        and event.retry_after is not None
        and event.retry_after <= RESEND_WITHIN
    )


#: A conversation active this recently cannot have reached the upstream's 1-hour TTL (reference §13): a new id in
#: answer to an ``auth`` naming it means ``auth`` does not resume (``Resume.auth_restores``).
RESTORED_IF_ACTIVE_WITHIN = 600.0
#: Where ``auth`` does not resume, a conversation idle less than this goes on in messages; one idle longer may
#: have expired upstream (1 hour, less a margin for the clocks and the reply's own length), and the new one is used.
UPSTREAM_TTL_MARGIN = 3000.0


class RunnerHost(Protocol):
    """What a runner needs of the relay that holds it (``chat.turns.service.Relay``)."""

    layer: Any
    sandbox: EmbeddedSandbox
    slots: Slots
    ahead: AheadPolicy
    tabs: LocalTabs
    live: LiveText | None
    #: The upstream refused an action: taps go as the shopper's words (``wire.Action.text``).
    actions_refused: bool
    #: Where the upstream reads a conversation's id, as this process has learnt it.
    resume: Resume

    def adopt(self, runner: ConversationRunner) -> None: ...

    def forget(self, runner: ConversationRunner) -> None: ...


class ConversationRunner:
    def __init__(self, relay: RunnerHost, ref: ConversationRef) -> None:
        self.relay = relay
        self.pk = ref.pk
        self.user_id = ref.user_id
        self.store_id = ref.store_id
        self.upstream_id = ref.upstream_id
        self.feed = ConversationFeed(
            ref.group, relay.tabs, relay.layer, interval=settings.VIZOCHOK_COALESCE_SECONDS, live=relay.live
        )
        self.window = SlidingWindow(limit=10, seconds=60.0)
        self.session: UpstreamSession | None = None
        self.lease: Lease | None = None
        self.task: asyncio.Task[None] | None = None
        #: Where this runner is in its life; moved only by :meth:`_to` (``chat.turns.states``).
        self.state = State.IDLE
        #: The last transitions (event, state reached), for a log line when one goes wrong and for tests.
        self.trail: deque[tuple[Event, State]] = deque(maxlen=32)
        #: The bubble being streamed (its text lives in the feed).
        self._bubble: str | None = None
        #: A finished bubble not stored yet: it goes with the turn's next write, or before the turn waits on the
        #: upstream (see :meth:`_exchange`), so a turn's usual end is one trip to the database thread, not two.
        self._unsaved: _Reply | None = None
        #: The last payload of each rich kind in this turn: an identical repeat is the upstream's echo.
        self._shown: dict[str, dict[str, Any]] = {}
        #: This turn's cart changes so far, shown as one note (issue 22: a checklist made ten).
        self._cart_run = CartRun()
        self._record: TurnRecord | None = None
        self._sent: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        #: The socket being closed (between turns, or early for a waiting turn while this one stores its end).
        self._closing: asyncio.Task[None] | None = None
        self._turn_seq = 0
        self._bubbles = 0
        #: The running turn's place in the line and its estimate while it waits (None once served or idle).
        self._place: tuple[int, float] | None = None
        #: This turn's slot was offered to the line before the turn's end was stored (``_give_way_if_done``).
        self._gave_way = False
        #: The client address the running turn came from: the line serves addresses in turn (``chat.turns.slots``),
        #: and the place it reserved in line at the door (``engine.admit``).
        self._client = ""
        self._reservation = ""

    # --- public ---------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a turn is under way: a tab told "ready" may send the next one at once, even from this process."""
        return self.state in RUNNING

    def _to(self, event: Event) -> State:
        """Take ``event`` along the transition table, and tell the tabs what it means for them (busy, ready).

        An event the state does not allow is a bug: loud under ``VIZOCHOK_STRICT_STATES`` (tests), otherwise logged
        with the trail that led to it, and the runner goes on in the event's usual target state.
        """
        before = self.state
        try:
            self.state = step(before, event, strict=settings.VIZOCHOK_STRICT_STATES)
        except IllegalTransition:
            # Also in a timer's or a background task's callback, where nobody awaits the raise: the record says it.
            logger.error(
                "conversation %s: %s in %s; trail %s",
                self.pk,
                event.value,
                before.value,
                self._trail(),
                extra={"illegal_transition": True},
            )
            raise
        if not allows(before, event):
            logger.error(
                "conversation %s: %s in %s (went on to %s); trail %s",
                self.pk,
                event.value,
                before.value,
                self.state.value,
                self._trail(),
                extra={"illegal_transition": True},
            )
        self.trail.append((event, self.state))
        told = TELLS.get(event)
        if told is not None:
            self.feed.tell(told)
        return self.state

    def _trail(self) -> str:
        return " ".join(f"{event.value}>{state.value}" for event, state in self.trail)

    def start(
        self,
        frame: wire.UserMessage | wire.Action,
        seq: int,
        record: TurnRecord,
        sent: asyncio.Task[None] | None = None,
        *,
        shown: Piece = "",
        client: str = "",
        reservation: str = "",
    ) -> asyncio.Task[None]:
        """Run one turn in the background: it outlives the tab that asked for it.

        Every tab is told "busy", then ``shown`` (the shopper's message as the turn claimed it) and "thinking".
        ``sent`` stores the shopper's message while the turn already goes upstream (``engine.begin``); the turn's own
        writes wait for it, so the transcript keeps its order and a database outage in between loses nothing.
        """
        self._to(Event.START)
        self.publish(shown)
        self._status("thinking")
        self._sent = sent
        self._gave_way = False
        self._place = None
        self._client = client
        self._reservation = reservation
        self._turn_seq = seq
        self._bubbles = 0
        self._shown = {}
        self._cart_run = CartRun()
        self._unsaved = None
        self._record = record
        # The consumer may have taken this runner just before a closing socket made the relay forget it (a stopped
        # turn's socket closes in the background): registered again, a Stop from any tab finds it.
        self.relay.adopt(self)
        self.task = asyncio.get_running_loop().create_task(self._turn(frame))
        liveness.keep_alive(self.task, self.pk, seq)  # other processes see this turn alive while it beats
        return self.task

    def stop(self) -> bool:
        """Cut the running turn short (the protocol has no cancel): its socket is closed, what streamed is kept.

        True also while the turn's end is being stored: its "ready" is on the way and answers the stop.
        """
        if self.state in (State.FINISHING, State.FINISHING_PARKED):
            return True
        if not allows(self.state, Event.STOP) or self.state is State.CLOSED or self.task is None or self.task.done():
            return False
        self._to(Event.STOP)
        self.task.cancel()
        return True

    @property
    def place_in_line(self) -> tuple[int, float] | None:
        """The running turn's place in the line and estimate while it waits for a slot (for a tab that joins)."""
        return self._place if self.running else None

    def live_bubble(self) -> tuple[str, str] | None:
        """The bubble being streamed now and its text so far, for a tab that joins mid-reply."""
        return self.feed.live()

    def publish(self, piece: Piece) -> None:
        self.feed.put(piece)

    async def settled(self) -> State:
        """Wait for the turn and any socket close in flight, and return the state they left (tests, diagnostics)."""
        while pending := [task for task in (self.task, self._closing) if task is not None and not task.done()]:
            await asyncio.wait(pending)
        return self.state

    async def close(self) -> None:
        """The relay shuts down: a running turn ends as ``relay_shutdown`` (its end stored, "ready" told), then the
        socket closes and the runner takes no event any more."""
        self._cancel_idle()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await self._closing
        self._to(Event.SHUTDOWN)
        await self._close_session()

    # --- the turn --------------------------------------------------------------------------------------------

    async def _turn(self, frame: wire.UserMessage | wire.Action) -> None:
        upstream_code = relay_code = ""
        try:
            async with asyncio.timeout(limits().task):
                await self._ensure_session()
                self._to(Event.OPENED)
                upstream_code = await self._exchange(frame)
        except SlotTimeout:
            relay_code = "queue_timeout"
        except LineRefused:
            # Refused at the door (``engine.admit``) as a rule; this is the rare turn that raced another to the line.
            relay_code = "line_full"
        except AuthRejected as exc:
            logger.error("upstream refused our key (close code %s)", exc.code)
            relay_code = "auth_failed"
        except StartRefused as exc:
            # The upstream's own code (a daily conversation limit, a spent token budget): its wording says why.
            logger.warning("upstream refused to start a conversation: %s", exc.code)
            relay_code = exc.code
        except (TurnTimeout, TimeoutError):
            relay_code = "turn_timeout"
        except TurnInterrupted:
            relay_code = "upstream_lost"
        except UpstreamClosed as exc:
            logger.warning("upstream closed mid-turn: %s %s", exc.code, exc.reason)
            relay_code = "upstream_lost"
        except UpstreamError as exc:
            logger.warning("upstream unavailable: %s", exc)
            relay_code = "upstream_unavailable"
        except asyncio.CancelledError:
            if self.state is not State.STOPPING:
                relay_code = "relay_shutdown"
                await asyncio.shield(self._finish(relay_code, upstream_code))
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # the shopper's stop: this turn ends here, normally
            relay_code = STOPPED
        except Exception:
            logger.exception("turn failed in conversation %s", self.pk)
            relay_code = "relay_error"
        await asyncio.shield(self._finish(relay_code, upstream_code))

    async def _ensure_session(self) -> None:
        self._cancel_idle()
        if self._closing is not None:
            await self._closing  # a reclaim raced with this turn: let it finish, then open afresh
            self._closing = None
            self.relay.adopt(self)
        reservation, self._reservation = self._reservation, ""
        if self.session is not None and not self.session.closed and self.lease is not None:
            self.lease.mark_busy()
            if reservation:  # the warm socket serves it: the place reserved in line is not needed (not awaited)
                self._write_free(self.relay.slots.unreserve(reservation))
            return
        await self._close_session()
        config = await upstream_config(self.user_id, self.relay.sandbox, self.store_id)
        queued = time.monotonic()
        waited = False
        ahead = OpenAhead(self.relay.ahead, lambda: open_ahead(config))

        def place(place: int, seconds: float) -> None:
            nonlocal waited
            waited = True
            self._place = (place, seconds)
            self.publish(Place(place, seconds))
            if place == 1:
                ahead.start()

        try:
            self.lease = await self.relay.slots.acquire(
                limits().queue, client=self._client, on_place=place, on_lost=self._lease_lost, reservation=reservation
            )
        except BaseException:
            ahead.drop()
            raise
        finally:
            self._place = None
            if waited:
                # Out of the line, served ("thinking" again) or not (the turn's end follows): its place goes from
                # the tabs and from the mirror other processes' catch-ups read.
                self.publish(Place(0, 0.0))
        metrics.QUEUE_WAIT.observe(time.monotonic() - queued)
        try:
            await self._open(config=config, ahead=ahead)
        except BaseException:
            ahead.drop()  # nothing left to close once the session has taken its socket
            await self._release()
            raise

    async def _open(
        self, dropped: float | None = None, *, config: UpstreamConfig | None = None, ahead: OpenAhead | None = None
    ) -> None:
        """Open a socket that resumes the conversation; ``dropped``: seconds since the previous one dropped;
        ``ahead``: what this turn opened while it waited, authenticated on first if still usable."""
        if not self.upstream_id:
            # The tab's copy of the conversation may predate its first turn (loaded when the tab connected), and a
            # runner made after the warm socket's grace ran out knows only that copy: the stored id is the truth.
            # Without it, a shopper who paused longer than the grace started a new upstream conversation, which
            # knew nothing of the chat or the cart. Read once per socket opened without an id.
            self.upstream_id = await db.call(store.upstream_id_of, self.pk)
        if config is None:
            config = await upstream_config(self.user_id, self.relay.sandbox, self.store_id)
        opened = await ahead.take() if ahead is not None else None
        self.session = await open_session(
            config,
            conversation_id=self.upstream_id or None,
            resume=self.relay.resume,
            backoff=Backoff(max_attempts=settings.VIZOCHOK_OPEN_RETRIES),
            on_retry=metrics.counting_retries(lambda attempt, delay, exc: self._status("reconnecting")),
            dropped=dropped,
            ahead=opened,
        )
        self.session.on_stray = _count_stray
        await self._on_start(self.session)

    async def _on_start(self, session: UpstreamSession) -> None:
        if isinstance(session.start, wire.SessionRestored) and self.relay.resume.in_auth and self.upstream_id:
            self.relay.resume.auth_restores = True  # auth restored the conversation it named: it does resume
        started = session.conversation_id
        if started and started != self.upstream_id and not await self._goes_on_in_messages(session):
            self.upstream_id = session.conversation_id
            # Not on the send's path (a new conversation's first turn waits on enough already): stored in order
            # before the turn's next write, which waits for it.
            self._write_behind(store.set_upstream_id, self.pk, self.upstream_id)
        start = session.start
        if isinstance(start, wire.SessionRestored) and start.cart_known:
            stored_items, bounds = await self._write(store.cart_and_bounds, self.pk)
            # With their products' stepper fields, as every stored line has them: without, a cart the upstream
            # kept as it was looked changed, and storing it lost how its weighed lines step.
            items = CartRun(bounds=bounds).with_bounds([store.plain(item) for item in start.selected_items])
            if items != stored_items:
                payload = {"type": "cart_changed", "action": "restored", "items": items, "total": start.cart_total}
                await self._store_cart(store.plain(payload), items, start.cart_total)

    async def _goes_on_in_messages(self, session: UpstreamSession) -> bool:
        """Whether the conversation this one resumed goes on although the upstream started a new one: so where the
        upstream does not resume from ``auth`` (reference §4.1, §22 item 7), and the conversation was active within
        its 1-hour TTL (§13). The id then goes in each message (and action), where P1 and P2 put it.

        The first sign is the upstream starting a new conversation for one active minutes before: its TTL cannot
        have run out, so ``auth`` does not resume (``Resume.auth_restores``, learnt once per process).
        """
        resume = self.relay.resume
        if not self.upstream_id or not isinstance(session.start, wire.ConversationStarted):
            return False
        last = await db.call(store.last_reply_at, self.pk)
        idle = math.inf if last is None else (timezone.now() - last).total_seconds()
        if resume.auth_restores:
            if idle > RESTORED_IF_ACTIVE_WITHIN:
                return False  # its TTL may well have run out: the new conversation replaces it
            logger.warning(
                "the upstream started a new conversation at auth for one active %.0f s ago: the id goes in messages",
                idle,
            )
            resume.auth_restores = False
        return idle < UPSTREAM_TTL_MARGIN

    async def _exchange(self, frame: wire.UserMessage | wire.Action) -> str:
        """Send and relay until the turn ends; returns the upstream error code that ended it, if any."""
        assert self.session is not None
        # Sending again (agent_busy, a rate limit) stays within the turn's own time, counted from here: each resend's
        # exchange has a deadline of its own, so without this an upstream refusing for ever kept the turn to the
        # task's limit.
        loop = asyncio.get_running_loop()
        ends_by = loop.time() + limits().upstream
        if isinstance(frame, wire.Action) and self.relay.actions_refused and frame.text:
            frame = wire.UserMessage(text=frame.text)  # the upstream refused actions before: words at once
        if isinstance(frame, wire.UserMessage):
            frame = wire.UserMessage(text=frame.text, conversation_id=self.upstream_id or None)
        plain = frame  # an action as built, before the conversation's id is added to it (see below)
        if isinstance(frame, wire.Action) and not self.relay.resume.auth_restores and self.upstream_id:
            # The socket's own conversation may not be this one (``_goes_on_in_messages``): the action names it.
            frame = replace(frame, payload={**frame.payload, "conversation_id": self.upstream_id})
        self.window.record()
        try:
            events = self.session.turn(frame)
            first = await anext(events)
        except UpstreamClosed as exc:
            if isinstance(exc, AuthRejected):
                raise
            # The warm socket died while idle: open a fresh one (same slot) that resumes the conversation.
            await self._reopen()
            events = self.session.turn(frame)
            first = await anext(events)
        # Nothing of the reply is shown before the shopper's message is stored: a process that dies after a tab saw
        # the reply begin must not lose the question (the upstream's first frame rarely comes before that anyway).
        await self._stored_so_far()
        retries = Backoff().delays()
        resends = 0
        restoring = self.session.restored
        event: Any = first
        while True:
            restoring = restoring and not isinstance(event, (wire.Status, wire.TextDelta))
            busy = isinstance(event, wire.ErrorMessage) and event.code == "agent_busy"
            if busy and (delay := next(retries, 10.0)) < ends_by - loop.time():
                # The upstream still runs an earlier turn of this conversation (one that was stopped: the protocol
                # has no cancel). Our message was not taken: wait on the documented schedule within this turn's
                # deadline, then send it again. (Whatever the resumed socket re-sent first was shown as usual.)
                self._status("finishing_previous")
                await asyncio.sleep(delay)
                events, event = await self._send_again(frame)
                continue
            if (
                _refused_for_now(event)
                and resends < MAX_RESENDS
                and (wait := max(1, event.retry_after or 0)) < ends_by - loop.time()
            ):
                # Over the socket's window (reference §14), which this relay's own count may not see if keepalive
                # pings count too (§22 item 10): the message was not taken. Sent again when the upstream says (a
                # second at least, a few times at most: an upstream that refuses every resend ends the turn).
                resends += 1
                self._status("rate_limited")
                await asyncio.sleep(wait)
                events, event = await self._send_again(frame)
                continue
            refused = isinstance(event, wire.ErrorMessage) and event.code == "invalid_json"
            if refused and frame is not plain:
                # The id this relay added may be what a strict schema refused: the action as built, once, first.
                frame = plain
                events, event = await self._send_again(frame)
                continue
            if refused and isinstance(frame, wire.Action) and frame.text:
                # The upstream's action schema is not the reference's guess (§7): the tap goes again as the
                # shopper's words, and so does every later one in this process.
                if not self.relay.actions_refused:
                    logger.warning("the upstream refused an action (%s): actions go as messages", frame.action)
                self.relay.actions_refused = True
                frame = wire.UserMessage(text=frame.text, conversation_id=self.upstream_id or None)
                events, event = await self._send_again(frame)
                continue
            ended = await self._relay(event, restoring)
            if ended is not None:
                return ended
            if self._unsaved is not None and not self.session.waiting:
                # Nothing more has come yet: the reply is stored while the upstream's next frames come, not before
                # they are read (a response_complete read late keeps the turn's slot from the line).
                self._save_reply_behind()
            try:
                event = await anext(events)
            except StopAsyncIteration:
                return ""
            except UpstreamClosed as exc:
                if isinstance(exc, AuthRejected):
                    raise
                await self._recover(exc)
                raise TurnInterrupted from exc

    async def _send_again(self, frame: wire.UserMessage | wire.Action) -> tuple[AsyncIterator[Any], Any]:
        """Send ``frame`` again within the turn (the upstream did not take it), counted in the conversation's
        window: its events, and the first of them."""
        assert self.session is not None
        self.window.record()
        events = self.session.turn(frame)
        return events, await anext(events)

    async def _recover(self, exc: UpstreamClosed) -> None:
        """The upstream dropped mid-reply: keep what streamed, then resume the conversation with backoff.

        The interrupted reply cannot be continued (the upstream turn died with its socket), but the session is
        restored (cart included) so the shopper's next message goes through at once.
        """
        logger.warning("upstream closed mid-turn (%s %s); resuming %s", exc.code, exc.reason, self.upstream_id)
        self._end_bubble(complete=False)
        await self._save_reply()
        self._status("reconnecting")
        await self._reopen()

    async def _reopen(self) -> None:
        """A fresh socket after the last one dropped, on the reconnect schedule counted from the drop."""
        if self.lease is None:
            raise UpstreamError("the upstream slot was lost")  # another process holds it now: no socket without it
        dropped = 0.0
        if self.session is not None:
            ended = self.session.ended_at
            dropped = 0.0 if ended is None else asyncio.get_running_loop().time() - ended
            await self.session.close()
        self.session = None
        await self._open(dropped=dropped)

    async def _relay(self, event: Any, restoring: bool) -> str | None:
        """Handle one event; a non-None result ends the turn (the upstream error code, or "")."""
        assert self._record is not None  # start() sets it before the turn reads any event
        self._record.see(event)
        match event:
            case wire.TextDelta(delta=delta):
                if self._bubble is None:
                    await self._save_reply()  # the previous bubble's text first: at most one waits unsaved
                    self._bubbles += 1
                    self._bubble = f"live-{self._turn_seq}-{self._bubbles}"
                    self.feed.begin(self._bubble)
                self.feed.add(delta)
            case wire.TextEnd():
                self._end_bubble(complete=True)
            case wire.Status(code=code):
                self._status(code)
            case wire.ProductCards() | wire.QuickReplies() | wire.IngredientChecklist():
                kind = _RICH_KINDS[type(event)]
                payload = store.plain(event)
                if self._shown.get(kind) == payload:
                    _count_stray(event, "repeated within its turn")
                    return None
                self._shown[kind] = payload
                resent = restoring and kind in _CHOICE_KINDS.values()
                if resent and await db.call(store.same_as_latest, self.pk, kind, payload):
                    return None  # a pending choice re-sent on resume: it is on the page already
                await self._store_and_show(kind, payload)
            case wire.CartChanged():
                payload = store.plain(event)
                if self._shown.get(Kind.CART) == payload:
                    _count_stray(event, "repeated within its turn")
                    return None
                self._shown[Kind.CART] = payload
                note = self._cart_run.add(payload)
                if self._cart_run.bounds is None:  # once a turn: the cards it acts on are shown by now
                    self._cart_run.bounds = await db.call(store.product_bounds, self.pk)
                items = self._cart_run.with_bounds(payload.get("items", []))
                seq = await self._store_cart({**payload, "items": items, "note": note}, items, event.total)
                self._cart_run.seq = seq if note else None
            case wire.ErrorMessage(code=code):
                self._end_bubble(complete=False)
                await self._store_and_show(Kind.ERROR, store.plain(event), text=code)
                return code
            case wire.ResponseComplete(conversation_id=named) if named and named != self.upstream_id:
                # The turn went to another conversation than the one named (it ended upstream, where only messages
                # carry the id): that one goes on from here.
                logger.info("the upstream answered in conversation %s, not %s", named, self.upstream_id)
                self.upstream_id = named
                self._write_behind(store.set_upstream_id, self.pk, named)
                return ""
            case wire.ResponseComplete():
                return ""
            case wire.UnknownMessage(type=kind):
                logger.info("unknown upstream frame type %r stored as a notice", kind)
                await self._store_and_show(Kind.NOTICE, store.plain(event), text=kind)
            case wire.Event():
                logger.debug("upstream event %s", event.name)
            case _:
                logger.debug("ignored %s during a turn", type(event).__name__)
        return None

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A database write of this turn, after the shopper's message is stored (see :meth:`start`)."""
        self._give_way_if_done()
        await self._stored_so_far()
        return await db.call(fn, *args, **kwargs)

    async def _stored_so_far(self) -> None:
        """Wait for the writes in flight (the shopper's message, a write behind it)."""
        sent, self._sent = self._sent, None
        if sent is not None:
            with contextlib.suppress(Exception):  # a failure is logged where it happens; the reply still counts
                await asyncio.shield(sent)

    def _write_free(self, work: Coroutine[Any, Any, None]) -> None:
        """Bookkeeping nobody waits for (its failure only logged); held until done."""

        async def run() -> None:
            try:
                await work
            except Exception:
                logger.warning("line bookkeeping failed", exc_info=True)

        task = asyncio.get_running_loop().create_task(run())
        _background.add(task)
        task.add_done_callback(_background.discard)

    def _save_reply_behind(self) -> None:
        """:meth:`_save_reply` without waiting for it: shown once stored, before the turn's next write is."""
        reply, self._unsaved = self._unsaved, None
        if reply is not None:
            self._write_behind(
                store.save_assistant_text,
                self.pk,
                then=lambda message: self._show_reply(reply, message),
                **reply.fields(),
            )

    def _write_behind(
        self, fn: Callable[..., Any], *args: Any, then: Callable[[Any], None] | None = None, **kwargs: Any
    ) -> None:
        """A write the turn does not wait for: after the pending one (``_sent``), and before the turn's next write;
        ``then`` gets what it returned."""
        previous = self._sent

        async def write() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):  # logged where it failed; this write still goes
                    await asyncio.shield(previous)
            try:
                result = await db.call(fn, *args, **kwargs)
            except Exception:
                logger.exception("could not store %s for conversation %s", fn.__name__, self.pk)
                return
            if then is not None:
                then(result)

        self._sent = asyncio.get_running_loop().create_task(write())

    def _status(self, code: str | None) -> None:
        self.publish(functools.partial(rendering.status, code))

    def _end_bubble(self, *, complete: bool, stopped: bool = False) -> None:
        """Close the streaming bubble; its text is stored with the next write (:attr:`_unsaved`)."""
        bubble, self._bubble = self._bubble, None
        if bubble is None:
            return
        text = self.feed.end()
        if text:
            self._unsaved = _Reply(bubble, text, complete, stopped)

    async def _save_reply(self) -> None:
        reply, self._unsaved = self._unsaved, None
        if reply is not None:
            message = await self._write(store.save_assistant_text, self.pk, **reply.fields())
            self._show_reply(reply, message)

    def _show_reply(self, reply: _Reply, message: Message) -> None:
        self.publish(functools.partial(rendering.text_end, reply.bubble, message))

    async def _store_and_show(self, kind: str, payload: dict[str, Any], text: str = "") -> None:
        await self._save_reply()
        message = await self._write(store.save_frame, self.pk, kind, payload, text)
        self.publish(functools.partial(rendering.stored, message))

    async def _store_cart(self, payload: dict[str, Any], items: list[dict[str, Any]], total: Decimal) -> int:
        await self._save_reply()
        count = formatting.cart_lines(items)
        message = await self._write(store.save_cart, self.pk, payload, items, total, count)
        self.publish(functools.partial(rendering.stored, message))
        return message.seq

    async def _finish(self, relay_code: str, upstream_code: str) -> None:
        """Whatever happened: keep the cut reply, say what went wrong, free the conversation and the tabs."""
        self._to(Event.END)
        stopped = relay_code == STOPPED
        closing = self._closing is not None  # given up early for a waiting turn (``_close_early``)
        if relay_code in ("", "upstream_lost") and not closing and self.session is not None and not self.session.closed:
            # Parked before the turn's end is stored, not after: a turn waiting anywhere gets the slot while this
            # one writes (the upstream is done with it), instead of after a database round trip.
            self._park()
        try:
            # A stopped reply is kept as it streamed; a "stopped" marker is stored only when nothing had streamed.
            self._end_bubble(complete=False, stopped=stopped)
            reply, self._unsaved = self._unsaved, None
            notice = None
            if relay_code and not (stopped and reply is not None):
                notice = {"type": "error", "code": relay_code, "source": "relay"}
            code = relay_code or upstream_code
            # The reply, the notice, the turn's end and its record (for the admin insights): one transaction.
            record = None if self._record is None else self._record.fields(self._turn_seq, code)
            saved, noted = await self._write(
                claims.finish_turn,
                self.pk,
                code,
                owner_token(self._turn_seq),
                record=record,
                reply=None if reply is None else reply.fields(),
                notice=notice,
            )
            if reply is not None and saved is not None:
                self._show_reply(reply, saved)
            if noted is not None:
                self.publish(functools.partial(rendering.stored, noted))
            metrics.turn_finished(code)
        except Exception:
            logger.exception("could not close the turn of conversation %s cleanly", self.pk)
        # After an interrupted turn the resumed session is fresh and worth keeping; after a timeout or a stop the
        # upstream may still be working on the old turn, so that socket is not reused. Either way this is settled
        # before "ready" goes out: the next turn may start the moment a tab has it.
        parked = self.state is State.FINISHING_PARKED
        if not parked:
            # After the socket's early close (``_close_early``) if one runs: the slot goes back once, once it is shut.
            early = self._closing
            self._closing = asyncio.get_running_loop().create_task(self._close_session(after=early))
        self._to(Event.DONE)  # "ready" to every tab
        await self.feed.drain()

    # --- the socket between turns ----------------------------------------------------------------------------

    def _park(self) -> None:
        """Keep the socket warm for the next turn, but give it up at once if another turn waits for a slot."""
        if self.lease is None:  # lost while the turn ran
            self._closing = asyncio.get_running_loop().create_task(self._close_session())
            return
        loop = asyncio.get_running_loop()
        self._to(Event.PARK)
        self.lease.mark_idle(self._reclaim)
        self._idle_timer = loop.call_later(settings.VIZOCHOK_IDLE_GRACE, self._reclaim)

    def _give_way_if_done(self) -> None:
        """The upstream has finished this turn (its ``response_complete`` is queued behind what is being stored): the
        slot may go to a waiting turn now, not after the writes (a reply's cards, cart and end are several)."""
        session, lease = self.session, self.lease
        if self._gave_way or session is None or lease is None or not session.completed():
            return
        self._gave_way = True
        lease.mark_idle(self._close_early)

    def _close_early(self) -> None:
        """A turn waits for the slot of a turn that is only storing what came: close that socket and let it go. The
        turn reads what is left of its frames from memory; ``_finish`` sees the socket closed and does not park it."""
        session = self.session
        if session is not None:
            self._closing = asyncio.get_running_loop().create_task(self._close_early_then_release(session))

    async def _close_early_then_release(self, session: UpstreamSession) -> None:
        with contextlib.suppress(Exception):
            await session.close()
        await self._release()

    def _lease_lost(self) -> None:
        """The slot's lease expired (this process stalled past its TTL) and may be somebody else's now: the socket
        closes at once, so the key's limit holds; a turn using it ends as the upstream being lost."""
        self.lease = None
        session, self.session = self.session, None
        if session is not None:
            asyncio.get_running_loop().create_task(session.close())
        self._reclaim()

    def _reclaim(self) -> None:
        """Give the warm socket up (its idle grace ran out, another turn waits for its slot, its lease was lost).

        A stale call (the socket was taken by a new turn meanwhile) does nothing: only a parked socket is reclaimed.
        """
        self._cancel_idle()
        if allows(self.state, Event.RECLAIM) and self.state is not State.CLOSED and self._closing is None:
            self._to(Event.RECLAIM)
            self._closing = asyncio.get_running_loop().create_task(self._close_session())

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    async def _close_session(self, after: asyncio.Task[None] | None = None) -> None:
        if after is not None:
            with contextlib.suppress(BaseException):
                await after
        session, self.session = self.session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()
        await self._release()
        closing = self._closing
        if closing is None or closing is asyncio.current_task() or closing.done():
            self._closing = None  # not a close chained after this one (``_finish``'s, after a reclaim): that one waits
        if self.state is State.CLOSING:
            self._to(Event.CLOSED)
        if self.state in (State.IDLE, State.CLOSED):
            self.relay.forget(self)

    async def _release(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            await lease.release()
