"""A sliding-window counter mirroring the upstream's 10 messages per 60 s per socket (reference §14)."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable


class SlidingWindow:
    def __init__(self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._stamps: collections.deque[float] = collections.deque()

    def retry_after(self) -> int:
        """0 if one more send fits now, else whole seconds until it will."""
        now = self._clock()
        while self._stamps and now - self._stamps[0] >= self.seconds:
            self._stamps.popleft()
        if len(self._stamps) < self.limit:
            return 0
        return max(1, math.ceil(self.seconds - (now - self._stamps[0])))

    def record(self) -> None:
        self._stamps.append(self._clock())
