"""One conversation's upstream socket and turns, in this process.

A turn: take a deployment-wide slot (waiting in line with a visible status if none is free), reuse the
conversation's warm socket or open one that resumes the VIZOCHOK conversation, send, and relay every event:
stored once when complete, rendered once, delivered to every tab through the conversation's group. After
``response_complete`` the socket stays open for a short grace period, then closes and gives its slot back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import translation

from chat import db, store
from chat.feed.outbox import Outbox
from chat.feed.stream import BubbleStream
from chat.models import Message
from chat.ops import metrics
from chat.presentation import formatting, rendering
from chat.turns import liveness
from chat.turns.slots import Lease, SlotTimeout
from chat.turns.upstream import upstream_config
from chat.turns.window import SlidingWindow
from chat.vizochok import messages as wire
from chat.vizochok.backoff import Backoff
from chat.vizochok.client import UpstreamSession, open_session
from chat.vizochok.errors import (
    AuthRejected,
    StartRefused,
    TurnTimeout,
    UpstreamClosed,
    UpstreamError,
)

if TYPE_CHECKING:
    from chat.turns.service import Relay

logger = logging.getLogger("chat.turns.runner")

Kind = Message.Kind

#: Frames that offer a choice and may be re-sent by the upstream after ``session_restored``.
_CHOICE_KINDS = {wire.QuickReplies: Kind.QUICK_REPLIES, wire.IngredientChecklist: Kind.CHECKLIST}
_RICH_KINDS = {**_CHOICE_KINDS, wire.ProductCards: Kind.PRODUCT_CARDS}


#: issue 16: the relay code of a turn the shopper stopped, and the marker ``_relay`` returns for an ``agent_busy`` that
#: answers the turn after a stop (the upstream may still be finishing the stopped turn: wait and send again).
STOPPED = "stopped"
_BUSY_AFTER_STOP = "\x00agent_busy_after_stop"


class TurnInterrupted(Exception):
    """The upstream dropped mid-reply and the session was resumed; the shopper is asked to send again."""


@dataclass(frozen=True, slots=True)
class ConversationRef:
    pk: int
    group: str
    user_id: str
    upstream_id: str
    #: The conversation's store (a token-bound session's own); "" = the deployment's VIZOCHOK_STORE_ID.
    store_id: str = ""


class ConversationRunner:
    def __init__(self, relay: Relay, ref: ConversationRef) -> None:
        self.relay = relay
        self.pk = ref.pk
        self.user_id = ref.user_id
        self.store_id = ref.store_id
        self.upstream_id = ref.upstream_id
        self.outbox = Outbox(relay.layer, ref.group, relay.tabs)
        self.window = SlidingWindow(limit=10, seconds=60.0)
        self.session: UpstreamSession | None = None
        self.lease: Lease | None = None
        self.task: asyncio.Task[None] | None = None
        self.stream: BubbleStream | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        #: Between turns with a warm socket: the socket may be closed at any moment to free its slot.
        self._parked = False
        #: From ``start`` until the turn's end is stored and "ready" is published (the task drains a little longer).
        self._in_turn = False
        self._turn_seq = 0
        self._bubbles = 0
        # issue 16 (stop): set by stop() until the turn has ended; the turn after a stopped one waits out agent_busy.
        self._stopping = False
        self._after_stop = False
        self._busy_wait = False

    # --- public ---------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a turn is under way: a tab told "ready" may send the next one at once, even from this process."""
        return self._in_turn

    def start(self, frame: wire.UserMessage | wire.Action, seq: int, language: str) -> asyncio.Task[None]:
        """Run one turn in the background: it outlives the tab that asked for it."""
        self._turn_seq = seq
        self._bubbles = 0
        self._in_turn = True
        self._busy_wait, self._after_stop = self._after_stop, False  # issue 16
        # issue 16: the consumer may have taken this runner just before a closing socket made the relay forget it
        # (the stopped turn's socket closes in the background); registered again, a Stop from any tab finds it.
        self.relay.adopt(self)
        self.task = asyncio.get_running_loop().create_task(self._turn(frame, language))
        liveness.keep_alive(self.task, self.pk, seq)  # other processes see this turn alive while it beats
        return self.task

    def live_bubble(self) -> tuple[str, str] | None:
        """The bubble being streamed now and its text so far, for a tab that joins mid-reply."""
        if self.stream is None or not self.stream.text:
            return None
        return self.stream.bubble, self.stream.text

    def publish(self, html: str) -> None:
        self.outbox.put(html)

    def stop(self) -> bool:
        """issue 16: end the running turn as "stopped" at once; returns whether there was one to stop.

        The protocol has no cancel: the exchange is cancelled, what streamed is kept (marked stopped), and the
        upstream socket is closed rather than reused (the upstream keeps the session; the next turn's socket resumes
        it). If the upstream is still busy with the stopped turn then, the next turn waits and sends again.
        """
        if not self._in_turn or self._stopping or self.task is None or self.task.done():
            return False
        self._stopping = True
        self.task.cancel()
        return True

    async def close(self) -> None:
        self._cancel_idle()
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await self._closing
        await self._close_session()

    # --- the turn --------------------------------------------------------------------------------------------

    async def _turn(self, frame: wire.UserMessage | wire.Action, language: str) -> None:
        with translation.override(language):
            upstream_code = relay_code = ""
            try:
                budget = settings.VIZOCHOK_QUEUE_TIMEOUT + settings.VIZOCHOK_TURN_TIMEOUT + 15
                async with asyncio.timeout(budget):
                    await self._ensure_session()
                    upstream_code = await self._exchange(frame)
                    delays = Backoff().delays()  # issue 16: the stopped turn may still run upstream; bounded by budget
                    while upstream_code == _BUSY_AFTER_STOP:
                        self.publish(rendering.status("finishing_previous"))
                        await asyncio.sleep(next(delays, settings.VIZOCHOK_TURN_TIMEOUT))
                        upstream_code = await self._exchange(frame)
            except SlotTimeout:
                relay_code = "queue_timeout"
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
                if not self._stopping:
                    relay_code = "relay_shutdown"
                    raise
                # issue 16: our own stop(), not a shutdown: the turn ends normally, as "stopped".
                relay_code = STOPPED
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
            except Exception:
                logger.exception("turn failed in conversation %s", self.pk)
                relay_code = "relay_error"
            finally:
                await asyncio.shield(self._finish(relay_code, upstream_code))

    async def _ensure_session(self) -> None:
        self._cancel_idle()
        self._parked = False
        if self._closing is not None:
            await self._closing  # a reclaim raced with this turn: let it finish, then open afresh
            self._closing = None
            self.relay.adopt(self)
        if self.session is not None and not self.session.closed and self.lease is not None:
            self.lease.mark_busy()
            return
        await self._close_session()
        queued = time.monotonic()
        self.lease = await self.relay.slots.acquire(
            settings.VIZOCHOK_QUEUE_TIMEOUT, on_wait=lambda: self.publish(rendering.status("waiting"))
        )
        metrics.QUEUE_WAIT.observe(time.monotonic() - queued)
        try:
            await self._open()
        except BaseException:
            await self._release()
            raise

    async def _open(self) -> None:
        config = await upstream_config(self.user_id, self.relay.sandbox, self.store_id)
        self.session = await open_session(
            config,
            conversation_id=self.upstream_id or None,
            backoff=Backoff(max_attempts=settings.VIZOCHOK_OPEN_RETRIES),
            on_retry=metrics.counting_retries(
                lambda attempt, delay, exc: self.publish(rendering.status("reconnecting"))
            ),
        )
        await self._on_start(self.session)

    async def _on_start(self, session: UpstreamSession) -> None:
        if session.conversation_id != self.upstream_id:
            self.upstream_id = session.conversation_id
            await db.call(store.set_upstream_id, self.pk, self.upstream_id)
        start = session.start
        if isinstance(start, wire.SessionRestored):
            items = [store.plain(item) for item in start.selected_items]
            stored_items, _total, _count = await db.call(store.cart_of, self.pk)
            if items != stored_items:
                payload = {"type": "cart_changed", "action": "restored", "items": items, "total": start.cart_total}
                await self._store_cart(store.plain(payload), items, start.cart_total)

    async def _exchange(self, frame: wire.UserMessage | wire.Action) -> str:
        """Send and relay until the turn ends; returns the upstream error code that ended it, if any."""
        assert self.session is not None
        if isinstance(frame, wire.UserMessage):
            frame = wire.UserMessage(text=frame.text, conversation_id=self.upstream_id or None)
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
        restoring = self.session.restored
        event: Any = first
        while True:
            restoring = restoring and not isinstance(event, (wire.Status, wire.TextDelta))
            ended = await self._relay(event, restoring)
            if ended is not None:
                return ended
            try:
                event = await anext(events)
            except StopAsyncIteration:
                return ""
            except UpstreamClosed as exc:
                if isinstance(exc, AuthRejected):
                    raise
                await self._recover(exc)
                raise TurnInterrupted from exc

    async def _recover(self, exc: UpstreamClosed) -> None:
        """The upstream dropped mid-reply: keep what streamed, then resume the conversation with backoff.

        The interrupted reply cannot be continued (the upstream turn died with its socket), but the session is
        restored (cart included) so the shopper's next message goes through at once.
        """
        logger.warning("upstream closed mid-turn (%s %s); resuming %s", exc.code, exc.reason, self.upstream_id)
        await self._end_bubble(complete=False)
        self.publish(rendering.status("reconnecting"))
        await self._reopen()

    async def _reopen(self) -> None:
        if self.session is not None:
            await self.session.close()
        self.session = None
        await self._open()

    async def _relay(self, event: Any, restoring: bool) -> str | None:
        """Handle one event; a non-None result ends the turn (the upstream error code, or "")."""
        match event:
            case wire.TextDelta(delta=delta):
                if self.stream is None:
                    self._bubbles += 1
                    bubble = f"live-{self._turn_seq}-{self._bubbles}"
                    self.stream = BubbleStream(bubble, self._emit_delta, settings.VIZOCHOK_COALESCE_SECONDS)
                self.stream.add(delta)
            case wire.TextEnd():
                await self._end_bubble(complete=True)
            case wire.Status(code=code):
                self.publish(rendering.status(code))
            case wire.ProductCards() | wire.QuickReplies() | wire.IngredientChecklist():
                kind = _RICH_KINDS[type(event)]
                payload = store.plain(event)
                resent = restoring and kind in _CHOICE_KINDS.values()
                if resent and await db.call(store.same_as_latest, self.pk, kind, payload):
                    return None  # a pending choice re-sent on resume: it is on the page already
                await self._store_and_show(kind, payload)
            case wire.CartChanged():
                payload = store.plain(event)
                await self._store_cart(payload, payload.get("items", []), event.total)
            case wire.ErrorMessage(code="agent_busy") if self._busy_wait:
                return _BUSY_AFTER_STOP  # issue 16: not shown; _turn waits and sends the turn again
            case wire.ErrorMessage(code=code):
                await self._end_bubble(complete=False)
                await self._store_and_show(Kind.ERROR, store.plain(event), text=code)
                return code
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

    def _emit_delta(self, bubble: str, text: str, first: bool) -> None:
        # issue 16: the whole text so far, so finished lines can be shown formatted while the reply streams.
        so_far = self.stream.text if self.stream is not None else None
        self.publish(rendering.text_delta(bubble, text, first=first, so_far=so_far))

    async def _end_bubble(self, *, complete: bool, stopped: bool = False) -> Message | None:
        stream, self.stream = self.stream, None
        if stream is None:
            return None
        text = stream.finish()
        if not text:
            return None
        payload = {"stopped": True} if stopped else None  # issue 16: shown marked "stopped"
        message = await db.call(store.save_assistant_text, self.pk, text, complete=complete, payload=payload)
        self.publish(rendering.text_end(stream.bubble, message))
        return message

    async def _store_and_show(self, kind: str, payload: dict[str, Any], text: str = "") -> None:
        message = await db.call(store.save_frame, self.pk, kind, payload, text)
        self.publish(rendering.stored(message))

    async def _store_cart(self, payload: dict[str, Any], items: list[dict[str, Any]], total: Decimal) -> None:
        count = formatting.cart_lines(items)
        message = await db.call(store.save_cart, self.pk, payload, items, total, count)
        self.publish(rendering.stored(message))

    async def _finish(self, relay_code: str, upstream_code: str) -> None:
        """Whatever happened: keep the cut reply, say what went wrong, free the conversation and the tabs."""
        try:
            stopped = relay_code == STOPPED  # issue 16: a stopped reply is kept; a marker only when nothing streamed
            cut = await self._end_bubble(complete=False, stopped=stopped)
            if relay_code and not (stopped and cut is not None):
                payload = {"type": "error", "code": relay_code, "source": "relay"}
                await self._store_and_show(Kind.ERROR, payload, text=relay_code)
            owner = liveness.owner_token(self._turn_seq)
            await db.call(store.end_turn, self.pk, relay_code or upstream_code, owner)
            metrics.turn_finished(relay_code or upstream_code)
        except Exception:
            logger.exception("could not close the turn of conversation %s cleanly", self.pk)
        # After an interrupted turn the resumed session is fresh and worth keeping; after a timeout the upstream
        # may still be working on the old turn, so that socket is not reused. Either way this is settled before
        # "ready" goes out: the next turn may start the moment a tab has it.
        self._in_turn = False
        self._after_stop, self._stopping = self._stopping, False  # issue 16: the stopped socket is closed below
        if relay_code in ("", "upstream_lost") and self.session is not None and not self.session.closed:
            self._park()
        else:
            self._closing = asyncio.get_running_loop().create_task(self._close_session())
        self.publish(rendering.status(None))
        self.publish(rendering.state("ready"))
        await self.outbox.drain()

    # --- the socket between turns ----------------------------------------------------------------------------

    def _park(self) -> None:
        """Keep the socket warm for the next turn, but give it up at once if another turn waits for a slot."""
        assert self.lease is not None
        loop = asyncio.get_running_loop()
        self._parked = True
        self.lease.mark_idle(self._reclaim)
        self._idle_timer = loop.call_later(settings.VIZOCHOK_IDLE_GRACE, self._reclaim)

    def _reclaim(self) -> None:
        self._cancel_idle()
        if self._parked and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close_session())

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    async def _close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()
        await self._release()
        self._closing = None
        if self._parked or not self.running:
            self._parked = False
            self.relay.forget(self)

    async def _release(self) -> None:
        lease, self.lease = self.lease, None
        if lease is not None:
            await lease.release()
