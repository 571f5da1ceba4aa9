"""One object per running event loop, for the things that hold sockets, tasks or futures (they belong to one loop
and cannot be shared across loops: Daphne runs one, tests may run several in turn)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """The running loop's, made on first use."""
        loop = asyncio.get_running_loop()
        item = self._items.get(loop)
        if item is None:
            item = self._items[loop] = self._factory()
        return item

    def pop(self) -> T | None:
        """The running loop's, forgotten (the next :meth:`get` makes a new one); None if it had none."""
        return self._items.pop(asyncio.get_running_loop(), None)
