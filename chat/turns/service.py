"""The relay of one event loop: its upstream slots, its embedded sandbox and its conversation runners."""

from __future__ import annotations

import asyncio
import hashlib
import logging

from channels.layers import get_channel_layer
from django.conf import settings

from chat.feed.live import LiveText
from chat.feed.tabs import LocalTabs, spans_processes
from chat.ops.loops import PerLoop
from chat.turns.ahead import AheadPolicy
from chat.turns.runner import ConversationRef, ConversationRunner
from chat.turns.slots import LinePolicy, RedisSlots, Slots, make_slots
from chat.turns.upstream import EmbeddedSandbox
from chat.vizochok.client import Resume

logger = logging.getLogger(__name__)


class Relay:
    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.sandbox = EmbeddedSandbox()
        # The limit belongs to the key, so the shared counter is named after (a hash of) the key, never the key.
        key_hash = hashlib.sha256(settings.VIZOCHOK_API_KEY.encode()).hexdigest()[:16]
        self.slots: Slots = make_slots(
            settings.VIZOCHOK_MAX_CONNECTIONS,
            settings.REDIS_URL,
            f"vizochok:upstream-slots:{key_hash}",
            ttl=settings.VIZOCHOK_SLOT_TTL,
            policy=LinePolicy(
                per_client=settings.VIZOCHOK_QUEUED_PER_ADDRESS,
                max_wait=settings.VIZOCHOK_LINE_MAX_WAIT,
            ),
        )
        #: Whether turns next in line open their upstream socket while they wait (chat/turns/ahead.py).
        self.ahead = AheadPolicy(settings.VIZOCHOK_OPEN_AHEAD)
        #: The upstream answered an ``action`` with ``invalid_json`` (its schema is not the reference's guess): taps
        #: go as the shopper's words (``wire.Action.text``) from then on.
        self.actions_refused = False
        #: Where the upstream reads a conversation's id (``auth`` or only ``message``), learnt once per process.
        self.resume = Resume()
        #: The tabs connected to this loop: the runners' fragments reach them without the channel layer.
        self.tabs = LocalTabs()
        #: The reply being streamed, mirrored for catch-ups in other processes (only when there are others).
        self.live: LiveText | None = (
            LiveText(settings.REDIS_URL) if settings.REDIS_URL and spans_processes(self.layer) else None
        )
        self._runners: dict[int, ConversationRunner] = {}

    def runner(self, ref: ConversationRef) -> ConversationRunner:
        runner = self._runners.get(ref.pk)
        if runner is None:
            runner = self._runners[ref.pk] = ConversationRunner(self, ref)
        elif ref.upstream_id and not runner.upstream_id:
            runner.upstream_id = ref.upstream_id
        return runner

    def existing(self, pk: int) -> ConversationRunner | None:
        return self._runners.get(pk)

    def adopt(self, runner: ConversationRunner) -> None:
        """Register a runner again that was forgotten while a new turn was already starting on it."""
        self._runners.setdefault(runner.pk, runner)

    def forget(self, runner: ConversationRunner) -> None:
        if self._runners.get(runner.pk) is runner:
            del self._runners[runner.pk]

    @property
    def runners(self) -> int:
        return len(self._runners)

    async def live_text(self, pk: int, group: str) -> tuple[str, str] | None:
        """The reply being streamed in ``pk``, from its runner here or from the mirror of another process's."""
        runner = self._runners.get(pk)
        if runner is not None and runner.running:
            return runner.live_bubble()
        if self.live is not None:
            return await self.live.read(group)
        return None

    async def place_in_line(self, pk: int, group: str) -> tuple[int, float] | None:
        """The place and estimate of ``pk``'s turn while it waits in line, here or (from the mirror) elsewhere."""
        runner = self._runners.get(pk)
        if runner is not None and runner.running:
            return runner.place_in_line
        if self.live is not None:
            try:
                return await self.live.read_place(group)
            except Exception:  # the place is a courtesy: a Redis fault must not fail the catch-up it rides in
                logger.warning("could not read the place in line of conversation %s", pk, exc_info=True)
        return None

    async def close(self) -> None:
        """Close every upstream socket (graceful shutdown, tests); running turns end as interrupted."""
        await asyncio.gather(*(runner.close() for runner in list(self._runners.values())), return_exceptions=True)
        self._runners.clear()
        await self.ahead.close()
        await self.sandbox.close()
        if isinstance(self.slots, RedisSlots):
            await self.slots.close()
        if self.live is not None:
            await self.live.close()


_relays: PerLoop[Relay] = PerLoop(Relay)


def get_relay() -> Relay:
    """The relay of the running loop: sockets and tasks belong to one loop and cannot be shared across loops."""
    return _relays.get()


async def close_relay() -> None:
    """Close the running loop's relay, if it has one (graceful shutdown: ``chat.web.lifecycle``)."""
    relay = _relays.pop()
    if relay is not None:
        await relay.close()
