"""The browser tabs connected to this process, by conversation group, each with its language.

A streamed fragment is produced and consumed in the same process almost always. Through the channel layer it
costs a queue put, a wake-up of the consumer's receive loop, a task and an ``asyncio.wait`` per tab, and a hop
through ``dispatch``: more than the relay's own work per frame (docs/benchmarks.md). So the feed hands its
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
        self._groups: dict[str, dict[str, tuple[Deliver, str]]] = {}

    def attach(self, group: str, channel: str, deliver: Deliver, language: str) -> None:
        self._groups.setdefault(group, {})[channel] = (deliver, language)

    def detach(self, group: str, channel: str) -> None:
        tabs = self._groups.get(group)
        if tabs is not None:
            tabs.pop(channel, None)
            if not tabs:
                del self._groups[group]

    def count(self, group: str) -> int:
        return len(self._groups.get(group, ()))

    def languages(self, group: str) -> set[str]:
        """The languages the tabs of ``group`` here are in: a fragment is rendered once for each."""
        return {language for _deliver, language in self._groups.get(group, {}).values()}

    async def deliver(self, group: str, html: dict[str, str]) -> None:
        """Hand each tab of ``group`` here its language's ``html``; one tab failing (closing) stops no other."""
        for channel, (deliver, language) in list(self._groups.get(group, {}).items()):
            text = html.get(language)
            if text is None:
                continue
            try:
                await deliver(text)
            except Exception:
                logger.debug("could not deliver a fragment to %s", channel, exc_info=True)


def spans_processes(layer: object) -> bool:
    """Whether the channel layer reaches other processes (Redis), so fragments must go through it as well."""
    return layer is not None and not isinstance(layer, InMemoryChannelLayer)
