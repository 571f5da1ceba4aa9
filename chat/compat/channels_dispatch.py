"""channels: a consumer's handler runs without the ``close_old_connections`` hop before it.

channels' ``AsyncConsumer.dispatch`` runs ``close_old_connections()`` through ``sync_to_async`` before every
handler: one more trip through the single thread all database work queues on, per browser frame. Every database
call of the chat consumer goes through ``database_sync_to_async`` (``chat.persistence.db``), which does the same
around the call itself, so the hop buys nothing there. The consumer's ``dispatch`` finds its handler here; this
repeats what channels' own ``dispatch`` of the pinned version does, minus the hop.

Off (``VIZOCHOK_COMPAT_CHANNELS_DISPATCH=0``) or under another version, the hop runs before every handler as in
channels itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import aclose_old_connections

from chat.compat.fences import fence

FENCE = fence(
    "CHANNELS_DISPATCH",
    {"channels": {"4.3.2"}},
    "a consumer's handler runs without channels' close_old_connections hop through the database thread",
)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


async def handler_for(consumer: Any, message: dict[str, Any]) -> Handler:
    """The handler channels' ``dispatch`` would call for ``message``, ready to be called."""
    handler: Handler | None = getattr(consumer, get_handler_name(message), None)
    if handler is None:
        raise ValueError(f"No handler for message type {message['type']}")
    if not FENCE.active():
        await aclose_old_connections()
    return handler
