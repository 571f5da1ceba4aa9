"""chat.compat.channels_layer.RelayChannelLayer keeps InMemoryChannelLayer's semantics with a periodic expiry sweep."""

from __future__ import annotations

from typing import Any

import pytest
from channels.exceptions import ChannelFull

from chat.compat.channels_layer import RelayChannelLayer


async def test_group_send_reaches_every_member_in_order_with_its_own_copy() -> None:
    layer = RelayChannelLayer()
    a, b = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("conv", a)
    await layer.group_add("conv", b)
    for n in range(3):
        await layer.group_send("conv", {"type": "chat.fragment", "html": f"<p>{n}</p>"})
    got_a = [await layer.receive(a) for _ in range(3)]
    got_b = [await layer.receive(b) for _ in range(3)]
    assert [m["html"] for m in got_a] == ["<p>0</p>", "<p>1</p>", "<p>2</p>"]
    assert got_a == got_b
    assert got_a[0] is not got_b[0]


async def test_mutable_values_are_deep_copied() -> None:
    layer = RelayChannelLayer()
    channel = await layer.new_channel()
    message: dict[str, Any] = {"type": "x", "items": [1, 2]}
    await layer.send(channel, message)
    message["items"].append(3)
    assert (await layer.receive(channel))["items"] == [1, 2]


async def test_a_full_member_is_skipped_and_a_direct_send_raises() -> None:
    layer = RelayChannelLayer(capacity=1)
    full, other = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("conv", full)
    await layer.group_add("conv", other)
    await layer.send(full, {"type": "x"})
    await layer.group_send("conv", {"type": "y"})  # no error: full is skipped
    assert (await layer.receive(other))["type"] == "y"
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "z"})


async def test_expired_messages_and_memberships_are_swept() -> None:
    layer = RelayChannelLayer(expiry=-1, clean_interval=0)  # every message is already expired
    channel = await layer.new_channel()
    await layer.group_add("conv", channel)
    await layer.send(channel, {"type": "x"})
    await layer.group_send("conv", {"type": "y"})  # the sweep drops the expired message and the membership
    assert "conv" not in layer.groups or channel not in layer.groups["conv"]
