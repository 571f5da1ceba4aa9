"""The reply being streamed, readable from every process (Redis), so any process can catch a tab up mid-reply.

Only the process running the turn writes it, in the order its deltas go out; a tab connected to another process
reads the bubble id and its text so far, then keeps the deltas that reach it through the channel layer beyond
that length (they carry their offsets, ``chat.feed.feed``).
"""

from __future__ import annotations

from typing import Any

#: A reply's mirror outlives a process that died mid-turn by this long at most.
EXPIRY_SECONDS = 600


class LiveText:
    def __init__(self, url: str, prefix: str = "vizochok:live:") -> None:
        import redis.asyncio as redis

        self._client: Any = redis.Redis.from_url(url, socket_timeout=5.0)
        self._prefix = prefix

    def _keys(self, group: str) -> tuple[str, str]:
        return f"{self._prefix}{group}:bubble", f"{self._prefix}{group}:text"

    async def write(self, group: str, bubble: str, offset: int, text: str) -> None:
        bubble_key, text_key = self._keys(group)
        async with self._client.pipeline(transaction=True) as pipe:
            if offset == 0:
                pipe.set(bubble_key, bubble, ex=EXPIRY_SECONDS)
                pipe.set(text_key, text, ex=EXPIRY_SECONDS)
            else:
                pipe.append(text_key, text)
                pipe.expire(text_key, EXPIRY_SECONDS)
            await pipe.execute()

    async def clear(self, group: str) -> None:
        await self._client.delete(*self._keys(group))

    async def read(self, group: str) -> tuple[str, str] | None:
        bubble, text = await self._client.mget(*self._keys(group))
        if not bubble or text is None:
            return None
        return bubble.decode(), text.decode()

    async def close(self) -> None:
        await self._client.aclose()
