from __future__ import annotations

from decimal import Decimal

from django.utils import translation

from chat.presentation import formatting


def test_ukrainian_prices_and_weights() -> None:
    with translation.override("uk"):
        assert formatting.money(Decimal("42.9")) == "42,90\u00a0₴"
        assert formatting.money(Decimal("1234.5")) == "1\u00a0234,50\u00a0₴"
        assert formatting.quantity(Decimal("0.3"), "kg") == "0,3\u00a0кг"
        assert formatting.quantity(2, "pcs") == "2\u00a0шт."


def test_english_prices_and_weights() -> None:
    with translation.override("en"):
        assert formatting.money("42.9") == "₴42.90"
        assert formatting.quantity("0.30", "kg") == "0.3\u00a0kg"


def test_garbage_is_not_formatted() -> None:
    assert formatting.money("NaN") == ""
    assert formatting.money(True) == ""
    assert formatting.quantity(None) == ""


def test_display_name_follows_the_language() -> None:
    product = {"name": "Молоко", "name_en": "Milk"}
    with translation.override("en"):
        assert formatting.display_name(product) == "Milk"
    with translation.override("uk"):
        assert formatting.display_name(product) == "Молоко"
    assert formatting.display_name({"name": "Хліб"}) == "Хліб"


def test_editable_numbers_use_the_decimal_mark_without_grouping() -> None:
    with translation.override("uk"):
        assert formatting.editable_number(Decimal("0.50")) == "0,5"
        assert formatting.editable_number(1000) == "1000"
    with translation.override("en"):
        assert formatting.editable_number("1.5") == "1.5"


def test_the_cart_count_is_its_lines() -> None:
    """2 kg of potatoes and 3 bottles of milk are 2 lines (issue 16: the badge read "4,8")."""
    items = [{"sku": "potato-001", "quantity": 2, "unit": "kg"}, {"sku": "milk-001", "quantity": 3}, "garbage"]
    assert formatting.cart_lines(items) == 2
    assert formatting.cart_lines(None) == 0


def test_a_cart_change_says_its_quantity_with_the_unit() -> None:
    change = {
        "action": "item_selected",
        "sku": "beef-001",
        "quantity": 0.8,
        "items": [{"sku": "beef-001", "quantity": 0.8, "unit": "kg"}],
    }
    with translation.override("uk"):
        assert formatting.changed_quantity(change) == "0,8\u00a0кг"
        assert formatting.changed_quantity({**change, "unit": "l"}) == "0,8\u00a0л"
        assert formatting.changed_quantity({"quantity": 2, "sku": "x"}) == "2\u00a0шт."
        assert formatting.changed_quantity({"action": "item_removed", "sku": "x"}) == ""


def test_a_number_no_shop_has_is_not_shown_and_breaks_nothing() -> None:
    """A hostile upstream's price of 1e30 made ``quantize`` raise: the cart failed to render for every tab, every
    catch-up answered relay_error and the page answered 500 for good. Past any real price or quantity, a
    number is unreadable: not shown, never raised (from 10^10: the most the cart's total column holds)."""
    assert formatting.line_total({"price": 1e30, "quantity": 1}) is None
    assert formatting.line_total({"price": "42.90", "quantity": "1e10"}) is None
    assert formatting.money(Decimal("1e30")) == ""
    assert formatting.number("1e-999999") == ""  # a step that small is no number a shopper can use either
    assert formatting.line_total({"price": "42.90", "quantity": 2}) == Decimal("85.80")
