"""The browser's socket: what a tab sends is checked here before anything reaches the upstream.

One consumer per tab. It joins its conversation's group, turns a browser frame (what an htmx ``ws-send`` form
sends) into a stored user message and a turn, and forwards the group's fragments. The turn itself runs in the
relay (``chat.turns``), not here, so closing the tab does not cut the reply off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, assert_never, cast
from urllib.parse import parse_qs

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from chat import feedback
from chat.compat import channels_dispatch
from chat.models import Conversation, Message
from chat.ops import departure, logs, metrics, ratelimit, sendbuffer
from chat.ops.process import PROCESS_ID
from chat.persistence import db, store
from chat.presentation import formatting, rendering
from chat.turns import engine
from chat.turns.engine import Refused
from chat.vizochok import actions
from chat.vizochok import messages as wire
from chat.web import frames, identity

if TYPE_CHECKING:
    from channels.consumer import _ChannelScope

logger = logging.getLogger("chat.web.consumer")

#: Database work while the shopper waits on a send: retried briefly, then refused with a clear message.
_db = functools.partial(db.call, retries=db.SEND_RETRIES)

#: The longest message a shopper may send (``chat.web.frames`` checks it; the page's composer shows it).
MAX_TEXT_CHARS = frames.MAX_TEXT_CHARS
#: Stored messages per catch-up frame: a long conversation comes back in several frames, none of them huge.
CATCH_UP_PAGE = 50


#: What an action refers to cannot exist before the conversation is stored; the refusal each would get anyway.
_NOTHING_TO_ACT_ON = {
    actions.ADD_TO_CART: "unknown_product",
    actions.UPDATE_QUANTITY: "not_in_cart",
    actions.REMOVE_FROM_CART: "not_in_cart",
    actions.QUICK_REPLY: "choice_expired",
    actions.CHECKLIST_SUBMIT: "choice_expired",
}

#: Frames that start no turn (the tab did not turn busy for them): a refusal of one says nothing of the turn state.
_STATELESS = frozenset({frames.Ping.KIND, frames.Sync.KIND, frames.Rate.KIND})

#: Sends made from a line of the cart panel: their refusals carry the line's sku, and the panel shows them there.
_CART_LINE = (frames.UpdateQuantity, frames.RemoveFromCart, frames.UndoRemove)

_Action = TypeVar("_Action", bound=frames.Send)
_Built = tuple[wire.Action, str, int | None]


#: Refusals of the line's admission (``engine.admit``), which a resent key must not get.
_LINE_REFUSALS = frozenset({"rate_limited", "line_full", "too_many_queued"})


class ChatConsumer(AsyncWebsocketConsumer):
    conversation: Conversation
    language: str
    #: Fragments handed to this tab while one of its own handlers runs: sent after it, as the channel layer's queue
    #: would, so a catch-up or a refusal is never overtaken by what the runner publishes meanwhile.
    _held: list[str] | None = None
    #: How many of this tab's own handlers run now (a frame's and a background catch-up may overlap).
    _holds = 0
    #: The background catch-up of this socket, the smallest ``after`` asked for meanwhile, and when the next may run.
    _sync_task: asyncio.Task[None] | None = None
    _sync_after: int | None = None
    _sync_live: tuple[str, int] = ("", 0)
    _sync_not_before = 0.0
    #: Whether this socket was let in (its caps claimed). Frames a refused one had already sent are not handled.
    _admitted = False

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.language = identity.pick_language(query.get("lang", [""])[0])
        user_id = identity.user_id_from_scope(self.scope)
        public_id = identity.public_id(query.get("c", [""])[0])
        if public_id is None:
            await self.close(code=4404)  # a malformed id: refused before any query (the handshake gets a 403)
            return
        conversation = await self._conversation(public_id, user_id) if user_id else None
        if conversation is None or not user_id:
            # No shopper cookie, or somebody else's conversation: a guessed id gives nothing.
            await self.close(code=4403)
            return
        if conversation.pk is not None:
            logs.bind_conversation(conversation.pk)
        # This socket's handlers' send-path database work is dropped once its client has gone (chat.persistence.db).
        db.caller_gone.set(cast("threading.Event | None", self.scope.get(departure.SCOPE_KEY)))
        #: The address the line and the turn rate count (trusted-hop aware: ``ratelimit.client_address``).
        self.client = ratelimit.client_address(self.scope)
        self._socket_claim = await ratelimit.SocketCaps().claim(user_id, self.client)
        if self._socket_claim is None:
            # Too many sockets for this shopper or address: say so in the tab, then close for good (no retry).
            await self.accept()
            with translation.override(self.language):
                await self.send(text_data=rendering.transient_error("too_many_connections"))
            await self.close(code=4429)
            return
        metrics.ACTIVE_SOCKETS.inc()
        self._admitted = True
        self.user_key = user_id
        self.conversation = conversation
        await self.channel_layer.group_add(conversation.group_name, self.channel_name)
        async with self._holding():
            engine.join(conversation.group_name, self.channel_name, self._deliver, self.language)
            self._attached = True
            await self.accept()

    async def disconnect(self, code: int) -> None:
        await self._let_go()

    async def __call__(self, scope: _ChannelScope, receive: Any, send: Any) -> None:
        # channels runs disconnect() only when the websocket.disconnect message is dispatched: not when a handler
        # raised (the application ends there) nor when the server cancels an application that took too long to
        # finish. What this socket holds (its caps, the gauge, its tab) is given back on every way out.
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._let_go()

    async def _let_go(self) -> None:
        """Give back everything this socket holds; safe to call more than once."""
        for task in (getattr(self, "_orphan_watch", None), self._sync_task):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        claim, self._socket_claim = getattr(self, "_socket_claim", None), None
        if claim is not None:  # an empty claim (both caps off) still counted in the gauge
            metrics.ACTIVE_SOCKETS.dec()
            try:
                await ratelimit.SocketCaps.release(claim)
            except Exception:  # the cache is down: the counters fade with their TTL
                logger.warning("could not release a socket claim", exc_info=True)
        if getattr(self, "_attached", False):
            self._attached = False
            engine.leave(self.conversation.group_name, self.channel_name)
            try:
                await self.channel_layer.group_discard(self.conversation.group_name, self.channel_name)
            except Exception:  # a channel layer that is down forgets the membership with its expiry
                logger.warning("could not leave the conversation's group", exc_info=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self._admitted:
            return  # refused (over a cap) after the handshake: what the client had sent meanwhile is dropped
        async with self._holding():
            await self._receive(text_data, bytes_data)

    @contextlib.asynccontextmanager
    async def _holding(self) -> AsyncIterator[None]:
        """While one of this tab's own handlers runs, fragments for it wait, then go out after it, in order."""
        self._holds += 1
        if self._held is None:
            self._held = []
        try:
            yield
        finally:
            self._holds -= 1
            if self._holds == 0:
                await self._release_held()

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        with translation.override(self.language):
            frame = frames.parse(text_data if text_data is not None else bytes_data)
            if isinstance(frame, frames.Refused):
                logger.info("a browser frame was refused: %s (%s %s)", frame.code, frame.field, frame.problem)
                await self._refuse(frame.code, frame.details, frame.kind)
                return
            try:
                try:
                    await self._handle(frame)
                except db.CallerGone as gone:
                    logger.info("the tab left before its send reached the database; dropped %s", gone)
                    return
                except db.UNAVAILABLE:
                    logger.warning("database unavailable; a send was refused", exc_info=True)
                    raise Refused("service_unavailable") from None
            except Refused as refused:
                details = dict(refused.details)
                if isinstance(frame, _CART_LINE):
                    details["line"] = frame.sku  # shown at its line in the cart panel (issue 22)
                await self._refuse(refused.code, details, frame.KIND)

    async def _refuse(self, code: str, details: Any, kind: str) -> None:
        """Tell this tab its frame was refused. A send's refusal ends with the turn state: the tab turned itself busy
        when it sent; nothing started, so it may send again (unless a turn of this conversation is what refused
        it). A ping's, a sync's or a rating's leaves the state as it is."""
        metrics.REFUSED.labels(code=code).inc()
        # A send's refusal carries the turn state, which the feed alone renders (``engine.refusal``).
        stateless = kind in _STATELESS
        html = rendering.transient_error(code, **details) if stateless else engine.refusal(code, **details)
        await self.send(text_data=html)

    async def chat_stop(self, event: dict[str, Any]) -> None:
        """Group handler: a tab asked to stop the turn; the process that runs it stops it."""
        engine.stop(self.conversation.pk)

    async def chat_fragment(self, event: dict[str, Any]) -> None:
        """Group handler: a fragment of this conversation from another process (or an orphan watch)."""
        if event.get("origin") == PROCESS_ID:
            return  # this process's runner handed it to this tab directly (``chat.feed.tabs``)
        html = event.get("html")
        if isinstance(html, dict):
            html = html.get(self.language) or next(iter(html.values()), "")
        if isinstance(html, str) and html:
            await self._deliver(html)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Without channels' close_old_connections hop per frame (fenced in chat/compat/channels_dispatch.py).
        handler = await channels_dispatch.handler_for(self, message)
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception as exc:
            await self._failed(message["type"], exc)

    async def _failed(self, message_type: str, exc: Exception) -> None:
        """A handler raised: whatever a browser sent, the answer is a refusal, never a broken socket (1011).

        One log line per failure: a browser can cause these at will, so a traceback each time would let it fill the
        log (the traceback is there at DEBUG).
        """
        logger.error("%s failed: %s: %.200s", message_type, type(exc).__name__, exc)
        logger.debug("%s failed", message_type, exc_info=exc)
        if message_type == "websocket.connect":
            await self._let_go()
            await self.close(code=1011)  # before accept: the handshake is refused; the page retries later
        elif message_type == "websocket.receive":
            metrics.REFUSED.labels(code="relay_error").inc()
            with translation.override(getattr(self, "language", None) or settings.LANGUAGE_CODE):
                await self.send(text_data=engine.refusal("relay_error"))

    # channels' own stub overrides AsyncConsumer.send(message) with this signature the same way.
    async def send(  # type: ignore[override]
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """Every frame to the browser passes here: none is larger than ``VIZOCHOK_MAX_FRAGMENT_BYTES``, and none is
        queued behind more than ``VIZOCHOK_SOCKET_SEND_BUFFER`` bytes the tab has not read (it is dropped then)."""
        if text_data is not None:
            text_data = rendering.fit_for_browser(text_data)
            if self._not_reading():
                return
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    def _not_reading(self) -> bool:
        """Drop a tab that leaves more than the allowed bytes unread (measured before this frame is queued)."""
        # Our own scope key (chat.ops.sendbuffer's middleware puts it there): channels' scope type does not know it.
        buffer = cast("sendbuffer.SendBuffer | None", self.scope.get(sendbuffer.SCOPE_KEY))
        if buffer is None or getattr(self, "_dropped", False):
            return getattr(self, "_dropped", False)
        pending = buffer.pending()
        if pending is None or pending <= settings.VIZOCHOK_SOCKET_SEND_BUFFER:
            return False
        self._dropped = True
        metrics.REFUSED.labels(code="not_reading").inc()
        logger.warning("a tab left %d bytes unread; its socket is dropped", pending)
        buffer.abort()  # the server then sends websocket.disconnect: disconnect() gives the caps back
        return True

    async def _deliver(self, html: str) -> None:
        if self._held is not None:
            self._held.append(html)
        else:
            await self.send(text_data=html)

    async def _release_held(self) -> None:
        while self._held and self._holds == 0:
            held, self._held = self._held, []
            for n, batch in enumerate(rendering.batches_for_browser(held)):  # joined, but never past the frame cap
                if n:
                    await asyncio.sleep(0)  # let the server write the last batch out before measuring the next
                await self.send(text_data=batch)
        if self._holds == 0:
            self._held = None

    # --- browser frames --------------------------------------------------------------------------------------

    async def _handle(self, frame: frames.AnyFrame) -> None:
        """Hand a checked frame to its handler (``chat.web.frames`` declares them all)."""
        if isinstance(frame, frames.Ping):
            await self._pong(frame)
            return
        if self.conversation.pk is None:
            await self._adopt_stored()  # another tab of this shopper may have stored it meanwhile
        match frame:
            case frames.Sync():
                self._request_sync(frame.after, frame.bubble, frame.offset)
            case frames.Stop():
                await self._stop()
            case frames.Rate():
                await self._rate(frame)
            case frames.Retry():
                await self._retry(frame)
            case frames.Message():
                await self._message(frame)
            case frames.AddToCart():
                await self._act(frame, self._add_to_cart)
            case frames.UpdateQuantity():
                await self._act(frame, self._update_quantity)
            case frames.RemoveFromCart():
                await self._act(frame, self._remove_from_cart)
            case frames.UndoRemove():
                await self._act(frame, self._undo_remove)
            case frames.QuickReply():
                await self._act(frame, self._quick_reply)
            case frames.ChecklistSubmit():
                await self._act(frame, self._checklist_submit)
            case _:  # a frame declared without a handler here is a type error (mypy), not a silent drop
                assert_never(frame)

    async def _pong(self, frame: frames.Ping) -> None:
        """The page's heartbeat (static/chat/connection.js): a half-open socket closes nothing, so the tab asks, and a
        socket that does not answer within its deadline is replaced. Answered at once, touching no database, and
        straight out (not held behind this tab's fragments), as JSON the page tells apart from its HTML fragments."""
        await self.send(text_data=json.dumps({"type": "pong", "id": frame.id}))

    async def _message(self, frame: frames.Message) -> None:
        # A turn the line refuses stores nothing, not even a new conversation's row: admitted first.
        try:
            admitted = await engine.admit(self.client)
        except Refused as refused:
            if await self._stored_before(refused, frame.key):
                return
            raise
        try:
            await self._stored()  # the conversation is stored first, then the turn starts as for any other
        except BaseException:
            await engine.withdraw(admitted)  # its place in line is not kept for a turn that will not start
            raise
        await self._start_turn(
            wire.UserMessage(text=frame.text), Message.Kind.TEXT, frame.text, frame.key, admitted=admitted
        )

    async def _act(self, frame: _Action, build: Callable[[_Action], Awaitable[_Built]]) -> None:
        """An action on what the conversation shows (a card, a cart line, a choice): checked, then a turn."""
        if self.conversation.pk is None:
            # Nothing was shown in a conversation that is not stored yet: no card, cart item or choice to act on.
            raise Refused(_NOTHING_TO_ACT_ON.get(frame.KIND, "unknown_kind"))
        action, label, source_seq = await build(frame)
        await self._start_turn(action, Message.Kind.ACTION, label, frame.key, source_seq=source_seq)

    async def _add_to_cart(self, frame: frames.AddToCart) -> _Built:
        product = await self._shown_product(frame.sku)
        quantity = _valid_quantity(frame.quantity, product)
        label = _("Add: %(name)s × %(quantity)s") % {
            "name": formatting.display_name(product),
            "quantity": formatting.quantity(quantity, product.get("unit")),
        }
        return actions.add_to_cart(product["sku"], quantity), label, None

    async def _update_quantity(self, frame: frames.UpdateQuantity) -> _Built:
        item = await self._cart_item(frame.sku)
        product = await _db(store.shown_product, self.conversation.pk, item["sku"]) or item
        quantity = _valid_quantity(frame.quantity, product)
        label = _("Change: %(name)s → %(quantity)s") % {
            "name": item.get("name", ""),
            "quantity": formatting.quantity(quantity, item.get("unit")),
        }
        return actions.update_quantity(item["sku"], quantity), label, None

    async def _remove_from_cart(self, frame: frames.RemoveFromCart) -> _Built:
        item = await self._cart_item(frame.sku)
        label = _("Remove: %(name)s") % {"name": item.get("name", "")}
        return actions.remove_from_cart(item["sku"]), label, None

    async def _undo_remove(self, frame: frames.UndoRemove) -> _Built:
        """Put back the line the last cart change removed, as it was (issue 16: undo after remove)."""
        line = await _db(store.removed_line, self.conversation.pk, frame.sku)
        if line is None:
            raise Refused("choice_expired")
        quantity = formatting.to_decimal(line.get("quantity"))
        if quantity is None or quantity <= 0:
            raise Refused("choice_expired")
        label = _("Add: %(name)s × %(quantity)s") % {
            "name": formatting.display_name(line),
            "quantity": formatting.quantity(quantity, line.get("unit")),
        }
        return actions.add_to_cart(str(line["sku"]), quantity), label, None

    async def _quick_reply(self, frame: frames.QuickReply) -> _Built:
        message = await _db(store.quick_replies, self.conversation.pk, frame.seq) if frame.seq else None
        if message is None or message.data.get("retired"):
            raise Refused("choice_expired")
        value = frame.value
        for reply in message.data.get("replies", []):
            if isinstance(reply, dict) and reply.get("value") == value:
                label = str(reply.get("label") or value)
                return actions.quick_reply(value, label), label, message.seq
        raise Refused("choice_expired")

    async def _checklist_submit(self, frame: frames.ChecklistSubmit) -> _Built:
        message = await _db(store.checklist, self.conversation.pk, frame.seq) if frame.seq else None
        if message is None or message.data.get("submitted") is not None:
            raise Refused("choice_expired")
        by_id = {str(item.get("id")): item for item in message.data.get("items", []) if isinstance(item, dict)}
        picked = [by_id[value] for value in frame.item if value in by_id]
        if not picked:
            raise Refused("nothing_selected")
        label = _("Add to cart: %(items)s") % {"items": ", ".join(str(item.get("name", "")) for item in picked)}
        return actions.checklist_submit(str(item["id"]) for item in picked), label[:500], message.seq

    async def _shown_product(self, sku: str) -> dict[str, Any]:
        product = await _db(store.shown_product, self.conversation.pk, sku) if sku else None
        if product is None:
            raise Refused("unknown_product")
        return product

    async def _cart_item(self, sku: str) -> dict[str, Any]:
        items = await _db(store.cart_items, self.conversation.pk)
        for item in items:
            if isinstance(item, dict) and item.get("sku") == sku:
                return item
        raise Refused("not_in_cart")

    async def _stop(self) -> None:
        """Stop the running turn: here if this process runs it, else in the process that does.

        Every stop gets an answer: the turn's end ("ready") from the process that stops it, or, when no turn runs,
        the state at once (a late tap, a second tab).
        """
        if not await engine.stop_anywhere(self.conversation.pk, self.conversation.group_name):
            await self.send(text_data=engine.state_fragment(busy=False))

    async def _rate(self, frame: frames.Rate) -> None:
        """A shopper's rating of a finished reply (issue 25, ``chat.feedback``): stored, then shown in every tab.

        Not a turn: a refusal is told to this tab alone and leaves the turn state as it is (busy or ready).
        """
        message = None
        if self.conversation.pk is not None:
            try:
                rating = feedback.parse(
                    {"seq": frame.seq, "value": frame.value, "reason": frame.reason, "text": frame.text}
                )
            except feedback.Invalid:
                pass
            else:
                message = await _db(feedback.rate, self.conversation.pk, self.conversation.user_id, rating)
        if message is None:
            raise Refused("invalid_feedback")
        await engine.publish(
            self.conversation.pk, self.conversation.group_name, functools.partial(rendering.rated, message)
        )

    async def _retry(self, frame: frames.Retry) -> None:
        """Send the last turn's message again as a new turn, when that turn failed or was stopped."""
        key, seq = frame.key, frame.seq
        source = await _db(store.retry_source, self.conversation.pk, seq) if seq else None
        if source is None:
            raise Refused("retry_unavailable")
        if source.kind == Message.Kind.TEXT:
            await self._start_turn(wire.UserMessage(text=source.text), Message.Kind.TEXT, source.text, key)
            return
        if source.kind != Message.Kind.ACTION or source.data.get("action") not in actions.KINDS:
            raise Refused("retry_unavailable")
        await self._start_turn(wire.Action.parse(source.data), Message.Kind.ACTION, source.text, key)

    # --- turns -----------------------------------------------------------------------------------------------

    def _ref(self) -> engine.ConversationRef:
        conversation = self.conversation
        return engine.ConversationRef(
            conversation.pk,
            conversation.group_name,
            identity.upstream_user_id(conversation.user_id),
            conversation.upstream_id,
            conversation.store_id,
        )

    async def _start_turn(
        self,
        frame: wire.UserMessage | wire.Action,
        kind: str,
        text: str,
        key: str,
        *,
        source_seq: int | None = None,
        admitted: str | None = None,
    ) -> None:
        send = engine.Send(frame, kind, text, key, source_seq)
        try:
            started = await engine.begin(
                self._ref(), send, shopper=self.user_key, client=self.client, admitted=admitted
            )
        except Refused as refused:
            if await self._stored_before(refused, key):
                return
            raise
        if not started and key:
            # A key stored before (a tab's outbox resent after a reconnect): say so, or the tab would wait for it.
            await self.send(text_data=json.dumps({"type": "stored", "key": key}))

    async def _stored_before(self, refused: Refused, key: str) -> bool:
        """A send the line refused whose key is stored already (a tab's outbox resent it after a reconnect): the tab
        is told it is stored, as for any repeated key, not refused words the server has. Looked up only on a line
        refusal, so a turn that is let in costs no extra query."""
        if refused.code not in _LINE_REFUSALS or not key or self.conversation.pk is None:
            return False
        if not await _db(store.key_stored, self.conversation.pk, key):
            return False
        await self.send(text_data=json.dumps({"type": "stored", "key": key}))
        return True

    async def _catch_up(self, after: int, bubble: str, offset: int) -> None:
        """Catch a (re)connected tab up from what it says it has: stored messages after ``after``, the reply
        being streamed beyond ``offset`` characters of ``bubble``, then the turn state and the cart.

        Fragments the feed hands this tab meanwhile are held and sent after (``_held``); they overlap the snapshot
        at most, and the page keeps only what lies beyond what it has (positions, ``chat.feed.feed``).
        """
        pk = self.conversation.pk
        while True:
            missed = await _db(store.messages_after, pk, after, limit=CATCH_UP_PAGE)
            if len(missed) < CATCH_UP_PAGE:
                break  # the last page goes out with the state below, in one frame
            await self.send(text_data=rendering.appended(missed))
            after = missed[-1].seq
        conversation = await _db(Conversation.objects.get, pk=pk)
        turn = await engine.turn_now(conversation, bubble, offset)
        if turn.elsewhere:
            self._watch_orphan()  # the turn runs in another process: notice if that process dies
        parts = [rendering.appended(missed), turn.html]
        parts.append(
            rendering.session_restored(list(conversation.cart or []), conversation.cart_total, conversation.cart_count)
        )
        # One frame where it fits; a part too large for any is sent (as the notice that replaces it) on its own,
        # so the turn state still arrives.
        for batch in rendering.batches_for_browser([part for part in parts if part]):
            await self.send(text_data=batch)

    def _watch_orphan(self) -> None:
        running: asyncio.Task[None] | None = getattr(self, "_orphan_watch", None)
        if running is not None and not running.done():
            return
        watch = engine.watch_orphan(self.conversation.pk, self.conversation.group_name)
        self._orphan_watch: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(watch)

    async def _conversation(self, public_id: str, user_id: str) -> Conversation | None:
        """The shopper's conversation by its id; a provisional one (not stored yet) if nobody has that id yet.

        A page view stores nothing, so a first-time shopper's socket names an id no row has: it is stored when they
        first send (:meth:`_stored`). An id that is somebody else's, or of another store for a token-bound session,
        gives nothing.
        """
        store_id = identity.bound_store_from_scope(self.scope)
        new_in = store_id or settings.VIZOCHOK_STORE_ID
        return await _db(store.owned_conversation, public_id, user_id, store_id, new_in=new_in)

    # --- catch-up requests (``sync``) ---------------------------------------------------------------------------

    def _request_sync(self, after: int, bubble: str = "", offset: int = 0) -> None:
        """Coalesce and pace catch-ups: one runs at a time per socket, syncs that come meanwhile are merged into one
        more (from the smallest ``after``), and a socket gets at most one per ``VIZOCHOK_SYNC_INTERVAL``.

        A page sends one sync per (re)connect; a client sending hundreds made the server render the conversation
        for each, slowing every other shopper (issue 15). Runs in the background so this frame returns at once and
        the next syncs are read, and merged, while a catch-up is under way.
        """
        self._sync_after = after if self._sync_after is None else min(self._sync_after, after)
        self._sync_live = (bubble, offset)  # the newest request says best what the tab has of the live reply
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.get_running_loop().create_task(self._sync_loop())

    async def _sync_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._sync_after is not None:
            wait = self._sync_not_before - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            after, self._sync_after = self._sync_after, None
            self._sync_not_before = loop.time() + settings.VIZOCHOK_SYNC_INTERVAL
            async with self._holding():
                with translation.override(self.language):
                    await self._sync_once(after, *self._sync_live)

    async def _sync_once(self, after: int, bubble: str = "", offset: int = 0) -> None:
        try:
            if self.conversation.pk is None:
                await self._adopt_stored()
            if self.conversation.pk is None:
                await self.send(text_data=_nothing_stored_yet())
            else:
                await self._catch_up(after, bubble, offset)
        except db.CallerGone:
            return  # the tab left: nobody to catch up
        except Exception as exc:  # a catch-up that fails is a refusal like any frame's, never a dead socket
            code = "service_unavailable" if isinstance(exc, db.UNAVAILABLE) else "relay_error"
            logger.warning("catch-up failed: %s: %.200s", type(exc).__name__, exc)
            metrics.REFUSED.labels(code=code).inc()
            await self.send(text_data=engine.refusal(code))

    async def _adopt_stored(self) -> None:
        """Take up the stored row of this provisional conversation if another tab of the shopper stored it."""
        mine = self.conversation
        found = await _db(store.owned_conversation, str(mine.public_id), mine.user_id, mine.store_id)
        if found is not None:
            self.conversation = found
            logs.bind_conversation(found.pk)

    async def _stored(self) -> None:
        """Store a provisional conversation: the shopper sends for the first time."""
        if self.conversation.pk is not None:
            return
        stored = await _db(store.store_provisional, self.conversation)
        if stored is None:
            raise Refused("invalid_frame")  # the id became somebody else's meanwhile: nothing of theirs is shown
        self.conversation = stored
        logs.bind_conversation(stored.pk)


def _nothing_stored_yet() -> str:
    """The catch-up of a conversation that is not stored yet: an empty log, an idle turn, an empty cart."""
    return engine.state_fragment(busy=False) + rendering.session_restored([], Decimal(0), 0)


def _valid_quantity(quantity: Decimal | None, product: dict[str, Any]) -> Decimal:
    """The quantity if the product's minimum and step allow it (0.1 kg steps, whole pieces); None is a quantity the
    frame could not read (``chat.web.frames.quantity``), refused with what the product allows."""
    step, minimum = formatting.stepper_bounds(product)
    if quantity is None or quantity < minimum or quantity > settings.VIZOCHOK_MAX_QUANTITY:
        raise Refused("invalid_quantity", **_allowed(product, step, minimum))
    if (quantity - minimum) % step != 0:
        raise Refused("invalid_quantity", **_allowed(product, step, minimum))
    return quantity


def _allowed(product: dict[str, Any], step: Decimal, minimum: Decimal) -> dict[str, str]:
    """What a refused quantity could have been, for the message ("from 1 to 50 pcs, in steps of 0.5")."""
    unit = product.get("unit") if isinstance(product.get("unit"), str) else None
    return {
        "minimum": formatting.number(minimum),
        "maximum": formatting.quantity(settings.VIZOCHOK_MAX_QUANTITY, unit),
        "step": formatting.quantity(step, unit) if step != 1 or minimum != 1 else "",
    }
