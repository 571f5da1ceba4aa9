"""``chat.feed.tabs``: fragments reach this process's tabs directly, in order, whatever one tab does."""

from __future__ import annotations

from channels.layers import InMemoryChannelLayer

from chat.compat.channels_layer import RelayChannelLayer
from chat.feed.tabs import LocalTabs, spans_processes


async def test_every_tab_of_the_group_gets_it_even_if_one_fails() -> None:
    tabs = LocalTabs()
    got: dict[str, list[str]] = {"a": [], "b": []}

    async def broken(html: str) -> None:
        raise RuntimeError("the tab is closing")

    async def collect_a(html: str) -> None:
        got["a"].append(html)

    async def collect_b(html: str) -> None:
        got["b"].append(html)

    tabs.attach("conv-1", "a", collect_a, "en")
    tabs.attach("conv-1", "broken", broken, "en")
    tabs.attach("conv-1", "b", collect_b, "en")
    tabs.attach("conv-2", "other", broken, "en")
    await tabs.deliver("conv-1", {"en": "<p>1</p>"})
    await tabs.deliver("conv-1", {"en": "<p>2</p>"})

    assert got == {"a": ["<p>1</p>", "<p>2</p>"], "b": ["<p>1</p>", "<p>2</p>"]}


async def test_a_detached_tab_gets_nothing_and_empty_groups_go() -> None:
    tabs = LocalTabs()
    got: list[str] = []

    async def collect(html: str) -> None:
        got.append(html)

    tabs.attach("conv-1", "a", collect, "en")
    tabs.detach("conv-1", "a")
    tabs.detach("conv-1", "a")  # twice (a disconnect after a failed connect) is harmless
    await tabs.deliver("conv-1", {"en": "<p>late</p>"})

    assert got == [] and tabs.count("conv-1") == 0


def test_only_a_layer_beyond_this_process_needs_the_group_copy() -> None:
    assert not spans_processes(RelayChannelLayer())
    assert not spans_processes(InMemoryChannelLayer())
    assert not spans_processes(None)
    assert spans_processes(object())  # e.g. channels_redis' RedisChannelLayer
