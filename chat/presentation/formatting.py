"""Prices, quantities and units formatted for the active language (uk: ``42,90 ₴``, ``0,3 кг``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import formats
from django.utils.translation import get_language, pgettext
from django.utils.translation import gettext as _

#: The decimal exponents a price or a quantity a shop shows can have: below a billionth or from ten billion up (the
#: most the cart's total column holds, ``chat.persistence.store.storable_total``), a number is nobody's price (and
#: 1e30 made ``quantize`` raise, past the decimal context's 28 digits).
_SMALLEST_EXPONENT, _LARGEST_EXPONENT = -9, 9


def to_decimal(value: Any) -> Decimal | None:
    """A price or a quantity from untrusted data, or None: not a number, not finite, or of no plausible size."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    if number and not _SMALLEST_EXPONENT <= number.adjusted() <= _LARGEST_EXPONENT:
        return None
    return number


def number(value: Any, places: int | None = None, *, grouping: bool = True) -> str:
    amount = to_decimal(value)
    if amount is None:
        return ""
    if places is None:
        amount = amount.normalize()
        places = max(0, -amount.as_tuple().exponent)  # type: ignore[operator]
    return formats.number_format(amount, decimal_pos=places, use_l10n=True, force_grouping=grouping)


def editable_number(value: Any) -> str:
    """A quantity for a text input the shopper edits: the language's decimal mark (``0,5``), no grouping; the
    server reads both marks back."""
    return number(value, grouping=False)


def money(value: Any) -> str:
    """A hryvnia amount with two decimals, the sign where the language puts it."""
    text = number(value, 2)
    if not text:
        return ""
    if (get_language() or "uk").startswith("en"):
        return f"₴{text}"
    return f"{text}\u00a0₴"


def unit_label(unit: str | None) -> str:
    labels = {
        "pcs": pgettext("unit", "pcs"),
        "kg": pgettext("unit", "kg"),
        "g": pgettext("unit", "g"),
        "l": pgettext("unit", "l"),
        "ml": pgettext("unit", "ml"),
        "pack": pgettext("unit", "pack"),
    }
    return labels.get(unit or "pcs", unit or "")


def quantity(value: Any, unit: str | None = "pcs") -> str:
    text = number(value)
    if not text:
        return ""
    return f"{text}\u00a0{unit_label(unit)}"


def per_unit(unit: str | None) -> str:
    """The "per kg" suffix of a weighed product's price."""
    if unit in (None, "", "pcs"):
        return ""
    return _("per %(unit)s") % {"unit": unit_label(unit)}


def stepper_bounds(product: Any) -> tuple[Decimal, Decimal]:
    """A product's stepper increment and minimum: the catalog's ``quantity_step`` (else 1: a 0.1 step would be wrong
    for pieces) and ``min_quantity`` (else one step). Product data is untrusted, so only positive values count."""
    data = product if isinstance(product, dict) else {}
    step = to_decimal(data.get("quantity_step"))
    step = step if step is not None and step > 0 else Decimal(1)
    minimum = to_decimal(data.get("min_quantity"))
    return step, minimum if minimum is not None and minimum > 0 else step


def cart_lines(items: Any) -> int:
    """The badge's count: the lines of the cart the upstream sent (2 kg of potatoes and 3 bottles of milk are 2).

    Summing quantities would add kilograms to pieces ("4,8")."""
    lines = items if isinstance(items, list) else []
    return sum(1 for item in lines if isinstance(item, dict))


def line_total(item: Any) -> Decimal | None:
    """A cart line's subtotal at the price the shopper pays (the promo price wins), rounded to kopiykas."""
    data = item if isinstance(item, dict) else {}
    price = to_decimal(data.get("promo_price"))
    price = price if price is not None else to_decimal(data.get("price"))
    amount = to_decimal(data.get("quantity"))
    if price is None or amount is None:
        return None
    return (price * amount).quantize(Decimal("0.01"))


def changed_quantity(change: Any) -> str:
    """The quantity of a one-line cart change with its unit ("0,8 кг"); the unit comes from the change or its line."""
    data = change if isinstance(change, dict) else {}
    if data.get("quantity") is None:
        return ""
    unit = data.get("unit")
    if not unit:
        items = data.get("items")
        lines = items if isinstance(items, list) else []
        line = next((item for item in lines if isinstance(item, dict) and item.get("sku") == data.get("sku")), {})
        unit = line.get("unit") or "pcs"
    return quantity(data.get("quantity"), str(unit))


def display_name(product: Any) -> str:
    """A product's name in the page's language: the catalog's English name for English readers, when there is one."""
    data = product if isinstance(product, dict) else {}
    english = data.get("name_en")
    if (get_language() or "").startswith("en") and isinstance(english, str) and english:
        return english
    return str(data.get("name", ""))
