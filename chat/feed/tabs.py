"""The browser tabs connected to this process, by conversation group.

A streamed fragment is produced and consumed in the same process almost always. Through the channel layer it
costs a queue put, a wake-up of the consumer's receive loop, a task and an ``asyncio.wait`` per tab, and a hop
through ``dispatch``: more than the relay's own work per frame (README, "Benchmark"). So the runner hands its
fragments straight to the tabs registered here, and uses the channel layer only to reach tabs in other processes
(a layer that spans processes, i.e. Redis), marked with this process's id so its own tabs skip the second copy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from channels.layers import InMemoryChannelLayer

logger = logging.getLogger("chat.feed.tabs")

Deliver = Callable[[str], Awaitable[None]]


class LocalTabs:
    def __init__(self) -> None:
        self._groups: dict[str, dict[str, Deliver]] = {}

    def attach(self, group: str, channel: str, deliver: Deliver) -> None:
        self._groups.setdefault(group, {})[channel] = deliver

    def detach(self, group: str, channel: str) -> None:
        tabs = self._groups.get(group)
        if tabs is not None:
            tabs.pop(channel, None)
            if not tabs:
                del self._groups[group]

    def count(self, group: str) -> int:
        return len(self._groups.get(group, ()))

    async def deliver(self, group: str, html: str) -> None:
        """Hand ``html`` to every tab of ``group`` here; one tab failing (closing) does not stop the others."""
        for channel, deliver in list(self._groups.get(group, {}).items()):
            try:
                await deliver(html)
            except Exception:
                logger.debug("could not deliver a fragment to %s", channel, exc_info=True)


def spans_processes(layer: object) -> bool:
    """Whether the channel layer reaches other processes (Redis), so fragments must go through it as well."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)
