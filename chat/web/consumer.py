"""The browser's socket: what a tab sends is checked here before anything reaches the upstream.

One consumer per tab. It joins its conversation's group, turns a browser frame (what an htmx ``ws-send`` form
sends) into a stored user message and a turn, and forwards the group's fragments. The turn itself runs in the
relay (``chat.turns``), not here, so closing the tab does not cut the reply off.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from chat import db, store
from chat.models import Conversation, Message
from chat.ops import logs, metrics, ratelimit
from chat.presentation import formatting, rendering
from chat.turns import liveness
from chat.turns.runner import ConversationRef, ConversationRunner
from chat.turns.service import get_relay
from chat.vizochok import actions
from chat.vizochok import messages as wire
from chat.web import identity

logger = logging.getLogger("chat.web.consumer")

#: Database work while the shopper waits on a send: retried briefly, then refused with a clear message.
_db = functools.partial(db.call, retries=db.SEND_RETRIES)

#: Browser frames are small forms; anything near the upstream's 64 KB frame limit is refused here.
MAX_BROWSER_FRAME = 16 * 1024
MAX_TEXT_CHARS = 2000
MAX_KEY_CHARS = 64


class Refused(Exception):
    """A browser frame that is not sent upstream; ``code`` is shown to the tab that sent it."""

    def __init__(self, code: str, **details: Any) -> None:
        super().__init__(code)
        self.code = code
        self.details = details


class ChatConsumer(AsyncWebsocketConsumer):
    conversation: Conversation
    language: str
    #: Fragments handed to this tab while one of its own handlers runs: sent after it, as the channel layer's queue
    #: would, so a catch-up or a refusal is never overtaken by what the runner publishes meanwhile.
    _held: list[str] | None = None

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.language = identity.pick_language(query.get("lang", [""])[0])
        user_id = identity.user_id_from_scope(self.scope)
        public_id = query.get("c", [""])[0]
        conversation = await self._owned(public_id, user_id) if user_id and public_id else None
        bound_store = identity.bound_store_from_scope(self.scope)
        if conversation is not None and bound_store is not None and conversation.store_id != bound_store:
            conversation = None  # a token-bound session sees only its own store's conversations
        if conversation is None:
            # No session cookie, or somebody else's conversation: a guessed id gives nothing.
            await self.close(code=4403)
            return
        logs.bind_conversation(conversation.pk)
        self._socket_claim = await ratelimit.SocketCaps().claim(user_id, _client_ip(self.scope))
        if self._socket_claim is None:
            # Too many sockets for this shopper or address: say so in the tab, then close for good (no retry).
            await self.accept()
            with translation.override(self.language):
                await self.send(text_data=rendering.transient_error("too_many_connections"))
            await self.close(code=4429)
            return
        metrics.ACTIVE_SOCKETS.inc()
        self.user_key = user_id
        self.conversation = conversation
        await self.channel_layer.group_add(conversation.group_name, self.channel_name)
        self._held = []
        get_relay().tabs.attach(conversation.group_name, self.channel_name, self._deliver)
        await self.accept()
        await self._release_held()

    async def disconnect(self, code: int) -> None:
        watcher = getattr(self, "_orphan_watch", None)
        if watcher is not None:
            watcher.cancel()
        if getattr(self, "_socket_claim", None):
            metrics.ACTIVE_SOCKETS.dec()
            await ratelimit.SocketCaps.release(self._socket_claim)
            self._socket_claim = None
        if hasattr(self, "conversation"):
            get_relay().tabs.detach(self.conversation.group_name, self.channel_name)
            await self.channel_layer.group_discard(self.conversation.group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self._held = []
        try:
            await self._receive(text_data, bytes_data)
        finally:
            await self._release_held()

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        with translation.override(self.language):
            try:
                try:
                    await self._handle(self._decode(text_data, bytes_data))
                except db.UNAVAILABLE:
                    logger.warning("database unavailable; a send was refused", exc_info=True)
                    raise Refused("service_unavailable") from None
            except Refused as refused:
                metrics.REFUSED.labels(code=refused.code).inc()
                # The tab turned itself busy when it sent; nothing started, so it may send again (unless a turn
                # of this conversation is what refused it).
                state = "busy" if refused.code == "agent_busy" else "ready"
                await self.send(
                    text_data=rendering.transient_error(refused.code, **refused.details) + rendering.state(state)
                )

    async def chat_stop(self, event: dict[str, Any]) -> None:
        """Group handler: a tab asked to stop the turn; the process that runs it stops it (issue 16)."""
        runner = get_relay().existing(self.conversation.pk)
        if runner is not None:
            runner.stop()

    async def chat_fragment(self, event: dict[str, Any]) -> None:
        """Group handler: a fragment of this conversation from another process (or an orphan watch)."""
        if event.get("origin") == liveness.PROCESS_ID:
            return  # this process's runner handed it to this tab directly (``chat.feed.tabs``)
        await self._deliver(event["html"])

    async def dispatch(self, message: dict[str, Any]) -> None:
        # channels runs close_old_connections() through sync_to_async before every handler: one more hop through
        # the single thread all database work queues on, per browser frame. Every database call here goes through
        # database_sync_to_async (chat.db), which does the same around the call itself, so the hop is skipped.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _deliver(self, html: str) -> None:
        if self._held is not None:
            self._held.append(html)
        else:
            await self.send(text_data=html)

    async def _release_held(self) -> None:
        while self._held:
            batch, self._held = "".join(self._held), []
            await self.send(text_data=batch)
        self._held = None

    # --- browser frames --------------------------------------------------------------------------------------

    @staticmethod
    def _decode(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
        if text_data is None:
            raise Refused("invalid_frame")
        if len(text_data.encode("utf-8")) > MAX_BROWSER_FRAME:
            raise Refused("frame_too_large", max_size=MAX_BROWSER_FRAME)
        try:
            data = json.loads(text_data)
        except ValueError:
            raise Refused("invalid_frame") from None
        if not isinstance(data, dict):
            raise Refused("invalid_frame")
        return data

    async def _handle(self, data: dict[str, Any]) -> None:
        kind = _field(data, "kind") or "message"
        if kind == "sync":
            await self._catch_up(_int(data.get("after")) or 0)
            return
        if kind == "stop":
            await self._stop()
            return
        key = _field(data, "key")[:MAX_KEY_CHARS]
        if kind == "retry":
            await self._retry(data, key)
            return
        if kind == "message":
            text = _field(data, "text").strip()
            if not text:
                raise Refused("empty_message")
            if len(text) > MAX_TEXT_CHARS:
                raise Refused("message_too_long", limit=MAX_TEXT_CHARS)
            await self._start_turn(wire.UserMessage(text=text), Message.Kind.TEXT, text, key)
            return
        builder = {
            actions.ADD_TO_CART: self._add_to_cart,
            actions.UPDATE_QUANTITY: self._update_quantity,
            actions.REMOVE_FROM_CART: self._remove_from_cart,
            actions.QUICK_REPLY: self._quick_reply,
            actions.CHECKLIST_SUBMIT: self._checklist_submit,
            "undo_remove": self._undo_remove,
        }.get(kind)
        if builder is None:
            raise Refused("unknown_kind")
        action, label, source_seq = await builder(data)
        await self._start_turn(action, Message.Kind.ACTION, label, key, source_seq=source_seq)

    async def _add_to_cart(self, data: dict[str, Any]) -> tuple[wire.Action, str, None]:
        product = await self._shown_product(_field(data, "sku"))
        quantity = _valid_quantity(data.get("quantity"), product)
        label = _("Add: %(name)s × %(quantity)s") % {
            "name": formatting.display_name(product),
            "quantity": formatting.quantity(quantity, product.get("unit")),
        }
        return actions.add_to_cart(product["sku"], quantity), label, None

    async def _update_quantity(self, data: dict[str, Any]) -> tuple[wire.Action, str, None]:
        item = await self._cart_item(_field(data, "sku"))
        product = await _db(store.shown_product, self.conversation.pk, item["sku"]) or item
        quantity = _valid_quantity(data.get("quantity"), product)
        label = _("Change: %(name)s → %(quantity)s") % {
            "name": item.get("name", ""),
            "quantity": formatting.quantity(quantity, item.get("unit")),
        }
        return actions.update_quantity(item["sku"], quantity), label, None

    async def _remove_from_cart(self, data: dict[str, Any]) -> tuple[wire.Action, str, None]:
        item = await self._cart_item(_field(data, "sku"))
        label = _("Remove: %(name)s") % {"name": item.get("name", "")}
        return actions.remove_from_cart(item["sku"]), label, None

    async def _undo_remove(self, data: dict[str, Any]) -> tuple[wire.Action, str, None]:
        """Put back the line the last cart change removed, as it was (issue 16: undo after remove)."""
        line = await _db(store.removed_line, self.conversation.pk, _field(data, "sku"))
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

    async def _quick_reply(self, data: dict[str, Any]) -> tuple[wire.Action, str, int]:
        seq = _int(data.get("seq"))
        message = await _db(store.quick_replies, self.conversation.pk, seq) if seq else None
        if message is None or message.data.get("retired"):
            raise Refused("choice_expired")
        value = _field(data, "value")
        for reply in message.data.get("replies", []):
            if isinstance(reply, dict) and reply.get("value") == value:
                label = str(reply.get("label") or value)
                return actions.quick_reply(value, label), label, message.seq
        raise Refused("choice_expired")

    async def _checklist_submit(self, data: dict[str, Any]) -> tuple[wire.Action, str, int]:
        seq = _int(data.get("seq"))
        message = await _db(store.checklist, self.conversation.pk, seq) if seq else None
        if message is None or message.data.get("submitted") is not None:
            raise Refused("choice_expired")
        chosen = data.get("item", [])
        chosen = [chosen] if isinstance(chosen, str) else chosen
        if not isinstance(chosen, list):
            raise Refused("invalid_frame")
        by_id = {str(item.get("id")): item for item in message.data.get("items", []) if isinstance(item, dict)}
        picked = [by_id[str(value)] for value in chosen if str(value) in by_id]
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
        """Stop the running turn (issue 16): here if this process runs it, else in the process that does."""
        runner = get_relay().existing(self.conversation.pk)
        if runner is not None and runner.stop():
            return
        await self.channel_layer.group_send(self.conversation.group_name, {"type": "chat.stop"})

    async def _retry(self, data: dict[str, Any], key: str) -> None:
        """Send the last turn's message again as a new turn, when that turn failed or was stopped (issue 16)."""
        seq = _int(data.get("seq"))
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

    def _runner(self) -> ConversationRunner:
        conversation = self.conversation
        ref = ConversationRef(
            conversation.pk,
            conversation.group_name,
            conversation.user_id,
            conversation.upstream_id,
            conversation.store_id,
        )
        return get_relay().runner(ref)

    async def _start_turn(
        self,
        frame: wire.UserMessage | wire.Action,
        kind: str,
        text: str,
        key: str,
        *,
        source_seq: int | None = None,
    ) -> None:
        runner = self._runner()
        if runner.running:
            raise Refused("agent_busy")
        retry_after = await ratelimit.turn_bucket().take(self.user_key) or runner.window.retry_after()
        if retry_after:
            raise Refused("rate_limited", retry_after=retry_after)
        payload = store.plain(frame) if isinstance(frame, wire.Action) else {}
        started = await _db(
            store.begin_turn,
            self.conversation.pk,
            kind=kind,
            text=text,
            payload=payload,
            client_key=key,
            turn_limit=settings.VIZOCHOK_TURN_TIMEOUT + settings.VIZOCHOK_QUEUE_TIMEOUT,
            source_seq=source_seq,
        )
        if started.duplicate:
            logger.info("duplicate send %s ignored in conversation %s", key, self.conversation.pk)
            return
        if started.busy or started.message is None:
            raise Refused("agent_busy")
        runner.publish(rendering.state("busy"))
        runner.publish(rendering.replaced(started.changed) + rendering.appended([started.message]))
        runner.publish(rendering.status("thinking"))
        runner.start(frame, started.message.seq, self.language)

    async def _catch_up(self, after: int) -> None:
        """Catch a (re)connected tab up: what it missed, the reply being streamed, the turn state, the cart."""
        pk = self.conversation.pk
        missed = await _db(store.messages_after, pk, after)
        conversation = await _db(Conversation.objects.get, pk=pk)
        parts = [rendering.appended(missed)]
        runner = get_relay().existing(pk)
        live = runner.live_bubble() if runner is not None else None
        if live is not None:
            parts.append(rendering.text_delta(live[0], live[1], first=True))
        busy = conversation.is_busy(settings.VIZOCHOK_TURN_TIMEOUT + settings.VIZOCHOK_QUEUE_TIMEOUT)
        if busy and (runner is None or not runner.running):
            self._watch_orphan()  # the turn runs in another process: notice if that process dies
        parts.append(rendering.state("busy" if busy else "ready"))
        parts.append(
            rendering.session_restored(list(conversation.cart or []), conversation.cart_total, conversation.cart_count)
        )
        await self.send(text_data="".join(parts))

    def _watch_orphan(self) -> None:
        if getattr(self, "_orphan_watch", None) is not None and not self._orphan_watch.done():
            return
        group = self.conversation.group_name
        language = self.language

        async def publish(html: str) -> None:
            await self.channel_layer.group_send(group, {"type": "chat.fragment", "html": html})

        async def watch() -> None:
            with translation.override(language):
                await liveness.watch_orphan(self.conversation.pk, publish)

        self._orphan_watch: asyncio.Task[None] | None = asyncio.get_running_loop().create_task(watch())

    @database_sync_to_async
    def _owned(self, public_id: str, user_id: str) -> Conversation | None:
        return store.owned_conversation(public_id, user_id)


def _client_ip(scope: dict[str, Any]) -> str:
    """The peer address (the proxy's client address when Daphne runs with ``--proxy-headers``)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _field(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if isinstance(value, list):  # htmx sends repeated names as lists
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _valid_quantity(raw: Any, product: dict[str, Any]) -> Decimal:
    """The quantity if the product's minimum and step allow it (0.1 kg steps, whole pieces)."""
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    quantity = formatting.to_decimal(str(raw).replace(",", ".")) if raw is not None else Decimal(1)
    step, minimum = formatting.stepper_bounds(product)
    if quantity is None or quantity < minimum or quantity > 1000 or (quantity - minimum) % step != 0:
        raise Refused("invalid_quantity")
    return quantity
