"""The reply being streamed, readable from every process (Redis), so any process can catch a tab up mid-reply.

Only the process running the turn writes it, in the order its deltas go out; a tab connected to another process
reads the bubble id and its text so far, then keeps the deltas that reach it through the channel layer beyond
that length (they carry their offsets, ``chat.feed.feed``). The same holds for the turn's place in the line while
it waits: a tab that joins in another process is told it in its catch-up, not only at the line's next move.
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

    def _place_key(self, group: str) -> str:
        return f"{self._prefix}{group}:place"

    async def write_place(self, group: str, place: int, seconds: float) -> None:
        """The waiting turn's place (1 = next) and estimate; place 0: out of the line (the mirror goes)."""
        if place > 0:
            await self._client.set(self._place_key(group), f"{place} {seconds:.3f}", ex=EXPIRY_SECONDS)
        else:
            await self._client.delete(self._place_key(group))

    async def read_place(self, group: str) -> tuple[int, float] | None:
        value = await self._client.get(self._place_key(group))
        if not value:
            return None
        place, seconds = value.decode().split()
        return int(place), float(seconds)

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
