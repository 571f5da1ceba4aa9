"""Catalog search and the rule-based assistant, without sockets."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from chat.sandbox.assistant import (
    RECIPES,
    STATUS_CODES,
    Assistant,
    InvalidInput,
    Session,
    TextRequest,
    read_input,
    split_deltas,
)
from chat.sandbox.catalog import PRODUCTS, Catalog, detect_language, stem
from chat.vizochok import actions
from chat.vizochok.messages import (
    Action,
    CartChanged,
    IngredientChecklist,
    ResponseComplete,
    Status,
    TextDelta,
    TextEnd,
    UserMessage,
    to_json,
)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog()


def test_catalog_shape() -> None:
    assert len(PRODUCTS) >= 60
    assert len({p.sku for p in PRODUCTS}) == len(PRODUCTS)
    assert {p.unit for p in PRODUCTS} == {"pcs", "kg", "l"}
    assert {p.promo_label for p in PRODUCTS} >= {"-15%", "2 за 1", "АКЦІЯ"}
    for product in PRODUCTS:
        if product.unit == "kg":
            assert product.quantity_step == Decimal("0.1")
        assert product.quantity_problem(product.min_quantity) is None
    for recipe in RECIPES:
        assert all(Catalog().get(i.sku) for i in recipe.ingredients)


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("молоко", "milk-001"),
        ("молока", "milk-001"),
        ("молоком", "milk-001"),
        ("яйця", "eggs-001"),
        ("яєць", "eggs-001"),
        ("eggs", "eggs-001"),
        ("milk", "milk-001"),
        ("помідорів", "tomato-001"),
        ("tomatoes", "tomato-001"),
        ("tomato paste", "tomatopaste-001"),
        ("картоплі", "potato-001"),
        ("potatoes", "potato-001"),
        ("bananas", "banana-001"),
        ("cherries", "tomato-001"),
        ("сиру", "cheese-001"),
        ("Show me some bread please", "bread-001"),
        ("olive oil", "oil-002"),
    ],
)
def test_search_handles_cases_and_plurals(catalog: Catalog, query: str, first: str) -> None:
    assert catalog.search(query)[0].sku == first


def test_search_misses_cleanly(catalog: Catalog) -> None:
    assert catalog.search("zzzz qqq") == []
    assert catalog.search("") == []


def test_stem_and_language() -> None:
    assert stem("молока") == stem("молоко") == stem("молоком")
    assert stem("tomatoes") == stem("tomato")
    assert stem("cherries") == "cherry"
    assert (detect_language("Молоко"), detect_language("milk"), detect_language("2")) == ("uk", "en", None)


def test_deltas_are_uneven_and_deterministic() -> None:
    text = "Ось що я знайшов для вас сьогодні: молоко, хліб і яйця."
    chunks = split_deltas(text, "seed")
    assert "".join(chunks) == text
    assert chunks == split_deltas(text, "seed")
    assert all(1 <= len(chunk) <= 12 for chunk in chunks)
    assert len({len(c) for c in chunks}) > 1


def _run(inputs: list[UserMessage | Action]) -> list[str]:
    assistant, session = Assistant(Catalog()), Session("conv_test")
    return [to_json(out) for frame in inputs for out in assistant.respond(session, read_input(frame))]


def test_assistant_is_deterministic() -> None:
    script: list[UserMessage | Action] = [
        UserMessage("молоко"),
        UserMessage("дешевше"),
        actions.add_to_cart("milk-003", "1.5"),
        UserMessage("pancakes"),
        actions.checklist_submit(["pancakes-flour", "pancakes-eggs"]),
    ]
    assert _run(script) == _run(script)


def test_turn_shape(catalog: Catalog) -> None:
    session = Session("conv_x")
    frames = Assistant(catalog).respond(session, TextRequest("olivier"))
    assert isinstance(frames[0], Status)
    assert frames[0].code in STATUS_CODES
    assert isinstance(frames[-1], ResponseComplete)
    assert frames[-1].conversation_id == "conv_x"
    assert sum(isinstance(f, TextEnd) for f in frames) == 2
    assert session.language == "en"
    assert isinstance(session.pending[0], IngredientChecklist)
    first_rich = next(i for i, f in enumerate(frames) if isinstance(f, IngredientChecklist))
    assert isinstance(frames[first_rich - 1], TextEnd)


@pytest.mark.parametrize(
    ("text", "sku", "quantity"),
    [
        ("додай два молока", "milk-001", Decimal(2)),
        ("купи 3 банани", "banana-001", Decimal(3)),
        ("додай 1,5 кг картоплі", "potato-001", Decimal("1.5")),
        ("add two milk", "milk-001", Decimal(2)),
        ("add eggs", "eggs-001", Decimal(1)),
        ("add 0.3 kg cheese", "cheese-001", Decimal("0.3")),
    ],
)
def test_cart_from_text(catalog: Catalog, text: str, sku: str, quantity: Decimal) -> None:
    session = Session("conv_x")
    frames = Assistant(catalog).respond(session, TextRequest(text))
    changed = next(f for f in frames if isinstance(f, CartChanged))
    assert (changed.sku, changed.quantity) == (sku, quantity)
    assert session.cart == {sku: quantity}


@pytest.mark.parametrize("quantity", ["0.25", "0.35", "51"])
def test_bad_quantities_leave_the_cart_alone(catalog: Catalog, quantity: str) -> None:
    session = Session("conv_x", language="en")
    frames = Assistant(catalog).respond(session, read_input(actions.add_to_cart("potato-001", quantity)))
    assert not any(isinstance(f, CartChanged) for f in frames)
    assert session.cart == {}
    assert any(isinstance(f, TextDelta) for f in frames)


def test_update_and_cheaper(catalog: Catalog) -> None:
    assistant, session = Assistant(catalog), Session("conv_x")
    assistant.respond(session, read_input(actions.add_to_cart("cheese-001", "0.2")))
    frames = assistant.respond(session, read_input(actions.update_quantity("cheese-001", "0.5")))
    changed = next(f for f in frames if isinstance(f, CartChanged))
    assert (changed.action, changed.total) == ("quantity_updated", Decimal("194.50"))
    assistant.respond(session, TextRequest("сир"))
    assistant.respond(session, TextRequest("дешевше"))
    prices = [catalog.get(sku).effective_price for sku in session.last_results]  # type: ignore[union-attr]
    assert prices == sorted(prices)


@pytest.mark.parametrize(
    "frame",
    [UserMessage("  "), Action(action="fly"), Action(action="add_to_cart", payload={"sku": 1})],
)
def test_read_input_rejects_nonsense(frame: UserMessage | Action) -> None:
    with pytest.raises(InvalidInput):
        read_input(frame)


def test_every_product_has_a_small_tile() -> None:
    tiles = Path(__file__).resolve().parents[2] / "static" / "chat" / "sandbox" / "products"
    for product in PRODUCTS:
        svg = tiles / f"{product.sku}.svg"
        assert svg.is_file(), product.sku
        assert svg.stat().st_size < 1024
        assert Catalog().item(product).image_url == f"/static/chat/sandbox/products/{product.sku}.svg"


@pytest.mark.parametrize(
    ("language", "amount", "expected"),
    [
        ("uk", "1234.5", "1\u00a0234,50\u00a0₴"),
        ("en", "1234.5", "₴1,234.50"),
        ("uk", "36.5", "36,50\u00a0₴"),
        ("en", "36.5", "₴36.50"),
    ],
)
def test_prices_in_replies_are_written_as_the_chat_page_writes_them(language: str, amount: str, expected: str) -> None:
    from django.utils import translation

    from chat.presentation.formatting import money
    from chat.sandbox.assistant import fmt_price

    assert fmt_price(Decimal(amount), language) == expected
    with translation.override(language):
        assert money(Decimal(amount)) == expected  # the page's own formatter agrees
