"""Real turns through the relay (the consumer, the turn engine and the sandbox on loopback) show on the insights page.

A shopper finds milk (product cards), adds it to the cart, asks for something the catalog lacks, then sends once too
often for the upstream's rate limit: each finished turn leaves one Turn row, and the page reports all four.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from chat.models import Turn
from tests.chat.conftest import READY, connected, make_shopper, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


def first_sku(html: str) -> str:
    match = re.search(r'class="product-card" data-sku="([^"]+)"', html)
    assert match, "no product card in the frames"
    return match.group(1)


@database_sync_to_async
def recorded() -> list[Turn]:
    return list(Turn.objects.order_by("seq"))


@database_sync_to_async
def insights_page() -> Any:
    user = User.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    client = Client(HTTP_ACCEPT_LANGUAGE="uk")
    client.force_login(user)
    return client.get(reverse("admin_insights"), {"period": "today"})


async def test_turns_through_the_relay_show_on_the_insights_page(sandbox: Any) -> None:
    sandbox.config.messages_per_window = 3  # the upstream refuses the fourth message on this socket
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="milk", key="k1")
        sku = first_sku(await receive_until(tab, READY))
        await send(tab, kind="add_to_cart", sku=sku, quantity="2", key="k2")
        assert 'data-change="item_selected"' in await receive_until(tab, READY)
        await send(tab, kind="message", text="xyzzy quux", key="k3")
        await receive_until(tab, READY)
        await send(tab, kind="message", text="bread", key="k4")
        assert 'data-code="rate_limit_exceeded"' in await receive_until(tab, READY)

    turns = await recorded()
    assert [(t.query, t.outcome, t.error_code) for t in turns] == [
        ("milk", "answered", ""),
        ("", "answered", ""),
        ("xyzzy quux", "answered", ""),
        ("bread", "failed", "rate_limit_exceeded"),
    ]
    milk, add, missing, refused = turns
    assert {t.conversation_id for t in turns} == {conversation.pk}
    assert {(t.store_id, t.user_id) for t in turns} == {("s", "anon-test")}
    assert milk.had_cards and not missing.had_cards
    assert add.cart_adds == 1 and add.cart_total is not None and add.cart_total > 0
    assert [item["sku"] for item in add.added] == [sku] and add.added[0]["quantity"] == "2"
    assert milk.first_token_ms is not None and milk.duration_ms is not None
    assert milk.first_token_ms <= milk.duration_ms
    assert refused.first_token_ms is None and refused.duration_ms is not None
    assert [t.seq for t in turns] == sorted({t.seq for t in turns})  # one row per turn, the user message's seq

    response = await insights_page()
    assert response.status_code == 200
    total = response.context["total"]
    assert (total.conversations, total.shoppers, total.turns, total.adds, total.errors) == (1, 1, 4, 1, 1)
    assert total.conversion == 100.0
    charts = {chart.key: chart for chart in response.context["charts"]}
    assert [row[1] for row in charts["products"].raw] == [sku]
    assert [row[0] for row in charts["queries"].raw] == ["xyzzy quux"]
    page = response.content.decode()
    assert "Забагато повідомлень" in page  # the error's Ukrainian name, in the errors chart's legend and table
    assert "xyzzy quux" in page and add.added[0]["name"] in page


async def test_only_turns_that_showed_nothing_are_queries_without_products(sandbox: Any) -> None:
    """A recipe answered with a checklist and a cart change asked in words are answers, not misses (issue 25)."""
    key, conversation = await make_shopper()
    async with connected(key, conversation) as tab:
        await send(tab, kind="message", text="borscht", key="k1")
        assert "checklist" in await receive_until(tab, READY)
        await send(tab, kind="message", text="додай два молока", key="k2")
        assert "data-change=" in await receive_until(tab, READY)
        await send(tab, kind="message", text="xyzzy quux", key="k3")
        await receive_until(tab, READY)

    response = await insights_page()
    charts = {chart.key: chart for chart in response.context["charts"]}
    assert [row[0] for row in charts["queries"].raw] == ["xyzzy quux"]
