"""Coalescing of streamed text: one browser frame per bubble at most every ``interval`` seconds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class BubbleStream:
    """The assistant bubble being streamed.

    The first delta goes out at once, later ones wait until ``interval`` has passed since the previous frame, so a
    fast upstream costs the browser at most ~33 frames a second while a slow one adds no latency at all.
    """

    def __init__(self, bubble: str, emit: Callable[[str, str, bool], None], interval: float) -> None:
        self.bubble = bubble
        self._emit = emit
        self._interval = interval
        self._parts: list[str] = []
        self._pending: list[str] = []
        self._started = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def add(self, delta: str) -> None:
        if not delta:
            return
        self._parts.append(delta)
        self._pending.append(delta)
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last + self._interval - loop.time()
        if wait <= 0:
            self.flush()
        else:
            self._timer = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        chunk, self._pending = "".join(self._pending), []
        self._emit(self.bubble, chunk, not self._started)
        self._started = True
        self._last = asyncio.get_running_loop().time()

    def finish(self) -> str:
        """Stop the timer and return the whole text; pending text is not emitted (the final bubble replaces it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = []
        return self.text
