"""A browser tab's socket for tests that drive a real server process: what it sends is what the page's forms send."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from websockets.asyncio.client import ClientConnection

#: ``max_queue`` for ``websockets.connect`` of a test's tab: read every frame as it comes, however many the test
#: leaves unread. A test reads only up to what it waits for, and websockets stops reading the socket while 16 frames
#: wait unread (its default), so the server's answer to the tab's close waited behind them for the whole
#: ``close_timeout`` (10 s a tab, seen in tests/production/test_line.py).
MAX_QUEUE = None


class Tab:
    def __init__(self, ws: ClientConnection, timeout: float = 15.0) -> None:
        self.ws = ws
        self.timeout = timeout
        self.seen: list[str] = []

    async def send(self, **fields: Any) -> None:
        await self.ws.send(json.dumps(fields))

    async def until(self, needle: str, timeout: float | None = None) -> str:
        """Frames received up to the first containing ``needle`` (joined)."""
        frames: list[str] = []
        async with asyncio.timeout(self.timeout if timeout is None else timeout):
            while True:
                frame = await self.ws.recv()
                text = frame if isinstance(frame, str) else frame.decode()
                frames.append(text)
                self.seen.append(text)
                if needle in text:
                    return "".join(frames)

    def last_seq(self) -> int:
        seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', "".join(self.seen))]
        return max(seqs, default=0)

    async def close(self) -> None:
        await self.ws.close()
