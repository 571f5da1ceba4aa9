"""The per-shopper turn bucket: a burst, then one turn per refill interval, with a localized refusal."""

from __future__ import annotations

from typing import Any

import pytest

from chat.ops.ratelimit import Bucket
from tests.chat.conftest import READY, connected, make_shopper, receive_until, send


async def test_bucket_allows_a_burst_then_refills() -> None:
    bucket = Bucket(per_minute=60, burst=2)
    assert await bucket.take("shopper", now=100.0) == 0
    assert await bucket.take("shopper", now=100.0) == 0
    assert await bucket.take("shopper", now=100.0) == pytest.approx(1.0)
    assert await bucket.take("someone-else", now=100.0) == 0
    assert await bucket.take("shopper", now=101.0) == 0


@pytest.mark.django_db(transaction=True)
async def test_a_shopper_over_the_turn_rate_is_refused_before_the_upstream(sandbox: Any, settings: Any) -> None:
    settings.VIZOCHOK_TURNS_PER_MINUTE = 1
    settings.VIZOCHOK_TURN_BURST = 1
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        await receive_until(tab, READY)
        await send(tab, kind="message", text="bread", key="k2")
        html = await receive_until(tab, "chat-error")
    assert 'data-code="rate_limited"' in html
    assert "data-retry-after" in html
    assert "too quickly" in html
