"""Every ``action`` frame is built here, and nowhere else.

The reference (§7) states only that tapping "Add" sends an ``action`` with ``sku`` and ``quantity``; the name of
the discriminator and the quick-reply and checklist payloads are undocumented. These are the provisional shapes
the reference proposes, plus two cart-panel kinds. When the real schema is known, this module is the one place
to change: callers pass meaning (a sku, a quantity, chosen ids), never field names.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from .messages import Action

ADD_TO_CART = "add_to_cart"
REMOVE_FROM_CART = "remove_from_cart"
UPDATE_QUANTITY = "update_quantity"
QUICK_REPLY = "quick_reply"
CHECKLIST_SUBMIT = "checklist_submit"

#: The kinds a client may send; anything else is refused before it reaches the upstream.
KINDS = frozenset({ADD_TO_CART, REMOVE_FROM_CART, UPDATE_QUANTITY, QUICK_REPLY, CHECKLIST_SUBMIT})

#: Kinds that change the cart and are confirmed by a ``cart_changed`` frame.
CART_KINDS = frozenset({ADD_TO_CART, REMOVE_FROM_CART, UPDATE_QUANTITY})


def _quantity(quantity: Decimal | int | str) -> Decimal:
    try:
        value = Decimal(str(quantity))
    except InvalidOperation:  # an ArithmeticError, not a ValueError: callers catch ValueError
        raise ValueError("quantity must be a positive number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError("quantity must be a positive number")
    return value


def add_to_cart(sku: str, quantity: Decimal | int | str = 1) -> Action:
    """The "Add" tap on a product card with the stepper's quantity (reference §4.3)."""
    return Action(action=ADD_TO_CART, payload={"sku": _sku(sku), "quantity": _quantity(quantity)})


def remove_from_cart(sku: str) -> Action:
    return Action(action=REMOVE_FROM_CART, payload={"sku": _sku(sku)})


def update_quantity(sku: str, quantity: Decimal | int | str) -> Action:
    return Action(action=UPDATE_QUANTITY, payload={"sku": _sku(sku), "quantity": _quantity(quantity)})


def quick_reply(value: str, label: str | None = None) -> Action:
    """A tapped pill. ``label`` is sent too, so an upstream that wants the visible text has it."""
    if not value:
        raise ValueError("a quick reply needs a value")
    return Action(action=QUICK_REPLY, payload={"value": value, "label": label or value})


def checklist_submit(items: Iterable[str]) -> Action:
    """The chosen ingredient ids of a checklist, as one action."""
    chosen = [str(item) for item in items]
    if not chosen:
        raise ValueError("a checklist submit needs at least one item")
    return Action(action=CHECKLIST_SUBMIT, payload={"items": chosen})


def _sku(sku: str) -> str:
    if not isinstance(sku, str) or not sku.strip():
        raise ValueError("a sku is required")
    return sku.strip()
