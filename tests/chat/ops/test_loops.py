"""``PerLoop``: one object per running event loop, made on first use."""

from __future__ import annotations

import asyncio

from chat.ops.loops import PerLoop


def test_each_loop_has_its_own_and_pop_forgets_it() -> None:
    made: list[object] = []

    def make() -> object:
        made.append(object())
        return made[-1]

    per_loop = PerLoop(make)

    async def twice() -> tuple[object, object]:
        return per_loop.get(), per_loop.get()

    first = asyncio.run(twice())
    second = asyncio.run(twice())
    assert first[0] is first[1] and second[0] is second[1] and first[0] is not second[0]

    async def popped() -> tuple[object | None, object | None, object]:
        item = per_loop.get()
        return per_loop.pop(), per_loop.pop(), item

    gone, again, item = asyncio.run(popped())
    assert gone is item and again is None
