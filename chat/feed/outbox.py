"""Ordered delivery of fragments to every tab of one conversation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chat.feed.tabs import LocalTabs, spans_processes
from chat.turns import liveness

logger = logging.getLogger("chat.feed.outbox")


class Outbox:
    """Fragments for one conversation, sent in the order they were put.

    Fragments come from the event loop of a turn and from coalescing timers; sending each from its own task could
    reorder them, so one sender drains the queue, joining whatever piled up meanwhile into a single frame. Tabs in
    this process get it directly; with a layer that spans processes, the group gets it too, for tabs elsewhere.
    """

    def __init__(self, layer: Any, group: str, tabs: LocalTabs) -> None:
        self._layer = layer
        self._group = group
        self._tabs = tabs
        self._remote = spans_processes(layer)
        self._pending: list[str] = []
        self._sender: asyncio.Task[None] | None = None

    def put(self, html: str) -> None:
        if not html:
            return
        self._pending.append(html)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        while self._pending:
            batch, self._pending = "".join(self._pending), []
            await self._tabs.deliver(self._group, batch)
            if not self._remote:
                continue
            message = {"type": "chat.fragment", "html": batch, "origin": liveness.PROCESS_ID}
            try:
                await self._layer.group_send(self._group, message)
            except Exception:
                # A full or broken layer must not kill the turn: the database still has everything.
                logger.exception("could not deliver a fragment to %s", self._group)

    async def drain(self) -> None:
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)
