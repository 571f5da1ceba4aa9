"""The admin in Ukrainian has no English left: every page store staff open, every label, filter, action and column.

The pages are read as a person (and a screen reader) gets them: text between tags plus the attributes that are
shown or spoken (``title``, ``aria-label``, ``placeholder``, ``alt``, button values). Data values are Cyrillic in
this test, so any remaining Latin word is a label someone forgot (like "TURN COUNT" or "За created at" once were).
"""

from __future__ import annotations

import re
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import translation

from chat.admin import ConversationAdmin, MessageAdmin
from chat.models import Conversation, Message, Turn
from chat.persistence import claims, store

pytestmark = pytest.mark.django_db

SPOKEN = {"title", "aria-label", "placeholder", "alt"}
#: Latin that is no English label: file formats named in the export actions and the CSV links.
ALLOWED = {"CSV", "JSON"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'’]+")


class Visible(HTMLParser):
    """Text a person reads or hears: text nodes outside script/style, and the spoken attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template", "code"):  # <code>: identifiers (error codes, SKUs), no labels
            self.skip += 1
        values = dict(attrs)
        self.parts += [value for name, value in attrs if name in SPOKEN and value]
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.parts.append(values["value"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template", "code") and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def english_left(html: str) -> set[str]:
    parser = Visible()
    parser.feed(html)
    text = UUID.sub(" ", " ".join(parser.parts))
    return {word for word in LATIN_WORD.findall(text) if word not in ALLOWED}


@pytest.fixture
def ukrainian(settings: Any) -> Client:
    settings.LANGUAGE_CODE = "uk"
    client = Client(HTTP_ACCEPT_LANGUAGE="uk")
    client.force_login(User.objects.create_superuser("адмін", password=None))
    return client


@pytest.fixture
def conversation() -> Conversation:
    """A chat in Cyrillic only, with every kind of message, a cart and its turn records."""
    conversation = Conversation.objects.create(
        user_id="покупець-1", store_id="магазин-1", upstream_id="розмова-1", title="Потрібне молоко"
    )
    started = claims.begin_turn(conversation.pk, kind="text", text="Потрібне молоко", payload={}, client_key="к1")
    assert started.message is not None
    claims.store_sent(started.message, None)
    store.save_assistant_text(conversation.pk, "Ось **молоко**:")
    card = {
        "sku": "молоко-1",
        "name": "Молоко",
        "price": 42.9,
        "promo_price": 38.5,
        "promo_label": "−10 %",
        "unit": "pcs",
    }
    store.save_frame(conversation.pk, Message.Kind.PRODUCT_CARDS, {"type": "product_cards", "items": [card]})
    replies = {"type": "quick_replies", "prompt": "Ще?", "replies": [{"label": "Так", "value": "так"}]}
    store.save_frame(conversation.pk, Message.Kind.QUICK_REPLIES, replies)
    beet = {"id": "1", "name": "Буряк", "quantity": 0.5, "unit": "kg"}
    checklist = {"type": "ingredient_checklist", "title": "Борщ", "items": [beet]}
    store.save_frame(conversation.pk, Message.Kind.CHECKLIST, checklist)
    line = {"sku": "молоко-1", "name": "Молоко", "price": 38.5, "quantity": 2, "unit": "kg"}  # a unit code: localized
    change = {"type": "cart_changed", "action": "item_selected", "sku": "молоко-1", "name": "Молоко", "items": [line]}
    store.save_cart(conversation.pk, change | {"quantity": 2, "total": 77}, [line], Decimal(77), 1)
    store.save_frame(conversation.pk, Message.Kind.ERROR, {"type": "error", "code": "rate_limit_exceeded"}, "код")
    store.save_assistant_text(conversation.pk, "Обірвана відповідь", complete=False)
    claims.end_turn(conversation.pk)
    store.record_turn(
        conversation.pk, seq=1, started_at=started.message.created_at, first_token_ms=500, duration_ms=1200,
        outcome="answered", query="Потрібне молоко", had_cards=True, cart_adds=1, cart_total=Decimal(77),
        added=[{"sku": "молоко-1", "name": "Молоко", "quantity": "2"}],
    )  # fmt: skip
    return conversation


def pages(conversation: Conversation) -> dict[str, str]:
    changelist = reverse("admin:chat_conversation_changelist")
    message = Message.objects.filter(conversation=conversation).first()
    assert message is not None
    return {
        "index": reverse("admin:index"),
        "app": reverse("admin:app_list", args=["chat"]),
        "changelist": changelist,
        "changelist, filtered": f"{changelist}?turns=all&has_cart=yes&status__exact=idle&q=молоко",
        "changelist, by day": f"{changelist}?created_at__year={conversation.created_at.year}",
        "changelist, nothing found": f"{changelist}?q=щосьінше",
        "conversation": reverse("admin:chat_conversation_change", args=[conversation.pk]),
        "history": reverse("admin:chat_conversation_history", args=[conversation.pk]),
        "delete": reverse("admin:chat_conversation_delete", args=[conversation.pk]),
        "live": reverse("admin:chat_conversation_transcript", args=[conversation.pk]) + "?after=0",
        "messages": reverse("admin:chat_message_changelist"),
        "messages, filtered": reverse("admin:chat_message_changelist") + "?role__exact=user&complete__exact=1",
        "message": reverse("admin:chat_message_change", args=[message.pk]),
        "insights": reverse("admin_insights") + "?period=30",
    }


def test_every_admin_page_is_in_ukrainian(ukrainian: Client, conversation: Conversation) -> None:
    leftovers = {}
    for name, url in pages(conversation).items():
        response = ukrainian.get(url)
        assert response.status_code == 200, name
        words = english_left(response.content.decode())
        if words:
            leftovers[name] = sorted(words)
    assert leftovers == {}


def test_the_delete_action_confirmation_is_in_ukrainian(ukrainian: Client, conversation: Conversation) -> None:
    response = ukrainian.post(
        reverse("admin:chat_conversation_changelist"),
        {"action": "delete_selected", "_selected_action": [conversation.pk]},
    )
    assert response.status_code == 200
    assert english_left(response.content.decode()) == set()


def test_every_label_has_ukrainian_wording() -> None:
    """Each model and field name, filter title, action and column, compared between the two languages."""
    from django.contrib import admin

    labels: dict[str, Any] = {}
    for model in (Conversation, Message, Turn):
        labels[f"{model.__name__}"] = model._meta.verbose_name
        labels[f"{model.__name__} plural"] = model._meta.verbose_name_plural
        for field in model._meta.get_fields():
            if hasattr(field, "verbose_name"):
                labels[f"{model.__name__}.{field.name}"] = field.verbose_name
            for value, label in getattr(field, "choices", None) or ():
                labels[f"{model.__name__}.{field.name}={value}"] = label
    for model_admin in (admin.site._registry[Conversation], admin.site._registry[Message]):
        assert isinstance(model_admin, ConversationAdmin | MessageAdmin)
        for name in model_admin.list_display:
            described = getattr(getattr(model_admin, name, None), "short_description", None)
            if described is not None:
                labels[f"column {name}"] = described
        for action in model_admin.actions or ():
            assert isinstance(action, str)  # ours are named methods of the admin
            labels[f"action {action}"] = getattr(model_admin, action).short_description
        for item in model_admin.list_filter:
            if isinstance(item, tuple):
                # chat.admin.conversations.titled() sets it on a class it makes at run time: the stubs cannot know.
                labels[f"filter {item[0]}"] = item[1].label  # type: ignore[attr-defined]
            elif hasattr(item, "title"):
                labels[f"filter {item.__name__}"] = item.title
    same = []
    for where, label in labels.items():
        with translation.override("en"):
            english = str(label)
        with translation.override("uk"):
            ukrainian = str(label)
        if english == ukrainian and english not in ("ID",):
            same.append(f"{where}: {english}")
    assert same == []


# --- wording (issue 25) -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "shown"),
    [(1, "1 позиція · 77,00\u00a0₴"), (3, "3 позиції · 77,00\u00a0₴"), (10, "10 позицій · 77,00\u00a0₴")],
)
def test_the_cart_column_says_lines_and_total(ukrainian: Client, lines: int, shown: str) -> None:
    """ "10 × 164,01 ₴" read as ten at 164,01 each: it is ten lines, 164,01 in all."""
    Conversation.objects.create(
        user_id="покупець", store_id="магазин", turn_count=1, cart_count=lines, cart_total=Decimal(77)
    )
    page = ukrainian.get(reverse("admin:chat_conversation_changelist")).content.decode()
    assert shown in page and " × " not in page


def test_the_day_filter_says_the_day_in_the_genitive(ukrainian: Client, conversation: Conversation) -> None:
    created = conversation.created_at
    url = reverse("admin:chat_conversation_changelist")
    page = ukrainian.get(f"{url}?created_at__year={created.year}&created_at__month={created.month}").content.decode()
    with translation.override("uk"):
        from django.utils import dateformat, timezone

        day = dateformat.format(timezone.localtime(created), "j E")
    assert day[0] != "0" and day.split()[1][-1] in "яу"  # "7 грудня", not "07 Грудень"
    assert f">{day}<" in page


def test_the_index_names_the_product_not_django(ukrainian: Client) -> None:
    page = ukrainian.get(reverse("admin:index")).content.decode()
    assert "Адміністрування сайта" not in page and "Django" not in page
    assert "<title>Розмови та аналітика | Адміністрування Візочка</title>" in page


def test_a_favicon_is_served(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\0\0\1\0"  # an ICO header


def test_the_messages_list_searches_the_text(ukrainian: Client, conversation: Conversation) -> None:
    url = reverse("admin:chat_message_changelist")
    page = ukrainian.get(url).content.decode()
    assert 'id="searchbar"' in page
    found = ukrainian.get(url, {"q": "обірвана"})
    assert [m.text for m in found.context["cl"].result_list] == ["Обірвана відповідь"]
    assert ukrainian.get(url, {"q": str(conversation.public_id)}).context["cl"].result_count > 3
