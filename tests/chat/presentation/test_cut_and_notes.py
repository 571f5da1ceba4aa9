"""Issue 22: a reply stopped mid-list ends at its last written item, and a turn's cart changes read as one note."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.utils import timezone, translation

from chat.models import Message
from chat.presentation import rendering
from chat.turns.runner import CartRun

Role, Kind = Message.Role, Message.Kind


def reply(seq: int, text: str, **payload: Any) -> Message:
    return Message(seq=seq, role=Role.ASSISTANT, kind=Kind.TEXT, text=text, payload=payload, created_at=timezone.now())


def test_a_stopped_numbered_list_has_no_empty_item() -> None:
    for ending in ("4.", "4. ", "4)\n", "- "):
        html = rendering.render_item(reply(5, f"Кроки:\n1. Зваріть\n2. Наріжте\n3. Додайте\n{ending}", stopped=True))
        assert "<li></li>" not in html and html.count("<li>") == 3, (ending, html)


def test_a_finished_reply_is_rendered_as_written() -> None:
    html = rendering.render_item(reply(5, "1. one\n2. two"))
    assert html.count("<li>") == 2


def cart(seq: int, sku: str, run: CartRun, total: str, action: str = "item_selected") -> Message:
    change = {"type": "cart_changed", "action": action, "sku": sku, "name": sku, "quantity": 1, "total": total}
    change["items"] = [{"sku": sku, "name": sku, "price": total, "quantity": 1}]
    note = run.add(change)
    message = Message(seq=seq, role=Role.ASSISTANT, kind=Kind.CART, payload={**change, "note": note})
    message.created_at = timezone.now()
    run.seq = seq if note else None
    return message


def test_a_turns_cart_changes_show_as_one_note_in_the_first_ones_place() -> None:
    run = CartRun()
    messages = [reply(1, "Додаю.")]
    messages += [cart(2 + n, f"sku-{n}", run, str(Decimal("35.07") * (n + 1))) for n in range(10)]
    messages += [reply(12, "Готово.")]
    with translation.override("uk"):
        html = str(rendering.page_items(messages))
    notes = re.findall(r'<p class="cart-note"[^>]*id="msg-(\d+)"', html)
    assert notes == ["11"]  # the last change's note, with the total after the whole run
    assert html.index("msg-1") < html.index("msg-11") < html.index("msg-12")
    text = re.sub(r"<[^>]+>|\s+", " ", html[html.index('class="cart-note"') :].split("</p>")[0])
    assert "Додано 10 товарів" in text and "350,70" in text, text
    # Live, each note names the one it takes the place of (static/chat/feed.js place()).
    assert 'data-replaces="msg-10"' in rendering.render_item(messages[10])


def test_plural_forms_of_the_note() -> None:
    from chat.presentation.texts import cart_run_text

    with translation.override("uk"):
        assert [cart_run_text({"item_selected": n}) for n in (2, 5, 21, 22)] == [
            "Додано 2 товари",
            "Додано 5 товарів",
            "Додано 21 товар",
            "Додано 22 товари",
        ]
        assert cart_run_text({"item_selected": 1}) == ""  # one change: the note names the product
        assert cart_run_text({"item_selected": 2, "item_removed": 1}) == "У кошику змінено 3 товари"
    with translation.override("en"):
        assert cart_run_text({"item_selected": 10}) == "Added 10 items"
        assert cart_run_text({"item_removed": 1, "replaces": 4}) == "Removed 1 item"


def test_a_whole_cart_change_starts_a_new_run() -> None:
    run = CartRun()
    assert run.add({"action": "item_selected", "sku": "a"}) == {"item_selected": 1}
    run.seq = 3
    assert run.add({"action": "item_selected", "sku": "b"}) == {"item_selected": 2, "replaces": 3}
    assert run.add({"action": "cart_cleared"}) == {}
    assert run.seq is None and run.add({"action": "item_removed", "sku": "a"}) == {"item_removed": 1}
