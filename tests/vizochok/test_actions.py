"""Every ``action`` frame comes from chat.vizochok.actions; check the wire shapes and the refusals."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from chat.vizochok import actions
from chat.vizochok.messages import Action, parse_client, to_json


def wire(action: Action) -> dict[str, object]:
    data: dict[str, object] = json.loads(to_json(action))
    return data


def test_add_to_cart() -> None:
    assert wire(actions.add_to_cart("milk-001", 2)) == {
        "type": "action",
        "action": "add_to_cart",
        "sku": "milk-001",
        "quantity": 2,
    }


def test_add_to_cart_defaults_to_one_and_strips_the_sku() -> None:
    assert wire(actions.add_to_cart("  milk-001 ")) == {
        "type": "action",
        "action": "add_to_cart",
        "sku": "milk-001",
        "quantity": 1,
    }


def test_fractional_quantity_stays_exact() -> None:
    frame = actions.add_to_cart("milk-003", "1.5")
    assert frame.payload["quantity"] == Decimal("1.5")
    assert wire(frame)["quantity"] == 1.5
    parsed = parse_client(to_json(frame))
    assert isinstance(parsed, Action)
    assert parsed.payload["quantity"] == Decimal("1.5")


def test_remove_from_cart() -> None:
    assert wire(actions.remove_from_cart("bread-01")) == {
        "type": "action",
        "action": "remove_from_cart",
        "sku": "bread-01",
    }


def test_update_quantity() -> None:
    assert wire(actions.update_quantity("bread-01", Decimal("3"))) == {
        "type": "action",
        "action": "update_quantity",
        "sku": "bread-01",
        "quantity": 3,
    }


def test_quick_reply_sends_value_and_label() -> None:
    assert wire(actions.quick_reply("cheaper", "Show cheaper")) == {
        "type": "action",
        "action": "quick_reply",
        "value": "cheaper",
        "label": "Show cheaper",
    }
    assert wire(actions.quick_reply("cheaper"))["label"] == "cheaper"


def test_checklist_submit() -> None:
    # A posted form may carry numbers where the signature says str: the builder stringifies them.
    assert wire(actions.checklist_submit(["flour", 2])) == {  # type: ignore[list-item]
        "type": "action",
        "action": "checklist_submit",
        "items": ["flour", "2"],
    }


def test_every_builder_uses_a_known_kind() -> None:
    built = [
        actions.add_to_cart("a"),
        actions.remove_from_cart("a"),
        actions.update_quantity("a", 1),
        actions.quick_reply("a"),
        actions.checklist_submit(["a"]),
    ]
    assert {frame.action for frame in built} == actions.KINDS
    assert actions.CART_KINDS < actions.KINDS


@pytest.mark.parametrize("sku", ["", "   ", None, 5])
def test_missing_sku_is_refused(sku: object) -> None:
    with pytest.raises(ValueError, match="sku"):
        actions.add_to_cart(sku)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sku"):
        actions.remove_from_cart(sku)  # type: ignore[arg-type]


@pytest.mark.parametrize("quantity", [0, -1, "0", "-0.5", "NaN", "Infinity"])
def test_non_positive_or_non_finite_quantity_is_refused(quantity: object) -> None:
    with pytest.raises(ValueError, match="quantity"):
        actions.add_to_cart("milk-001", quantity)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quantity"):
        actions.update_quantity("milk-001", quantity)  # type: ignore[arg-type]


def test_garbage_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="quantity"):
        actions.add_to_cart("milk-001", "lots")


def test_empty_quick_reply_and_checklist_are_refused() -> None:
    with pytest.raises(ValueError, match="value"):
        actions.quick_reply("")
    with pytest.raises(ValueError, match="item"):
        actions.checklist_submit([])
