"""The in-process channel layer used when no Redis is configured (one Daphne process, dev, tests, the bench).

channels' ``InMemoryChannelLayer`` sweeps every channel and every group membership for expired entries on each
``group_send`` and ``receive``: O(open sockets) per streamed fragment, the largest single cost of a frame with a
few hundred tabs open. This subclass keeps its semantics (capacity, ``ChannelFull``, message and group expiry,
a copy per receiver) but sweeps at most every ``clean_interval`` seconds, so a fragment costs O(group size):

* expiry is checked on a timer instead of on every call, so an expired message (60 s unread by default) or group
  membership (a day) may live up to ``clean_interval`` longer than before;
* ``group_send`` puts the message on each member's queue directly instead of through one task per member (the
  puts never wait), in the same order;
* a message whose values are all immutable (the relay's ``{"type": ..., "html": ...}``) is copied shallowly,
  which is what ``deepcopy`` amounts to for it.

It overrides the private ``_clean_expired`` and writes the private ``channels`` and ``groups`` of the pinned
channels. Off (``VIZOCHOK_COMPAT_CHANNELS_LAYER=0``) or under another version, every method is channels' own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from copy import deepcopy
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

from chat.compat.fences import fence

FENCE = fence(
    "CHANNELS_LAYER",
    {"channels": {"4.3.2"}},
    "the in-memory channel layer sweeps expired entries on a timer, not on every send",
)

_IMMUTABLE = (str, int, float, bool, bytes, type(None))


class RelayChannelLayer(InMemoryChannelLayer):
    def __init__(self, clean_interval: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clean_interval = clean_interval
        self._next_clean = 0.0
        #: Decided once, when the layer is made (at the first socket): the patch or channels' own methods.
        self.patched = FENCE.active()

    def _clean_expired(self) -> None:
        if not self.patched:
            return super()._clean_expired()  # type: ignore[misc, no-any-return]  # private, absent from the stubs
        now = time.monotonic()
        if now < self._next_clean:
            return
        self._next_clean = now + self.clean_interval
        super()._clean_expired()  # type: ignore[misc]  # private in channels, so absent from its stubs

    def _put(self, channel: str, message: dict[str, Any]) -> None:
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        immutable = all(isinstance(value, _IMMUTABLE) for value in message.values())
        copy = dict(message) if immutable else deepcopy(message)
        try:
            queue.put_nowait((time.time() + self.expiry, copy))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        if not self.patched:
            return await super().send(channel, message)
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        self._put(channel, message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        if not self.patched:
            return await super().group_send(group, message)
        assert isinstance(message, dict), "Message is not a dict"
        assert "__asgi_channel__" not in message
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):
                self._put(channel, message)
